//! Running the OpenWrt commands roadie calls (`uci`, `ubus`, init scripts):
//! with a deadline, stdin closed, and errors that name the command.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

/// Runs `program` to completion within `timeout`; Ok(its output) whatever
/// its exit status, Err when it could not run or did not finish in time.
pub async fn output(program: &Path, args: &[&str], timeout: Duration) -> Result<Output, String> {
    let what = describe(program, args);
    log::debug!("running {what}");
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what} did not finish within {} s",
            timeout.as_secs_f32()
        )),
    }
}

/// Ok(stdout) on exit 0, else an error naming the command, its exit status
/// and its first line of stderr.
pub async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    let out = output(program, args, timeout).await?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failure(program, args, &out))
    }
}

/// `/bin/ubus call network reload failed (exit status: 4): Command failed: Not found`
pub fn failure(program: &Path, args: &[&str], out: &Output) -> String {
    format!(
        "{} failed ({}): {}",
        describe(program, args),
        out.status,
        first_line(&out.stderr)
    )
}

/// The first non-empty line of a command's output, trimmed.
pub fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

fn describe(program: &Path, args: &[&str]) -> String {
    format!("{} {}", program.display(), args.join(" "))
}
