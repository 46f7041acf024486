//! A small lab for the tunnel tests: network namespaces, OpenSSH's sshd in
//! the foreground with its own host key, an in-process target server, the
//! real `roadie daemon`, and clients that connect from inside a namespace.
//!
//! Every address lives inside namespaces this lab creates (`rt<pid>x<n>...`)
//! and removes; the root namespace sees only files. Sockets are opened from
//! a helper thread that entered the namespace (`setns`), so the test process
//! itself can serve and connect in any namespace without extra tools.
#![allow(dead_code)]

pub mod fake;

use serde_json::{Value, json};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

pub const ROADIE: &str = env!("CARGO_BIN_EXE_roadie");
pub const SSHD: &str = "/usr/sbin/sshd";
/// The unprivileged account the test sshd lets in.
pub const USER: &str = "roadie-tun";
pub const SHORT: Duration = Duration::from_secs(10);

static COUNTER: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------
// Skipping and small helpers (the shared ones live in tests/common)

pub use crate::common::{alive, descendants, skip, wait_for};

/// True when the lab can run; otherwise says why (and panics under CI=true).
pub fn possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the tunnel lab needs root (network namespaces, sshd)");
        return false;
    }
    for tool in [SSHD, "/usr/bin/ssh-keygen"] {
        if !Path::new(tool).exists() {
            skip(&format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the closure.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        })
    }
}

/// Run a command to completion; panics with its output unless it succeeds.
pub fn run(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = die_with_parent(cmd)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sh(script: &str) -> String {
    run(Command::new("sh").arg("-c").arg(script))
}

fn kill(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a PID this lab started (or its descendant).
    unsafe { libc::kill(pid as libc::pid_t, sig) };
}

/// SIGTERM, wait up to `grace`, then SIGKILL; reaps. Returns the time taken.
fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) -> (Duration, ExitStatus) {
    let start = Instant::now();
    if let Ok(Some(s)) = child.try_wait() {
        return (Duration::ZERO, s);
    }
    kill(child.id(), sig);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return (start.elapsed(), s);
        }
        if start.elapsed() > grace {
            let _ = child.kill();
            let s = child.wait().expect("wait");
            return (start.elapsed(), s);
        }
        thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Namespaces

/// A network namespace, removed on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(name: &str) -> Ns {
        run(Command::new("ip").args(["netns", "add", name]));
        let etc = Path::new("/etc/netns").join(name);
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            etc.join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let ns = Ns { name: name.into() };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) -> String {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Several `ip` commands at once.
    pub fn batch(&self, cmds: &str) {
        let mut child = die_with_parent(
            Command::new("ip")
                .args(["-n", &self.name, "-b", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .spawn()
        .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(cmds.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "ip -n {} -b failed on:\n{cmds}{}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Run `f` on a thread that has entered this namespace; sockets it
    /// opens stay in the namespace wherever they are used afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
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

    pub fn listen(&self, addr: &str) -> TcpListener {
        self.enter(|| TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}")))
    }

    pub fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let a: std::net::SocketAddr = addr.parse().unwrap();
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

/// A name prefix unique to this test run and test.
pub fn unique() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("rt{}x{n}", std::process::id())
}

// ---------------------------------------------------------------------------
// Keys and the test account

pub fn keygen(path: &Path, kind: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-N", "", "-C", "roadie-test", "-t", kind, "-f"])
        .arg(path);
    if kind == "rsa" {
        c.args(["-b", "2048"]);
    }
    run(&mut c);
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `SHA256:…` of a public key file.
pub fn fingerprint(pubkey: &Path) -> String {
    let out = run(Command::new("ssh-keygen").arg("-lf").arg(pubkey));
    out.split_whitespace().nth(1).unwrap().to_string()
}

/// The sshd test account: password field `*` (a locked `!` is refused with
/// UsePAM no), a shell, no home.
pub fn ensure_user() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for _ in 0..50 {
            let exists = Command::new("id")
                .arg(USER)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if exists {
                return;
            }
            // Another test process may hold the passwd lock: retry.
            let _ = Command::new("useradd")
                .args(["--system", "--no-create-home", "--home-dir", "/nonexistent"])
                .args(["--shell", "/bin/sh", "--password", "*", USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot create the test user {USER}");
    });
}

// ---------------------------------------------------------------------------
// sshd

pub struct Sshd {
    pub ns: String,
    pub dir: PathBuf,
    pub addr: String,
    pub port: u16,
    pub host_key: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Sshd {
    /// Configure (and start) an sshd listening on `addr:port` inside `ns`,
    /// letting in the keys listed in `authorized`.
    pub fn start(ns: &Ns, dir: &Path, addr: &str, port: u16, authorized: &[&Path]) -> Sshd {
        Sshd::start_with(
            ns,
            dir,
            addr,
            port,
            authorized,
            "ClientAliveInterval 2\nClientAliveCountMax 3\n",
        )
    }

    /// As [`Sshd::start`], with `extra` sshd_config lines (keepalive settings).
    pub fn start_with(
        ns: &Ns,
        dir: &Path,
        addr: &str,
        port: u16,
        authorized: &[&Path],
        extra: &str,
    ) -> Sshd {
        ensure_user();
        fs::create_dir_all("/run/sshd").unwrap();
        let dir = dir.join(format!("sshd{port}"));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let host_key = dir.join("host_ed25519");
        keygen(&host_key, "ed25519");
        let mut keys = String::new();
        for k in authorized {
            keys += &fs::read_to_string(k.with_extension("pub")).unwrap();
        }
        let ak = dir.join("authorized_keys");
        fs::write(&ak, keys).unwrap();
        fs::set_permissions(&ak, fs::Permissions::from_mode(0o644)).unwrap();
        let cfg = format!(
            "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\nUsePAM no\nStrictModes no\n\
             AuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nAllowUsers {USER}\nAllowTcpForwarding remote\n\
             GatewayPorts clientspecified\nMaxStartups 100\nLogLevel VERBOSE\n{extra}",
            host_key.display(),
            ak.display()
        );
        fs::write(dir.join("sshd_config"), cfg).unwrap();
        let mut s = Sshd {
            ns: ns.name.clone(),
            dir,
            addr: addr.into(),
            port,
            host_key,
            child: None,
            starts: 0,
        };
        s.run();
        s
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.host_key.with_extension("pub"))
    }

    /// Start sshd (again) and wait until it listens.
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "sshd already running");
        self.starts += 1;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .unwrap();
        let cfg = self.dir.join("sshd_config");
        let child = die_with_parent(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, SSHD, "-D", "-e", "-f"])
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .spawn()
        .expect("start sshd");
        let pid = child.id();
        self.child = Some(child);
        let want = format!(":{:04X}", self.port);
        wait_for("sshd to listen", SHORT, || {
            assert!(alive(pid), "sshd died:\n{}", self.log());
            let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
            table
                .lines()
                .skip(1)
                .any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1].ends_with(&want) && f[3] == "0A"
                })
                .then_some(())
        });
    }

    /// Kill sshd and every session process it forked (as a crashed or
    /// rebooted server would vanish).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let kids = descendants(c.id());
            let _ = c.kill();
            let _ = c.wait();
            for k in kids {
                kill(k, libc::SIGKILL);
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// A new host key (as if the server was reinstalled); takes effect at the next start.
    pub fn rekey(&self) {
        keygen(&self.host_key, "ed25519");
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------
// The target: an in-process server standing in for a cluster node

/// What a target connection does, chosen by the client's first four bytes:
/// `GET ` answers a page, `ECHO` echoes the rest, `SINK` never reads again.
pub struct Target {
    pub addr: String,
    pub page: String,
    pub accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Target {
    pub fn start(ns: &Ns, addr: &str, page: &str) -> Target {
        let listener = ns.listen(addr);
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (st, acc, pg) = (stop.clone(), accepted.clone(), page.to_string());
        let thread = thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        acc.fetch_add(1, Ordering::Relaxed);
                        let (st, pg) = (st.clone(), pg.clone());
                        thread::spawn(move || serve_target(s, &pg, &st));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Target {
            addr,
            page: page.into(),
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_target(mut s: TcpStream, page: &str, stop: &AtomicBool) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = [0u8; 4];
    if s.read_exact(&mut head).is_err() {
        return;
    }
    match &head {
        b"GET " => {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" || line == "\n" {
                    break;
                }
                line.clear();
            }
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = s.shutdown(Shutdown::Write);
        }
        b"ECHO" => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        }
        b"SINK" => {
            // Take nothing more, keep the connection: a stuck application.
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(20));
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// roadie

/// The daemon under test, with its files in `dir`.
pub struct Roadie {
    pub ns: String,
    pub dir: PathBuf,
    pub cfg: PathBuf,
    pub sock: PathBuf,
    child: Option<Child>,
}

/// `[daemon]`, `[wan]` and `[lan]` for a lab without a real LAN: `apply =
/// "uci"` never touches an interface (there is no uci here), and the
/// uplink is `wan0` when the test has one. No captive-portal probe: it would
/// ask the host's resolver, which is not in the lab (tests/captive_lab.rs
/// covers the probe).
pub fn base_config(dir: &Path) -> String {
    format!(
        "[daemon]\nstate = {:?}\nsocket = {:?}\nlog_level = \"debug\"\n\n\
         [wan]\ninterfaces = [\"wan0\"]\nprobe_url = \"off\"\n\n\
         [lan]\ninterface = \"lan0\"\naddress = \"192.168.77.1/24\"\napply = \"uci\"\nsettle_ms = 50\n\n\
         [[lan.host]]\nname = \"master\"\naddress = \"192.168.77.100\"\n\n",
        dir.join("state.toml").display().to_string(),
        dir.join("roadie.sock").display().to_string(),
    )
}

/// A `[[server]]` block for an sshd of this lab.
pub fn server_block(name: &str, sshd: &Sshd, identity: Option<&Path>, extra: &str) -> String {
    let mut s = format!(
        "[[server]]\nname = {name:?}\nhost = {:?}\nport = {}\nuser = {USER:?}\n\
         known_hosts = {:?}\nsession = \"none\"\n",
        sshd.addr,
        sshd.port,
        sshd.dir.join("known_hosts").display().to_string()
    );
    if !extra.contains("keepalive_s") {
        s += "keepalive_s = 2\n";
    }
    if let Some(id) = identity {
        s += &format!("identity = {:?}\n", id.display().to_string());
    }
    s + extra + "\n"
}

pub fn tunnel_block(name: &str, server: &str, remote: &str, target: &str, extra: &str) -> String {
    format!(
        "[[tunnel]]\nname = {name:?}\nserver = {server:?}\nremote = {remote:?}\ntarget = {target:?}\n{extra}\n"
    )
}

impl Roadie {
    pub fn start(ns: &Ns, dir: &Path, config: &str) -> Roadie {
        let cfg = dir.join("roadie.toml");
        fs::write(&cfg, config).unwrap();
        let mut r = Roadie {
            ns: ns.name.clone(),
            dir: dir.to_path_buf(),
            sock: dir.join("roadie.sock"),
            cfg,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("roadie.log"))
            .unwrap();
        let child = die_with_parent(
            Command::new("ip")
                .args(["netns", "exec", &self.ns, ROADIE, "-c"])
                .arg(&self.cfg)
                .arg("daemon")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        )
        .spawn()
        .expect("start roadie");
        self.child = Some(child);
        wait_for("roadie to answer on its socket", SHORT, || {
            self.assert_alive();
            self.rpc("status", json!({})).ok()
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("roadie running").id()
    }

    pub fn assert_alive(&self) {
        let pid = self.pid();
        assert!(alive(pid), "roadie died:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("roadie.log")).unwrap_or_default()
    }

    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let s = UnixStream::connect(&self.sock).map_err(|e| format!("socket: {e}"))?;
        s.set_read_timeout(Some(SHORT)).unwrap();
        let req = json!({"method": method, "params": params}).to_string() + "\n";
        (&s).write_all(req.as_bytes()).map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let v: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))?;
        match v.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(v["error"]["message"].as_str().unwrap_or("?").to_string()),
        }
    }

    /// The CLI, talking to this daemon's socket.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        die_with_parent(Command::new(ROADIE).arg("-s").arg(&self.sock).args(args))
            .output()
            .expect("run roadie CLI")
    }

    pub fn status(&self) -> Value {
        self.rpc("status", json!({})).expect("status")
    }

    pub fn tunnel(&self, name: &str) -> Value {
        let s = self.status();
        s["tunnels"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no tunnel {name} in status: {s}"))
    }

    /// Polls the tunnel's status object until `pred` holds.
    pub fn wait_tunnel(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        loop {
            self.assert_alive();
            if let Ok(s) = self.rpc("status", json!({}))
                && let Some(t) = s["tunnels"]
                    .as_array()
                    .and_then(|a| a.iter().find(|t| t["name"] == name))
            {
                if pred(t) {
                    return t.clone();
                }
                last = t.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "timed out after {timeout:?} waiting for tunnel {name} to be {what}; last: {last:#}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_up(&self, name: &str) -> Value {
        self.wait_tunnel(name, "up", SHORT, |t| t["state"] == "up")
    }

    pub fn write_config(&self, text: &str) {
        fs::write(&self.cfg, text).unwrap();
    }

    /// Sends `sig`; returns how long the daemon took to exit, and how.
    pub fn stop(&mut self, sig: libc::c_int) -> (Duration, ExitStatus) {
        let mut c = self.child.take().expect("roadie running");
        stop_child(&mut c, sig, Duration::from_secs(5))
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

/// A per-test directory (mode 0755: sshd reads authorized_keys as the test
/// user), removed on success, kept and named on failure.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(id: &str) -> Dir {
        let d = std::env::temp_dir().join("roadie-tunnel-lab").join(id);
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        for p in [d.parent().unwrap(), d.as_path()] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        Dir(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("lab files kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The usual single-namespace lab: sshd on 127.0.0.1:2222 with one client
/// key, a target on 127.0.0.1:8080, roadie not yet started.
pub struct Lab {
    // Field order is drop order: roadie first, the namespace last.
    pub roadie: Option<Roadie>,
    pub target: Target,
    pub sshd: Sshd,
    pub key: PathBuf,
    pub dir: Dir,
    pub ns: Ns,
    pub id: String,
}

pub const PAGE: &str = "hello from the cluster node\n";

impl Lab {
    pub fn new() -> Option<Lab> {
        if !possible() {
            return None;
        }
        let id = unique();
        let ns = Ns::new(&id);
        let dir = Dir::new(&id);
        let key = dir.path().join("id_ed25519");
        keygen(&key, "ed25519");
        let sshd = Sshd::start(&ns, dir.path(), "127.0.0.1", 2222, &[&key]);
        let target = Target::start(&ns, "127.0.0.1:8080", PAGE);
        Some(Lab {
            roadie: None,
            target,
            sshd,
            key,
            dir,
            ns,
            id,
        })
    }

    /// Config: base + one server "vps" (this lab's sshd and key) + `tunnels`.
    pub fn config(&self, server_extra: &str, tunnels: &str) -> String {
        base_config(self.dir.path())
            + &server_block("vps", &self.sshd, Some(&self.key), server_extra)
            + tunnels
    }

    pub fn start(&mut self, config: &str) -> &Roadie {
        self.roadie = Some(Roadie::start(&self.ns, self.dir.path(), config));
        self.roadie.as_ref().unwrap()
    }

    pub fn roadie(&self) -> &Roadie {
        self.roadie.as_ref().expect("roadie started")
    }

    /// GET through a forwarded port on the sshd side.
    pub fn get(&self, port: u16) -> Result<String, String> {
        self.ns.get(&format!("127.0.0.1:{port}"))
    }

    pub fn wait_serving(&self, port: u16, timeout: Duration) -> Duration {
        let start = Instant::now();
        wait_for(&format!("the page through port {port}"), timeout, || {
            (self.get(port).ok().as_deref() == Some(PAGE)).then_some(())
        });
        start.elapsed()
    }
}

/// Shared between a test and its helper threads.
pub type Shared<T> = Arc<Mutex<T>>;

/// The road lab: three namespaces, like a router plugged into a hotel.
///
/// ```text
///   up (sshd on 198.18.0.1:22, lo)    rtr (roadie)                     cl (node :8080)
///   up0 10.66.0.254/24 <----------> wan0 10.66.0.2/24  lan0 192.168.1.1/24 <--> eth0 192.168.1.100/24
/// ```
/// The hook moves the node to the same offset when roadie moves the LAN.
pub struct Road {
    pub roadie: Option<Roadie>,
    pub target: Target,
    pub sshd: Sshd,
    pub key: PathBuf,
    pub dir: Dir,
    pub cl: Ns,
    pub rtr: Ns,
    pub up: Ns,
}

pub const SSHD_ADDR: &str = "198.18.0.1";

impl Road {
    pub fn new() -> Option<Road> {
        if !possible() {
            return None;
        }
        let id = unique();
        let up = Ns::new(&format!("{id}u"));
        let rtr = Ns::new(&format!("{id}r"));
        let cl = Ns::new(&format!("{id}c"));
        let dir = Dir::new(&id);
        run(Command::new("ip").args([
            "link", "add", "up0", "netns", &up.name, "type", "veth", "peer", "name", "wan0",
            "netns", &rtr.name,
        ]));
        run(Command::new("ip").args([
            "link", "add", "lan0", "netns", &rtr.name, "type", "veth", "peer", "name", "eth0",
            "netns", &cl.name,
        ]));
        up.batch(&format!(
            "addr add 10.66.0.254/24 dev up0\nlink set up0 up\naddr add {SSHD_ADDR}/32 dev lo\n"
        ));
        rtr.batch(
            "addr add 10.66.0.2/24 dev wan0\nlink set wan0 up\naddr add 192.168.1.1/24 dev lan0\n\
             link set lan0 up\nroute add default via 10.66.0.254 dev wan0\n",
        );
        cl.batch(
            "addr add 192.168.1.100/24 dev eth0\nlink set eth0 up\nroute add default via 192.168.1.1\n",
        );
        let key = dir.path().join("id_ed25519");
        keygen(&key, "ed25519");
        // A stale session (its path gone with the old address) is dropped
        // after about 2 s, so a renumbered router gets its ports back soon.
        let sshd = Sshd::start_with(
            &up,
            dir.path(),
            SSHD_ADDR,
            22,
            &[&key],
            "ClientAliveInterval 1\nClientAliveCountMax 1\n",
        );
        let target = Target::start(&cl, "0.0.0.0:8080", PAGE);
        let hook = dir.path().join("hook.sh");
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\nset -e\nnet=${{ROADIE_NEW_PREFIX%/*}}\nlen=${{ROADIE_NEW_PREFIX#*/}}\n\
                 node=${{net%.*}}.100\ngw=${{ROADIE_LAN_ADDRESS%/*}}\n\
                 ip -n {cl} addr flush dev eth0\nip -n {cl} addr add $node/$len dev eth0\n\
                 ip -n {cl} route replace default via $gw\n\
                 echo \"$ROADIE_OLD_PREFIX -> $ROADIE_NEW_PREFIX node $node\" >> {log}\n",
                cl = cl.name,
                log = dir.path().join("hook.log").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
        Some(Road {
            roadie: None,
            target,
            sshd,
            key,
            dir,
            cl,
            rtr,
            up,
        })
    }

    /// roadie's config: the real LAN (netlink), two [[server]] entries
    /// ("vps" and "vps2", both this sshd: two sessions), and `tunnels`.
    pub fn config(&self, tunnels: &str) -> String {
        self.config_with("", tunnels)
    }

    /// As [`Road::config`], with `server_extra` in both [[server]] blocks.
    pub fn config_with(&self, server_extra: &str, tunnels: &str) -> String {
        let d = self.dir.path();
        let mut s = format!(
            "[daemon]\nstate = {:?}\nsocket = {:?}\nlog_level = \"debug\"\n\n\
             [wan]\ninterfaces = [\"wan0\"]\n\n\
             [lan]\ninterface = \"lan0\"\naddress = \"192.168.1.1/24\"\nhook = {:?}\nsettle_ms = 100\n\n\
             [[lan.host]]\nname = \"master\"\naddress = \"192.168.1.100\"\n\n",
            d.join("state.toml").display().to_string(),
            d.join("roadie.sock").display().to_string(),
            d.join("hook.sh").display().to_string(),
        );
        for name in ["vps", "vps2"] {
            s += &server_block(name, &self.sshd, Some(&self.key), server_extra);
        }
        s + tunnels
    }

    pub fn start(&mut self, config: &str) -> &Roadie {
        self.roadie = Some(Roadie::start(&self.rtr, self.dir.path(), config));
        self.roadie.as_ref().unwrap()
    }

    pub fn roadie(&self) -> &Roadie {
        self.roadie.as_ref().expect("roadie started")
    }

    /// GET through a forwarded port, from the server's side (up).
    pub fn get(&self, port: u16) -> Result<String, String> {
        self.up.get(&format!("127.0.0.1:{port}"))
    }

    /// The upstream network renumbers: a new address on up0 and a new lease
    /// (address and default route) on wan0, as a DHCP renew would apply it.
    pub fn renumber(&self, upstream: &str, lease: &str) {
        let gw = upstream.split('/').next().unwrap();
        self.up.batch(&format!(
            "addr flush dev up0\naddr add {upstream} dev up0\n"
        ));
        self.rtr.batch(&format!(
            "addr flush dev wan0\naddr add {lease} dev wan0\nroute replace default via {gw} dev wan0\n"
        ));
    }

    /// How many sessions sshd accepted from `addr` so far.
    pub fn logins_from(&self, addr: &str) -> usize {
        self.sshd
            .log()
            .lines()
            .filter(|l| l.contains("Accepted publickey") && l.contains(&format!("from {addr} ")))
            .count()
    }
}
