//! Network namespaces: created with their own resolver file and `lo` up,
//! removed (with that file) on drop. Links between them are veth pairs
//! created directly inside the namespaces, so no private address ever
//! touches the root namespace.
//!
//! The free functions take a namespace by name (`ip -n NAME`); [`Ns`] has
//! the same as methods, plus sockets opened from a thread that entered the
//! namespace (`setns`), so the test process can serve and connect there
//! without extra tools.

use serde_json::Value;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::Duration;

use super::SHORT;
use super::proc::{run_ok, run_with, spawn_logged};

/// A network namespace, removed on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    /// Creates namespace `name`; panics if that fails.
    pub fn new(name: &str) -> Ns {
        Ns::create(name, true).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates namespace `name`, with IPv6 turned off unless `ipv6`. Err
    /// (with `ip`'s message) when `ip netns add` fails: a reason to skip.
    pub fn create(name: &str, ipv6: bool) -> Result<Ns, String> {
        let out = run_with(Command::new("ip").args(["netns", "add", name]), None, SHORT);
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(format!("`ip netns add {name}` failed: {msg}"));
        }
        let ns = Ns { name: name.into() };
        // `ip netns exec` bind-mounts this over /etc/resolv.conf, so
        // nothing inside waits on the host's resolver.
        let etc = Path::new("/etc/netns").join(name);
        fs::create_dir_all(&etc).expect("create /etc/netns/NAME");
        fs::write(
            etc.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .expect("write resolv.conf");
        if ipv6 {
            ns.ip(&["link", "set", "lo", "up"]);
        } else {
            // No IPv6: keeps netlink traffic to what a test does.
            ns.exec_ok(&[
                "sh",
                "-c",
                "echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 && \
                 echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && ip link set lo up",
            ]);
        }
        Ok(ns)
    }

    /// `ip -n NAME args...`, panicking on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        ip(&self.name, args)
    }

    /// Several `ip` commands at once.
    pub fn batch(&self, cmds: &str) {
        ip_batch(&self.name, cmds)
    }

    /// Runs `args` in here to completion, panicking unless it exits 0.
    fn exec_ok(&self, args: &[&str]) -> String {
        run_ok(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args),
        )
    }

    /// Run `f` on a thread that has entered this namespace; sockets it
    /// opens stay in the namespace wherever they are used afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        enter(&self.name, f)
    }

    pub fn listen(&self, addr: &str) -> TcpListener {
        self.enter(|| TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")))
    }

    pub fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let a: SocketAddr = addr.parse().unwrap();
        self.enter(|| TcpStream::connect_timeout(&a, Duration::from_secs(2)))
    }

    /// One HTTP GET through `addr`; the body on 200.
    pub fn get(&self, addr: &str) -> Result<String, String> {
        let mut s = self
            .connect(addr)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut resp = String::new();
        s.read_to_string(&mut resp)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        match resp.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.to_string()),
            _ => Err(format!("bad answer from {addr}: {resp:?}")),
        }
    }

    /// True while something listens on 127.0.0.1:`port` here.
    pub fn listening(&self, port: u16) -> bool {
        self.connect(&format!("127.0.0.1:{port}")).is_ok()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&self.name));
    }
}

/// A veth pair: `a` inside namespace `a_ns`, `b` inside `b_ns`.
pub fn veth(a: &str, a_ns: &str, b: &str, b_ns: &str) {
    run_ok(Command::new("ip").args([
        "link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns,
    ]));
}

/// `ip -n NS args...`, panicking on failure.
pub fn ip(ns: &str, args: &[&str]) -> String {
    run_ok(Command::new("ip").arg("-n").arg(ns).args(args))
}

/// Several `ip` commands at once in `ns` (`ip -b -`), panicking on failure.
pub fn ip_batch(ns: &str, batch: &str) {
    let out = run_with(
        Command::new("ip").args(["-n", ns, "-b", "-"]),
        Some(batch.as_bytes()),
        SHORT,
    );
    assert!(
        out.status.success(),
        "ip -n {ns} -b failed on:\n{batch}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command inside a namespace (`ip netns exec`) to completion.
pub fn exec(ns: &str, args: &[&str], timeout: Duration) -> Output {
    run_with(
        Command::new("ip").args(["netns", "exec", ns]).args(args),
        None,
        timeout,
    )
}

/// Starts `args` inside `ns` with `ip netns exec`, which execs, so the PID
/// is the program's own. Output is appended to `log`.
pub fn spawn_in(ns: &str, args: &[&str], log: &Path) -> Child {
    spawn_logged(
        Command::new("ip").args(["netns", "exec", ns]).args(args),
        log,
    )
}

/// Runs `f` on a thread that has entered namespace `ns`.
pub fn enter<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns on this thread only, with a valid namespace fd.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread panicked")
    })
}

/// IPv4 addresses (CIDR) on `dev` in `ns`.
pub fn addrs(ns: &str, dev: &str) -> Vec<String> {
    let out = ip(ns, &["-j", "-4", "addr", "show", "dev", dev]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
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

/// IPv4 routes on `dev` in `ns` (`ip -j route show dev`), as JSON objects.
pub fn routes(ns: &str, dev: &str) -> Vec<Value> {
    let out = ip(ns, &["-j", "-4", "route", "show", "dev", dev]);
    match serde_json::from_str(&out) {
        Ok(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

/// After a failed test: each non-empty log of `names` in `dir`, then the
/// IPv4 addresses in every namespace, headed `----- LABEL ... -----`.
pub fn dump_lab(label: &str, dir: &Path, names: &[&str], namespaces: &[Ns]) {
    for name in names {
        let text = super::proc::read_log(&dir.join(name));
        if !text.is_empty() {
            eprintln!("----- {label} {name} -----\n{text}");
        }
    }
    for ns in namespaces {
        let out = exec(&ns.name, &["ip", "-4", "-br", "addr"], SHORT);
        eprintln!(
            "----- {label} {} addresses -----\n{}",
            ns.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
