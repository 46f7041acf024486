//! The last configuration that loaded, kept as a copy beside the config file
//! (`roadie.toml` -> `roadie.toml.last-good`), so that a typo in the file
//! cannot keep roadie down at the next boot: a start with an invalid file runs
//! with the copy and says why (status `config.problem`, the log). Only a first
//! start, with no copy yet, fails.
//!
//! Beside the config file rather than the state file: the state file's path is
//! itself a setting of the config file, which is what may be broken.

use crate::config::{self, Config, ConfigError, Diag};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the copy of `config` lives.
pub fn path_for(config: &Path) -> PathBuf {
    let mut s = config.as_os_str().to_owned();
    s.push(".last-good");
    PathBuf::from(s)
}

/// What a start runs with: the file's configuration, or the copy's and why.
#[derive(Debug)]
pub enum Start {
    File(Config),
    Copy { config: Config, problem: String },
}

/// Pure: the file's result and the copy's (None: no copy) decide.
pub fn choose(
    file: Result<Config, ConfigError>,
    copy: Option<Result<Config, ConfigError>>,
    copy_path: &Path,
) -> Result<Start, ConfigError> {
    let errors = match file {
        Ok(c) => return Ok(Start::File(c)),
        Err(e) => e,
    };
    match copy {
        Some(Ok(config)) => Ok(Start::Copy {
            problem: format!(
                "{} has errors; running the last configuration that loaded ({}):\n{errors}",
                config.path.display(),
                copy_path.display()
            ),
            config,
        }),
        // A copy that no longer loads (roadie was upgraded and a key changed):
        // the file's own errors are the ones to fix.
        _ => Err(errors),
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        diags: vec![Diag {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }],
    })
}

/// Load `path`; when it is valid, make it the copy (only when it changed:
/// flash wears).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read(path)?;
    let config = config::parse(&text, path)?;
    if let Err(e) = save(&path_for(path), &text) {
        log::warn!("{e}");
    }
    Ok(config)
}

/// For a start: the file, else the copy (see [`choose`]).
pub fn load_for_start(path: &Path) -> Result<Start, ConfigError> {
    let copy_path = path_for(path);
    let file = load(path);
    let copy = if file.is_err() {
        std::fs::read_to_string(&copy_path)
            .ok()
            .map(|text| config::parse(&text, path))
    } else {
        None
    };
    choose(file, copy, &copy_path)
}

/// Write `text` to `copy` atomically (a temporary file renamed over it), unless
/// it already holds exactly that.
pub fn save(copy: &Path, text: &str) -> Result<(), String> {
    if std::fs::read_to_string(copy).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let tmp = {
        let mut s = copy.as_os_str().to_owned();
        s.push(".tmp");
        PathBuf::from(s)
    };
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "cannot keep the last good config in {}: {what}: {e}",
            copy.display()
        )
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| fail("create", e))?;
    // The config may hold secrets' paths and tunnel names: as private as the file.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, copy).map_err(|e| fail("rename", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "[wan]\ninterfaces = [\"eth1\"]\n[lan]\ninterface = \"br-lan\"\naddress = \"192.168.1.1/24\"\n";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        config::parse(text, Path::new("/etc/roadie/roadie.toml"))
    }

    #[test]
    fn the_copy_sits_beside_the_file() {
        assert_eq!(
            path_for(Path::new("/etc/roadie/roadie.toml")),
            Path::new("/etc/roadie/roadie.toml.last-good")
        );
    }

    #[test]
    fn choose_runs_the_file_else_the_copy_else_fails_with_the_files_errors() {
        let copy = Path::new("/c");
        let bad = "[wan]\ninterfaces = 3\n";
        // (file, copy, expect: "file" | "copy" | "error")
        let cases: &[(&str, Option<&str>, &str)] = &[
            (GOOD, None, "file"),
            (GOOD, Some(bad), "file"),
            (bad, Some(GOOD), "copy"),
            (bad, None, "error"),
            (bad, Some(bad), "error"),
        ];
        for (file, c, want) in cases {
            let got = choose(parse(file), c.map(parse), copy);
            let got = match &got {
                Ok(Start::File(_)) => "file",
                Ok(Start::Copy { problem, .. }) => {
                    assert!(problem.contains("roadie.toml:2:"), "{problem}");
                    assert!(problem.contains("/c"), "{problem}");
                    "copy"
                }
                Err(e) => {
                    assert!(e.to_string().contains("roadie.toml:2:"), "{e}");
                    "error"
                }
            };
            assert_eq!(got, *want, "file {file:?}, copy {c:?}");
        }
    }

    #[test]
    fn save_writes_atomically_and_only_changes() {
        let dir = std::env::temp_dir().join(format!("roadie-lastgood-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("roadie.toml.last-good");
        save(&copy, GOOD).unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), GOOD);
        // A rewrite renames a new file over it: a new inode.
        use std::os::unix::fs::MetadataExt;
        let before = std::fs::metadata(&copy).unwrap().ino();
        save(&copy, GOOD).unwrap();
        let after = std::fs::metadata(&copy).unwrap().ino();
        assert_eq!(before, after, "an unchanged copy must not be rewritten");
        save(&copy, "x").unwrap();
        assert_eq!(std::fs::read_to_string(&copy).unwrap(), "x");
        assert!(!dir.join("roadie.toml.last-good.tmp").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
