//! Running the user's hooks (`[lan] hook` after a re-address, `[daemon]
//! url_hook` when a tunnel's public URL changes). A hook's failure is
//! reported, never fatal.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// A hook that hangs must not hold the LAN task forever.
const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the hook with `env` (names as in the contract; values are made one
/// line each); Ok carries a short summary, Err says what went wrong.
pub async fn run(path: &Path, env: &[(&str, &str)]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(path);
    for (k, v) in env {
        cmd.env(k, v.replace('\n', " "));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // ETXTBSY: the script was just written and some process forked meanwhile
    // still holds it open for writing (until its exec); that passes at once.
    let mut tries = 0;
    let child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r => break r.map_err(|e| format!("hook {} could not start: {e}", path.display()))?,
        }
    };
    let out = match tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("hook {}: {e}", path.display())),
        Err(_) => {
            return Err(format!(
                "hook {} did not finish within {} s and was killed",
                path.display(),
                HOOK_TIMEOUT.as_secs()
            ));
        }
    };
    for line in String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .take(50)
    {
        log::info!("hook: {line}");
    }
    if out.status.success() {
        Ok(format!("hook {} succeeded", path.display()))
    } else {
        Err(format!("hook {} failed: {}", path.display(), out.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("roadie-hook-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("hook.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ROADIE_OLD_PREFIX", "192.168.1.0/24"),
            ("ROADIE_NEW_PREFIX", "10.23.4.0/24"),
            ("ROADIE_LAN_ADDRESS", "10.23.4.1/24"),
            ("ROADIE_REASON", "collides\nwith wan0"),
        ]
    }

    #[tokio::test(flavor = "current_thread")]
    async fn hook_gets_the_contract_environment() {
        let out = script("env", "");
        let log = out.with_file_name("env.txt");
        let p = script(
            "env",
            &format!(
                "echo \"$ROADIE_OLD_PREFIX $ROADIE_NEW_PREFIX $ROADIE_LAN_ADDRESS $ROADIE_REASON\" > {}",
                log.display()
            ),
        );
        run(&p, &env()).await.unwrap();
        let got = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            got.trim(),
            "192.168.1.0/24 10.23.4.0/24 10.23.4.1/24 collides with wan0"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn failures_are_errors_not_panics() {
        let p = script("fail", "exit 3");
        let e = run(&p, &env()).await.unwrap_err();
        assert!(e.contains("failed") && e.contains('3'), "{e}");
        let e = run(Path::new("/nonexistent/hook"), &env())
            .await
            .unwrap_err();
        assert!(e.contains("could not start"), "{e}");
    }
}
