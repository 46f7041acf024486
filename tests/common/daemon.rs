//! The daemon under test: `roadie -c roadie.toml daemon` inside a
//! namespace, its control socket (raw lines, JSON requests, the CLI) and
//! polling its status. Stopped on drop; its log is printed when the test
//! panicked.

use serde_json::{Value, json};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::thread;
use std::time::Duration;

use super::ns::{Ns, spawn_in};
use super::proc::{alive, append_log, read_log, run_with, stop_child};
use super::{ROADIE, SHORT, wait_for};

/// roadie's files (`roadie.toml`, `roadie.sock`, `roadie.log` in one
/// directory) and, while it runs, its process.
pub struct Roadie {
    pub ns: String,
    pub dir: PathBuf,
    pub cfg: PathBuf,
    pub sock: PathBuf,
    /// Arguments after `daemon` (e.g. `--syslog=PATH`).
    pub daemon_args: Vec<String>,
    child: Option<Child>,
    starts: u32,
    pids: Vec<u32>,
}

impl Roadie {
    /// roadie in `ns` with its files in `dir`; not started.
    pub fn new(ns: &str, dir: &Path) -> Roadie {
        Roadie {
            ns: ns.into(),
            dir: dir.into(),
            cfg: dir.join("roadie.toml"),
            sock: dir.join("roadie.sock"),
            daemon_args: Vec::new(),
            child: None,
            starts: 0,
            pids: Vec::new(),
        }
    }

    /// Writes `config`, starts roadie in `ns` and waits until it answers
    /// on its socket.
    pub fn start(ns: &Ns, dir: &Path, config: &str) -> Roadie {
        let mut r = Roadie::new(&ns.name, dir);
        r.write_config(config);
        r.spawn();
        wait_for("roadie to answer on its socket", SHORT, || {
            r.assert_alive();
            r.rpc("status", json!({})).ok()
        });
        r
    }

    /// Starts the daemon (again) without waiting for anything.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "roadie is already running");
        self.starts += 1;
        let log = self.dir.join("roadie.log");
        writeln!(
            append_log(&log),
            "=== lab: roadie daemon start #{} ===",
            self.starts
        )
        .unwrap();
        let cfg = self.cfg.to_str().unwrap();
        let mut args = vec![ROADIE, "-c", cfg, "daemon"];
        args.extend(self.daemon_args.iter().map(String::as_str));
        let child = spawn_in(&self.ns, &args, &log);
        self.pids.push(child.id());
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("roadie running").id()
    }

    /// Every PID this daemon ran as.
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    pub fn assert_alive(&self) {
        let pid = self.pid();
        assert!(alive(pid), "roadie (pid {pid}) died:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        read_log(&self.dir.join("roadie.log"))
    }

    pub fn write_config(&self, text: &str) {
        fs::write(&self.cfg, text).expect("write config");
    }

    /// Sends `sig` and waits for roadie to exit (SIGKILL after 5 s).
    /// Returns how long it took and the exit status.
    pub fn stop(&mut self, sig: libc::c_int) -> (Duration, ExitStatus) {
        let mut c = self.child.take().expect("roadie running");
        stop_child(&mut c, sig, Duration::from_secs(5))
    }

    // --- the control socket -----------------------------------------------

    /// Sends raw bytes on a fresh connection; returns the first reply line.
    pub fn raw(&self, bytes: &[u8]) -> std::io::Result<String> {
        let s = UnixStream::connect(&self.sock)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        // The daemon may answer and hang up before it read everything.
        let _ = (&s).write_all(bytes);
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line)?;
        Ok(line)
    }

    /// One request over the socket: Ok(result) or Err(error message).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let req = json!({"method": method, "params": params}).to_string() + "\n";
        let line = self
            .raw(req.as_bytes())
            .map_err(|e| format!("socket: {e}"))?;
        let v: Value =
            serde_json::from_str(&line).map_err(|e| format!("bad reply {line:?}: {e}"))?;
        if let Some(r) = v.get("result") {
            return Ok(r.clone());
        }
        Err(v["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("reply without result or error: {line}")))
    }

    /// Runs the roadie CLI with `-s <socket>` (from the root namespace; the
    /// socket is a file).
    pub fn cli(&self, args: &[&str]) -> Output {
        run_with(
            Command::new(ROADIE).arg("-s").arg(&self.sock).args(args),
            None,
            SHORT,
        )
    }

    /// `roadie call METHOD JSON`: Ok(result) on exit 0, Err(stderr) on exit 1.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        let p = params.to_string();
        let out = self.cli(&["call", method, &p]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        match out.status.code() {
            Some(0) => Ok(serde_json::from_str(&stdout).unwrap_or_else(|e| {
                panic!("`roadie call {method} {p}` printed no JSON ({e}): {stdout:?}")
            })),
            Some(1) => {
                assert!(!stderr.is_empty(), "`roadie call {method}` failed silently");
                Err(stderr)
            }
            other => panic!(
                "`roadie call {method} {p}` exited {other:?}: stdout {stdout:?} stderr {stderr:?}"
            ),
        }
    }

    // --- status -------------------------------------------------------------

    /// `status` over the socket, which must succeed.
    pub fn status(&self) -> Value {
        self.rpc("status", json!({})).expect("status")
    }

    /// Polls status (over the socket, every 10 ms, roadie alive) until
    /// `pred` holds; returns it.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        super::wait::wait_status(
            what,
            timeout,
            Duration::from_millis(10),
            || {
                self.assert_alive();
                self.rpc("status", json!({})).ok()
            },
            pred,
        )
    }

    /// The status object of tunnel `name`.
    pub fn tunnel(&self, name: &str) -> Value {
        let s = self.status();
        find_tunnel(&s, name)
            .cloned()
            .unwrap_or_else(|| panic!("no tunnel {name} in status: {s}"))
    }

    /// Polls the tunnel's status object until `pred` holds; returns it.
    pub fn wait_tunnel(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let s = self.wait_status(&format!("tunnel {name} to be {what}"), timeout, |s| {
            find_tunnel(s, name).is_some_and(&pred)
        });
        find_tunnel(&s, name).unwrap().clone()
    }

    pub fn wait_up(&self, name: &str) -> Value {
        self.wait_tunnel(name, "up", SHORT, |t| t["state"] == "up")
    }
}

impl Drop for Roadie {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "----- roadie log ({}) -----\n{}",
                self.dir.display(),
                self.log()
            );
        }
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, libc::SIGTERM, Duration::from_secs(3));
        }
    }
}

// ---------------------------------------------------------------------------
// Status accessors

/// The first tunnel's status object.
pub fn tunnel0(s: &Value) -> &Value {
    &s["tunnels"][0]
}

fn find_tunnel<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["tunnels"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == name))
}

pub fn settling(s: &Value) -> bool {
    s["lan"]["settling"].as_bool().unwrap_or(true)
}

pub fn evaluations(s: &Value) -> u64 {
    s["lan"]["evaluations"].as_u64().unwrap_or(0)
}

pub fn lan_prefix(s: &Value) -> String {
    s["lan"]["prefix"].as_str().unwrap_or_default().to_string()
}

pub fn history_len(s: &Value) -> usize {
    s["lan"]["history"].as_array().map_or(0, Vec::len)
}

/// The status entry for WAN interface `name`.
pub fn wan<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["wan"]
        .as_array()
        .and_then(|a| a.iter().find(|w| w["interface"] == name))
        .unwrap_or_else(|| panic!("status has no wan entry for {name}: {s}"))
}
