//! The DHCP lab: three namespaces, named `rd<pid>x<n>-{up,rtr,cl}`:
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

use serde_json::{Value, json};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output};
use std::thread;
use std::time::Duration;

use super::daemon::{Roadie, evaluations, settling};
use super::ns::{self, Ns};
use super::proc::{alive, read_log, signal, stop_child, wait_listening};
use super::sshd::Sshd;
use super::{
    LONG, REPO, SHORT, chmod_x, host_in, lab_dir, lab_possible, net, prefix_of, remove_lab_dir,
    skip, unique, wait_for, wait_until,
};

/// Where [`Lab::start_sshd`] listens: an address on `lo` in the upstream
/// namespace, so it stays put when upstream renumbers (the router reaches
/// it through its DHCP default route, via the upstream server).
pub const SSHD_ADDR: &str = "198.18.0.1";

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
    /// The router's udhcpc event script, relative to the repository.
    pub udhcpc_script: &'static str,
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
            udhcpc_script: "tests/lab/udhcpc.script",
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
    namespaces: Vec<Ns>,
    http: Option<Child>,
    dnsmasq: Option<Child>,
    dnsmasq_gen: u32,
    udhcpc: Option<Child>,
    /// roadie in `rtr`: its socket, CLI and status (see [`Roadie`]).
    pub daemon: Roadie,
    /// OpenSSH's sshd in `up` (see [`Lab::start_sshd`]).
    sshd: Option<Sshd>,
    started_pids: Vec<u32>,
    /// What a test started with [`Lab::spawn_extra`].
    extra: Vec<Child>,
}

impl Lab {
    /// Builds the lab (and starts roadie unless `opts.start_daemon` is
    /// false). `None` means the test should be skipped (already reported).
    pub fn new(opts: LabOpts) -> Option<Lab> {
        if !lab_possible() {
            return None;
        }
        let id = unique("rd");
        let dir = lab_dir("roadie-lab", &id);
        fs::create_dir_all(dir.join("www")).expect("create lab dir");

        let home = net(&opts.lan_address);
        let node: Ipv4Addr = opts.node.parse().expect("LabOpts.node");
        assert!(home.contains(&node), "node {node} is not in {home}");
        let node_offset = u32::from(node) - u32::from(home.network());
        let page = format!("roadie lab node {id}\n");
        let rtr = format!("{id}-rtr");

        let mut lab = Lab {
            up: format!("{id}-up"),
            cl: format!("{id}-cl"),
            daemon: Roadie::new(&rtr, &dir),
            rtr,
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
            sshd: None,
            started_pids: Vec::new(),
            extra: Vec::new(),
        };

        // Namespaces, without IPv6. The first failure is a reason to skip,
        // not a failure.
        for name in [lab.up.clone(), lab.rtr.clone(), lab.cl.clone()] {
            match Ns::create(&name, false) {
                Ok(ns) => lab.namespaces.push(ns),
                Err(msg) if lab.namespaces.is_empty() => {
                    skip(&msg);
                    return None;
                }
                Err(msg) => panic!("{msg}"),
            }
        }

        ns::veth("up0", &lab.up, "wan0", &lab.rtr);
        ns::veth("lan0", &lab.rtr, "eth0", &lab.cl);
        let o = lab.opts.clone();
        let len = home.prefix_len();
        ns::ip_batch(
            &lab.up,
            &format!("addr add {} dev up0\nlink set up0 up\n", o.upstream),
        );
        ns::ip_batch(
            &lab.rtr,
            &format!(
                "addr add {} dev lan0\nlink set lan0 up\nlink set wan0 up\n",
                o.lan_address
            ),
        );
        ns::ip_batch(
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

    /// `ip -n NS args...`, panicking on failure.
    pub fn ip(&self, ns: &str, args: &[&str]) -> String {
        ns::ip(ns, args)
    }

    /// Runs a command inside a namespace (`ip netns exec`).
    pub fn exec(&self, ns: &str, args: &[&str], timeout: Duration) -> Output {
        ns::exec(ns, args, timeout)
    }

    /// Starts `args` inside `ns` for the rest of the lab (stopped with it);
    /// output goes to `<dir>/<log>`. Returns its PID.
    pub fn spawn_extra(&mut self, ns: &str, args: &[&str], log: &str) -> u32 {
        let child = self.spawn_in(ns, args, log);
        let pid = child.id();
        self.extra.push(child);
        pid
    }

    /// Starts `args` inside `ns`; output goes to `<dir>/<log>`.
    fn spawn_in(&mut self, ns: &str, args: &[&str], log: &str) -> Child {
        let child = ns::spawn_in(ns, args, &self.dir.join(log));
        self.started_pids.push(child.id());
        child
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
        wait_listening(
            "the node's HTTP server",
            pid,
            "tcp",
            8080,
            &self.dir.join("http.log"),
        );
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
        wait_listening("dnsmasq", pid, "udp", 67, &self.dir.join("dnsmasq.log"));
    }

    fn start_udhcpc(&mut self) {
        let script = self.dir.join("udhcpc.sh");
        fs::write(
            &script,
            format!(
                "#!/bin/sh\nexport ROADIE='{}' ROADIE_SOCKET='{}'\nexec /bin/sh {REPO}/{} \"$@\"\n",
                super::ROADIE,
                self.sock.display(),
                self.opts.udhcpc_script
            ),
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
        self.daemon.write_config(text);
    }

    pub fn read_log(&self, name: &str) -> String {
        read_log(&self.dir.join(name))
    }

    /// PIDs of every long-running process this lab started.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = self.started_pids.clone();
        pids.extend_from_slice(self.daemon.pids());
        pids.extend(self.sshd.as_ref().and_then(Sshd::pid));
        pids
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
        ns::ip_batch(
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
    /// key, [`Lab::ssh_key`], for root. Its files are in the lab dir.
    /// Waits until it listens.
    pub fn start_sshd(&mut self) {
        self.start_sshd_with("");
    }

    /// As [`Lab::start_sshd`], with `extra` sshd_config lines (e.g. a
    /// `ForceCommand` that prints a public URL, as serveo does).
    pub fn start_sshd_with(&mut self, extra: &str) {
        assert!(self.sshd.is_none(), "sshd is already running");
        let key = self.ssh_key();
        super::sshd::keygen(&key, "ed25519");
        ns::ip(
            &self.up,
            &["addr", "add", &format!("{SSHD_ADDR}/32"), "dev", "lo"],
        );
        let sshd = self
            .sshd
            .insert(Sshd::new(&self.up, &self.dir, SSHD_ADDR, 22));
        sshd.configure(
            &[&key],
            &format!(
                "PermitRootLogin prohibit-password\nAllowUsers root\nAllowTcpForwarding yes\n\
                 ClientAliveInterval 1\nClientAliveCountMax 2\n{extra}"
            ),
        );
        sshd.run();
    }

    /// roadie's config lines for a tunnel through [`Lab::start_sshd`]'s
    /// sshd: server `hotel` (as root, known_hosts in the lab dir) and tunnel
    /// `ui`, `0.0.0.0:18080` there -> `master:8080`.
    pub fn hotel_tunnel_config(&self) -> String {
        format!(
            "\n[[server]]\nname = \"hotel\"\nhost = {SSHD_ADDR:?}\nuser = \"root\"\n\
             identity = {:?}\nknown_hosts = {:?}\nsession = \"none\"\nkeepalive_s = 2\n\n\
             [[tunnel]]\nname = \"ui\"\nserver = \"hotel\"\nremote = \"0.0.0.0:18080\"\n\
             target = \"master:8080\"\n",
            self.ssh_key().display().to_string(),
            self.dir.join("known_hosts").display().to_string(),
        )
    }

    /// A lab with [`Lab::start_sshd`]'s sshd running, roadie not started.
    pub fn with_sshd() -> Option<Lab> {
        let mut lab = Lab::new(LabOpts {
            start_daemon: false,
            ..LabOpts::default()
        })?;
        lab.start_sshd();
        Some(lab)
    }

    pub fn sshd_pid(&self) -> u32 {
        self.sshd
            .as_ref()
            .and_then(Sshd::pid)
            .expect("sshd running")
    }

    // --- kernel state ---------------------------------------------------------

    /// IPv4 addresses (CIDR) on `dev` in `ns`.
    pub fn addrs(&self, ns: &str, dev: &str) -> Vec<String> {
        ns::addrs(ns, dev)
    }

    /// IPv4 routes on `dev` in `ns` (`ip -j route show dev`), as JSON objects.
    pub fn routes(&self, ns: &str, dev: &str) -> Vec<Value> {
        ns::routes(ns, dev)
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

    /// Starts roadie (again); does not wait for it.
    pub fn start_daemon(&mut self) {
        self.daemon.spawn();
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn assert_daemon_alive(&self) {
        self.daemon.assert_alive();
    }

    /// Sends `sig` to roadie and waits for it to exit (SIGKILL after 5 s).
    /// Returns how long it took and the exit status.
    pub fn stop_daemon(&mut self, sig: libc::c_int) -> (Duration, ExitStatus) {
        self.daemon.stop(sig)
    }

    /// Waits until roadie answers `status` and is idle (not settling, at
    /// least one evaluation); returns that status.
    pub fn wait_ready(&self) -> Value {
        self.wait_idle(1)
    }

    /// Waits until roadie is idle with at least `min_evals` evaluations.
    pub fn wait_idle(&self, min_evals: u64) -> Value {
        self.daemon.wait_status(
            &format!("roadie idle (settling false, evaluations >= {min_evals})"),
            LONG,
            |s| !settling(s) && evaluations(s) >= min_evals,
        )
    }

    /// `roadie call status` (through the CLI), which must succeed.
    pub fn status(&self) -> Value {
        self.daemon
            .call("status", json!({}))
            .unwrap_or_else(|e| panic!("roadie call status failed: {e}"))
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

    /// Every log but roadie's (its [`Roadie`] prints that), and the
    /// addresses in each namespace.
    fn dump_logs(&self) {
        let logs = [
            "hook.log",
            "udhcpc.log",
            "dnsmasq.log",
            "http.log",
            "sshd.log",
        ];
        let label = format!("lab {}", self.id);
        ns::dump_lab(&label, &self.dir, &logs, &self.namespaces);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        // roadie first (it says goodbye to sshd), then sshd and the rest,
        // then the namespaces.
        self.daemon = Roadie::new(&self.rtr, &self.dir);
        self.sshd = None;
        let grace = Duration::from_secs(3);
        let extra = std::mem::take(&mut self.extra);
        for mut child in [self.udhcpc.take(), self.dnsmasq.take(), self.http.take()]
            .into_iter()
            .flatten()
            .chain(extra)
        {
            stop_child(&mut child, libc::SIGTERM, grace);
        }
        self.namespaces.clear();
        remove_lab_dir(&self.dir);
    }
}
