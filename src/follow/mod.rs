//! The follow task: after a move, the cluster's hosts learn their new
//! addresses now, not at the end of their leases (hours on OpenWrt's
//! defaults), and `lan.hosts` tells where each one is.
//!
//! Right after a move it stands in for the old router address on the LAN:
//! it answers ARP for it, NAKs DHCP requests for old-prefix addresses with
//! the old server ID (crate::follow::decide says why), and keeps LAN traffic
//! to that address off the uplink with a blackhole rule (the uplink's own
//! gateway may have that very address). Once the hook has run (the DHCP
//! server serves the new prefix), it takes the LAN bridge's wired ports down
//! for `flap_ms`: dhcpcd and systemd-networkd ask again when their link
//! comes back. It probes every known host by ARP, always.

pub mod decide;
pub mod frame;
pub mod packet;

use crate::config::{ApplyMode, Host as ConfHost, OpenWrt};
use crate::lan::{self, MoveEvent, now_ms};
use crate::netlink::{self, Rule};
use decide::{Budget, Known, Table, Window};
use ipnet::Ipv4Net;
use packet::PacketSocket;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// roadie's policy rules sit at this priority (before the main table's
/// 32766); any found there at start are a crashed run's and are removed.
pub const RULE_PRIORITY: u32 = 97;
const TICK: Duration = Duration::from_millis(250);

/// What the follow task needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub follow: bool,
    pub follow_s: u64,
    pub flap_ports: bool,
    pub flap_ms: u64,
    pub hosts: Vec<ConfHost>,
    /// The router's home address (with length).
    pub address: Ipv4Net,
    pub apply: ApplyMode,
    pub openwrt: OpenWrt,
}

/// `lan.hosts` and `lan.follow` of the status reply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub hosts: Vec<decide::HostStatus>,
    pub follow: Option<FollowStatus>,
    /// Why hosts cannot be probed or helped (no packet socket, ...).
    pub problem: Option<String>,
    /// When the LAN's DHCP settings (apply = "uci") keep hosts from
    /// following a move within a minute: which, and what to set.
    pub dhcp_warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowStatus {
    /// The prefix left behind, and the server ID roadie answers with there.
    pub from: String,
    pub server_id: String,
    /// Unix seconds: when roadie stops standing in for it.
    pub until: u64,
    pub naks: u64,
    pub arp_replies: u64,
    /// The LAN bridge's ports taken down and up after the move.
    pub flapped: Vec<String>,
}

/// The LAN bridge's wired ports among `links`: members of `bridge` that
/// are not Wi-Fi (a Wi-Fi AP taken down drops every client and takes
/// seconds to come back; its clients re-associate anyway).
pub fn wired_ports(
    links: &[netlink::Link],
    bridge: u32,
    wireless: impl Fn(&str) -> bool,
) -> Vec<(u32, String)> {
    links
        .iter()
        .filter(|l| l.master == Some(bridge) && l.index != bridge && !wireless(&l.name))
        .map(|l| (l.index, l.name.clone()))
        .collect()
}

/// Whether the kernel says `name` is a Wi-Fi interface.
fn is_wireless(name: &str) -> bool {
    let dir = Path::new("/sys/class/net").join(name);
    dir.join("wireless").exists() || dir.join("phy80211").exists()
}

/// The LAN as the LAN task last published it.
#[derive(Debug, Clone, PartialEq, Default)]
struct Lan {
    device: Option<String>,
    prefix: Option<Ipv4Net>,
    router: Option<Ipv4Addr>,
}

impl Lan {
    fn of(s: &lan::Status) -> Lan {
        Lan {
            device: s.interface.clone(),
            prefix: s.prefix.parse().ok(),
            router: s.address.parse::<Ipv4Net>().ok().map(|a| a.addr()),
        }
    }
}

struct Task {
    settings: Settings,
    lan: Lan,
    nl: netlink::Socket,
    /// The LAN device's index and MAC, with the socket open on it.
    sock: Option<(PacketSocket, frame::Mac)>,
    table: Table,
    windows: Vec<Window>,
    /// Blackhole rules in place (one per window's server ID).
    rules: Vec<Rule>,
    budget: Budget,
    follow: Option<FollowStatus>,
    problem: Option<String>,
    /// Ports down, to be brought up at that moment.
    flap: Option<(Instant, Vec<(u32, String)>)>,
    dhcp_warning: Option<String>,
    status: watch::Sender<Status>,
}

async fn recv(sock: Option<&(PacketSocket, frame::Mac)>, buf: &mut [u8]) -> std::io::Result<usize> {
    match sock {
        Some((s, _)) => s.recv(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Run the follow task until cancelled.
pub async fn run(
    mut settings: watch::Receiver<Settings>,
    mut lan: watch::Receiver<lan::Status>,
    mut moves: mpsc::Receiver<MoveEvent>,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
) {
    let nl = match netlink::Socket::open() {
        Ok(nl) => nl,
        Err(e) => {
            let problem = format!("cannot open netlink socket: {e}; hosts are not followed");
            log::error!("{problem}");
            status.send_replace(Status {
                problem: Some(problem),
                ..Default::default()
            });
            return;
        }
    };
    let mut t = Task {
        settings: settings.borrow_and_update().clone(),
        lan: Lan::default(),
        nl,
        sock: None,
        table: Table::default(),
        windows: Vec::new(),
        rules: Vec::new(),
        budget: Budget::default(),
        follow: None,
        problem: None,
        flap: None,
        dhcp_warning: None,
        status,
    };
    t.remove_stale_rules().await;
    let first = Lan::of(&lan.borrow_and_update());
    // Loads the hosts as soon as the LAN task has published its prefix.
    t.lan_changed(first).await;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            r = settings.changed() => {
                if r.is_err() { break }
                t.settings = settings.borrow_and_update().clone();
                t.reload_hosts().await;
                t.publish();
            }
            r = lan.changed() => {
                if r.is_err() { break }
                let now = Lan::of(&lan.borrow_and_update());
                t.lan_changed(now).await;
            }
            ev = moves.recv() => match ev {
                None => break,
                Some(ev) => t.on_move(ev).await,
            },
            r = recv(t.sock.as_ref(), &mut buf) => match r {
                Ok(n) => t.on_frame(&buf[..n]).await,
                Err(e) => {
                    // Reopened at the next tick (the device may be gone).
                    t.set_problem(format!("reading ARP and DHCP on the LAN failed: {e}"));
                    t.sock = None;
                }
            },
            _ = tick.tick() => t.tick().await,
            _ = sleep_until(t.flap.as_ref().map(|(at, _)| *at)) => t.flap_up().await,
        }
    }
    t.flap_up().await;
    for r in std::mem::take(&mut t.rules) {
        t.del_rule(&r).await;
    }
}

impl Task {
    fn publish(&self) {
        self.status.send_replace(Status {
            hosts: self.table.status(),
            follow: self.follow.clone(),
            problem: self.problem.clone(),
            dhcp_warning: self.dhcp_warning.clone(),
        });
    }

    fn set_problem(&mut self, p: String) {
        if self.problem.as_ref() != Some(&p) {
            log::warn!("{p}");
            self.problem = Some(p);
            self.publish();
        }
    }

    /// The LAN's device, prefix or address changed: (re)open the socket on
    /// the device, re-aim the host table.
    async fn lan_changed(&mut self, now: Lan) {
        if now == self.lan && self.sock.is_some() {
            return;
        }
        let device_changed = now.device != self.lan.device;
        let prefix_changed = now.prefix != self.lan.prefix;
        self.lan = now;
        if device_changed || self.sock.is_none() {
            self.open_socket().await;
        }
        if prefix_changed {
            self.reload_hosts().await;
        }
        if prefix_changed || device_changed {
            self.sync_rules().await;
        }
        self.publish();
    }

    async fn open_socket(&mut self) {
        self.sock = None;
        let Some(device) = self.lan.device.clone() else {
            return;
        };
        let link = match self.nl.link(&device).await {
            Ok(Some(l)) => l,
            Ok(None) => return self.set_problem(format!("LAN device {device} not found")),
            Err(e) => return self.set_problem(format!("cannot read LAN device {device}: {e}")),
        };
        let Some(mac) = link.mac else {
            return self.set_problem(format!(
                "LAN device {device} has no Ethernet address: hosts are not probed or followed"
            ));
        };
        match PacketSocket::open(link.index) {
            Ok(s) => {
                self.sock = Some((s, mac));
                if self.problem.take().is_some() {
                    log::info!("probing hosts on {device} again");
                }
            }
            Err(e) => self.set_problem(format!(
                "cannot open a packet socket on {device} ({e}): hosts are not probed or followed"
            )),
        }
    }

    /// The known hosts: `[[lan.host]]`, and with apply = "uci" the DHCP
    /// reservations in the LAN.
    async fn reload_hosts(&mut self) {
        let home = self.settings.address.trunc();
        let current = self.lan.prefix.unwrap_or(home);
        let mut known: Vec<Known> = self
            .settings
            .hosts
            .iter()
            .map(|h| Known {
                name: h.name.clone(),
                home: h.address,
            })
            .collect();
        if self.settings.apply == ApplyMode::Uci {
            let cfg = self.settings.openwrt.clone();
            match (lan::uci::Uci { cfg: &cfg }).dhcp().await {
                Ok(sections) => {
                    known.extend(reservations(&sections, current, home));
                    self.dhcp_warning = lease_warning(&sections, &cfg.network_section);
                }
                Err(e) => log::warn!("DHCP reservations not read: {e}"),
            }
        }
        self.table.set(&known, home, current);
    }

    async fn on_move(&mut self, ev: MoveEvent) {
        let home = self.settings.address.trunc();
        match ev {
            MoveEvent::Moved { from, to, at_ms } => {
                // The LAN task's status may reach us after this event.
                self.lan.prefix = Some(to);
                self.lan.router = Some(lan::router_address(self.settings.address, to).addr());
                self.table.moved(home, from, to, at_ms);
                self.windows.retain(|w| w.from != from && w.from != to);
                if self.settings.follow {
                    let server_id = lan::router_address(self.settings.address, from).addr();
                    let until_ms = at_ms + self.settings.follow_s * 1000;
                    self.windows.push(Window {
                        from,
                        server_id,
                        until_ms,
                    });
                    self.follow = Some(FollowStatus {
                        from: from.to_string(),
                        server_id: server_id.to_string(),
                        until: until_ms / 1000,
                        naks: 0,
                        arp_replies: 0,
                        flapped: Vec::new(),
                    });
                    log::info!(
                        "standing in for {server_id} on the LAN until hosts in {from} have moved (at most {} s)",
                        self.settings.follow_s
                    );
                }
                self.sync_rules().await;
                self.publish();
            }
            MoveEvent::Done => {
                if self.settings.apply == ApplyMode::Uci {
                    self.reload_hosts().await;
                }
                if self.settings.flap_ports {
                    self.flap_down().await;
                }
                self.publish();
            }
        }
    }

    /// One blackhole rule per live window: LAN traffic to an old router
    /// address goes nowhere (and never out of the uplink).
    async fn sync_rules(&mut self) {
        let Some(device) = self.lan.device.clone() else {
            return;
        };
        let current = self.lan.prefix;
        let want: Vec<Rule> = self
            .windows
            .iter()
            .filter(|w| !current.is_some_and(|c| c.contains(&w.server_id)))
            .map(|w| Rule {
                priority: RULE_PRIORITY,
                iif: Some(device.clone()),
                dst: Some(Ipv4Net::from(w.server_id)),
                blackhole: true,
            })
            .collect();
        for r in std::mem::take(&mut self.rules) {
            if !want.contains(&r) {
                self.del_rule(&r).await;
            }
        }
        for r in want {
            match self.nl.add_rule(&r).await {
                Ok(()) => self.rules.push(r),
                Err(e) => log::warn!(
                    "cannot keep LAN traffic to {} off the uplink: {e}",
                    rule_text(&r)
                ),
            }
        }
    }

    async fn del_rule(&mut self, r: &Rule) {
        if let Err(e) = self.nl.del_rule(r).await {
            log::warn!("cannot remove the rule {}: {e}", rule_text(r));
        }
    }

    async fn remove_stale_rules(&mut self) {
        match self.nl.rules().await {
            Ok(rules) => {
                for r in rules
                    .into_iter()
                    .filter(|r| r.priority == RULE_PRIORITY && r.blackhole)
                {
                    log::info!(
                        "removing a blackhole rule left by an earlier run ({})",
                        rule_text(&r)
                    );
                    self.del_rule(&r).await;
                }
            }
            Err(e) => log::warn!("cannot read policy rules: {e}"),
        }
    }

    async fn flap_down(&mut self) {
        let Some(device) = self.lan.device.clone() else {
            return;
        };
        let links = match self.nl.links().await {
            Ok(l) => l,
            Err(e) => return log::warn!("cannot list the LAN bridge's ports: {e}"),
        };
        let Some(bridge) = links.iter().find(|l| l.name == device).map(|l| l.index) else {
            return;
        };
        let ports = wired_ports(&links, bridge, is_wireless);
        let mut down = Vec::new();
        for (index, name) in ports {
            match self.nl.set_link_up(index, false).await {
                Ok(()) => down.push((index, name)),
                Err(e) => log::warn!("cannot take {name} down: {e}"),
            }
        }
        if down.is_empty() {
            return;
        }
        let names: Vec<String> = down.iter().map(|(_, n)| n.clone()).collect();
        log::info!(
            "ports {} down for {} ms: hosts on them ask for an address again",
            names.join(", "),
            self.settings.flap_ms
        );
        if let Some(f) = &mut self.follow {
            f.flapped = names;
        }
        self.flap = Some((
            Instant::now() + Duration::from_millis(self.settings.flap_ms),
            down,
        ));
    }

    async fn flap_up(&mut self) {
        let Some((_, ports)) = self.flap.take() else {
            return;
        };
        for (index, name) in ports {
            if let Err(e) = self.nl.set_link_up(index, true).await {
                log::error!("cannot bring {name} up again: {e}");
            }
        }
    }

    async fn send(&mut self, frames: &[Vec<u8>]) {
        let Some((sock, _)) = &self.sock else {
            return;
        };
        for f in frames {
            if let Err(e) = sock.send(f).await {
                log::debug!("sending on the LAN: {e}");
            }
        }
    }

    async fn on_frame(&mut self, f: &[u8]) {
        let Some(incoming) = frame::parse(f) else {
            return;
        };
        let now = now_ms();
        if let frame::Incoming::Arp(a) = &incoming
            && !a.sender_ip.is_unspecified()
            && self.table.seen(a.sender_ip, a.sender_mac, now)
        {
            self.publish();
        }
        let (Some(current), Some((_, mac))) = (self.lan.prefix, &self.sock) else {
            return;
        };
        let mac = *mac;
        let Some(reply) = decide::answer(&self.windows, current, &incoming, now) else {
            return;
        };
        if !self.budget.take(now) {
            return;
        }
        let frames = decide::frames(mac, &reply, current);
        self.send(&frames).await;
        if let Some(fs) = &mut self.follow {
            match &reply {
                decide::Reply::Arp { .. } => fs.arp_replies += 1,
                decide::Reply::Nak { req, .. } => {
                    fs.naks += 1;
                    log::info!(
                        "NAKed {}'s request for {} (the LAN moved to {current})",
                        frame::mac_text(&req.client_mac()),
                        req.address().map(|a| a.to_string()).unwrap_or_default()
                    );
                }
            }
        }
        self.publish();
    }

    async fn tick(&mut self) {
        if self.sock.is_none() && self.lan.device.is_some() {
            self.open_socket().await;
        }
        let now = now_ms();
        let before = self.windows.len();
        self.windows.retain(|w| w.until_ms > now);
        if self.windows.len() != before {
            if self.windows.is_empty() {
                log::info!("no lease from before the move can be alive now: done standing in");
                self.follow = None;
            }
            self.sync_rules().await;
            self.publish();
        }
        if self.table.expire(now) {
            self.publish();
        }
        let (Some(router), Some((_, mac))) = (self.lan.router, &self.sock) else {
            return;
        };
        let mac = *mac;
        let old_router = self.windows.last().map(|w| w.server_id);
        let frames: Vec<Vec<u8>> = self
            .table
            .probes(router, old_router, now)
            .into_iter()
            .map(|(target, from)| frame::arp_request(mac, from, target))
            .collect();
        self.send(&frames).await;
    }
}

/// The longest lease after which every client still follows a move within
/// about a minute: busybox udhcpc renews at half the lease and ignores T1.
pub const FOLLOW_LEASE_S: u64 = 120;

/// A dnsmasq lease time as UCI writes it ("12h", "2m", "3600", "infinite")
/// in seconds; None for infinite or what does not parse.
pub fn lease_seconds(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_lowercase()),
        _ => (t, 's'),
    };
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 604_800,
        _ => return None,
    };
    Some(n * mult)
}

/// Why the DHCP settings of the LAN (`dhcp` sections of `uci show dhcp`
/// whose interface is `interface`) keep hosts from following within a
/// minute, if they do.
pub fn lease_warning(dhcp: &[lan::uci::Section], interface: &str) -> Option<String> {
    let sec = dhcp.iter().find(|s| {
        s.kind == "dhcp"
            && matches!(s.get("interface"), Some(lan::uci::Value::Single(i)) if i == interface)
    })?;
    if matches!(sec.get("ignore"), Some(lan::uci::Value::Single(v)) if v == "1") {
        return None; // no DHCP served here
    }
    let text = match sec.get("leasetime") {
        Some(lan::uci::Value::Single(v)) => v.clone(),
        _ => "12h".to_string(), // dnsmasq.init's default
    };
    match lease_seconds(&text) {
        Some(s) if s <= FOLLOW_LEASE_S => None,
        secs => {
            let renew = secs.map_or("never".to_string(), |s| {
                format!("after up to {} min", s / 120)
            });
            Some(format!(
                "dhcp.{}.leasetime is {text}: after a move, busybox udhcpc hosts renew (and follow) only {renew}; \
                 `uci set dhcp.{}.leasetime=2m; uci commit dhcp; /etc/init.d/dnsmasq reload` makes every host follow within a minute",
                sec.name, sec.name
            ))
        }
    }
}

/// `to 192.168.1.1/32 iif br-lan`, for messages.
fn rule_text(r: &Rule) -> String {
    let dst = r.dst.map(|d| d.to_string()).unwrap_or_else(|| "all".into());
    let iif = r.iif.as_deref().unwrap_or("any");
    format!("to {dst} iif {iif}")
}

/// DHCP reservations (`config host` with an `ip`) in the `current` prefix,
/// as hosts at their home offset.
pub fn reservations(dhcp: &[lan::uci::Section], current: Ipv4Net, home: Ipv4Net) -> Vec<Known> {
    dhcp.iter()
        .filter(|s| s.kind == "host")
        .filter_map(|s| {
            let ip = match s.get("ip")? {
                lan::uci::Value::Single(v) => v.parse::<Ipv4Addr>().ok()?,
                lan::uci::Value::List(_) => return None,
            };
            if !current.contains(&ip) {
                return None;
            }
            let name = match s.get("name") {
                Some(lan::uci::Value::Single(n)) => n.clone(),
                _ => s.name.clone(),
            };
            Some(Known {
                name,
                home: crate::plan::map_host(ip, current, home)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lan::uci::parse_show;

    fn link(index: u32, name: &str, master: Option<u32>) -> netlink::Link {
        netlink::Link {
            index,
            name: name.into(),
            up: true,
            master,
            mac: Some([2, 0, 0, 0, 0, index as u8]),
        }
    }

    #[test]
    fn flaps_wired_bridge_ports_only() {
        let links = [
            link(1, "lo", None),
            link(2, "br-lan", None),
            link(3, "lan1", Some(2)),
            link(4, "lan2", Some(2)),
            link(5, "phy0-ap0", Some(2)),
            link(6, "wan", None),
            link(7, "eth0.5", Some(9)),
        ];
        let wifi = |n: &str| n.starts_with("phy");
        assert_eq!(
            wired_ports(&links, 2, wifi),
            [(3, "lan1".to_string()), (4, "lan2".to_string())]
        );
        assert!(
            wired_ports(&links, 6, wifi).is_empty(),
            "not a bridge: nothing"
        );
    }

    #[test]
    fn lease_times_and_the_warning() {
        for (text, want) in [
            ("12h", Some(43_200)),
            ("2m", Some(120)),
            ("90", Some(90)),
            ("1d", Some(86_400)),
            ("2M", Some(120)),
            ("infinite", None),
            ("", None),
            ("h", None),
        ] {
            assert_eq!(lease_seconds(text), want, "{text:?}");
        }
        let dhcp = |lease: &str| {
            parse_show(&format!(
                "dhcp.lan=dhcp\ndhcp.lan.interface='lan'\n{lease}dhcp.wan=dhcp\ndhcp.wan.interface='wan'\ndhcp.wan.ignore='1'\n"
            ))
            .unwrap()
        };
        let w = lease_warning(&dhcp("dhcp.lan.leasetime='12h'\n"), "lan").unwrap();
        assert!(
            w.contains("leasetime is 12h") && w.contains("up to 360 min"),
            "{w}"
        );
        assert!(
            lease_warning(&dhcp(""), "lan").unwrap().contains("12h"),
            "unset is dnsmasq's 12h"
        );
        assert_eq!(
            lease_warning(&dhcp("dhcp.lan.leasetime='2m'\n"), "lan"),
            None
        );
        assert_eq!(
            lease_warning(&dhcp("dhcp.lan.leasetime='12h'\n"), "wan"),
            None,
            "no DHCP there"
        );
        assert_eq!(lease_warning(&dhcp(""), "guest"), None, "no such interface");
    }

    #[test]
    fn reservations_in_the_lan_at_their_home_offset() {
        let dhcp = parse_show(
            "dhcp.lan=dhcp\n\
             dhcp.cfg01=host\n\
             dhcp.cfg01.name='master'\n\
             dhcp.cfg01.mac='02:00:00:00:00:64'\n\
             dhcp.cfg01.ip='10.97.79.100'\n\
             dhcp.printer=host\n\
             dhcp.printer.ip='10.97.79.7'\n\
             dhcp.cfg03=host\n\
             dhcp.cfg03.name='elsewhere'\n\
             dhcp.cfg03.ip='172.16.5.5'\n\
             dhcp.cfg04=host\n\
             dhcp.cfg04.name='noip'\n",
        )
        .unwrap();
        let got = reservations(
            &dhcp,
            "10.97.79.0/24".parse().unwrap(),
            "192.168.1.0/24".parse().unwrap(),
        );
        assert_eq!(
            got,
            [
                Known {
                    name: "master".into(),
                    home: "192.168.1.100".parse().unwrap()
                },
                Known {
                    name: "printer".into(),
                    home: "192.168.1.7".parse().unwrap()
                },
            ]
        );
    }
}
