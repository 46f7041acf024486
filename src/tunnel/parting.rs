//! What to do with a logged-in session when an uplink changes under it
//! (issue 17). A session the server still holds keeps its forwards: a new
//! session's `tcpip-forward` for the same port is refused until the server
//! drops the old one, which with traffic on the tunnel takes its TCP
//! retransmission timeout (about 15 minutes). So: while the old session's
//! own address is still on an up link with a route to the server, close it
//! on purpose (the server lets go at once); when nothing about its address
//! and route changed, keep it; and connect the new session from the address
//! that just appeared (the kernel would pick the old, primary one, which is
//! about to go). Pure decisions over [`NetState`]; no I/O.

use crate::netwatch::NetState;
use std::net::Ipv4Addr;

/// Where a session is anchored: its local address, the link holding it,
/// its route to the server, and the link's addresses when last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub local: Ipv4Addr,
    pub server: Ipv4Addr,
    pub link: u32,
    /// The route's gateway (None: the server is on-link).
    pub gateway: Option<Ipv4Addr>,
    pub addrs: Vec<Ipv4Addr>,
}

/// What to do with a session after an uplink change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its address, link and route are as they were, and no new address
    /// came on its link: nothing to do.
    Keep,
    /// Reconnect. `goodbye`: the old session can still say goodbye (cancel
    /// its forwards, disconnect) through this link: its address is still on
    /// it, the link is up and has a route to the server. None: its address
    /// is gone; a goodbye would only wait for nothing.
    Move { goodbye: Option<u32> },
}

/// The route to `server` through link `index` (longest prefix among that
/// link's routes): Some(gateway), or None when the link has none.
fn route_via(state: &NetState, index: u32, server: Ipv4Addr) -> Option<Option<Ipv4Addr>> {
    state
        .routes
        .iter()
        .filter(|r| r.oif == Some(index) && r.dst.contains(&server))
        .max_by_key(|r| r.dst.prefix_len())
        .map(|r| r.gateway)
}

/// Whether an up link other than `index` also has a route to `server`: then
/// the kernel may send through either (roadie does not see route metrics),
/// and a source address roadie picked could leave through the wrong one.
fn contested(state: &NetState, index: u32, server: Ipv4Addr) -> bool {
    state
        .links
        .iter()
        .filter(|l| l.index != index && l.up && l.name != "lo")
        .any(|l| route_via(state, l.index, server).is_some())
}

/// The anchor of a session connected from `local` to `server`, in `state`.
pub fn anchor(state: &NetState, local: Ipv4Addr, server: Ipv4Addr) -> Option<Anchor> {
    let link = state
        .links
        .iter()
        .find(|l| l.addrs.iter().any(|a| a.addr() == local))?;
    Some(Anchor {
        local,
        server,
        link: link.index,
        gateway: route_via(state, link.index, server).flatten(),
        addrs: link.addrs.iter().map(|a| a.addr()).collect(),
    })
}

/// Addresses on the anchor's link now that were not there before.
fn fresh(anchor: &Anchor, state: &NetState) -> Vec<Ipv4Addr> {
    let Some(link) = state.links.iter().find(|l| l.index == anchor.link) else {
        return Vec::new();
    };
    link.addrs
        .iter()
        .map(|a| a.addr())
        .filter(|a| *a != anchor.local && !anchor.addrs.contains(a))
        .collect()
}

/// The session anchored at `anchor`, after the uplinks became `state`.
pub fn decide(anchor: &Anchor, state: &NetState) -> Verdict {
    let link = state.links.iter().find(|l| l.index == anchor.link);
    let still = link.is_some_and(|l| l.up && l.addrs.iter().any(|a| a.addr() == anchor.local));
    let route = if still {
        route_via(state, anchor.link, anchor.server)
    } else {
        None
    };
    let Some(gateway) = route else {
        return Verdict::Move { goodbye: None };
    };
    let same = gateway == anchor.gateway
        && fresh(anchor, state).is_empty()
        && !contested(state, anchor.link, anchor.server);
    if same {
        Verdict::Keep
    } else {
        Verdict::Move {
            goodbye: Some(anchor.link),
        }
    }
}

/// The address to connect the next session from: an address that appeared
/// on the last session's link since (the newest; a renumbering adds the new
/// lease before the old one goes), else the last session's own address
/// while it is still there; None (the kernel's choice) when there was no
/// session yet, its link is gone, or another link also routes to the server.
pub fn source(anchor: Option<&Anchor>, state: &NetState) -> Option<Ipv4Addr> {
    let anchor = anchor?;
    let link = state
        .links
        .iter()
        .find(|l| l.index == anchor.link && l.up)?;
    if route_via(state, anchor.link, anchor.server).is_none()
        || contested(state, anchor.link, anchor.server)
    {
        return None;
    }
    if let Some(new) = fresh(anchor, state).last() {
        return Some(*new);
    }
    link.addrs
        .iter()
        .any(|a| a.addr() == anchor.local)
        .then_some(anchor.local)
}

/// After a [`Verdict::Keep`]: the link's addresses now, so an address that
/// came and stayed is not "new" at the next change.
pub fn refresh(anchor: &mut Anchor, state: &NetState) {
    if let Some(link) = state.links.iter().find(|l| l.index == anchor.link) {
        anchor.addrs = link.addrs.iter().map(|a| a.addr()).collect();
    }
    if let Some(gw) = route_via(state, anchor.link, anchor.server) {
        anchor.gateway = gw;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netwatch::{LinkState, RouteState};

    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// wan0 (index 2) with `wan` addresses and a default via 10.66.0.254;
    /// `usb` addresses on usb0 (index 4) with a default route of its own.
    fn state(wan: &[&str], wan_up: bool, gw: &str, usb: &[&str]) -> NetState {
        let link = |index, name: &str, up, addrs: &[&str]| LinkState {
            index,
            name: name.into(),
            up,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        let mut s = NetState {
            links: vec![
                link(1, "lo", true, &["127.0.0.1/8"]),
                link(2, "wan0", wan_up, wan),
                link(3, "lan0", true, &["192.168.1.1/24"]),
            ],
            routes: vec![RouteState {
                dst: "0.0.0.0/0".parse().unwrap(),
                gateway: Some(gw.parse().unwrap()),
                oif: Some(2),
            }],
            netifd: Vec::new(),
        };
        for a in wan {
            let net: ipnet::Ipv4Net = a.parse().unwrap();
            s.routes.push(RouteState {
                dst: net.trunc(),
                gateway: None,
                oif: Some(2),
            });
        }
        if !usb.is_empty() {
            s.links.push(link(4, "usb0", true, usb));
            s.routes.push(RouteState {
                dst: "0.0.0.0/0".parse().unwrap(),
                gateway: Some("10.99.0.1".parse().unwrap()),
                oif: Some(4),
            });
        }
        s
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn what_becomes_of_a_session_when_the_uplink_changes() {
        let before = state(&["10.66.0.2/24"], true, "10.66.0.254", &[]);
        let a = anchor(&before, ip("10.66.0.2"), SERVER).unwrap();
        assert_eq!(a.link, 2);
        assert_eq!(a.gateway, Some(ip("10.66.0.254")));
        let bye = Verdict::Move { goodbye: Some(2) };
        let gone = Verdict::Move { goodbye: None };
        let table: Vec<(&str, NetState, Verdict, Option<&str>)> = vec![
            (
                "nothing changed",
                before.clone(),
                Verdict::Keep,
                Some("10.66.0.2"),
            ),
            (
                "a new address before the old goes: say goodbye, connect from the new one",
                state(&["10.66.0.2/24", "10.66.0.3/24"], true, "10.66.0.254", &[]),
                bye.clone(),
                Some("10.66.0.3"),
            ),
            (
                "renumbered, the old address already gone: no goodbye",
                state(&["10.66.0.3/24"], true, "10.66.0.254", &[]),
                gone.clone(),
                Some("10.66.0.3"),
            ),
            (
                "another network: the old address gone, the kernel picks the source",
                state(&["10.77.0.9/24"], true, "10.77.0.254", &[]),
                gone.clone(),
                Some("10.77.0.9"),
            ),
            (
                "link down: nothing gets through it",
                state(&["10.66.0.2/24"], false, "10.66.0.254", &[]),
                gone.clone(),
                None,
            ),
            (
                "new gateway, same address: goodbye through it, same source",
                state(&["10.66.0.2/24"], true, "10.66.0.1", &[]),
                bye.clone(),
                Some("10.66.0.2"),
            ),
            (
                "a second uplink with its own default route: goodbye through wan0, kernel's choice next",
                state(&["10.66.0.2/24"], true, "10.66.0.254", &["10.99.0.2/24"]),
                bye.clone(),
                None,
            ),
        ];
        for (name, after, want, src) in table {
            assert_eq!(decide(&a, &after), want, "{name}");
            assert_eq!(source(Some(&a), &after), src.map(ip), "{name}: source");
        }
        assert_eq!(source(None, &before), None, "no session yet");
    }

    /// The renumbering of the lab test: the second session, from the new
    /// address, is kept when the old address goes.
    #[test]
    fn the_session_from_the_new_address_survives_the_old_one_going() {
        let both = state(&["10.66.0.2/24", "10.66.0.3/24"], true, "10.66.0.254", &[]);
        let mut second = anchor(&both, ip("10.66.0.3"), SERVER).unwrap();
        let after = state(&["10.66.0.3/24"], true, "10.66.0.254", &[]);
        assert_eq!(decide(&second, &after), Verdict::Keep);
        assert_eq!(source(Some(&second), &after), Some(ip("10.66.0.3")));
        // Kept: what is on the link now is the new baseline.
        refresh(&mut second, &after);
        assert_eq!(second.addrs, vec![ip("10.66.0.3")]);
        assert_eq!(decide(&second, &after), Verdict::Keep);
        // The old address back (not a new lease for us): not fresh once seen.
        refresh(&mut second, &both);
        assert_eq!(decide(&second, &both), Verdict::Keep);
        // An address nobody saw before is fresh: move to it.
        let third = state(
            &["10.66.0.2/24", "10.66.0.3/24", "10.66.0.4/24"],
            true,
            "10.66.0.254",
            &[],
        );
        assert_eq!(decide(&second, &third), Verdict::Move { goodbye: Some(2) });
        assert_eq!(source(Some(&second), &third), Some(ip("10.66.0.4")));
    }

    #[test]
    fn an_address_on_no_link_has_no_anchor() {
        let s = state(&["10.66.0.2/24"], true, "10.66.0.254", &[]);
        assert_eq!(anchor(&s, ip("10.66.0.9"), SERVER), None);
        // A server on-link: no gateway.
        let a = anchor(&s, ip("10.66.0.2"), ip("10.66.0.254")).unwrap();
        assert_eq!(a.gateway, None);
        assert_eq!(decide(&a, &s), Verdict::Keep);
    }
}
