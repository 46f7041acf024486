//! Headless Chromium inside a namespace, driven over the DevTools protocol
//! through `--remote-debugging-pipe`: JSON messages, each ended by a NUL
//! byte, written to the browser's fd 3 and read from its fd 4. No
//! WebSocket, no extra tool: std, libc and serde_json.

use crate::common::proc::{alive, descendants, die_with_parent, kill_alive, read_log, stop_child};
use serde_json::{Value, json};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// Debian's package and program name.
pub const CHROMIUM: &str = "chromium";

/// How long one DevTools command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// True when Chromium is installed (scripts/install-deps luci).
pub fn installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub struct Browser {
    child: Option<Child>,
    to: File,
    from: Receiver<Value>,
    next_id: u64,
    /// The page's DevTools session (flat mode).
    session: Option<String>,
    pub log: PathBuf,
}

/// A pipe whose ends are closed on exec: (read, write).
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two valid descriptors on success, owned from here.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0, "pipe2");
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

impl Browser {
    /// Starts Chromium in namespace `ns` with a new, empty profile in
    /// `dir` (its HOME too, so nothing lands in the real one); its output
    /// goes to `dir/chromium.log`.
    pub fn start(ns: &str, dir: &Path) -> Browser {
        use std::os::fd::AsRawFd;
        let profile = dir.join("profile");
        fs::create_dir_all(&profile).unwrap();
        let log = dir.join("chromium.log");
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let (cmd_r, cmd_w) = pipe(); // we write commands, Chromium reads fd 3
        let (ev_r, ev_w) = pipe(); // Chromium writes fd 4, we read
        let (theirs_r, theirs_w) = (cmd_r.as_raw_fd(), ev_w.as_raw_fd());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, CHROMIUM])
            .args([
                "--headless",
                "--remote-debugging-pipe",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--disable-dev-shm-usage",
                "--no-proxy-server",
                "--hide-scrollbars",
                "--mute-audio",
                "--window-size=1100,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .env("HOME", dir)
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // SAFETY: only fcntl and dup2 (async-signal-safe) between fork and
        // exec: the pipe ends go to fd 3 and 4 by way of fds above 10, so
        // that neither can overwrite the other, and lose close-on-exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(theirs_r, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(theirs_w, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = die_with_parent(&mut cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        drop((cmd_r, ev_w));
        let (tx, from) = channel();
        let mut events = File::from(ev_r);
        thread::spawn(move || {
            let mut pending = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = match events.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = pending.drain(..=end).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1])
                        && tx.send(v).is_err()
                    {
                        return;
                    }
                }
            }
        });
        Browser {
            child: Some(child),
            to: File::from(cmd_w),
            from,
            next_id: 1,
            session: None,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("chromium running").id()
    }

    /// One DevTools command (to the page once [`Browser::open`] attached
    /// one); its `result`, or its error as text.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let session = if method.starts_with("Target.") || method.starts_with("Browser.") {
            None
        } else {
            self.session.clone()
        };
        self.send(method, params, session)
    }

    fn send(
        &mut self,
        method: &str,
        params: Value,
        session: Option<String>,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to
            .write_all(&bytes)
            .map_err(|e| format!("{method}: writing to {CHROMIUM}: {e}"))?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(reply) if reply["id"] == id => {
                    return match reply.get("error") {
                        Some(e) => Err(format!("{method}: {e}")),
                        None => Ok(reply["result"].clone()),
                    };
                }
                Ok(_event) => {}
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{method}: no answer within {CALL_TIMEOUT:?}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "{method}: {CHROMIUM} went away:\n{}",
                        read_log(&self.log)
                    ));
                }
            }
        }
    }

    fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{e}\n----- {CHROMIUM} log -----\n{}", read_log(&self.log)))
    }

    /// Opens `url` in a new page and attaches to it.
    pub fn open(&mut self, url: &str) {
        let target = self.ok("Target.createTarget", json!({"url": url}));
        let id = target["targetId"].clone();
        let attached = self.ok(
            "Target.attachToTarget",
            json!({"targetId": id, "flatten": true}),
        );
        self.session = attached["sessionId"].as_str().map(str::to_string);
        assert!(self.session.is_some(), "no DevTools session: {attached}");
    }

    /// Loads `url` in the page opened before.
    pub fn navigate(&mut self, url: &str) {
        let r = self.ok("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigate {url}: {r}");
    }

    /// Evaluates `js` in the page (promises awaited); its value as JSON.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.ok(
            "Runtime.evaluate",
            json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("the page threw evaluating {js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Clicks the element `selector` names (it must exist).
    pub fn click(&mut self, selector: &str) {
        let q = serde_json::to_string(selector).unwrap();
        let found = self.eval(&format!(
            "(() => {{ const b = document.querySelector({q}); if (!b || b.disabled) return false; b.click(); return true; }})()"
        ));
        assert_eq!(found, json!(true), "no enabled {selector} to click");
    }

    /// The whole page as a PNG `width` pixels wide, into `path`.
    pub fn screenshot(&mut self, path: &Path, width: u32) {
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .as_u64()
            .unwrap_or(900);
        self.ok(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        );
        let shot = self.ok("Page.captureScreenshot", json!({"format": "png"}));
        let png = data_encoding::BASE64
            .decode(shot["data"].as_str().unwrap().as_bytes())
            .expect("base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Chromium's own processes (zygote, renderer, ...): stopped by
        // their PIDs if they outlive the browser.
        let kids = descendants(child.id());
        let id = self.next_id;
        let bye = json!({"id": id, "method": "Browser.close"});
        let mut bytes = serde_json::to_vec(&bye).unwrap();
        bytes.push(0);
        let _ = self.to.write_all(&bytes);
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        stop_child(&mut child, libc::SIGTERM, Duration::from_secs(3));
        let left: Vec<u32> = kids.into_iter().filter(|&p| alive(p)).collect();
        kill_alive(&left);
        if thread::panicking() {
            eprintln!("----- {CHROMIUM} log -----\n{}", read_log(&self.log));
        }
    }
}
