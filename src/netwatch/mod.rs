//! Uplink watcher: what the kernel says about links, IPv4 addresses and routes.
//!
//! `kernel` talks netlink (crate::netlink) and publishes a [`NetState`] on a `watch` channel;
//! [`view`] is the pure step that turns it into planner inputs.

mod kernel;

pub use kernel::{dump, run};

use crate::netifd;
use crate::plan::{Other, Uplink};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// Everything roadie needs to know about the local network stack, as plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetState {
    pub links: Vec<LinkState>,
    pub routes: Vec<RouteState>,
    /// Where the configured netifd names (`"@wan"`) are now, sorted by
    /// name; written by crate::netifd's task, the rest by the kernel watcher.
    pub netifd: Vec<netifd::Iface>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    /// Administratively up and carrier present.
    pub up: bool,
    pub addrs: Vec<Ipv4Net>,
}

/// A unicast IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteState {
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

impl NetState {
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The netifd interface `name` (no mark), once it has been resolved.
    pub fn netifd_iface(&self, name: &str) -> Option<&netifd::Iface> {
        self.netifd.iter().find(|i| i.name == name)
    }

    /// The kernel device a configured interface means now: a link name is
    /// itself, `"@wan"` is wherever netifd has that interface (`None`: no
    /// device, or not resolved yet).
    pub fn device<'a>(&'a self, configured: &'a str) -> Option<&'a str> {
        match netifd::name(configured) {
            None => Some(configured),
            Some(n) => self.netifd_iface(n).and_then(|i| i.device.as_deref()),
        }
    }
}

/// Planner inputs: one [`Uplink`] per configured WAN interface (missing or
/// unresolved ones are shown down), and the prefixes of every other
/// interface except the LAN and loopback. `wan` and `lan` are as configured:
/// link names or netifd names (`"@wan"`), which resolve through `state`.
pub fn view(state: &NetState, wan: &[String], lan: &str) -> (Vec<Uplink>, Vec<Other>) {
    let uplinks = wan
        .iter()
        .map(|configured| {
            let name = netifd::name(configured);
            let iface = name.and_then(|n| state.netifd_iface(n));
            let device = state.device(configured);
            let base = Uplink {
                interface: device.unwrap_or_default().to_string(),
                netifd: name.map(str::to_string),
                netifd_problem: iface.and_then(|i| i.problem.clone()),
                ..Uplink::default()
            };
            let Some(link) = device.and_then(|d| state.link(d)) else {
                return base;
            };
            let mine = state.routes.iter().filter(|r| r.oif == Some(link.index));
            let mut routes = Vec::new();
            let mut gateway = None;
            for r in mine {
                if r.dst.prefix_len() == 0 {
                    gateway = gateway.or(r.gateway);
                } else if !routes.contains(&r.dst) {
                    routes.push(r.dst);
                }
            }
            Uplink {
                // A netifd interface is up when netifd says so too (its
                // device may be up while it waits for a DHCP lease, or
                // after `ifdown`).
                up: link.up && iface.is_none_or(|i| i.up),
                addresses: link.addrs.clone(),
                gateway,
                routes,
                ..base
            }
        })
        .collect();
    let lan = state.device(lan);
    let wan: Vec<&str> = wan.iter().filter_map(|w| state.device(w)).collect();
    let mut others = Vec::new();
    for link in &state.links {
        if Some(link.name.as_str()) == lan || link.name == "lo" || wan.contains(&link.name.as_str())
        {
            continue;
        }
        for a in &link.addrs {
            let other = Other {
                interface: link.name.clone(),
                prefix: a.trunc(),
            };
            if !a.addr().is_loopback() && !others.contains(&other) {
                others.push(other);
            }
        }
    }
    (uplinks, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn link(index: u32, name: &str, up: bool, addrs: &[&str]) -> LinkState {
        LinkState {
            index,
            name: name.into(),
            up,
            addrs: addrs.iter().map(|a| net(a)).collect(),
        }
    }

    fn route(dst: &str, gw: Option<&str>, oif: u32) -> RouteState {
        RouteState {
            dst: net(dst),
            gateway: gw.map(|g| g.parse().unwrap()),
            oif: Some(oif),
        }
    }

    #[test]
    fn view_splits_uplinks_lan_and_others() {
        let state = NetState {
            links: vec![
                link(1, "lo", true, &["127.0.0.1/8"]),
                link(2, "eth1", true, &["10.66.0.123/24"]),
                link(3, "br-lan", true, &["192.168.1.1/24"]),
                link(4, "tun0", true, &["10.8.0.2/24"]),
            ],
            routes: vec![
                route("0.0.0.0/0", Some("10.66.0.254"), 2),
                route("10.66.0.0/24", None, 2),
                route("10.0.0.0/8", Some("10.66.0.1"), 2),
                route("192.168.1.0/24", None, 3),
            ],
            netifd: Vec::new(),
        };
        let wan = vec!["eth1".to_string(), "wwan0".to_string()];
        let (uplinks, others) = view(&state, &wan, "br-lan");
        assert_eq!(uplinks.len(), 2);
        assert_eq!(uplinks[0].interface, "eth1");
        assert!(uplinks[0].up);
        assert_eq!(uplinks[0].addresses, vec![net("10.66.0.123/24")]);
        assert_eq!(uplinks[0].gateway, Some("10.66.0.254".parse().unwrap()));
        assert_eq!(
            uplinks[0].routes,
            vec![net("10.66.0.0/24"), net("10.0.0.0/8")]
        );
        // A configured uplink that does not exist is shown, down and empty.
        assert_eq!(uplinks[1].interface, "wwan0");
        assert!(!uplinks[1].up && uplinks[1].addresses.is_empty());
        assert_eq!(
            others,
            vec![Other {
                interface: "tun0".into(),
                prefix: net("10.8.0.0/24")
            }]
        );
    }

    #[test]
    fn view_resolves_netifd_names() {
        let iface = |name: &str, device: Option<&str>, problem: Option<&str>| netifd::Iface {
            name: name.into(),
            device: device.map(str::to_string),
            up: device.is_some(),
            problem: problem.map(str::to_string),
        };
        let state = NetState {
            links: vec![
                link(1, "lo", true, &["127.0.0.1/8"]),
                link(2, "eth1", true, &["10.66.0.123/24"]),
                link(3, "br-lan", true, &["192.168.1.1/24"]),
                link(4, "usb0", true, &["10.77.0.2/24"]),
                link(5, "wan", false, &["10.1.1.1/24"]),
            ],
            routes: vec![route("0.0.0.0/0", Some("10.77.0.1"), 4)],
            netifd: vec![
                iface("lan", Some("br-lan"), None),
                // A tether: netifd's wan runs on usb0 now.
                iface("wan", Some("usb0"), None),
                iface("wwan", None, None),
                iface("vpn", Some("tun9"), Some("ubus: timed out")),
                // Waiting for a DHCP lease: the device is there and up.
                netifd::Iface {
                    up: false,
                    ..iface("wan2", Some("eth1"), None)
                },
            ],
        };
        let wan: Vec<String> = ["@wan", "@wwan", "@vpn", "@nowhere", "eth1", "@wan2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(state.device("@wan"), Some("usb0"));
        assert_eq!(
            state.device("wan"),
            Some("wan"),
            "a plain name is a link name"
        );
        assert_eq!(state.device("@wwan"), None);
        assert_eq!(state.device("@nowhere"), None, "not resolved (yet)");
        let (uplinks, others) = view(&state, &wan, "@lan");
        // (interface, netifd, up, addresses, gateway)
        type Seen<'a> = (
            &'a str,
            Option<&'a str>,
            bool,
            Vec<Ipv4Net>,
            Option<Ipv4Addr>,
        );
        let got: Vec<Seen> = uplinks
            .iter()
            .map(|u| {
                (
                    u.interface.as_str(),
                    u.netifd.as_deref(),
                    u.up,
                    u.addresses.clone(),
                    u.gateway,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "usb0",
                    Some("wan"),
                    true,
                    vec![net("10.77.0.2/24")],
                    Some("10.77.0.1".parse().unwrap())
                ),
                ("", Some("wwan"), false, vec![], None),
                // On a device the kernel does not have: down, empty.
                ("tun9", Some("vpn"), false, vec![], None),
                ("", Some("nowhere"), false, vec![], None),
                ("eth1", None, true, vec![net("10.66.0.123/24")], None),
                // The kernel's link is up, netifd's interface is not.
                (
                    "eth1",
                    Some("wan2"),
                    false,
                    vec![net("10.66.0.123/24")],
                    None
                ),
            ]
        );
        assert_eq!(
            uplinks[2].netifd_problem.as_deref(),
            Some("ubus: timed out")
        );
        // The LAN's device (br-lan) and the uplinks' (usb0, eth1) are not
        // others; the link called "wan" is, as no uplink runs on it.
        assert_eq!(
            others,
            [Other {
                interface: "wan".into(),
                prefix: net("10.1.1.0/24")
            }]
        );
        let status = serde_json::to_value(&uplinks).unwrap();
        assert_eq!(status[0]["interface"], "usb0");
        assert_eq!(status[0]["netifd"], "wan");
        assert!(status[1]["interface"].is_null(), "{status}");
        assert!(status[4]["netifd"].is_null(), "{status}");
    }

    #[test]
    fn view_of_empty_state() {
        let (uplinks, others) = view(&NetState::default(), &["wan0".to_string()], "lan0");
        assert_eq!(uplinks.len(), 1);
        assert!(uplinks[0].gateway.is_none());
        assert!(others.is_empty());
    }
}
