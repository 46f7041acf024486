//! The 4-client lab: one cluster node per DHCP client that real hosts run,
//! each on its own port of the router's LAN bridge (a direct link), and a
//! hotel uplink whose gateway has the router's home address. Namespaces are
//! named `fl<pid>x<n>-{rtr,hotel,udhcpc,dhclient,dhcpcd,networkd}`:
//!
//! ```text
//!  hotel (dnsmasq)                rtr (roadie, udhcpc on wan0, dnsmasq on br-lan)
//!  up0 192.168.1.1/24 <--> wan0 (DHCP: 192.168.1.250, gw .1)
//!                                 br-lan 192.168.1.1/24
//!                                  ├─ lan1 <--> eth0 in `udhcpc`   (busybox udhcpc)    .100
//!                                  ├─ lan2 <--> eth0 in `dhclient` (ISC dhclient)      .101
//!                                  ├─ lan3 <--> eth0 in `dhcpcd`   (dhcpcd)            .102
//!                                  └─ lan4 <--> eth0 in `networkd` (systemd-networkd)  .103
//! ```
//!
//! The LAN's dnsmasq (tests/lab/lan-dnsmasq.sh) reserves each node's address
//! by MAC; roadie's hook is that same script, so after a move dnsmasq serves
//! the new prefix with the reservations at their old offsets. The router
//! forwards (as a router does), so anything roadie lets through towards the
//! old prefix would reach the hotel: tcpdump on wan0 and the hotel's DHCP
//! log show it. [`ClientLab`] tears everything down in `Drop`, also on panic
//! (then it prints the logs).

use std::ffi::CStr;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use super::daemon::{Roadie, evaluations, settling};
use super::ns::{self, Ns};
use super::proc::{
    alive, descendants, kill_alive, read_log, spawn_logged, stop_child, wait_listening,
};
use super::{LONG, REPO, SHORT, chmod_x, host_in, lab_dir, lab_possible, skip, unique, wait_for};

/// The router's home address on the LAN, and the hotel gateway's address.
pub const HOME_ADDR: &str = "192.168.1.1/24";
pub const HOME: &str = "192.168.1.0/24";
/// What the hotel's DHCP server reserves for the router's wan0.
pub const WAN_LEASE: &str = "192.168.1.250";
const WAN_MAC: &str = "02:00:00:00:02:01";
const ROUTER_OFFSET: u32 = 1;

/// The DHCP clients, one node each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Udhcpc,
    Dhclient,
    Dhcpcd,
    Networkd,
}

impl Client {
    pub const ALL: [Client; 4] = [
        Client::Udhcpc,
        Client::Dhclient,
        Client::Dhcpcd,
        Client::Networkd,
    ];

    /// Also its namespace's suffix and its `[[lan.host]]` name.
    pub fn name(self) -> &'static str {
        match self {
            Client::Udhcpc => "udhcpc",
            Client::Dhclient => "dhclient",
            Client::Dhcpcd => "dhcpcd",
            Client::Networkd => "networkd",
        }
    }

    /// What a table calls it.
    pub fn label(self) -> &'static str {
        match self {
            Client::Udhcpc => "busybox udhcpc 1.35",
            Client::Dhclient => "ISC dhclient 4.4.3",
            Client::Dhcpcd => "dhcpcd 9.4.1",
            Client::Networkd => "systemd-networkd 252",
        }
    }

    fn index(self) -> u32 {
        Client::ALL.iter().position(|&c| c == self).unwrap() as u32
    }

    /// Its reserved host offset (.100 ..).
    pub fn offset(self) -> u32 {
        100 + self.index()
    }

    /// The router's member port it hangs on (lan1 ..).
    pub fn port(self) -> String {
        format!("lan{}", self.index() + 1)
    }

    pub fn mac(self) -> String {
        format!("02:00:00:00:01:{:02x}", self.index() + 1)
    }
}

/// roadie's `[lan]` follow keys; `None` leaves a key out (its default).
#[derive(Clone, Copy, Debug, Default)]
pub struct FollowOpts {
    pub follow: Option<bool>,
    pub flap_ports: Option<bool>,
    pub flap_ms: Option<u64>,
}

struct Node {
    client: Client,
    ns: String,
    child: Option<Child>,
    /// Processes it forked (dhcpcd's privilege-separation helpers).
    forked: Vec<u32>,
    /// When the lab last saw it bound at home (set by [`ClientLab::wait_home`]).
    bound: Option<Instant>,
}

pub struct ClientLab {
    pub id: String,
    pub dir: PathBuf,
    pub rtr: String,
    pub hotel: String,
    pub daemon: Roadie,
    nodes: Vec<Node>,
    namespaces: Vec<Ns>,
    hotel_dnsmasq: Option<Child>,
    wan_udhcpc: Option<Child>,
    tcpdump: Option<Child>,
}

/// One node's result: how long after the move it held its new address and
/// pinged the router there (None: not within the deadline), and how old
/// its lease was at the move.
#[derive(Clone, Debug)]
pub struct Followed {
    pub client: Client,
    pub after: Option<Duration>,
    pub lease_age: Option<Duration>,
}

impl ClientLab {
    /// Builds the lab, starts roadie with `follow` and waits until every
    /// node holds its home address. `None`: skip (already reported).
    pub fn new(follow: FollowOpts) -> Option<ClientLab> {
        if !lab_possible() {
            return None;
        }
        for (prog, pkg) in [
            ("dhclient", "isc-dhcp-client"),
            ("dhcpcd", "dhcpcd-base"),
            ("tcpdump", "tcpdump"),
        ] {
            if !have(prog) {
                skip(&format!(
                    "{prog} is not installed (Debian {pkg}: scripts/install-deps lab)"
                ));
                return None;
            }
        }
        if !std::path::Path::new(NETWORKD).exists() {
            skip("systemd-networkd is not installed (Debian systemd)");
            return None;
        }
        let id = unique("fl");
        let dir = lab_dir("roadie-follow-lab", &id);
        let rtr = format!("{id}-rtr");
        let mut lab = ClientLab {
            hotel: format!("{id}-hotel"),
            daemon: Roadie::new(&rtr, &dir),
            rtr,
            nodes: Client::ALL
                .iter()
                .map(|&c| Node {
                    client: c,
                    ns: format!("{id}-{}", c.name()),
                    child: None,
                    forked: Vec::new(),
                    bound: None,
                })
                .collect(),
            id,
            dir,
            namespaces: Vec::new(),
            hotel_dnsmasq: None,
            wan_udhcpc: None,
            tcpdump: None,
        };
        let mut names = vec![lab.rtr.clone(), lab.hotel.clone()];
        names.extend(lab.nodes.iter().map(|n| n.ns.clone()));
        for name in names {
            match Ns::create(&name, false) {
                Ok(ns) => lab.namespaces.push(ns),
                Err(msg) if lab.namespaces.is_empty() => {
                    skip(&msg);
                    return None;
                }
                Err(msg) => panic!("{msg}"),
            }
        }
        lab.wire();
        lab.lan_dnsmasq(HOME);
        lab.start_hotel();
        lab.start_tcpdump();
        lab.write_config(follow);
        lab.daemon.spawn();
        lab.daemon
            .wait_status("roadie idle", LONG, |s| !settling(s) && evaluations(s) >= 1);
        for c in Client::ALL {
            lab.start_client(c);
        }
        lab.wait_home();
        Some(lab)
    }

    /// The links: the bridge with its four ports, the uplink; forwarding on.
    fn wire(&self) {
        ns::veth("wan0", &self.rtr, "up0", &self.hotel);
        let mut batch = format!(
            "link set wan0 address {WAN_MAC}\nlink set wan0 up\n\
             link add br-lan type bridge\nlink set br-lan up\naddr add {HOME_ADDR} dev br-lan\n"
        );
        for n in &self.nodes {
            let port = n.client.port();
            ns::veth(&port, &self.rtr, "eth0", &n.ns);
            batch += &format!("link set {port} master br-lan\nlink set {port} up\n");
            ns::ip_batch(
                &n.ns,
                &format!(
                    "link set eth0 address {}\nlink set eth0 up\n",
                    n.client.mac()
                ),
            );
        }
        ns::ip_batch(&self.rtr, &batch);
        ns::ip_batch(
            &self.hotel,
            &format!("addr add {HOME_ADDR} dev up0\nlink set up0 up\n"),
        );
        // A router forwards: what roadie does not stop would reach the hotel.
        let out = ns::exec(
            &self.rtr,
            &["sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward"],
            SHORT,
        );
        assert!(out.status.success(), "ip_forward: {out:?}");
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn hosts_env(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "{},{},{}",
                    n.client.mac(),
                    n.client.offset(),
                    n.client.name()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The environment lan-dnsmasq.sh reads, as `export` arguments.
    fn dnsmasq_env(&self) -> String {
        format!(
            "LAB_DIR='{}' LAB_IF=br-lan LAB_HOSTS='{}'",
            self.dir.display(),
            self.hosts_env()
        )
    }

    /// (Re)starts the LAN's dnsmasq for `prefix` and waits until it serves.
    fn lan_dnsmasq(&self, prefix: &str) {
        let out = ns::exec(
            &self.rtr,
            &[
                "sh",
                "-c",
                &format!(
                    "export {}; exec /bin/sh {REPO}/tests/lab/lan-dnsmasq.sh {prefix}",
                    self.dnsmasq_env()
                ),
            ],
            SHORT,
        );
        assert!(
            out.status.success(),
            "lan-dnsmasq.sh {prefix}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = self.lan_dnsmasq_pid().expect("dnsmasq.pid after start");
        wait_listening(
            "the LAN's dnsmasq",
            pid,
            "udp",
            67,
            &self.log("dnsmasq.log"),
        );
    }

    /// The LAN dnsmasq's PID, from its pid file, if that process is dnsmasq.
    pub fn lan_dnsmasq_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.log("dnsmasq.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "dnsmasq" && alive(pid)).then_some(pid)
    }

    /// The hotel's DHCP server: a lease for wan0 in the router's home /24,
    /// with the router's home address as its gateway. It logs every request.
    fn start_hotel(&mut self) {
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
            format!("--pid-file={}", self.log("hotel.pid").display()),
            format!("--dhcp-leasefile={}", self.log("hotel.leases").display()),
            "--dhcp-range=192.168.1.200,192.168.1.240,255.255.255.0,1h".into(),
            format!("--dhcp-host={WAN_MAC},{WAN_LEASE}"),
            "--dhcp-option=3,192.168.1.1".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.log("hotel-dnsmasq.log");
        let child = ns::spawn_in(&self.hotel, &args, &log);
        let pid = child.id();
        self.hotel_dnsmasq = Some(child);
        wait_listening("the hotel's dnsmasq", pid, "udp", 67, &log);
    }

    /// tcpdump on wan0, outbound: any IPv4 packet from the home /24 other
    /// than the router's own lease is LAN traffic that leaked to the hotel.
    fn start_tcpdump(&mut self) {
        let log = self.log("tcpdump.log");
        let filter = format!("ip and src net {HOME} and not src host {WAN_LEASE}");
        let child = ns::spawn_in(
            &self.rtr,
            &[
                "tcpdump", "-i", "wan0", "-Q", "out", "-nn", "-l", "-e", &filter,
            ],
            &log,
        );
        let pid = child.id();
        self.tcpdump = Some(child);
        wait_for("tcpdump to listen on wan0", SHORT, || {
            assert!(alive(pid), "tcpdump died:\n{}", read_log(&log));
            read_log(&log).contains("listening on wan0").then_some(())
        });
    }

    fn write_config(&self, f: FollowOpts) {
        let mut s = format!(
            "[daemon]\nstate = {:?}\nsocket = {:?}\nlog_level = \"debug\"\n\n\
             [wan]\ninterfaces = [\"wan0\"]\n\n\
             [lan]\ninterface = \"br-lan\"\naddress = {HOME_ADDR:?}\napply = \"netlink\"\n\
             hook = {:?}\n",
            self.dir.join("state.toml").display().to_string(),
            self.daemon.sock.display().to_string(),
            self.write_hook().display().to_string(),
        );
        if let Some(v) = f.follow {
            s += &format!("follow = {v}\n");
        }
        if let Some(v) = f.flap_ports {
            s += &format!("flap_ports = {v}\n");
        }
        if let Some(v) = f.flap_ms {
            s += &format!("flap_ms = {v}\n");
        }
        for n in &self.nodes {
            s += &format!(
                "\n[[lan.host]]\nname = {:?}\naddress = \"{}\"\n",
                n.client.name(),
                host_in(HOME, n.client.offset())
            );
        }
        self.daemon.write_config(&s);
    }

    /// roadie's hook: lan-dnsmasq.sh with the lab's environment (roadie
    /// gives it ROADIE_NEW_PREFIX).
    fn write_hook(&self) -> PathBuf {
        let hook = self.dir.join("hook.sh");
        fs::write(
            &hook,
            format!(
                "#!/bin/sh\nexport {}\nexec /bin/sh {REPO}/tests/lab/lan-dnsmasq.sh\n",
                self.dnsmasq_env()
            ),
        )
        .unwrap();
        chmod_x(&hook);
        hook
    }

    // --- the nodes ------------------------------------------------------------

    fn node(&self, c: Client) -> &Node {
        &self.nodes[c.index() as usize]
    }

    fn node_mut(&mut self, c: Client) -> &mut Node {
        &mut self.nodes[c.index() as usize]
    }

    /// Starts client `c` in its namespace (its PID is the client's own).
    fn start_client(&mut self, c: Client) {
        let script = |name: &str| format!("{REPO}/tests/lab/{name}");
        let log = self.log(&format!("{}.log", c.name()));
        let ns = self.node(c).ns.clone();
        let args: Vec<String> = match c {
            // Defaults, as a host runs it; the lab's event script applies the lease.
            Client::Udhcpc => ["udhcpc", "-f", "-i", "eth0", "-s", &script("udhcpc.script")]
                .map(String::from)
                .to_vec(),
            Client::Dhclient => {
                let lf = self.log("dhclient.leases");
                [
                    "dhclient",
                    "-d",
                    "-4",
                    "-v",
                    "-lf",
                    lf.to_str().unwrap(),
                    "-pf",
                    self.log("dhclient.pid").to_str().unwrap(),
                    "-sf",
                    &script("dhclient.script"),
                    "eth0",
                ]
                .map(String::from)
                .to_vec()
            }
            // Its own /run and lease database (private mounts inside
            // `ip netns exec`'s mount namespace): one dhcpcd per lab and
            // none of the machine's files. -L: no IPv4LL fallback address.
            Client::Dhcpcd => vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "mount -t tmpfs tmpfs /run && mount -t tmpfs tmpfs /var/lib/dhcpcd && \
                     exec dhcpcd -B -4 -L -d -c {} eth0",
                    script("dhcpcd.script")
                ),
            ],
            // No systemd as PID 1 and no udev: networkd runs once /sys is
            // read-only (else it waits for udev to initialise the link) and
            // /run/systemd is its own tmpfs with the netif state dirs.
            Client::Networkd => {
                let unit = self.dir.join("eth0.network");
                fs::write(
                    &unit,
                    "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n\
                     IPv6AcceptRA=no\n\n[DHCPv4]\nUseHostname=no\nUseDNS=no\n",
                )
                .unwrap();
                vec![
                    "unshare".into(),
                    "-m".into(),
                    "sh".into(),
                    "-c".into(),
                    format!(
                        "mount -t tmpfs tmpfs /run/systemd && \
                         mkdir -p /run/systemd/network /run/systemd/netif/links \
                         /run/systemd/netif/leases /run/systemd/netif/lldp && \
                         chown -R systemd-network:systemd-network /run/systemd/netif && \
                         cp {} /run/systemd/network/ && mount -o remount,ro /sys && \
                         SYSTEMD_LOG_LEVEL=debug exec {NETWORKD}",
                        unit.display()
                    ),
                ]
            }
        };
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &ns]).args(&args);
        let child = spawn_logged(&mut cmd, &log);
        let n = self.node_mut(c);
        n.child = Some(child);
        n.bound = None;
    }

    /// Stops client `c` (SIGTERM, then SIGKILL) and whatever it forked.
    fn stop_client(&mut self, c: Client) {
        let n = self.node_mut(c);
        if let Some(mut child) = n.child.take() {
            n.forked.extend(descendants(child.id()));
            stop_child(&mut child, libc::SIGTERM, Duration::from_secs(3));
        }
        kill_alive(&n.forked);
    }

    /// Restarts client `c` and waits until it holds its home address again:
    /// its lease is then as fresh as it can be (the worst case for a move).
    pub fn restart_client(&mut self, c: Client) {
        self.stop_client(c);
        // Leftover address from the old run: it must come back by DHCP.
        ns::ip(&self.node(c).ns, &["-4", "addr", "flush", "dev", "eth0"]);
        self.start_client(c);
        self.wait_home_one(c);
    }

    /// Waits (LONG) until every node holds its reserved home address.
    pub fn wait_home(&mut self) {
        for c in Client::ALL {
            self.wait_home_one(c);
        }
    }

    fn wait_home_one(&mut self, c: Client) {
        let want = host_in(HOME, c.offset());
        let ns = self.node(c).ns.clone();
        let pid = self.node(c).child.as_ref().map(Child::id);
        let log = self.log(&format!("{}.log", c.name()));
        wait_for(&format!("{} to hold {want}", c.name()), LONG, || {
            if let Some(pid) = pid {
                assert!(alive(pid), "{} died:\n{}", c.name(), read_log(&log));
            }
            v4_on(&ns, "eth0").contains(&want).then_some(())
        });
        self.node_mut(c).bound = Some(Instant::now());
    }

    // --- the move ---------------------------------------------------------------

    /// The uplink comes up in the hotel: wan0 gets 192.168.1.250 with the
    /// gateway at the router's home address, and roadie moves the LAN.
    /// Returns the new prefix and when the lab saw br-lan's address change
    /// (polled every 2 ms).
    pub fn collide(&mut self) -> (String, Instant) {
        assert!(self.wan_udhcpc.is_none(), "the uplink is already up");
        let script = format!("{REPO}/tests/lab/udhcpc.script");
        let child = ns::spawn_in(
            &self.rtr,
            &[
                "udhcpc", "-f", "-i", "wan0", "-s", &script, "-T", "1", "-t", "30", "-A", "1",
            ],
            &self.log("wan-udhcpc.log"),
        );
        self.wan_udhcpc = Some(child);
        let home_addr: Ipv4Addr = host_in(HOME, ROUTER_OFFSET);
        let rtr = self.rtr.clone();
        let deadline = Instant::now() + LONG;
        let new = loop {
            let a = v4_on(&rtr, "br-lan");
            if let Some(x) = a.iter().find(|x| **x != home_addr) {
                break *x;
            }
            assert!(
                Instant::now() < deadline,
                "roadie did not move br-lan within {LONG:?}; br-lan has {a:?}"
            );
            thread::sleep(Duration::from_millis(2));
        };
        let at = Instant::now();
        let o = new.octets();
        (format!("{}.{}.{}.0/24", o[0], o[1], o[2]), at)
    }

    /// For every node, in parallel: the time from `moved` until it holds
    /// its offset in `prefix` and pings the router's address there (one
    /// busybox ping), or None if that did not happen within `deadline`
    /// (from `moved`).
    pub fn followed(&self, prefix: &str, moved: Instant, deadline: Duration) -> Vec<Followed> {
        let router = host_in(prefix, ROUTER_OFFSET).to_string();
        thread::scope(|s| {
            let handles: Vec<_> = self
                .nodes
                .iter()
                .map(|n| {
                    let want = host_in(prefix, n.client.offset());
                    let router = router.clone();
                    s.spawn(move || {
                        let after = loop {
                            if moved.elapsed() > deadline {
                                break None;
                            }
                            if v4_on(&n.ns, "eth0").contains(&want) && ping(&n.ns, &router) {
                                break Some(moved.elapsed());
                            }
                            thread::sleep(Duration::from_millis(20));
                        };
                        Followed {
                            client: n.client,
                            after,
                            lease_age: n.bound.map(|b| moved.saturating_duration_since(b)),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("follow thread panicked"))
                .collect()
        })
    }

    // --- what leaked ---------------------------------------------------------

    /// Lines of the hotel's DHCP log that name a LAN node's MAC.
    pub fn hotel_saw_lan_macs(&self) -> Vec<String> {
        let log = read_log(&self.log("hotel-dnsmasq.log"));
        let macs: Vec<String> = Client::ALL.iter().map(|c| c.mac()).collect();
        log.lines()
            .filter(|l| macs.iter().any(|m| l.to_ascii_lowercase().contains(m)))
            .map(str::to_string)
            .collect()
    }

    /// Packets tcpdump saw leave wan0 from the home /24 (not the router's
    /// own lease). Stops tcpdump first, so its output is complete.
    pub fn leaked_out_wan(&mut self) -> Vec<String> {
        if let Some(mut c) = self.tcpdump.take() {
            stop_child(&mut c, libc::SIGTERM, Duration::from_secs(3));
        }
        read_log(&self.log("tcpdump.log"))
            .lines()
            // Packet lines start with a timestamp (hh:mm:ss.frac).
            .filter(|l| l.as_bytes().get(2) == Some(&b':'))
            .map(str::to_string)
            .collect()
    }

    /// Every log but roadie's, and the addresses in every namespace.
    fn dump_logs(&self) {
        let mut names = vec![
            "dnsmasq.log",
            "hotel-dnsmasq.log",
            "wan-udhcpc.log",
            "tcpdump.log",
        ];
        let clients: Vec<String> = Client::ALL
            .iter()
            .map(|c| format!("{}.log", c.name()))
            .collect();
        names.extend(clients.iter().map(String::as_str));
        let label = format!("follow lab {}", self.id);
        ns::dump_lab(&label, &self.dir, &names, &self.namespaces);
    }
}

impl Drop for ClientLab {
    fn drop(&mut self) {
        if thread::panicking() {
            self.dump_logs();
        }
        // roadie first (it flaps ports and answers for the old address),
        // then the clients, the servers, and the namespaces.
        self.daemon = Roadie::new(&self.rtr, &self.dir);
        for c in Client::ALL {
            self.stop_client(c);
        }
        let grace = Duration::from_secs(3);
        for mut child in [
            self.wan_udhcpc.take(),
            self.hotel_dnsmasq.take(),
            self.tcpdump.take(),
        ]
        .into_iter()
        .flatten()
        {
            stop_child(&mut child, libc::SIGTERM, grace);
        }
        // The LAN's dnsmasq forked itself (from lan-dnsmasq.sh): by its PID file.
        if let Some(pid) = self.lan_dnsmasq_pid() {
            // SAFETY: kill(2) on the dnsmasq this lab's script started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            let t = Instant::now();
            while alive(pid) && t.elapsed() < grace {
                thread::sleep(Duration::from_millis(10));
            }
            kill_alive(&[pid]);
        }
        self.namespaces.clear();
        super::remove_lab_dir(&self.dir);
    }
}

const NETWORKD: &str = "/lib/systemd/systemd-networkd";

fn have(prog: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(prog).exists())
}

/// One `busybox ping` from `ns` to `addr` (1 s); true if it answered.
pub fn ping(ns: &str, addr: &str) -> bool {
    ns::exec(ns, &["busybox", "ping", "-c", "1", "-W", "1", addr], SHORT)
        .status
        .success()
}

/// IPv4 addresses on `dev` in `ns`, read with getifaddrs(3) from a thread
/// inside the namespace: cheap enough to poll every few milliseconds.
pub fn v4_on(ns: &str, dev: &str) -> Vec<Ipv4Addr> {
    ns::enter(ns, || {
        let mut out = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            // SAFETY: p is a node of the list getifaddrs returned.
            let ifa = unsafe { &*p };
            // SAFETY: ifa_name is a NUL-terminated string.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            if !ifa.ifa_addr.is_null()
                && name.to_bytes() == dev.as_bytes()
                // SAFETY: ifa_addr is non-null and points at a sockaddr.
                && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET
            {
                // SAFETY: AF_INET means it is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            }
            p = ifa.ifa_next;
        }
        // SAFETY: head came from getifaddrs and is freed once.
        unsafe { libc::freeifaddrs(head) };
        out
    })
}
