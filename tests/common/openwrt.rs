//! OpenWrt's own userland as a test bed: when `OPENWRT_ROOT` names an OpenWrt
//! root tree (procd, ubusd, uci, netifd, rpcd, logd, opkg, uhttpd and
//! OpenWrt's rc.common, procd.sh, functions.sh, built from OpenWrt's public
//! sources outside this repository), [`Router::start`] makes a throw-away
//! router from it with tests/openwrt-router: new network, mount, pid, uts
//! and ipc namespaces, the tree overlaid on /usr, /etc and /var with tmpfs
//! upper layers, ubusd + procd + logd + rpcd + netifd running. A test runs
//! commands in it ([`Router::sh`], [`Router::run`], [`Router::spawn`]) and
//! reads and writes its files ([`Router::read`], [`Router::write`], through
//! /proc/PID/root, which shows the router's mounts).
//!
//! Dropping the router kills its PID 1 (by PID), and the kernel kills every
//! process inside; the namespaces and mounts vanish with them. Its PID 1
//! also dies when the test process does (unshare under a parent-death
//! signal, with --kill-child). Private addresses exist only inside.
//!
//! Without `OPENWRT_ROOT` the tests that need it print
//! `SKIP: OPENWRT_ROOT not set: using the doubles` once per test binary and
//! pass, also under CI=true: CI has no OpenWrt tree, and the doubles
//! (tests/doubles) stand in for it in tests/uci_lab.rs and
//! tests/openwrt_package.rs.

use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::thread;
use std::time::{Duration, Instant};

use super::proc::{alive, child_of, die_with_parent, read_log, run_with, spawn_logged};
use super::{SHORT, lab_possible, unique, wait_for};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// What a tree must have for the router and the package tests.
pub const TREE: &[&str] = &[
    "usr/sbin/ubusd",
    "usr/sbin/procd",
    "usr/sbin/netifd",
    "usr/sbin/rpcd",
    "usr/sbin/logd",
    "usr/sbin/logread",
    "usr/sbin/uhttpd",
    "usr/bin/ubus",
    "usr/bin/uci",
    "usr/bin/opkg",
    "usr/bin/jsonfilter",
    "usr/share/libubox/jshn.sh",
    "usr/lib/opkg/status",
    "etc/rc.common",
    "etc/init.d/log",
    "etc/init.d/rpcd",
    "etc/init.d/network",
    "etc/opkg.conf",
    "lib/functions.sh",
    "lib/functions/procd.sh",
    "lib/netifd/netifd-proto.sh",
    "lib/netifd/proto/dhcp.sh",
    "lib/netifd/dhcp.script",
];

/// The note printed instead of running (once per test binary).
pub const SKIP_NOTE: &str = "SKIP: OPENWRT_ROOT not set: using the doubles";

/// The OpenWrt tree to test on, or None (the note printed once): no
/// `OPENWRT_ROOT`, or no root (then [`lab_possible`]'s SKIP). Panics when
/// `OPENWRT_ROOT` is set but is not a usable tree: that is a broken setup,
/// not a reason to skip.
pub fn openwrt_root() -> Option<PathBuf> {
    let root = match std::env::var_os("OPENWRT_ROOT") {
        Some(r) if !r.is_empty() => PathBuf::from(r),
        _ => {
            not_set_note();
            return None;
        }
    };
    if !lab_possible() {
        return None;
    }
    let missing: Vec<&str> = TREE
        .iter()
        .copied()
        .filter(|p| fs::symlink_metadata(root.join(p)).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "OPENWRT_ROOT={} is not an OpenWrt root tree: it lacks {}",
        root.display(),
        missing.join(", ")
    );
    Some(root)
}

/// Not a failure, not even under CI=true (unlike [`super::skip`]): CI has no
/// OpenWrt tree, and the doubles cover what runs there.
fn not_set_note() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| println!("{SKIP_NOTE}"));
}

/// A command's exit code and output.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout and stderr, for messages.
    pub fn both(&self) -> String {
        format!("[exit {}]\n{}{}", self.code, self.stdout, self.stderr)
    }
}

/// A running router (see the module documentation).
pub struct Router {
    /// The tree it runs.
    pub root: PathBuf,
    /// The test's directory on the host: tests/openwrt-router's log, the
    /// mount point of the scratch tmpfs (empty outside the router).
    pub dir: PathBuf,
    /// unshare, which waits for PID 1.
    unshare: Child,
    /// The router's PID 1 (tests/openwrt-router), as the host sees it.
    pid: u32,
    /// The writing end of PID 1's stdin: closing it ends the router.
    stdin: Option<std::process::ChildStdin>,
}

/// Deadline for the router to come up (ubusd, procd, logd, rpcd, netifd).
const START: Duration = Duration::from_secs(30);

impl Router {
    /// A fresh router from `root`, ready (netifd has network.lan up).
    pub fn start(root: &Path) -> Router {
        let id = unique("owrt");
        let dir = std::env::temp_dir().join("roadie-openwrt").join(&id);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("scratch")).expect("create the router's directory");
        let log = dir.join("router.log");
        let out = super::proc::append_log(&log);
        let err = out.try_clone().expect("dup the log");
        let mut cmd = Command::new(Path::new(REPO).join("tests/openwrt-router"));
        cmd.arg(root)
            .arg(dir.join("scratch"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C")
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        let mut unshare = die_with_parent(&mut cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/openwrt-router: {e}"));
        let stdin = unshare.stdin.take();
        let upid = unshare.id();
        let started = Instant::now();
        let pid = wait_for("the router's PID 1", SHORT, || {
            if let Ok(Some(st)) = unshare.try_wait() {
                panic!(
                    "tests/openwrt-router exited ({st}) before it started:\n{}",
                    read_log(&log)
                );
            }
            child_of(upid)
        });
        let mut r = Router {
            root: root.into(),
            dir,
            unshare,
            pid,
            stdin,
        };
        let ready = r.path("/run/openwrt-router.ready");
        loop {
            if ready.exists() {
                break;
            }
            if let Ok(Some(st)) = r.unshare.try_wait() {
                panic!(
                    "the router stopped ({st}) before it was ready:\n{}",
                    r.log()
                );
            }
            if started.elapsed() > START {
                panic!("the router was not ready within {START:?}:\n{}", r.log());
            }
            thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "router {} up in {:.2} s (PID 1 is {pid} on the host)",
            r.dir.display(),
            started.elapsed().as_secs_f64()
        );
        r
    }

    /// The router's PID 1 as the host sees it (its network namespace is
    /// `/proc/PID/ns/net`: `ip link add ... netns PID`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// tests/openwrt-router's own log.
    pub fn log(&self) -> String {
        read_log(&self.dir.join("router.log"))
    }

    /// `path` inside the router, seen from the host.
    pub fn path(&self, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        PathBuf::from(format!("/proc/{}/root", self.pid)).join(rel)
    }

    pub fn exists(&self, path: &str) -> bool {
        fs::symlink_metadata(self.path(path)).is_ok()
    }

    /// A file of the router ("" when it does not exist).
    pub fn read(&self, path: &str) -> String {
        fs::read_to_string(self.path(path)).unwrap_or_default()
    }

    pub fn write(&self, path: &str, data: impl AsRef<[u8]>) {
        let p = self.path(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("router: mkdir {}: {e}", parent.display()));
        }
        fs::write(&p, data).unwrap_or_else(|e| panic!("router: write {path}: {e}"));
    }

    /// The command line that runs `sh -c script` inside the router, as a
    /// router's shell would: its namespaces, root and working directory
    /// `/`, OpenWrt's PATH.
    fn command(&self, script: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t")
            .arg(self.pid.to_string())
            .args(["-n", "-m", "-p", "-u", "-i", "-r", "-w", "--"])
            .args(["/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("LANG", "C")
            .current_dir("/");
        c
    }

    /// Runs `script` (ash) inside the router to completion (deadline
    /// `timeout`): its exit code and output, whatever the code.
    pub fn run_for(&self, script: &str, input: Option<&[u8]>, timeout: Duration) -> Out {
        let out = run_with(&mut self.command(script), input, timeout);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// [`Router::run_for`] with a 20 s deadline.
    pub fn run(&self, script: &str) -> Out {
        self.run_for(script, None, Duration::from_secs(20))
    }

    /// Runs `script`, which must exit 0; its stdout.
    pub fn sh(&self, script: &str) -> String {
        let out = self.run(script);
        assert_eq!(
            out.code,
            0,
            "in the router: `{script}` failed: {}",
            out.both()
        );
        out.stdout
    }

    /// `script`'s stdout as JSON (it must exit 0 and print JSON).
    pub fn json(&self, script: &str) -> Value {
        let out = self.sh(script);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("in the router: `{script}` printed no JSON ({e}): {out}"))
    }

    /// Starts `script` in the background inside the router, its output
    /// appended to `log` (on the host). It runs until it exits, the
    /// [`Background`] is dropped, or the router goes.
    pub fn spawn(&self, script: &str, log: &Path) -> Background {
        Background(spawn_logged(&mut self.command(script), log))
    }

    /// `ubus call OBJECT METHOD [JSON]` inside the router, as JSON.
    pub fn ubus(&self, object: &str, method: &str, params: &Value) -> Value {
        let p = params.to_string().replace('\'', r"'\''");
        let out = self.sh(&format!("ubus call {object} {method} '{p}'"));
        if out.trim().is_empty() {
            return Value::Object(Default::default());
        }
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("ubus call {object} {method}: not JSON ({e}): {out}"))
    }

    /// procd's view of service `name`'s first instance: (running, pid inside
    /// the router), None when procd does not know the service or instance.
    pub fn procd_instance(&self, name: &str) -> Option<(bool, Option<u64>)> {
        let v = self.ubus("service", "list", &serde_json::json!({ "name": name }));
        let inst = v[name]["instances"].as_object()?.values().next()?.clone();
        Some((inst["running"] == true, inst["pid"].as_u64()))
    }

    /// True while something listens on TCP `port` in the router's network
    /// namespace.
    pub fn listening(&self, port: u16) -> bool {
        super::proc::listening(self.pid, "tcp", port)
    }

    /// IPv4 addresses (CIDR) on `dev` inside the router.
    pub fn addrs(&self, dev: &str) -> Vec<String> {
        let out = self.run(&format!("ip -j -4 addr show dev {dev}"));
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        let mut r = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if let (Some(l), Some(p)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    r.push(format!("{l}/{p}"));
                }
            }
        }
        r
    }

    /// procd's, ubusd's and the router's own logs, for a failing test.
    pub fn dump(&self) -> String {
        let mut s = format!(
            "----- router log ({}) -----\n{}",
            self.dir.display(),
            self.log()
        );
        if alive(self.pid) {
            let out = self.run_for(
                "echo '--- logread:'; logread 2>&1 | tail -n 60; \
                 echo '--- procd:'; tail -n 30 /tmp/procd.log",
                None,
                SHORT,
            );
            s += &out.stdout;
        }
        s
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.dump());
        }
        drop(self.stdin.take());
        if alive(self.pid) {
            // SAFETY: kill(2) on the router's PID 1, which this test started
            // (unshare's child) and unshare has not reaped yet: unshare is
            // our unreaped child, and it reaps only by exiting.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
        // unshare exits once its child did; the kernel has killed the rest.
        let deadline = Instant::now() + SHORT;
        loop {
            match self.unshare.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = self.unshare.kill();
                    let _ = self.unshare.wait();
                    break;
                }
            }
        }
        if thread::panicking() {
            eprintln!("router files kept in {}", self.dir.display());
        } else if std::env::var_os("ROADIE_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A command started with [`Router::spawn`]: nsenter, and below it the
/// command inside the router. Dropping it kills both (by PID) and reaps
/// nsenter.
pub struct Background(Child);

impl Background {
    /// nsenter's PID on the host.
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            if let Some(inner) = child_of(self.0.id()) {
                // SAFETY: kill(2) on the child of our unreaped nsenter,
                // which nsenter has not reaped either (it is still running).
                unsafe { libc::kill(inner as libc::pid_t, libc::SIGKILL) };
            }
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}
