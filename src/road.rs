//! Prefixes that networks on the road hand out by default: a cluster whose
//! home is one of them collides at the next hotel, phone hotspot or office,
//! and every collision is a move (k3s does not take node IP changes without
//! manual steps). Pure: the list, the check, and a suggestion of a rarely
//! used home drawn from the pools with the router's own seed.

use crate::plan;
use ipnet::Ipv4Net;

/// (prefix, who hands it out by default). From the vendors' manuals and
/// defaults as shipped; a hotel's network is usually one of these boxes.
pub const CROWDED: &[(&str, &str)] = &[
    (
        "192.168.0.0/24",
        "TP-Link, Netgear, D-Link and many ISP routers",
    ),
    (
        "192.168.1.0/24",
        "OpenWrt, Linksys, Asus (older), many ISP routers",
    ),
    ("192.168.2.0/24", "Belkin, Deutsche Telekom Speedport"),
    ("192.168.3.0/24", "Huawei home routers"),
    (
        "192.168.8.0/24",
        "GL.iNet travel routers, Huawei mobile hotspots",
    ),
    ("192.168.10.0/24", "Buffalo and others"),
    ("192.168.11.0/24", "Buffalo"),
    ("192.168.31.0/24", "Xiaomi routers"),
    ("192.168.43.0/24", "Android phone hotspots"),
    ("192.168.50.0/24", "Asus routers"),
    ("192.168.88.0/24", "MikroTik"),
    ("192.168.100.0/24", "cable and DSL modems' own page"),
    (
        "192.168.137.0/24",
        "Windows mobile hotspot (Internet Connection Sharing)",
    ),
    ("192.168.178.0/24", "AVM FRITZ!Box"),
    ("10.0.0.0/24", "Comcast Xfinity, Apple AirPort"),
    ("10.0.1.0/24", "Apple AirPort Extreme"),
    (
        "10.42.0.0/24",
        "NetworkManager hotspots (and k3s's pod network)",
    ),
    ("172.20.10.0/28", "iPhone Personal Hotspot"),
];

/// The crowded prefixes `home` overlaps, with who uses them.
pub fn crowded(home: Ipv4Net) -> Vec<(Ipv4Net, &'static str)> {
    CROWDED
        .iter()
        .filter_map(|(p, who)| p.parse::<Ipv4Net>().ok().map(|p| (p, *who)))
        .filter(|(p, _)| plan::overlaps(*p, home.trunc()))
        .collect()
}

/// One line for check-config and status, or None when `home` is rarely used.
pub fn warning(home: Ipv4Net) -> Option<String> {
    let found = crowded(home);
    let (first, who) = found.first()?;
    Some(format!(
        "the home prefix {} overlaps {first} ({who}): networks on the road use it by default, so the LAN will often have to move; `roadie suggest-prefix` proposes a rarely used one (choose it before installing k3s)",
        home.trunc()
    ))
}

/// A home prefix of length `len` from `pools` that overlaps no crowded
/// prefix and nothing in `avoid`, the same for the same seed.
pub fn suggest(seed: u64, len: u8, pools: &[Ipv4Net], avoid: &[Ipv4Net]) -> Option<Ipv4Net> {
    let mut blocked: Vec<Ipv4Net> = avoid.to_vec();
    blocked.extend(
        CROWDED
            .iter()
            .filter_map(|(p, _)| p.parse::<Ipv4Net>().ok()),
    );
    plan::pick(seed, len, pools, &blocked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_list_parses_and_names_its_sources() {
        for (p, who) in CROWDED {
            assert!(p.parse::<Ipv4Net>().is_ok(), "{p}");
            assert!(!who.is_empty());
        }
    }

    #[test]
    fn crowded_homes_are_found_rare_ones_are_not() {
        let cases = [
            ("192.168.1.0/24", Some("192.168.1.0/24")),
            ("192.168.8.0/24", Some("192.168.8.0/24")),
            ("172.20.10.0/24", Some("172.20.10.0/28")),
            ("192.168.0.0/16", Some("192.168.0.0/24")),
            ("10.77.1.0/24", None),
            ("192.168.201.0/24", None),
        ];
        for (home, want) in cases {
            let got = crowded(net(home)).first().map(|(p, _)| p.to_string());
            assert_eq!(got.as_deref(), want, "{home}");
            assert_eq!(warning(net(home)).is_some(), want.is_some(), "{home}");
        }
        let w = warning(net("192.168.178.1/24")).unwrap();
        assert!(
            w.contains("192.168.178.0/24") && w.contains("FRITZ!Box"),
            "{w}"
        );
    }

    #[test]
    fn suggestions_avoid_crowded_and_avoided_prefixes_and_follow_the_seed() {
        let pools = [
            net("10.0.0.0/8"),
            net("172.16.0.0/12"),
            net("192.168.0.0/16"),
        ];
        let avoid = [net("10.42.0.0/16"), net("10.43.0.0/16")];
        for seed in 0..200u64 {
            let s = suggest(seed, 24, &pools, &avoid).expect("a free /24");
            assert_eq!(s.prefix_len(), 24);
            assert!(crowded(s).is_empty(), "seed {seed}: {s}");
            assert!(
                !avoid.iter().any(|a| plan::overlaps(*a, s)),
                "seed {seed}: {s}"
            );
            assert_eq!(
                suggest(seed, 24, &pools, &avoid),
                Some(s),
                "stable per seed"
            );
        }
        // Only crowded space left: nothing to suggest.
        assert_eq!(suggest(1, 24, &[net("192.168.1.0/24")], &[]), None);
    }
}
