//! The persisted choice: current prefix, history, the per-router seed, and
//! the home address (so that a start after a move knows home even when it
//! comes from UCI, which by then holds the moved address).
//! Written atomically (temp file, fsync, rename) and only when it changes.

use crate::quote::Q;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many history entries are kept (a router's flash is small).
pub const HISTORY_MAX: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub seed: u64,
    /// The LAN prefix in use, e.g. "10.23.4.0/24"; absent means home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The router's home address, e.g. "192.168.1.1/24", recorded at start
    /// (see lan::home); absent in files written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    pub at: u64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

impl State {
    pub fn fresh(seed: u64) -> State {
        State {
            seed,
            prefix: None,
            home: None,
            history: Vec::new(),
        }
    }

    /// The recorded home address (`parse` checked it).
    pub fn home(&self) -> Option<ipnet::Ipv4Net> {
        self.home.as_deref().and_then(|h| h.parse().ok())
    }

    /// The saved prefix (`parse` checked it); `None`: at home.
    pub fn prefix(&self) -> Option<ipnet::Ipv4Net> {
        self.prefix.as_deref().and_then(|p| p.parse().ok())
    }

    pub fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
        if self.history.len() > HISTORY_MAX {
            let drop = self.history.len() - HISTORY_MAX;
            self.history.drain(..drop);
        }
    }
}

/// What loading found; `warning` is set when the file had to be ignored.
pub struct Loaded {
    pub state: State,
    pub warning: Option<String>,
}

/// Load the state file. Missing → fresh state; unreadable or corrupt → fresh
/// state and a warning, and the bad file is kept aside as `<path>.corrupt` so
/// nothing is lost.
pub fn load(path: &Path, new_seed: impl FnOnce() -> u64) -> Loaded {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Loaded {
                state: State::fresh(new_seed()),
                warning: None,
            };
        }
        Err(e) => {
            return Loaded {
                state: State::fresh(new_seed()),
                warning: Some(format!(
                    "cannot read state file {}: {e}; starting fresh",
                    path.display()
                )),
            };
        }
    };
    match parse(&text) {
        Ok(state) => Loaded {
            state,
            warning: None,
        },
        Err(e) => {
            let aside = corrupt_path(path);
            let kept = match std::fs::rename(path, &aside) {
                Ok(()) => format!("kept as {}", aside.display()),
                Err(re) => format!("could not keep it aside: {re}"),
            };
            Loaded {
                state: State::fresh(new_seed()),
                warning: Some(format!(
                    "state file {} is corrupt ({e}); starting fresh, {kept}",
                    path.display()
                )),
            }
        }
    }
}

/// Parse state text; the prefix must be an IPv4 prefix.
pub fn parse(text: &str) -> Result<State, String> {
    let state: State = toml::from_str(text).map_err(|e| e.message().to_string())?;
    if let Some(p) = &state.prefix {
        p.parse::<ipnet::Ipv4Net>()
            .map_err(|_| format!("prefix {p_q} is not an IPv4 prefix", p_q = Q(p)))?;
    }
    if let Some(h) = &state.home {
        h.parse::<ipnet::Ipv4Net>().map_err(|_| {
            format!(
                "home {h_q} is not an IPv4 address with its length",
                h_q = Q(h)
            )
        })?;
    }
    Ok(state)
}

fn corrupt_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".corrupt");
    PathBuf::from(s)
}

/// Write atomically: a reader sees the old file or the new one, never a mix.
pub fn save(path: &Path, state: &State) -> Result<(), String> {
    let text = toml::to_string(state).map_err(|e| format!("cannot encode state: {e}"))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(b"# written by roadie; edit with the daemon stopped\n")?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("cannot write state file {}: {e}", path.display()))
}

/// A seed that differs between routers: the kernel's randomness. Kept below
/// 2^63 because TOML integers are signed 64-bit.
pub fn random_seed() -> u64 {
    raw_seed() & (i64::MAX as u64)
}

fn raw_seed() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut buf).is_ok() {
            return u64::from_le_bytes(buf);
        }
    }
    // Fallback: time and pid, still different between routers booted at different times.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roadie-state-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_file_is_a_fresh_start_without_warning() {
        let d = tmpdir("missing");
        let l = load(&d.join("state.toml"), || 7);
        assert_eq!(l.state, State::fresh(7));
        assert!(l.warning.is_none());
    }

    #[test]
    fn round_trip() {
        let d = tmpdir("roundtrip");
        let p = d.join("state.toml");
        let mut s = State::fresh(42);
        s.prefix = Some("10.23.4.0/24".into());
        s.home = Some("192.168.8.1/24".into());
        s.push_history(HistoryEntry {
            at: 1,
            from: "192.168.1.0/24".into(),
            to: "10.23.4.0/24".into(),
            reason: "collides with wan0".into(),
        });
        save(&p, &s).unwrap();
        let l = load(&p, || 0);
        assert!(l.warning.is_none());
        assert_eq!(l.state, s);
        assert_eq!(l.state.home(), Some("192.168.8.1/24".parse().unwrap()));
        assert_eq!(l.state.prefix(), Some("10.23.4.0/24".parse().unwrap()));
        assert_eq!(State::fresh(1).home(), None);
        assert!(!d.join("state.toml.tmp").exists());
    }

    #[test]
    fn corrupt_files_are_kept_aside_with_a_warning() {
        for (name, text) in [
            ("garbage", "this is not toml ]["),
            ("badprefix", "seed = 1\nprefix = \"10.1.2.300/24\"\n"),
            ("badhome", "seed = 1\nhome = \"192.168.1.1\"\n"),
            ("unknown", "seed = 1\ncolour = \"red\"\n"),
            ("noseed", "prefix = \"10.1.2.0/24\"\n"),
        ] {
            let d = tmpdir(name);
            let p = d.join("state.toml");
            std::fs::write(&p, text).unwrap();
            let l = load(&p, || 9);
            assert_eq!(l.state, State::fresh(9), "{name}");
            let w = l.warning.expect(name);
            assert!(w.contains("corrupt"), "{name}: {w}");
            assert_eq!(
                std::fs::read_to_string(d.join("state.toml.corrupt")).unwrap(),
                text
            );
        }
    }

    #[test]
    fn seeds_fit_in_toml() {
        for _ in 0..64 {
            let d = tmpdir("seed");
            let p = d.join("state.toml");
            let s = State::fresh(random_seed());
            save(&p, &s).unwrap();
            assert_eq!(load(&p, || 0).state, s);
        }
    }

    #[test]
    fn history_is_bounded() {
        let mut s = State::fresh(1);
        for i in 0..(HISTORY_MAX as u64 + 5) {
            s.push_history(HistoryEntry {
                at: i,
                from: "a".into(),
                to: "b".into(),
                reason: "r".into(),
            });
        }
        assert_eq!(s.history.len(), HISTORY_MAX);
        assert_eq!(s.history[0].at, 5);
    }
}
