//! Absorbing a colliding uplink (`[lan] on_collision = "absorb"`): the LAN
//! keeps every address; the router's own stack sees the uplink's network
//! under an alias prefix, translated at the uplink's edge by an nftables
//! netdev table (crate::absorb::plan has the decisions and the rules).
//!
//! The uplink's DHCP client stays the only owner of its address: its event
//! script asks roadie (`roadie absorb-lease`, the `absorb.lease` method)
//! before it configures the lease, roadie loads the table first and answers
//! with the values to install (the alias ones when it absorbs, the lease as
//! it is otherwise). When it cannot absorb (a prefix wider than /24, no
//! alias free, a kernel without netdev ingress/egress hooks), the lease goes
//! in as it is and the LAN moves, as with `on_collision = "move"`.

pub mod plan;

use crate::config::OnCollision;
use crate::lan;
use crate::netlink;
use crate::netwatch::NetState;
use ipnet::Ipv4Net;
use plan::Verdict;
use serde::Serialize;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

const NFT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the tables are checked (a firewall restart flushes them all)
/// when nftables' change notifications cannot be had.
const CHECK: Duration = Duration::from_secs(2);
/// With the notifications: a check now and then all the same (the kernel
/// may have dropped some, and says so only when the socket overflows).
const CHECK_WITH_EVENTS: Duration = Duration::from_secs(60);
/// How long `init.d/dnsmasq restart` may take.
const RESTART_TIMEOUT: Duration = Duration::from_secs(15);
/// The uplink's ARP and source checks while absorbed: answer ARP only for
/// its own address, announce only that, drop what could not have come in
/// there. (What the prototype needed so that no frame speaks for the LAN.)
const SYSCTLS: [(&str, &str); 4] = [
    ("arp_ignore", "1"),
    ("arp_announce", "2"),
    ("arp_filter", "1"),
    ("rp_filter", "1"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub on_collision: OnCollision,
    pub pools: Vec<Ipv4Net>,
    pub avoid: Vec<Ipv4Net>,
    /// The LAN's home prefix (an alias must keep off it, too).
    pub home: Ipv4Net,
    /// The nft program.
    pub nft: PathBuf,
    /// Where the loaded rulesets are written (for `nft -f`, and to look at).
    pub run_dir: PathBuf,
    /// /proc/sys/net/ipv4/conf, or a test's stand-in.
    pub sysctl_dir: PathBuf,
    /// `[lan] dns_alias_file`: where dnsmasq's `alias=` lines go while an
    /// uplink is absorbed (a file in dnsmasq's conf-dir), or none.
    pub dns_alias_file: Option<PathBuf>,
    /// `[openwrt] init_d`: `dnsmasq restart` is run from here after the
    /// alias file changed (dnsmasq reads it only when it starts).
    pub init_d: PathBuf,
    /// /proc, where a stock DHCP client is looked for (a test's stand-in).
    pub proc_dir: PathBuf,
}

/// A lease, as the DHCP client's script reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub interface: String,
    pub address: Ipv4Net,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

pub enum Request {
    Lease(Lease, oneshot::Sender<Result<Value, String>>),
    Release(String, oneshot::Sender<Result<Value, String>>),
}

/// One absorbed uplink (`lan.absorbed[]`).
#[derive(Debug, Clone, Serialize)]
pub struct Absorbed {
    pub interface: String,
    /// The uplink's own prefix, as its hosts know it.
    pub prefix: String,
    /// The same network as the router and the LAN see it.
    pub alias: String,
    /// The router's address there (the lease), and as the router has it.
    pub lease: String,
    pub address: String,
    pub since: u64,
    /// Times the table was found gone (a firewall restart) and loaded again.
    pub restored: u64,
    /// Whether dnsmasq rewrites the uplink's DNS answers to the alias.
    pub dns: bool,
    #[serde(skip)]
    real: Ipv4Net,
    #[serde(skip)]
    alias_net: Ipv4Net,
    #[serde(skip)]
    lease_addr: Ipv4Addr,
    /// The sysctls as they were, to put back on release.
    #[serde(skip)]
    saved: Vec<(String, String)>,
}

impl Absorbed {
    /// `addr` as the router sees it.
    pub fn alias_of(&self, addr: Ipv4Addr) -> Ipv4Addr {
        plan::to_alias(addr, self.real, self.alias_net)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub absorbed: Vec<Absorbed>,
    /// The last lease that could not be absorbed, and why.
    pub problem: Option<String>,
}

struct Task {
    settings: Settings,
    lan: watch::Receiver<lan::Status>,
    net: watch::Receiver<NetState>,
    absorbed: Vec<Absorbed>,
    problem: Option<String>,
    /// Uplinks whose colliding lease roadie answered with the lease as it
    /// is (it could not absorb it): their address is no surprise.
    declined: Vec<String>,
    /// A colliding lease that went in without asking roadie, and why.
    unasked: Option<String>,
    status: watch::Sender<Status>,
    /// Netfilter requests (whether a table exists) without running nft.
    nl: Option<netlink::Socket>,
    /// The alias file's content as last written ("" when removed).
    dns_written: String,
}

pub async fn run(
    mut settings: watch::Receiver<Settings>,
    lan: watch::Receiver<lan::Status>,
    net: watch::Receiver<NetState>,
    mut requests: mpsc::Receiver<Request>,
    status: watch::Sender<Status>,
    cancel: CancellationToken,
) {
    let mut t = Task {
        settings: settings.borrow_and_update().clone(),
        lan,
        net,
        absorbed: Vec::new(),
        problem: None,
        declined: Vec::new(),
        unasked: None,
        status,
        nl: netlink::Socket::open_netfilter(0)
            .map_err(|e| log::debug!("no netfilter socket ({e}): tables are checked with nft"))
            .ok(),
        dns_written: String::new(),
    };
    t.remove_stale().await;
    // A firewall restart (or anything else) removing a table shows as an
    // nftables notification: the table is back at once, and nothing runs
    // every 2 s on the router's CPU.
    let mut events = match netlink::Socket::open_netfilter(netlink::GROUPS_NFTABLES) {
        Ok(s) => Some(s),
        Err(e) => {
            log::info!(
                "no nftables notifications ({e}): the translation tables are checked every {} s",
                CHECK.as_secs()
            );
            None
        }
    };
    let every = if events.is_some() {
        CHECK_WITH_EVENTS
    } else {
        CHECK
    };
    let mut check = tokio::time::interval(every);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = nft_event(&mut events) => {
                if let Err(e) = ev {
                    log::warn!("nftables notifications: {e}; checking every {} s instead", CHECK.as_secs());
                    events = None;
                    check = tokio::time::interval(CHECK);
                }
                // A burst (a whole ruleset loaded) is one check.
                while events.as_ref().is_some_and(netlink::Socket::pending) {
                    if let Some(ev) = events.as_mut() {
                        let _ = ev.event().await;
                    }
                }
                if !t.absorbed.is_empty() {
                    t.check().await;
                }
            }
            r = t.net.changed() => {
                if r.is_err() { break }
                t.look_for_unasked();
            }
            r = settings.changed() => {
                if r.is_err() { break }
                t.settings = settings.borrow_and_update().clone();
                if t.settings.on_collision == OnCollision::Move {
                    t.release_all().await;
                }
            }
            req = requests.recv() => match req {
                None => break,
                Some(Request::Lease(lease, reply)) => {
                    let r = t.lease(lease).await;
                    let _ = reply.send(r);
                }
                Some(Request::Release(interface, reply)) => {
                    let was = t.release(&interface).await;
                    let _ = reply.send(Ok(json!({"interface": interface, "released": was})));
                }
            },
            _ = check.tick() => t.check().await,
        }
        t.sync_dns().await;
        t.publish();
    }
    t.release_all().await;
    t.sync_dns().await;
}

/// The next nftables notification, or never without the socket.
async fn nft_event(events: &mut Option<netlink::Socket>) -> Result<netlink::Event, netlink::Error> {
    match events {
        Some(s) => s.event().await,
        None => std::future::pending().await,
    }
}

/// The reply a DHCP script installs: `lease` unchanged, or mapped.
fn reply(lease: &Lease, a: Option<&Absorbed>, why: Option<&str>) -> Value {
    let map = |x: Ipv4Addr| a.map_or(x, |a| a.alias_of(x));
    let address = Ipv4Net::new(map(lease.address.addr()), lease.address.prefix_len())
        .unwrap_or(lease.address);
    json!({
        "interface": lease.interface,
        "absorbed": a.is_some(),
        "address": address.to_string(),
        "router": lease.router.map(|r| map(r).to_string()),
        "dns": lease.dns.iter().map(|d| map(*d).to_string()).collect::<Vec<_>>(),
        "prefix": a.map(|a| a.prefix.clone()),
        "alias": a.map(|a| a.alias.clone()),
        "why": why,
    })
}

impl Task {
    fn publish(&self) {
        self.status.send_replace(Status {
            absorbed: self.absorbed.clone(),
            problem: self.unasked.clone().or_else(|| self.problem.clone()),
        });
    }

    /// With `on_collision = "absorb"`, an uplink carrying an address in the
    /// LAN's prefix (home or now) that roadie did not answer for: its DHCP
    /// client did not ask (on OpenWrt: netifd still runs the dhcp handler it
    /// started with), so the LAN moved instead. Says so, and how to fix it.
    fn look_for_unasked(&mut self) {
        let found = if self.settings.on_collision == OnCollision::Absorb {
            self.find_unasked()
        } else {
            None
        };
        if found.is_some() && found != self.unasked {
            log::warn!("{}", found.as_deref().unwrap_or_default());
        }
        self.unasked = found;
    }

    fn find_unasked(&self) -> Option<String> {
        let (lan_if, lan_prefix) = {
            let l = self.lan.borrow();
            (l.interface.clone(), l.prefix.parse::<Ipv4Net>().ok())
        };
        let ours = |n: &Ipv4Net| {
            let n = n.trunc();
            let overlaps = |p: &Ipv4Net| p.contains(&n.network()) || n.contains(&p.network());
            overlaps(&self.settings.home) || lan_prefix.as_ref().is_some_and(overlaps)
        };
        let net = self.net.borrow();
        let (dev, addr) = net
            .links
            .iter()
            .filter(|l| Some(&l.name) != lan_if.as_ref())
            .filter(|l| !self.absorbed.iter().any(|a| a.interface == l.name))
            .filter(|l| !self.declined.contains(&l.name))
            .find_map(|l| {
                l.addrs
                    .iter()
                    .find(|a| ours(a))
                    .map(|a| (l.name.clone(), *a))
            })?;
        let fix = if stock_udhcpc_runs(&self.settings.proc_dir, &dev) {
            "netifd still runs OpenWrt's own dhcp protocol handler (it reads /lib/netifd/proto/ only when it starts): run `/etc/init.d/network restart` or reboot once, and roadie's handler takes over"
        } else {
            "its DHCP client's event script must ask roadie first (`roadie absorb-lease`; README: \"Or keep every address\")"
        };
        Some(format!(
            "{dev}: its address {addr} collides with the LAN and went in without asking roadie, so the LAN moved instead of absorbing it: {fix}"
        ))
    }

    /// dnsmasq's alias file as the absorbed uplinks want it; dnsmasq
    /// restarted when it changed (it reads the file only when it starts).
    async fn sync_dns(&mut self) {
        let Some(path) = self.settings.dns_alias_file.clone() else {
            return;
        };
        let pairs: Vec<(Ipv4Net, Ipv4Net)> = self
            .absorbed
            .iter()
            .map(|a| (a.real, a.alias_net))
            .collect();
        let want = plan::dnsmasq_aliases(&pairs);
        if want == self.dns_written {
            return;
        }
        let r = if want.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::write(&path, &want)
        };
        if let Err(e) = r {
            log::error!(
                "cannot write {}: {e}; hotel DNS answers are not rewritten",
                path.display()
            );
            return;
        }
        self.dns_written = want;
        for a in self.absorbed.iter_mut() {
            a.dns = true;
        }
        if self.dns_written.is_empty() {
            log::info!(
                "{} removed: dnsmasq no longer rewrites uplink DNS answers",
                path.display()
            );
        } else {
            log::info!(
                "{}: dnsmasq rewrites the absorbed uplinks' DNS answers ({})",
                path.display(),
                pairs
                    .iter()
                    .map(|(r, a)| format!("{r} -> {a}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        restart_dnsmasq(&self.settings.init_d).await;
    }

    /// Prefixes an alias must keep off: home, `avoid`, and every address
    /// on another interface than `interface` (its own is the old alias).
    fn taken(&self, interface: &str) -> Vec<Ipv4Net> {
        let mut out = vec![self.settings.home];
        out.extend(self.settings.avoid.iter().copied());
        let net = self.net.borrow();
        for l in net.links.iter().filter(|l| l.name != interface) {
            out.extend(l.addrs.iter().map(|a| a.trunc()));
        }
        for a in self.absorbed.iter().filter(|a| a.interface != interface) {
            out.push(a.alias_net);
            out.push(a.real);
        }
        out
    }

    async fn lease(&mut self, lease: Lease) -> Result<Value, String> {
        if !valid_ifname(&lease.interface) {
            return Err(format!(
                "absorb.lease: {} is not an interface name",
                crate::quote::Q(&lease.interface)
            ));
        }
        if self.settings.on_collision != OnCollision::Absorb {
            self.release(&lease.interface).await;
            return Ok(reply(&lease, None, Some("on_collision is \"move\"")));
        }
        let lan_prefix = self
            .lan
            .borrow()
            .prefix
            .parse::<Ipv4Net>()
            .unwrap_or(self.settings.home);
        let taken = self.taken(&lease.interface);
        let verdict = plan::decide(lease.address, lan_prefix, &self.settings.pools, &taken);
        match verdict {
            Verdict::Plain => {
                self.declined.retain(|d| *d != lease.interface);
                if self.release(&lease.interface).await {
                    log::info!(
                        "{}: {} does not collide with the LAN: translation removed",
                        lease.interface,
                        lease.address
                    );
                }
                Ok(reply(&lease, None, None))
            }
            Verdict::Cannot(why) => {
                self.release(&lease.interface).await;
                self.decline(&lease.interface);
                let why = format!(
                    "{}: cannot absorb {}: {why}",
                    lease.interface, lease.address
                );
                log::warn!("{why}");
                self.problem = Some(why.clone());
                Ok(reply(&lease, None, Some(&why)))
            }
            Verdict::Absorb { real, alias } => match self.absorb(&lease, real, alias).await {
                Ok(()) => {
                    self.problem = None;
                    self.declined.retain(|d| *d != lease.interface);
                    self.unasked = None;
                    let a = self
                        .absorbed
                        .iter()
                        .find(|a| a.interface == lease.interface);
                    Ok(reply(&lease, a, None))
                }
                Err(e) => {
                    let why = format!(
                        "{}: cannot absorb {}: {e}; the kernel needs nftables netdev ingress and egress hooks (Linux 5.16+, kmod-nft-netdev): the LAN moves instead",
                        lease.interface, lease.address
                    );
                    log::error!("{why}");
                    self.release(&lease.interface).await;
                    self.decline(&lease.interface);
                    self.problem = Some(why.clone());
                    Ok(reply(&lease, None, Some(&why)))
                }
            },
        }
    }

    async fn absorb(&mut self, lease: &Lease, real: Ipv4Net, alias: Ipv4Net) -> Result<(), String> {
        let dev = &lease.interface;
        let addr = lease.address.addr();
        self.load(dev, real, alias, addr).await?;
        let prior = self.absorbed.iter().position(|a| a.interface == *dev);
        let saved = match prior {
            Some(i) => self.absorbed[i].saved.clone(),
            None => self.set_sysctls(dev),
        };
        let alias_addr = plan::to_alias(addr, real, alias);
        let entry = Absorbed {
            interface: dev.clone(),
            prefix: real.to_string(),
            alias: alias.to_string(),
            lease: addr.to_string(),
            address: Ipv4Net::new(alias_addr, lease.address.prefix_len())
                .map(|n| n.to_string())
                .unwrap_or_default(),
            since: prior.map_or_else(lan::now_unix, |i| self.absorbed[i].since),
            restored: prior.map_or(0, |i| self.absorbed[i].restored),
            dns: prior.is_some_and(|i| self.absorbed[i].dns),
            real,
            alias_net: alias,
            lease_addr: addr,
            saved,
        };
        if prior.is_none() {
            log::info!(
                "{dev}: absorbing {real} as {alias}: the LAN keeps its addresses; hosts there are reached at {alias} ({} is {alias_addr} here)",
                lease.address.addr()
            );
        }
        match prior {
            Some(i) => self.absorbed[i] = entry,
            None => self.absorbed.push(entry),
        }
        Ok(())
    }

    fn ruleset_path(&self, dev: &str) -> PathBuf {
        self.settings
            .run_dir
            .join(format!("{}.nft", plan::table_name(dev)))
    }

    async fn load(
        &self,
        dev: &str,
        real: Ipv4Net,
        alias: Ipv4Net,
        lease: Ipv4Addr,
    ) -> Result<(), String> {
        let path = self.ruleset_path(dev);
        std::fs::write(&path, plan::ruleset(dev, real, alias, lease))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let p = path.to_string_lossy();
        crate::command::run(&self.settings.nft, &["-f", &p], NFT_TIMEOUT)
            .await
            .map(drop)
    }

    fn decline(&mut self, interface: &str) {
        if !self.declined.iter().any(|d| d == interface) {
            self.declined.push(interface.to_string());
        }
    }

    async fn table_exists(&mut self, dev: &str) -> Result<bool, String> {
        let table = plan::table_name(dev);
        if let Some(nl) = self.nl.as_mut() {
            match nl.nft_table_exists(netlink::NFPROTO_NETDEV, &table).await {
                Ok(there) => return Ok(there),
                Err(e) => log::debug!("netfilter query for {table}: {e}; asking nft"),
            }
        }
        let out = crate::command::output(
            &self.settings.nft,
            &["list", "table", "netdev", &table],
            NFT_TIMEOUT,
        )
        .await?;
        Ok(out.status.success())
    }

    async fn delete_table(&self, table: &str) {
        let r = crate::command::output(
            &self.settings.nft,
            &["delete", "table", "netdev", table],
            NFT_TIMEOUT,
        )
        .await;
        if let Err(e) = r {
            log::warn!("{e}");
        }
    }

    async fn release_all(&mut self) {
        let all: Vec<String> = self.absorbed.iter().map(|a| a.interface.clone()).collect();
        for interface in all {
            self.release(&interface).await;
        }
    }

    /// Remove the translation of `interface`; whether there was one.
    async fn release(&mut self, interface: &str) -> bool {
        let Some(i) = self.absorbed.iter().position(|a| a.interface == interface) else {
            return false;
        };
        let a = self.absorbed.remove(i);
        self.delete_table(&plan::table_name(interface)).await;
        let _ = std::fs::remove_file(self.ruleset_path(interface));
        for (key, value) in &a.saved {
            let path = self.settings.sysctl_dir.join(interface).join(key);
            if let Err(e) = std::fs::write(&path, value) {
                log::debug!("{}: {e}", path.display());
            }
        }
        log::info!("{interface}: no longer absorbing {}", a.prefix);
        true
    }

    /// Set the uplink's ARP and source checks; returns the values before.
    fn set_sysctls(&self, dev: &str) -> Vec<(String, String)> {
        let mut saved = Vec::new();
        for (key, value) in SYSCTLS {
            let path = self.settings.sysctl_dir.join(dev).join(key);
            match std::fs::read_to_string(&path) {
                Ok(old) => {
                    saved.push((key.to_string(), old.trim().to_string()));
                    if let Err(e) = std::fs::write(&path, value) {
                        log::warn!("cannot set {}: {e}", path.display());
                    }
                }
                Err(e) => log::warn!("cannot read {}: {e}", path.display()),
            }
        }
        saved
    }

    /// Tables a firewall restart flushed are loaded again.
    async fn check(&mut self) {
        for i in 0..self.absorbed.len() {
            let (dev, real, alias, lease) = {
                let a = &self.absorbed[i];
                (a.interface.clone(), a.real, a.alias_net, a.lease_addr)
            };
            match self.table_exists(&dev).await {
                Ok(true) => {}
                Ok(false) => {
                    log::warn!(
                        "{dev}: the translation of {real} was gone (a firewall restart?): loading it again"
                    );
                    match self.load(&dev, real, alias, lease).await {
                        Ok(()) => self.absorbed[i].restored += 1,
                        Err(e) => log::error!("{dev}: {e}"),
                    }
                }
                Err(e) => log::warn!("{e}"),
            }
        }
    }

    /// Tables an earlier run left (killed before it could clean up), and its
    /// dnsmasq alias file.
    async fn remove_stale(&mut self) {
        if let Some(path) = &self.settings.dns_alias_file
            && std::fs::remove_file(path).is_ok()
        {
            log::info!(
                "removed the dnsmasq alias file {} an earlier run left",
                path.display()
            );
            restart_dnsmasq(&self.settings.init_d).await;
        }
        let out = match crate::command::output(
            &self.settings.nft,
            &["list", "tables", "netdev"],
            NFT_TIMEOUT,
        )
        .await
        {
            Ok(o) if o.status.success() => o,
            // No nft, or no netdev support: nothing can have been left.
            _ => return,
        };
        for table in stale_tables(&String::from_utf8_lossy(&out.stdout)) {
            log::info!("removing the translation table {table} an earlier run left");
            self.delete_table(&table).await;
        }
    }
}

/// `init.d/dnsmasq restart`, when there is such a script.
async fn restart_dnsmasq(init_d: &Path) {
    let script = init_d.join("dnsmasq");
    if !script.exists() {
        log::info!(
            "{} not found: restart dnsmasq yourself for its alias file to count",
            script.display()
        );
        return;
    }
    if let Err(e) = crate::command::run(&script, &["restart"], RESTART_TIMEOUT).await {
        log::warn!("{e}");
    }
}

/// Whether a udhcpc with netifd's stock event script runs on `dev`.
fn stock_udhcpc_runs(proc_dir: &Path, dev: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(proc_dir) else {
        return false;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|raw| {
            let text = String::from_utf8_lossy(&raw);
            let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
            plan::stock_netifd_udhcpc(&argv, dev)
        })
}

/// roadie's tables in `nft list tables netdev` output.
pub fn stale_tables(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("table netdev "))
        .filter(|t| t.starts_with("roadie_"))
        .map(str::to_string)
        .collect()
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() < 16 && !s.contains(['/', ' ', '"', '\n']) && s != "." && s != ".."
}

/// Defaults for a router.
pub fn default_paths(socket: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        PathBuf::from("nft"),
        socket
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir),
        PathBuf::from("/proc/sys/net/ipv4/conf"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_tables_are_roadies_only() {
        let listing = "table netdev roadie_wan0\ntable netdev other\ntable netdev roadie_eth0_2\n";
        assert_eq!(stale_tables(listing), ["roadie_wan0", "roadie_eth0_2"]);
        assert!(stale_tables("").is_empty());
    }

    #[test]
    fn replies_map_only_when_absorbed() {
        let lease = Lease {
            interface: "wan0".into(),
            address: "192.168.1.57/24".parse().unwrap(),
            router: Some("192.168.1.1".parse().unwrap()),
            dns: vec!["192.168.1.1".parse().unwrap(), "8.8.8.8".parse().unwrap()],
        };
        let plain = reply(&lease, None, None);
        assert_eq!(plain["address"], "192.168.1.57/24");
        assert_eq!(plain["absorbed"], false);
        let a = Absorbed {
            interface: "wan0".into(),
            prefix: "192.168.1.0/24".into(),
            alias: "10.168.183.0/24".into(),
            lease: "192.168.1.57".into(),
            address: "10.168.183.57/24".into(),
            since: 0,
            restored: 0,
            dns: false,
            real: "192.168.1.0/24".parse().unwrap(),
            alias_net: "10.168.183.0/24".parse().unwrap(),
            lease_addr: "192.168.1.57".parse().unwrap(),
            saved: vec![],
        };
        let r = reply(&lease, Some(&a), None);
        assert_eq!(r["address"], "10.168.183.57/24");
        assert_eq!(r["router"], "10.168.183.1");
        assert_eq!(r["dns"], json!(["10.168.183.1", "8.8.8.8"]));
        assert_eq!(r["alias"], "10.168.183.0/24");
        for bad in ["", "a/b", "x y", "0123456789abcdef"] {
            assert!(!valid_ifname(bad), "{bad:?}");
        }
        assert!(valid_ifname("phy0-sta0"));
    }
}
