//! The tunnel tests' labs, built from tests/common: OpenSSH's sshd with its
//! own host key, an in-process target server, the real `roadie daemon`,
//! and clients that connect from inside a namespace. [`Lab`] is one
//! namespace; [`Road`] is three, like a router plugged into a hotel.
//!
//! Every address lives inside namespaces this lab creates (`rt<pid>x<n>...`)
//! and removes; the root namespace sees only files.
#![allow(dead_code)]

pub mod fake;

pub use crate::common::daemon::Roadie;
pub use crate::common::ns::Ns;
pub use crate::common::sshd::{SSHD, Sshd, USER, keygen};
pub use crate::common::{SHORT, SSHD_ADDR, skip, wait_for};

use crate::common::{lab_dir, lab_possible, ns, remove_lab_dir, unique};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// True when the lab can run; otherwise says why (and panics under CI=true).
pub fn possible() -> bool {
    if !lab_possible() {
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

/// Shared between a test and its helper threads.
pub type Shared<T> = Arc<Mutex<T>>;

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
// roadie's config

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

// ---------------------------------------------------------------------------
// The labs

/// A per-test directory (see [`lab_dir`]), removed on success, kept and
/// named on failure.
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new(id: &str) -> Dir {
        Dir(lab_dir("roadie-tunnel-lab", id))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        remove_lab_dir(&self.0);
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
        let id = unique("rt");
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
        self.roadie
            .insert(Roadie::start(&self.ns, self.dir.path(), config))
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

impl Road {
    pub fn new() -> Option<Road> {
        // A stale session (its path gone with the old address) is dropped
        // after about 2 s, so a renumbered router gets its ports back soon.
        Road::with_sshd("ClientAliveInterval 1\nClientAliveCountMax 1\n")
    }

    /// The road lab with `sshd_extra` as the server's extra sshd_config.
    pub fn with_sshd(sshd_extra: &str) -> Option<Road> {
        if !possible() {
            return None;
        }
        let id = unique("rt");
        let up = Ns::new(&format!("{id}u"));
        let rtr = Ns::new(&format!("{id}r"));
        let cl = Ns::new(&format!("{id}c"));
        let dir = Dir::new(&id);
        ns::veth("up0", &up.name, "wan0", &rtr.name);
        ns::veth("lan0", &rtr.name, "eth0", &cl.name);
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
        let sshd = Sshd::start_with(&up, dir.path(), SSHD_ADDR, 22, &[&key], sshd_extra);
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
        self.roadie
            .insert(Roadie::start(&self.rtr, self.dir.path(), config))
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

    /// The kernel keeps wan0's other addresses when its primary one goes
    /// (else it drops them with it), as a renumbering that adds the new
    /// lease before removing the old one needs.
    pub fn promote_secondaries(&self) {
        self.rtr.enter(|| {
            fs::write("/proc/sys/net/ipv4/conf/wan0/promote_secondaries", "1\n")
                .expect("set promote_secondaries in the router namespace")
        });
    }

    /// SSH connections sshd has established now (held sessions included).
    pub fn sshd_connections(&self) -> usize {
        let out = ns::exec(
            &self.up.name,
            &["ss", "-Htn", "state", "established", "( sport = :22 )"],
            SHORT,
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
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

// ---------------------------------------------------------------------------
// Visitors: steady traffic through a tunnel

/// Public visitors of a tunnel: a GET to 127.0.0.1:`port` in a namespace
/// every 20 ms, each on its own connection with a 1 s timeout, not waiting
/// for the one before (visitors keep coming whether or not it is served).
pub struct Visitors {
    results: Shared<Vec<(Instant, bool)>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

fn visit(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").is_err() {
        return false;
    }
    let mut resp = String::new();
    s.read_to_string(&mut resp).is_ok() && resp.starts_with("HTTP/1.0 200") && resp.ends_with(PAGE)
}

impl Visitors {
    pub fn start(ns: &Ns, port: u16) -> Visitors {
        let results: Shared<Vec<(Instant, bool)>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st, name) = (results.clone(), stop.clone(), ns.name.clone());
        // Threads started from a thread inside the namespace are inside too.
        let thread = thread::spawn(move || {
            ns::enter(&name, || {
                while !st.load(Ordering::Relaxed) {
                    let r = r.clone();
                    thread::spawn(move || {
                        let t = Instant::now();
                        let ok = visit(port);
                        r.lock().unwrap().push((t, ok));
                    });
                    thread::sleep(Duration::from_millis(20)); // the visitors' pace
                }
            })
        });
        Visitors {
            results,
            stop,
            thread: Some(thread),
        }
    }

    /// How long after `t0` the visitors were served again: from the first
    /// GET after the last failed one (zero when none since `t0` failed),
    /// once GETs have kept succeeding for `hold`; None until then. Only
    /// GETs started over 1.5 s ago count: they have all finished.
    pub fn serving_again(&self, t0: Instant, hold: Duration) -> Option<Duration> {
        let horizon = Instant::now().checked_sub(Duration::from_millis(1500))?;
        let r: Vec<(Instant, bool)> = self.results.lock().unwrap().clone();
        let r: Vec<&(Instant, bool)> = r
            .iter()
            .filter(|(t, _)| *t >= t0 && *t <= horizon)
            .collect();
        let last_fail = r.iter().filter(|(_, ok)| !ok).map(|(t, _)| *t).max();
        let oks: Vec<Instant> = r
            .iter()
            .filter(|(t, ok)| *ok && last_fail.is_none_or(|f| *t > f))
            .map(|(t, _)| *t)
            .collect();
        let (first, last) = (*oks.iter().min()?, *oks.iter().max()?);
        (last - first >= hold).then(|| match last_fail {
            None => Duration::ZERO,
            Some(_) => first - t0,
        })
    }

    /// GETs started since `t0` that failed, and all started since.
    pub fn failed_since(&self, t0: Instant) -> (usize, usize) {
        let r = self.results.lock().unwrap();
        let since: Vec<&(Instant, bool)> = r.iter().filter(|(t, _)| *t >= t0).collect();
        (since.iter().filter(|(_, ok)| !ok).count(), since.len())
    }
}

impl Drop for Visitors {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
