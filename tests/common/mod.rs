//! The network-namespace lab for roadie's integration tests.
//!
//! Three namespaces per lab, named `rd<pid>x<n>-{up,rtr,cl}`:
//!
//! ```text
//!   up (dnsmasq DHCP)        rtr (roadie, udhcpc)          cl (node, http :8080)
//!   up0 10.66.0.254/24 <---> wan0 (DHCP)   lan0 192.168.1.1/24 <---> eth0 192.168.1.100/24
//! ```
//!
//! Every private address lives inside these namespaces; the root namespace
//! only ever sees the namespace files and a temp dir. [`Lab`] tears everything
//! down in `Drop` (processes by PID, then the namespaces), also when the test
//! panics, and then prints the logs it collected.
#![allow(dead_code)]

use ipnet::Ipv4Net;
use serde_json::{Value, json};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const ROADIE: &str = env!("CARGO_BIN_EXE_roadie");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Default deadline for things that normally take well under a second.
pub const SHORT: Duration = Duration::from_secs(10);
/// Deadline for anything involving DHCP or roadie settling and moving.
pub const LONG: Duration = Duration::from_secs(20);

/// Where [`Lab::start_sshd`] listens: an address on `lo` in the upstream
/// namespace, so it stays put when upstream renumbers (the router reaches
/// it through its DHCP default route, via the upstream server).
pub const SSHD_ADDR: &str = "198.18.0.1";
pub const SSHD: &str = "/usr/sbin/sshd";

static COUNTER: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------
// Small process helpers

/// Children die with the test process even if it is SIGKILLed (e.g. by a CI
/// timeout), so nothing keeps running in a leaked namespace.
fn die_with_parent(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the closure.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            Ok(())
        })
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a command to completion with a deadline (kills it and panics when
/// the deadline passes), feeding it `input` on stdin.
pub fn run_with(cmd: &mut Command, input: Option<&[u8]>, timeout: Duration) -> Output {
    let what = describe(cmd);
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = die_with_parent(cmd)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not finish within {timeout:?}");
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// Runs a command; panics (with its stderr) unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> String {
    let what = describe(cmd);
    let out = run_with(cmd, None, SHORT);
    assert!(
        out.status.success(),
        "`{what}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Process state letter from /proc/PID/stat (`None` once it is gone).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Every living process below `pid` (children, grandchildren, …), from
/// the parent PIDs in /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(pp) = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
            parent.push((p, pp));
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(q) = todo.pop() {
        for &(p, pp) in &parent {
            if pp == q && !out.contains(&p) {
                out.push(p);
                todo.push(p);
            }
        }
    }
    out
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a PID this lab started and has not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// Sends `sig`, waits up to `grace` for the child to exit (reaping it), then
/// SIGKILLs it. Returns how long it took and its exit status.
fn stop_child(child: &mut Child, sig: libc::c_int, grace: Duration) -> (Duration, ExitStatus) {
    let start = Instant::now();
    if let Ok(Some(status)) = child.try_wait() {
        return (Duration::ZERO, status);
    }
    // SAFETY: the child has not been reaped yet, so its PID is still ours.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (start.elapsed(), status);
        }
        if start.elapsed() > grace {
            let _ = child.kill();
            let status = child.wait().expect("wait after SIGKILL");
            return (start.elapsed(), status);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// Polling

/// Polls `f` (every 20 ms) until it yields a value; panics naming `what`
/// when `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || f().then_some(()))
}

// ---------------------------------------------------------------------------
// Skipping

/// True when the lab can run here. Otherwise prints "SKIP: reason" and
/// returns false — or panics when CI=true, because CI must not skip.
pub fn lab_possible() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("the network-namespace lab needs root");
        return false;
    }
    true
}

pub fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the lab cannot run: {reason}");
    }
    println!("SKIP: {reason}");
    eprintln!("SKIP: {reason}");
}

// ---------------------------------------------------------------------------
// Addresses

pub fn net(cidr: &str) -> Ipv4Net {
    cidr.parse::<Ipv4Net>()
        .unwrap_or_else(|e| panic!("bad CIDR {cidr:?}: {e}"))
}

/// `192.168.1.77/24` -> `192.168.1.0/24`
pub fn prefix_of(cidr: &str) -> String {
    net(cidr).trunc().to_string()
}

/// The address at `offset` inside `prefix` (`10.9.8.0/24`, 100 -> `10.9.8.100`).
pub fn host_in(prefix: &str, offset: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net(prefix).network()) + offset)
}

// ---------------------------------------------------------------------------
// The lab

#[derive(Clone, Debug)]
pub struct LabOpts {
    /// The router's LAN (home) address, also written as `[lan].address`.
    pub lan_address: String,
    /// The cluster node's address (no length; it takes the LAN's).
    pub node: String,
    /// The upstream DHCP server's address on up0, with length.
    pub upstream: String,
    /// The DHCP range handed out upstream.
    pub range: (String, String),
    pub pools: Option<Vec<String>>,
    pub avoid: Option<Vec<String>>,
    pub settle_ms: u64,
    pub return_home: Option<bool>,
    /// Start roadie at the end of `Lab::new` and wait until it is idle.
    pub start_daemon: bool,
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts {
            lan_address: "192.168.1.1/24".into(),
            node: "192.168.1.100".into(),
            upstream: "10.66.0.254/24".into(),
            range: ("10.66.0.50".into(), "10.66.0.150".into()),
            pools: None,
            avoid: None,
            settle_ms: 250,
            return_home: None,
            start_daemon: true,
        }
    }
}

/// One hook run, as recorded by tests/lab/hook.sh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookRun {
    pub old: String,
    pub new: String,
    pub lan: String,
    pub reason: String,
}

pub struct Lab {
    pub id: String,
    pub up: String,
    pub rtr: String,
    pub cl: String,
    pub dir: PathBuf,
    pub opts: LabOpts,
    pub cfg: PathBuf,
    pub sock: PathBuf,
    pub state: PathBuf,
    pub hook_log: PathBuf,
    pub roadie_log: PathBuf,
    /// The page the node's HTTP server serves.
    pub page: String,
    /// The node's host offset in the LAN prefix.
    pub node_offset: u32,
    namespaces: Vec<String>,
    http: Option<Child>,
    dnsmasq: Option<Child>,
    dnsmasq_gen: u32,
    udhcpc: Option<Child>,
    daemon: Option<Child>,
    daemon_starts: u32,
    /// OpenSSH's sshd in `up` (see [`Lab::start_sshd`]).
    sshd: Option<Child>,
    started_pids: Vec<u32>,
}

impl Lab {
    /// Builds the lab (and starts roadie unless `opts.start_daemon` is
    /// false). `None` means the test should be skipped (already reported).
    pub fn new(opts: LabOpts) -> Option<Lab> {
        if !lab_possible() {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("rd{}x{}", std::process::id(), n);
        let dir = std::env::temp_dir().join("roadie-lab").join(&id);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("www")).expect("create lab dir");

        let home = net(&opts.lan_address);
        let node: Ipv4Addr = opts.node.parse().expect("LabOpts.node");
        assert!(home.contains(&node), "node {node} is not in {home}");
        let node_offset = u32::from(node) - u32::from(home.network());
        let page = format!("roadie lab node {id}\n");

        let mut lab = Lab {
            up: format!("{id}-up"),
            rtr: format!("{id}-rtr"),
            cl: format!("{id}-cl"),
            cfg: dir.join("roadie.toml"),
            sock: dir.join("roadie.sock"),
            state: dir.join("state.toml"),
            hook_log: dir.join("hook.log"),
            roadie_log: dir.join("roadie.log"),
            id,
            dir,
            opts,
            page,
            node_offset,
            namespaces: Vec::new(),
            http: None,
            dnsmasq: None,
            dnsmasq_gen: 0,
            udhcpc: None,
            daemon: None,
            daemon_starts: 0,
            sshd: None,
            started_pids: Vec::new(),
        };

        // Namespaces. The first failure is a reason to skip, not a failure.
        for ns in [lab.up.clone(), lab.rtr.clone(), lab.cl.clone()] {
            let out = run_with(Command::new("ip").args(["netns", "add", &ns]), None, SHORT);
            if !out.status.success() {
                let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
                if lab.namespaces.is_empty() {
                    skip(&format!("`ip netns add {ns}` failed: {msg}"));
                    return None;
                }
                panic!("`ip netns add {ns}` failed: {msg}");
            }
            lab.namespaces.push(ns.clone());
            // `ip netns exec` bind-mounts this over /etc/resolv.conf, so
            // nothing inside waits on the host's resolver.
            let etc = Path::new("/etc/netns").join(&ns);
            fs::create_dir_all(&etc).expect("create /etc/netns/NAME");
            fs::write(
                etc.join("resolv.conf"),
                "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
            )
            .expect("write resolv.conf");
            // No IPv6 in the lab: keeps netlink traffic to what a test does.
            run_ok(Command::new("ip").args([
                "netns",
                "exec",
                &ns,
                "sh",
                "-c",
                "echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 && \
                 echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 && ip link set lo up",
            ]));
        }

        // Links, created directly inside the namespaces.
        run_ok(Command::new("ip").args([
            "link", "add", "up0", "netns", &lab.up, "type", "veth", "peer", "name", "wan0",
            "netns", &lab.rtr,
        ]));
        run_ok(Command::new("ip").args([
            "link", "add", "lan0", "netns", &lab.rtr, "type", "veth", "peer", "name", "eth0",
            "netns", &lab.cl,
        ]));
        let o = lab.opts.clone();
        let len = home.prefix_len();
        lab.ip_batch(
            &lab.up,
            &format!("addr add {} dev up0\nlink set up0 up\n", o.upstream),
        );
        lab.ip_batch(
            &lab.rtr,
            &format!(
                "addr add {} dev lan0\nlink set lan0 up\nlink set wan0 up\n",
                o.lan_address
            ),
        );
        lab.ip_batch(
            &lab.cl,
            &format!("addr add {}/{len} dev eth0\nlink set eth0 up\n", o.node),
        );

        lab.start_http();
        lab.start_dnsmasq();
        lab.start_udhcpc();
        lab.wait_lease(&prefix_of(&o.upstream));
        lab.write_hook();
        lab.write_config(&lab.config_text());
        if o.start_daemon {
            lab.start_daemon();
            lab.wait_ready();
        }
        Some(lab)
    }

    // --- plumbing ---------------------------------------------------------

    fn ip_batch(&self, ns: &str, batch: &str) {
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

    /// `ip -n NS args...`, panicking on failure.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        run_ok(Command::new("ip").arg("-n").arg(ns).args(args))
    }

    /// Runs a command inside a namespace (`ip netns exec`).
    pub fn exec(&self, ns: &str, args: &[&str], timeout: Duration) -> Output {
        run_with(
            Command::new("ip").args(["netns", "exec", ns]).args(args),
            None,
            timeout,
        )
    }

    fn log_file(&self, name: &str) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(name))
            .expect("open log")
    }

    /// Starts `args` inside `ns` with `ip netns exec`, which execs, so the
    /// PID is the program's own. Output goes to `<dir>/<log>`.
    fn spawn_in(&mut self, ns: &str, args: &[&str], log: &str) -> Child {
        let out = self.log_file(log);
        let err = out.try_clone().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = die_with_parent(&mut cmd)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {ns}: {e}"));
        self.started_pids.push(child.id());
        child
    }

    /// True once the process `pid` (in its own namespace) has a socket
    /// bound to `port` in /proc/PID/net/{proto} (TCP: listening).
    fn listening(pid: u32, proto: &str, port: u16) -> bool {
        let Ok(table) = fs::read_to_string(format!("/proc/{pid}/net/{proto}")) else {
            return false;
        };
        let want = format!(":{port:04X}");
        table.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&want) && (proto != "tcp" || f[3] == "0A")
        })
    }

    fn start_http(&mut self) {
        fs::write(self.dir.join("www/index.html"), &self.page).unwrap();
        let python = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let www = self.dir.join("www");
        let cl = self.cl.clone();
        let child = self.spawn_in(
            &cl,
            &[
                python,
                "-m",
                "http.server",
                "8080",
                "--bind",
                "0.0.0.0",
                "--directory",
                www.to_str().unwrap(),
            ],
            "http.log",
        );
        let pid = child.id();
        self.http = Some(child);
        wait_until("the node's HTTP server to listen", SHORT, || {
            assert!(
                alive(pid),
                "http server died:\n{}",
                self.read_log("http.log")
            );
            Self::listening(pid, "tcp", 8080)
        });
    }

    fn start_dnsmasq(&mut self) {
        self.dnsmasq_gen += 1;
        let g = self.dnsmasq_gen;
        let server = net(&self.opts.upstream);
        let (lo, hi) = self.opts.range.clone();
        let args = [
            "dnsmasq".to_string(),
            "--keep-in-foreground".into(),
            "--conf-file=/dev/null".into(),
            "--user=root".into(),
            "--port=0".into(),
            "--no-ping".into(),
            "--dhcp-authoritative".into(),
            "--interface=up0".into(),
            "--bind-interfaces".into(),
            "--log-facility=-".into(),
            "--log-dhcp".into(),
            format!(
                "--pid-file={}",
                self.dir.join(format!("dnsmasq{g}.pid")).display()
            ),
            format!(
                "--dhcp-leasefile={}",
                self.dir.join(format!("leases{g}")).display()
            ),
            format!("--dhcp-range={lo},{hi},{},1h", server.netmask()),
            format!("--dhcp-option=3,{}", server.addr()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let up = self.up.clone();
        let child = self.spawn_in(&up, &args, "dnsmasq.log");
        let pid = child.id();
        self.dnsmasq = Some(child);
        wait_until("dnsmasq to listen on :67", SHORT, || {
            assert!(
                alive(pid),
                "dnsmasq died:\n{}",
                self.read_log("dnsmasq.log")
            );
            Self::listening(pid, "udp", 67)
        });
    }

    fn start_udhcpc(&mut self) {
        let script = self.dir.join("udhcpc.sh");
        fs::write(
            &script,
            format!("#!/bin/sh\nexec /bin/sh {REPO}/tests/lab/udhcpc.script \"$@\"\n"),
        )
        .unwrap();
        chmod_x(&script);
        let rtr = self.rtr.clone();
        let child = self.spawn_in(
            &rtr,
            &[
                "udhcpc",
                "-f",
                "-i",
                "wan0",
                "-s",
                script.to_str().unwrap(),
                "-T",
                "1",
                "-t",
                "30",
                "-A",
                "1",
            ],
            "udhcpc.log",
        );
        self.udhcpc = Some(child);
    }

    fn write_hook(&self) {
        let hook = self.dir.join("hook.sh");
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\nexport LAB_HOOK_LOG='{}' LAB_CL_NS='{}' LAB_NODE_OFFSET={}\n\
                 exec /bin/sh {REPO}/tests/lab/hook.sh \"$@\"\n",
                self.hook_log.display(),
                self.cl,
                self.node_offset
            ),
        )
        .unwrap();
        chmod_x(&hook);
    }

    /// The config this lab runs roadie with (see LabOpts).
    pub fn config_text(&self) -> String {
        let o = &self.opts;
        let list = |v: &Vec<String>| {
            let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(", "))
        };
        let mut s = format!(
            "[daemon]\nstate = {:?}\nsocket = {:?}\nlog_level = \"debug\"\n\n\
             [wan]\ninterfaces = [\"wan0\"]\n\n\
             [lan]\ninterface = \"lan0\"\naddress = {:?}\nhook = {:?}\nsettle_ms = {}\n",
            self.state.display().to_string(),
            self.sock.display().to_string(),
            o.lan_address,
            self.dir.join("hook.sh").display().to_string(),
            o.settle_ms,
        );
        if let Some(p) = &o.pools {
            s += &format!("pools = {}\n", list(p));
        }
        if let Some(a) = &o.avoid {
            s += &format!("avoid = {}\n", list(a));
        }
        if let Some(r) = o.return_home {
            s += &format!("return_home = {r}\n");
        }
        s += &format!(
            "\n[[lan.host]]\nname = \"master\"\naddress = {:?}\n",
            o.node
        );
        s
    }

    pub fn write_config(&self, text: &str) {
        fs::write(&self.cfg, text).expect("write config");
    }

    pub fn read_log(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// PIDs of every long-running process this lab started.
    pub fn pids(&self) -> Vec<u32> {
        self.started_pids.clone()
    }

    // --- upstream -----------------------------------------------------------

    pub fn dnsmasq_pid(&self) -> u32 {
        self.dnsmasq.as_ref().expect("dnsmasq running").id()
    }

    pub fn udhcpc_pid(&self) -> u32 {
        self.udhcpc.as_ref().expect("udhcpc running").id()
    }

    /// Renumbers the upstream network: stops dnsmasq, gives up0 `server`
    /// (with length), starts dnsmasq handing out `lo`..`hi`, and makes
    /// udhcpc release and renew right away. Does not wait for the new
    /// lease; see [`Lab::wait_lease`].
    pub fn renumber(&mut self, server: &str, lo: &str, hi: &str) {
        if let Some(mut old) = self.dnsmasq.take() {
            let (_, _) = stop_child(&mut old, libc::SIGTERM, Duration::from_secs(5));
        }
        self.opts.upstream = server.to_string();
        self.opts.range = (lo.to_string(), hi.to_string());
        self.ip_batch(
            &self.up,
            &format!("addr flush dev up0\naddr add {server} dev up0\n"),
        );
        self.start_dnsmasq();
        let pid = self.udhcpc_pid();
        signal(pid, libc::SIGUSR2); // release: the script flushes wan0
        wait_until(
            "udhcpc to release its lease (wan0 without IPv4)",
            SHORT,
            || self.addrs(&self.rtr, "wan0").is_empty(),
        );
        signal(pid, libc::SIGUSR1); // renew: DISCOVER right away
    }

    /// Waits until wan0 has an address inside `prefix`; returns it (CIDR).
    pub fn wait_lease(&self, prefix: &str) -> String {
        let want = net(prefix);
        let udhcpc = self.udhcpc.as_ref().map(Child::id);
        wait_for(&format!("a DHCP lease in {prefix} on wan0"), LONG, || {
            if let Some(pid) = udhcpc {
                assert!(alive(pid), "udhcpc died:\n{}", self.read_log("udhcpc.log"));
            }
            self.addrs(&self.rtr, "wan0")
                .into_iter()
                .find(|a| want.contains(&net(a).addr()))
        })
    }

    // --- sshd upstream ---------------------------------------------------------

    /// The client key [`Lab::start_sshd`] lets in (as root).
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// Starts OpenSSH's sshd in the upstream namespace, in the foreground,
    /// listening on [`SSHD_ADDR`]:22 (put on `lo` here, so it survives
    /// [`Lab::renumber`]), with its own host key and one authorized client
    /// key, [`Lab::ssh_key`], for root. Waits until it listens.
    pub fn start_sshd(&mut self) {
        assert!(self.sshd.is_none(), "sshd is already running");
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let host_key = self.dir.join("ssh_host_ed25519_key");
        let key = self.ssh_key();
        for k in [&host_key, &key] {
            run_ok(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "roadie-lab", "-f"])
                    .arg(k),
            );
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(k, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ak = self.dir.join("authorized_keys");
        fs::copy(key.with_extension("pub"), &ak).expect("write authorized_keys");
        let cfg = self.dir.join("sshd_config");
        fs::write(
            &cfg,
            format!(
                "Port 22\nListenAddress {SSHD_ADDR}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nAllowUsers root\nPubkeyAuthentication yes\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
                 StrictModes no\nGatewayPorts clientspecified\nAllowTcpForwarding yes\n\
                 ClientAliveInterval 1\nClientAliveCountMax 2\nPidFile none\nLogLevel VERBOSE\n",
                host_key.display(),
                ak.display()
            ),
        )
        .expect("write sshd_config");
        let up = self.up.clone();
        self.ip(
            &up,
            &["addr", "add", &format!("{SSHD_ADDR}/32"), "dev", "lo"],
        );
        let child = self.spawn_in(
            &up,
            &[SSHD, "-D", "-e", "-f", cfg.to_str().unwrap()],
            "sshd.log",
        );
        let pid = child.id();
        self.sshd = Some(child);
        wait_until("sshd to listen on :22", SHORT, || {
            assert!(alive(pid), "sshd died:\n{}", self.read_log("sshd.log"));
            Self::listening(pid, "tcp", 22)
        });
    }

    pub fn sshd_pid(&self) -> u32 {
        self.sshd.as_ref().expect("sshd running").id()
    }

    // --- kernel state ---------------------------------------------------------

    /// IPv4 addresses (CIDR) on `dev` in `ns`.
    pub fn addrs(&self, ns: &str, dev: &str) -> Vec<String> {
        let out = self.ip(ns, &["-j", "-4", "addr", "show", "dev", dev]);
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
    pub fn routes(&self, ns: &str, dev: &str) -> Vec<Value> {
        let out = self.ip(ns, &["-j", "-4", "route", "show", "dev", dev]);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            _ => Vec::new(),
        }
    }

    /// Destinations of the routes on `dev` in the router namespace.
    pub fn route_dsts(&self, dev: &str) -> Vec<String> {
        self.routes(&self.rtr, dev)
            .iter()
            .filter_map(|r| r["dst"].as_str().map(str::to_string))
            .collect()
    }

    /// The node's address for a LAN prefix (same host offset).
    pub fn node_in(&self, prefix: &str) -> String {
        host_in(prefix, self.node_offset).to_string()
    }

    /// One GET of the node's page from the router; true if it came back.
    pub fn curl_node(&self, ip: &str) -> bool {
        self.curl_page(&self.rtr, &format!("http://{ip}:8080/"))
    }

    /// One GET of `url` with curl inside `ns` (at most 2 s); true if the
    /// node's page came back.
    pub fn curl_page(&self, ns: &str, url: &str) -> bool {
        let out = self.exec(
            ns,
            &["curl", "-s", "--noproxy", "*", "--max-time", "2", url],
            SHORT,
        );
        out.status.success() && out.stdout == self.page.as_bytes()
    }

    pub fn assert_reachable(&self, ip: &str) {
        wait_until(
            &format!("the router to fetch http://{ip}:8080/ from the node"),
            SHORT,
            || self.curl_node(ip),
        );
    }

    // --- roadie ---------------------------------------------------------------

    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "roadie is already running");
        self.daemon_starts += 1;
        let mut log = self.log_file("roadie.log");
        writeln!(
            log,
            "=== lab: roadie daemon start #{} ===",
            self.daemon_starts
        )
        .unwrap();
        let rtr = self.rtr.clone();
        let cfg = self.cfg.to_str().unwrap().to_string();
        let child = self.spawn_in(&rtr, &[ROADIE, "-c", &cfg, "daemon"], "roadie.log");
        self.daemon = Some(child);
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("roadie running").id()
    }

    pub fn assert_daemon_alive(&self) {
        let pid = self.daemon_pid();
        assert!(alive(pid), "roadie (pid {pid}) is not running");
    }

    /// Sends `sig` to roadie and waits for it to exit (SIGKILL after 5 s).
    /// Returns how long it took and the exit status.
    pub fn stop_daemon(&mut self, sig: libc::c_int) -> (Duration, ExitStatus) {
        let mut child = self.daemon.take().expect("roadie running");
        stop_child(&mut child, sig, Duration::from_secs(5))
    }

    /// Waits until roadie answers `status` and is idle (not settling, at
    /// least one evaluation); returns that status.
    pub fn wait_ready(&self) -> Value {
        self.wait_idle(1)
    }

    /// Waits until roadie is idle with at least `min_evals` evaluations.
    pub fn wait_idle(&self, min_evals: u64) -> Value {
        self.wait_status(
            &format!("roadie idle (settling false, evaluations >= {min_evals})"),
            LONG,
            |s| !settling(s) && evaluations(s) >= min_evals,
        )
    }

    /// Polls status (over the socket) until `pred` holds; returns it.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        let start = Instant::now();
        loop {
            self.assert_daemon_alive();
            if let Ok(s) = self.rpc("status", json!({})) {
                if pred(&s) {
                    return s;
                }
                last = s;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last status:\n{}",
                    serde_json::to_string_pretty(&last).unwrap()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
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

    /// `roadie call status`, which must succeed.
    pub fn status(&self) -> Value {
        self.call("status", json!({}))
            .unwrap_or_else(|e| panic!("roadie call status failed: {e}"))
    }

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

    pub fn hook_runs(&self) -> Vec<HookRun> {
        let text = fs::read_to_string(&self.hook_log).unwrap_or_default();
        text.lines()
            .map(|l| {
                let mut h = HookRun {
                    old: String::new(),
                    new: String::new(),
                    lan: String::new(),
                    reason: String::new(),
                };
                for kv in l.split('\t') {
                    match kv.split_once('=') {
                        Some(("OLD", v)) => h.old = v.into(),
                        Some(("NEW", v)) => h.new = v.into(),
                        Some(("LAN", v)) => h.lan = v.into(),
                        Some(("REASON", v)) => h.reason = v.into(),
                        _ => {}
                    }
                }
                h
            })
            .collect()
    }

    /// The persisted state file, parsed.
    pub fn state_file(&self) -> toml::Table {
        let text = fs::read_to_string(&self.state)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.state.display()));
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("state file is not TOML ({e}):\n{text}"))
    }

    fn dump_logs(&self) {
        for name in [
            "roadie.log",
            "hook.log",
            "udhcpc.log",
            "dnsmasq.log",
            "http.log",
            "sshd.log",
        ] {
            let text = self.read_log(name);
            if !text.is_empty() {
                eprintln!("----- lab {} {name} -----\n{text}", self.id);
            }
        }
        for ns in &self.namespaces {
            let out = run_with(
                Command::new("ip").args(["-n", ns, "-4", "-br", "addr"]),
                None,
                SHORT,
            );
            eprintln!(
                "----- lab {ns} addresses -----\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        let grace = Duration::from_secs(3);
        if let Some(mut daemon) = self.daemon.take() {
            stop_child(&mut daemon, libc::SIGTERM, grace);
        }
        if let Some(mut sshd) = self.sshd.take() {
            // Its per-connection processes outlive the listener. roadie
            // said goodbye just now, so normally there are none left; a
            // session from an address that is gone would linger until
            // sshd's keepalive gives up on it.
            let kids = descendants(sshd.id());
            stop_child(&mut sshd, libc::SIGTERM, grace);
            for pid in kids {
                if alive(pid) {
                    // SAFETY: kill(2) on a process our sshd forked, alive just now.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
        }
        for mut child in [self.udhcpc.take(), self.dnsmasq.take(), self.http.take()]
            .into_iter()
            .flatten()
        {
            stop_child(&mut child, libc::SIGTERM, grace);
        }
        for ns in self.namespaces.drain(..) {
            let _ = Command::new("ip")
                .args(["netns", "del", &ns])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&ns));
        }
        if std::env::var_os("ROADIE_LAB_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------
// Status accessors

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
