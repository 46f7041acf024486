//! What the follow task decides (pure): which ARP and DHCP frames to answer
//! after a move, and what is known of each cluster host.
//!
//! After a move, hosts still hold leases in the old prefix and talk to the
//! old router address, which nobody has any more. Until their leases could
//! have run out, roadie stands in for the old server there: it answers ARP
//! for the old router address (so their unicast renewals reach the router)
//! and NAKs every request for an old-prefix address, with the *old* server
//! ID (udhcpc accepts a NAK only from the server it has a lease from). The
//! client then starts over and dnsmasq gives it its new address.

use super::frame::{self, Arp, BROADCAST, DhcpRequest, Incoming, Mac};
use crate::plan::map_host;
use ipnet::Ipv4Net;
use serde::Serialize;
use std::net::Ipv4Addr;

/// One earlier prefix roadie stands in for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: Ipv4Net,
    /// The router's address in `from`: the server ID hosts there know.
    pub server_id: Ipv4Addr,
    /// Unix ms after which no lease from `from` can be alive.
    pub until_ms: u64,
}

/// What to send for one incoming frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer ARP for `ip` (an old router address).
    Arp { ip: Ipv4Addr, to: Arp },
    /// NAK `req` as server `server_id`.
    Nak {
        server_id: Ipv4Addr,
        req: DhcpRequest,
    },
}

/// The answer to `frame`, if any. `current`: the LAN's prefix now (never
/// answered for); `windows`: the prefixes left behind, still in their time.
pub fn answer(
    windows: &[Window],
    current: Ipv4Net,
    frame: &Incoming,
    now_ms: u64,
) -> Option<Reply> {
    let live = |w: &&Window| w.until_ms > now_ms && !current.contains(&w.from.network());
    match frame {
        Incoming::Arp(a) => {
            // Only requests from a host of that old prefix; not a probe
            // (sender 0.0.0.0: someone checking the address is free).
            let w = windows.iter().filter(live).find(|w| {
                a.op == 1
                    && a.target_ip == w.server_id
                    && a.sender_ip != a.target_ip
                    && w.from.contains(&a.sender_ip)
            })?;
            Some(Reply::Arp {
                ip: w.server_id,
                to: *a,
            })
        }
        Incoming::DhcpRequest(r) => {
            let addr = r.address()?;
            if current.contains(&addr) {
                return None;
            }
            let w = windows
                .iter()
                .filter(live)
                .find(|w| w.from.contains(&addr))?;
            Some(Reply::Nak {
                server_id: w.server_id,
                req: r.clone(),
            })
        }
    }
}

/// The frames for `reply`, from our `mac`. A NAK goes twice: unicast to the
/// host (a client renewing listens on a socket bound to its address) and
/// broadcast (one that lost its address listens only to those).
pub fn frames(mac: Mac, reply: &Reply, to: Ipv4Net) -> Vec<Vec<u8>> {
    match reply {
        Reply::Arp { ip, to } => vec![frame::arp_reply(mac, *ip, to)],
        Reply::Nak { server_id, req } => {
            let msg = format!("the LAN moved to {to}");
            let unicast = if req.ciaddr.is_unspecified() {
                Ipv4Addr::BROADCAST
            } else {
                req.ciaddr
            };
            vec![
                frame::dhcp_nak(mac, *server_id, req, req.src_mac, unicast, &msg),
                frame::dhcp_nak(mac, *server_id, req, BROADCAST, Ipv4Addr::BROADCAST, &msg),
            ]
        }
    }
}

/// At most this many replies per second: a host flooding requests gets no
/// more than a bounded stream back.
pub const REPLIES_PER_S: u32 = 32;

#[derive(Debug, Default)]
pub struct Budget {
    second: u64,
    used: u32,
}

impl Budget {
    pub fn take(&mut self, now_ms: u64) -> bool {
        let s = now_ms / 1000;
        if s != self.second {
            self.second = s;
            self.used = 0;
        }
        self.used += 1;
        self.used <= REPLIES_PER_S
    }
}

/// Probe interval while a host has not yet followed the last move.
pub const CHASE_MS: u64 = 1000;
/// Probe interval otherwise.
pub const IDLE_MS: u64 = 10_000;
/// How long after a move hosts are chased.
pub const CHASE_FOR_MS: u64 = 10 * 60 * 1000;
/// Unanswered this long (three idle probes), a host counts as gone.
pub const GONE_MS: u64 = 3 * IDLE_MS + 5000;

/// A cluster host roadie knows by name: a `[[lan.host]]` or a DHCP
/// reservation, at its home address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    pub home: Ipv4Addr,
}

/// What is known of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub home: Ipv4Addr,
    /// Where it should be now (its offset in the current prefix).
    pub address: Ipv4Addr,
    pub mac: Option<Mac>,
    /// None until it answered or missed a probe.
    pub reachable: Option<bool>,
    pub since_ms: Option<u64>,
    pub seen_ms: Option<u64>,
    /// From the last move until its first answer at `address`.
    pub followed_ms: Option<u64>,
    /// Its address in the prefix before the last move, while it is chased.
    pub old: Option<Ipv4Addr>,
    /// It still answered at `old` after the move (it did not follow, yet).
    pub old_seen_ms: Option<u64>,
    /// The first probe since the table (or the move) began: silence counts
    /// from there.
    probed_ms: Option<u64>,
    next_probe_ms: u64,
}

/// The host status object (`lan.hosts[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStatus {
    pub name: String,
    pub address: String,
    pub mac: Option<String>,
    pub reachable: Option<bool>,
    /// Unix seconds of the last change of `reachable`.
    pub since: Option<u64>,
    pub followed_ms: Option<u64>,
    /// The old address it still answers at, when it has not followed.
    pub still_at: Option<String>,
}

/// The known hosts and what roadie saw of them.
#[derive(Debug, Default)]
pub struct Table {
    pub hosts: Vec<Host>,
    moved_ms: Option<u64>,
}

impl Table {
    /// Set the hosts (after a start or reload); what is known of a host that
    /// keeps its name and address is kept.
    pub fn set(&mut self, known: &[Known], home: Ipv4Net, current: Ipv4Net) {
        let old = std::mem::take(&mut self.hosts);
        for k in known {
            if self.hosts.iter().any(|h| h.name == k.name) {
                continue; // a reservation with a [[lan.host]]'s name
            }
            let address = map_host(k.home, home, current).unwrap_or(k.home);
            let kept = old
                .iter()
                .find(|h| h.name == k.name && h.address == address);
            self.hosts.push(kept.cloned().unwrap_or(Host {
                name: k.name.clone(),
                home: k.home,
                address,
                mac: None,
                reachable: None,
                since_ms: None,
                seen_ms: None,
                followed_ms: None,
                old: None,
                old_seen_ms: None,
                probed_ms: None,
                next_probe_ms: 0,
            }));
        }
    }

    /// The LAN moved from `from` to `to` at `now_ms`.
    pub fn moved(&mut self, home: Ipv4Net, from: Ipv4Net, to: Ipv4Net, now_ms: u64) {
        self.moved_ms = Some(now_ms);
        for h in &mut self.hosts {
            h.old = map_host(h.home, home, from);
            h.address = map_host(h.home, home, to).unwrap_or(h.address);
            h.followed_ms = None;
            h.old_seen_ms = None;
            h.seen_ms = None;
            h.reachable = None;
            h.since_ms = Some(now_ms);
            h.probed_ms = None;
            h.next_probe_ms = now_ms;
        }
    }

    fn chasing(&self, h: &Host, now_ms: u64) -> bool {
        h.followed_ms.is_none()
            && self
                .moved_ms
                .is_some_and(|m| now_ms.saturating_sub(m) < CHASE_FOR_MS)
    }

    /// The probes due now: (target, address to ask from: `router` for the
    /// current prefix, `old_router` for a host's old address).
    pub fn probes(
        &mut self,
        router: Ipv4Addr,
        old_router: Option<Ipv4Addr>,
        now_ms: u64,
    ) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        let mut out = Vec::new();
        for i in 0..self.hosts.len() {
            let chasing = self.chasing(&self.hosts[i], now_ms);
            let h = &mut self.hosts[i];
            if h.next_probe_ms > now_ms {
                continue;
            }
            h.next_probe_ms = now_ms + if chasing { CHASE_MS } else { IDLE_MS };
            h.probed_ms.get_or_insert(now_ms);
            out.push((h.address, router));
            if chasing && let (Some(old), Some(from)) = (h.old, old_router) {
                out.push((old, from));
            }
        }
        out
    }

    /// `ip` answered (any ARP from it counts) with `mac`. Returns whether
    /// anything shown in status changed.
    pub fn seen(&mut self, ip: Ipv4Addr, mac: Mac, now_ms: u64) -> bool {
        let moved = self.moved_ms;
        let mut changed = false;
        for h in &mut self.hosts {
            if h.address == ip {
                h.seen_ms = Some(now_ms);
                changed |= h.mac != Some(mac);
                h.mac = Some(mac);
                if h.reachable != Some(true) {
                    h.reachable = Some(true);
                    h.since_ms = Some(now_ms);
                    changed = true;
                }
                if h.followed_ms.is_none()
                    && let Some(m) = moved
                    && h.old.is_some()
                {
                    h.followed_ms = Some(now_ms.saturating_sub(m));
                    h.old = None;
                    changed = true;
                }
            } else if h.old == Some(ip) && h.followed_ms.is_none() {
                changed |= h.old_seen_ms.is_none();
                h.old_seen_ms = Some(now_ms);
            }
        }
        changed
    }

    /// Hosts silent too long are marked unreachable. Returns whether
    /// anything changed.
    pub fn expire(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for h in &mut self.hosts {
            let Some(last) = h.seen_ms.or(h.probed_ms) else {
                continue; // never asked
            };
            if h.reachable != Some(false) && now_ms.saturating_sub(last) > GONE_MS {
                h.reachable = Some(false);
                h.since_ms = Some(now_ms);
                changed = true;
            }
        }
        changed
    }

    pub fn status(&self) -> Vec<HostStatus> {
        self.hosts
            .iter()
            .map(|h| HostStatus {
                name: h.name.clone(),
                address: h.address.to_string(),
                mac: h.mac.as_ref().map(frame::mac_text),
                reachable: h.reachable,
                since: h.since_ms.map(|ms| ms / 1000),
                followed_ms: h.followed_ms,
                still_at: h
                    .old_seen_ms
                    .and(h.old)
                    .filter(|_| h.followed_ms.is_none())
                    .map(|a| a.to_string()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Mac = [2, 0, 0, 0, 0, 0x64];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn request(ciaddr: &str, requested: Option<&str>) -> Incoming {
        Incoming::DhcpRequest(DhcpRequest {
            src_mac: HOST,
            xid: [1, 2, 3, 4],
            flags: [0, 0],
            ciaddr: ip(ciaddr),
            giaddr: ip("0.0.0.0"),
            chaddr: [2, 0, 0, 0, 0, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            requested: requested.map(ip),
            server_id: None,
        })
    }

    fn arp(op: u16, sender: &str, target: &str) -> Incoming {
        Incoming::Arp(Arp {
            op,
            sender_mac: HOST,
            sender_ip: ip(sender),
            target_ip: ip(target),
        })
    }

    #[test]
    fn answers_only_for_the_old_prefix_in_its_time() {
        let old = Window {
            from: net("192.168.1.0/24"),
            server_id: ip("192.168.1.1"),
            until_ms: 10_000,
        };
        let windows = [old.clone()];
        let now = net("10.97.79.0/24");
        let nak = |r: Incoming| match r {
            Incoming::DhcpRequest(req) => Some(Reply::Nak {
                server_id: ip("192.168.1.1"),
                req,
            }),
            _ => None,
        };
        let cases: Vec<(&str, Incoming, u64, Option<Reply>)> = vec![
            (
                "a renew at T1 (ciaddr)",
                request("192.168.1.100", None),
                5,
                nak(request("192.168.1.100", None)),
            ),
            (
                "a reboot (option 50)",
                request("0.0.0.0", Some("192.168.1.100")),
                5,
                nak(request("0.0.0.0", Some("192.168.1.100"))),
            ),
            (
                "a request in the new prefix",
                request("0.0.0.0", Some("10.97.79.100")),
                5,
                None,
            ),
            (
                "a renew in the new prefix",
                request("10.97.79.100", None),
                5,
                None,
            ),
            (
                "another prefix altogether",
                request("172.16.0.5", None),
                5,
                None,
            ),
            ("no address at all", request("0.0.0.0", None), 5, None),
            (
                "after the window",
                request("192.168.1.100", None),
                10_000,
                None,
            ),
            (
                "ARP for the old router",
                arp(1, "192.168.1.100", "192.168.1.1"),
                5,
                Some(Reply::Arp {
                    ip: ip("192.168.1.1"),
                    to: Arp {
                        op: 1,
                        sender_mac: HOST,
                        sender_ip: ip("192.168.1.100"),
                        target_ip: ip("192.168.1.1"),
                    },
                }),
            ),
            (
                "ARP for another host",
                arp(1, "192.168.1.100", "192.168.1.101"),
                5,
                None,
            ),
            (
                "an ARP probe (sender 0.0.0.0)",
                arp(1, "0.0.0.0", "192.168.1.1"),
                5,
                None,
            ),
            (
                "ARP from the new prefix",
                arp(1, "10.97.79.100", "192.168.1.1"),
                5,
                None,
            ),
            (
                "an ARP reply",
                arp(2, "192.168.1.100", "192.168.1.1"),
                5,
                None,
            ),
            (
                "ARP after the window",
                arp(1, "192.168.1.100", "192.168.1.1"),
                10_001,
                None,
            ),
        ];
        for (what, frame, at, want) in cases {
            assert_eq!(answer(&windows, now, &frame, at), want, "{what}");
        }
        // Back home: the old prefix is the current one again, never answered for.
        assert_eq!(
            answer(
                &windows,
                net("192.168.1.0/24"),
                &request("192.168.1.100", None),
                5
            ),
            None
        );
    }

    #[test]
    fn a_nak_goes_unicast_and_broadcast() {
        let Incoming::DhcpRequest(req) = request("192.168.1.100", None) else {
            unreachable!()
        };
        let reply = Reply::Nak {
            server_id: ip("192.168.1.1"),
            req,
        };
        let f = frames([2, 0, 0, 0, 0, 1], &reply, net("10.97.79.0/24"));
        assert_eq!(f.len(), 2);
        assert_eq!(
            (&f[0][..6], &f[0][30..34]),
            (&HOST[..], &[192, 168, 1, 100][..])
        );
        assert_eq!((&f[1][..6], &f[1][30..34]), (&BROADCAST[..], &[255; 4][..]));
    }

    #[test]
    fn budget_bounds_replies_per_second() {
        let mut b = Budget::default();
        let n = (0..100).filter(|_| b.take(1500)).count();
        assert_eq!(n, REPLIES_PER_S as usize);
        assert!(b.take(2000), "a new second");
    }

    #[test]
    fn hosts_follow_a_move() {
        let home = net("192.168.1.0/24");
        let mut t = Table::default();
        let known = [
            Known {
                name: "master".into(),
                home: ip("192.168.1.100"),
            },
            Known {
                name: "worker".into(),
                home: ip("192.168.1.101"),
            },
            Known {
                name: "master".into(),
                home: ip("192.168.1.150"),
            },
        ];
        t.set(&known, home, home);
        assert_eq!(t.hosts.len(), 2, "a duplicate name counts once");
        assert!(!t.expire(GONE_MS * 2), "never probed: not unreachable");
        let router = ip("192.168.1.1");
        assert_eq!(t.probes(router, None, 0).len(), 2);
        assert!(t.probes(router, None, 5000).is_empty(), "idle: every 10 s");
        assert!(t.seen(ip("192.168.1.100"), HOST, 100));
        assert_eq!(t.status()[0].reachable, Some(true));
        assert_eq!(t.status()[1].reachable, None);

        let to = net("10.97.79.0/24");
        t.moved(home, home, to, 60_000);
        let st = t.status();
        assert_eq!(
            (st[0].address.as_str(), st[0].reachable),
            ("10.97.79.100", None)
        );
        // Chasing: both the new and the old address, every second.
        let p = t.probes(ip("10.97.79.1"), Some(router), 60_000);
        assert_eq!(
            p,
            [
                (ip("10.97.79.100"), ip("10.97.79.1")),
                (ip("192.168.1.100"), router),
                (ip("10.97.79.101"), ip("10.97.79.1")),
                (ip("192.168.1.101"), router),
            ]
        );
        assert_eq!(t.probes(ip("10.97.79.1"), Some(router), 61_000).len(), 4);
        // master follows after 12.5 s; worker still answers at its old address.
        t.seen(ip("10.97.79.100"), HOST, 72_500);
        t.seen(ip("192.168.1.101"), [2, 0, 0, 0, 0, 0x65], 72_600);
        let st = t.status();
        assert_eq!(
            (st[0].followed_ms, st[0].reachable, st[0].still_at.clone()),
            (Some(12_500), Some(true), None)
        );
        assert_eq!(
            (st[1].followed_ms, st[1].still_at.as_deref()),
            (None, Some("192.168.1.101"))
        );
        // Once followed, master is probed at the idle pace; worker still chased.
        assert_eq!(t.probes(ip("10.97.79.1"), Some(router), 73_000).len(), 3);
        let p = t.probes(ip("10.97.79.1"), Some(router), 74_000);
        assert_eq!(
            p.iter().filter(|(a, _)| *a == ip("10.97.79.100")).count(),
            0
        );
        assert_eq!(p.len(), 2);
        // Silence: worker never answered at its new address.
        assert!(t.expire(60_000 + GONE_MS + 1));
        let st = t.status();
        assert_eq!(st[1].reachable, Some(false));
        assert_eq!(st[0].reachable, Some(true), "master answered since");
        // A reload keeps what is known of hosts that kept name and address.
        t.set(&known[..2], home, to);
        assert_eq!(t.status()[0].followed_ms, Some(12_500));
    }
}
