//! The router's home address at start. `[lan] address` when the file has
//! it; left out (apply = "uci"), it comes from UCI `network.<section>`
//! (`ipaddr` + `netmask`, or a CIDR `ipaddr`) — but only while the LAN is at
//! home: once roadie has moved the LAN, UCI holds the moved address, so the
//! home is the one recorded in the state file at the first start.
//!
//! [`choose`] is the decision (pure, table-tested); [`learn`] reads UCI and
//! records the result in the state.

use super::state::State;
use super::uci;
use crate::config::{Lan, OpenWrt};
use ipnet::Ipv4Net;

/// What [`choose`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub home: Ipv4Net,
    /// The saved prefix no longer applies (UCI was changed by hand while the
    /// LAN was moved): start at the new home.
    pub forget_prefix: bool,
    /// Something worth a warning in the log.
    pub note: Option<String>,
}

/// The home address when `[lan] address` is left out, from what the state
/// file recorded (`recorded`, `moved`: its home and saved prefix) and what
/// UCI has now (`uci`: the section's addresses, or why they could not be
/// read).
///
/// - At home (no saved prefix): UCI is the truth; a recorded home that UCI
///   no longer has was changed by hand, and UCI's first address is home now.
/// - Moved: the recorded home, when UCI has the moved address (roadie put it
///   there) or still the home address (an apply cut short; the LAN task puts
///   UCI where the LAN is). Anything else was set by hand: that is the new
///   home, and the saved prefix is forgotten.
/// - UCI unreadable: the recorded home, else an error.
pub fn choose(
    recorded: Option<Ipv4Net>,
    moved: Option<Ipv4Net>,
    uci: Result<Vec<Ipv4Net>, String>,
    section: &str,
) -> Result<Choice, String> {
    let found = uci.and_then(|list| {
        list.first()
            .copied()
            .map(|first| (list, first))
            .ok_or_else(|| format!("network.{section} has no IPv4 address"))
    });
    let (list, first) = match (found, recorded) {
        (Ok(found), _) => found,
        (Err(e), Some(h)) => {
            return Ok(Choice {
                home: h,
                forget_prefix: false,
                note: Some(format!(
                    "{e}; using the home address {h} recorded in the state file"
                )),
            });
        }
        (Err(e), None) => {
            return Err(format!(
                "[lan] address is left out and cannot be read from UCI: {e}"
            ));
        }
    };
    let has = |a: Ipv4Net| list.contains(&a);
    let saved = moved;
    // A saved prefix of another length than home is ignored (as the LAN task does).
    let moved = match (moved, recorded) {
        (Some(p), Some(h)) if p.prefix_len() == h.prefix_len() && p != h.trunc() => Some(p),
        _ => None,
    };
    let choice = match (recorded, moved) {
        (Some(h), None) if has(h) => Choice {
            home: h,
            forget_prefix: false,
            note: None,
        },
        (Some(h), None) => Choice {
            home: first,
            forget_prefix: false,
            note: Some(format!(
                "network.{section} is {first}, no longer the recorded home {h}: {first} is home now"
            )),
        },
        (Some(h), Some(p)) if has(super::router_address(h, p)) || has(h) => Choice {
            home: h,
            forget_prefix: false,
            note: None,
        },
        (Some(h), Some(p)) => Choice {
            home: first,
            forget_prefix: true,
            note: Some(format!(
                "network.{section} is {first}, neither where roadie moved the LAN ({}) nor the home address {h}: it was changed by hand, so {first} is home now and the LAN starts there",
                super::router_address(h, p)
            )),
        },
        // Nothing recorded (a state file from before homes were kept): a
        // saved prefix cannot be placed relative to a home nobody knows.
        (None, _) => Choice {
            home: first,
            forget_prefix: saved.is_some(),
            note: None,
        },
    };
    check_address(choice.home, section)?;
    Ok(choice)
}

/// What `[lan] address` itself would have to be (config::lan_address).
fn check_address(a: Ipv4Net, section: &str) -> Result<(), String> {
    let problem = if !(8..=30).contains(&a.prefix_len()) {
        format!(
            "its prefix length /{} is out of range /8 to /30",
            a.prefix_len()
        )
    } else if a.addr() == a.network() || a.addr() == a.broadcast() {
        format!("it is not a host address of {}", a.trunc())
    } else {
        return Ok(());
    };
    Err(format!(
        "network.{section} address {a} cannot be the LAN's home: {problem}; set [lan] address"
    ))
}

/// The home address for this start, recorded in `state` (the caller saves
/// it when this returns `true` as the second value: something changed).
pub async fn learn(
    lan: &Lan,
    openwrt: &OpenWrt,
    state: &mut State,
) -> Result<(Ipv4Net, bool), String> {
    let before = state.clone();
    let home = match lan.address {
        Some(a) => a,
        None => {
            let section = &openwrt.network_section;
            let found = uci::Uci { cfg: openwrt }
                .network()
                .await
                .and_then(|n| uci::lan_addresses(&n, section));
            let choice = choose(state.home(), state.prefix(), found, section)?;
            if let Some(n) = &choice.note {
                log::warn!("{n}");
            }
            if choice.forget_prefix {
                state.prefix = None;
            }
            choice.home
        }
    };
    state.home = Some(home.to_string());
    Ok((home, *state != before))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn choices() {
        let home = Some(net("192.168.1.1/24"));
        let moved = Some(net("10.9.8.0/24"));
        let uci = |v: &[&str]| Ok(v.iter().map(|s| net(s)).collect::<Vec<_>>());
        // (case, recorded, moved, uci, want home, forget, note contains)
        type Case = (
            &'static str,
            Option<Ipv4Net>,
            Option<Ipv4Net>,
            Result<Vec<Ipv4Net>, String>,
            Result<(&'static str, bool), &'static str>,
            Option<&'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "first start: UCI's address is home",
                None,
                None,
                uci(&["192.168.8.1/24"]),
                Ok(("192.168.8.1/24", false)),
                None,
            ),
            (
                "a CIDR list: the first entry",
                None,
                None,
                uci(&["192.168.1.1/24", "172.31.0.1/16"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "at home, UCI agrees",
                home,
                None,
                uci(&["192.168.1.1/24"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "at home, recorded home is a later entry of the list",
                home,
                None,
                uci(&["172.31.0.1/16", "192.168.1.1/24"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "at home, UCI changed by hand: UCI wins",
                home,
                None,
                uci(&["192.168.8.1/24"]),
                Ok(("192.168.8.1/24", false)),
                Some("no longer the recorded home 192.168.1.1/24"),
            ),
            (
                "restart after a move: UCI has the moved address, home is the recorded one",
                home,
                moved,
                uci(&["10.9.8.1/24"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "moved, UCI still at home (apply cut short)",
                home,
                moved,
                uci(&["192.168.1.1/24"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "moved, UCI set by hand elsewhere: new home, the move forgotten",
                home,
                moved,
                uci(&["192.168.8.1/24"]),
                Ok(("192.168.8.1/24", true)),
                Some("changed by hand"),
            ),
            (
                "a saved prefix of another length is not a move",
                home,
                Some(net("10.9.0.0/16")),
                uci(&["192.168.1.1/24"]),
                Ok(("192.168.1.1/24", false)),
                None,
            ),
            (
                "moved but no recorded home (an older state file): UCI's, the move forgotten",
                None,
                moved,
                uci(&["10.9.8.1/24"]),
                Ok(("10.9.8.1/24", true)),
                None,
            ),
            (
                "UCI unreadable, home recorded: the recorded one",
                home,
                moved,
                Err("uci: Entry not found".into()),
                Ok(("192.168.1.1/24", false)),
                Some("uci: Entry not found; using the home address 192.168.1.1/24 recorded"),
            ),
            (
                "UCI unreadable, nothing recorded: an error",
                None,
                None,
                Err("network.lan has no ipaddr (proto dhcp)".into()),
                Err(
                    "[lan] address is left out and cannot be read from UCI: network.lan has no ipaddr (proto dhcp)",
                ),
                None,
            ),
            (
                "no address at all",
                None,
                None,
                uci(&[]),
                Err("network.lan has no IPv4 address"),
                None,
            ),
            (
                "ipaddr without netmask is a /32: not a LAN",
                None,
                None,
                uci(&["192.168.1.1/32"]),
                Err("prefix length /32 is out of range"),
                None,
            ),
            (
                "the network address",
                None,
                None,
                uci(&["192.168.1.0/24"]),
                Err("not a host address of 192.168.1.0/24"),
                None,
            ),
        ];
        for (name, recorded, moved, uci, want, note) in cases {
            let got = choose(recorded, moved, uci, "lan");
            match (got, want) {
                (Ok(c), Ok((home, forget))) => {
                    assert_eq!((c.home, c.forget_prefix), (net(home), forget), "{name}");
                    match note {
                        None => assert_eq!(c.note, None, "{name}"),
                        Some(n) => assert!(
                            c.note.as_deref().is_some_and(|x| x.contains(n)),
                            "{name}: {:?}",
                            c.note
                        ),
                    }
                }
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{name}: {e}"),
                (got, _) => panic!("{name}: got {got:?}"),
            }
        }
    }
}
