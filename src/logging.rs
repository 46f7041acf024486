//! The daemon's log: lines on stderr (`LEVEL [module] message`), or, under
//! procd, syslog datagrams to /dev/log with their own priority. procd logs a
//! service's stderr at daemon.err whatever it says, so `logread` would show
//! every line as an error; logd reads the priority from each datagram.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where syslog datagrams go on OpenWrt (logd) and most Linux systems.
pub const DEV_LOG: &str = "/dev/log";

/// `<PRI>` of a syslog line: facility daemon (3) and the level's severity.
pub fn priority(level: Level) -> u8 {
    const DAEMON: u8 = 3 << 3;
    DAEMON
        + match level {
            Level::Error => 3, // err
            Level::Warn => 4,  // warning
            Level::Info => 6,  // info
            Level::Debug | Level::Trace => 7,
        }
}

/// The syslog lines of one record: one datagram per line of the message
/// (logd shows each as its own entry), the module named only below info.
pub fn syslog_lines(level: Level, target: &str, pid: u32, message: &str) -> Vec<String> {
    let pri = priority(level);
    let module = if level >= Level::Debug {
        format!("[{target}] ")
    } else {
        String::new()
    };
    message
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("<{pri}>roadie[{pid}]: {module}{l}"))
        .collect()
}

/// The stderr line of one record.
pub fn stderr_line(level: Level, target: &str, message: &str) -> String {
    format!("{level} [{target}] {message}")
}

enum Sink {
    Stderr,
    Syslog(UnixDatagram, PathBuf),
}

struct Logger {
    level: LevelFilter,
    /// russh's debug output is a packet trace: only at `trace`.
    russh: LevelFilter,
    sink: Sink,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        let max = if m.target().starts_with("russh") {
            self.russh
        } else {
            self.level
        };
        m.level() <= max
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let message = r.args().to_string();
        if let Sink::Syslog(sock, path) = &self.sink {
            let mut sent = true;
            for line in syslog_lines(r.level(), r.target(), std::process::id(), &message) {
                // After logd restarted, the old connection is dead: connect again.
                sent &= sock.send(line.as_bytes()).is_ok()
                    || (sock.connect(path).is_ok() && sock.send(line.as_bytes()).is_ok());
            }
            if sent {
                return;
            }
            // logd restarting: the line still reaches procd's log via stderr.
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            stderr_line(r.level(), r.target(), &message)
        );
    }

    fn flush(&self) {}
}

/// Install the logger. With `syslog`, lines go to that socket (falling back to
/// stderr, with a note, when it cannot be reached at start).
pub fn init(level: LevelFilter, syslog: Option<&Path>) {
    let russh = if level >= LevelFilter::Trace {
        level
    } else {
        LevelFilter::Info
    };
    let mut note = None;
    let sink = match syslog {
        None => Sink::Stderr,
        Some(path) => match UnixDatagram::unbound().and_then(|s| s.connect(path).map(|_| s)) {
            Ok(s) => Sink::Syslog(s, path.to_path_buf()),
            Err(e) => {
                note = Some(format!(
                    "cannot log to {}: {e}; logging to stderr",
                    path.display()
                ));
                Sink::Stderr
            }
        },
    };
    let logger = Box::new(Logger { level, russh, sink });
    if log::set_logger(Box::leak(logger)).is_err() {
        eprintln!("roadie: a logger was already installed");
    }
    log::set_max_level(level);
    if let Some(n) = note {
        log::warn!("{n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_are_daemon_facility_with_the_level_severity() {
        for (level, pri) in [
            (Level::Error, 27),
            (Level::Warn, 28),
            (Level::Info, 30),
            (Level::Debug, 31),
            (Level::Trace, 31),
        ] {
            assert_eq!(priority(level), pri, "{level}");
        }
    }

    #[test]
    fn syslog_lines_split_messages_and_name_the_module_only_when_debugging() {
        let cases: &[(Level, &str, &[&str])] = &[
            (Level::Info, "moved", &["<30>roadie[7]: moved"]),
            (
                Level::Error,
                "reload refused:\nroadie.toml:3:1: bad\n\n",
                &[
                    "<27>roadie[7]: reload refused:",
                    "<27>roadie[7]: roadie.toml:3:1: bad",
                ],
            ),
            (Level::Debug, "x", &["<31>roadie[7]: [roadie::lan] x"]),
        ];
        for (level, msg, want) in cases {
            assert_eq!(syslog_lines(*level, "roadie::lan", 7, msg), *want, "{msg}");
        }
        assert_eq!(
            stderr_line(Level::Warn, "roadie::lan", "m"),
            "WARN [roadie::lan] m"
        );
    }
}
