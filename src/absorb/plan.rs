//! Absorbing a colliding uplink (pure): which alias prefix the router's own
//! stack sees the uplink's network as, and the nftables table that
//! translates between the two at the uplink's edge.
//!
//! The translation is stateless and rewrites only the network part of
//! addresses: in IPv4 headers, in ARP payloads, and in the IPv4 header an
//! ICMP error quotes. The alias is chosen checksum-neutral (as NPTv6,
//! RFC 6296, does): its one's-complement sum equals the real prefix's, so
//! no checksum (IP, TCP/UDP pseudo-header, ICMP over the quoted header)
//! changes. For a /24 there is at most one such alias per /8.

use crate::plan::{map_host, overlaps};
use ipnet::Ipv4Net;
use std::net::Ipv4Addr;

/// The widest uplink prefix that can be absorbed: wider ones keep too many
/// bits for a neutral alias to exist.
pub const MAX_LEN: u8 = 24;

fn fold(mut s: u32) -> u32 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    // 0 and 0xffff are the same number in one's complement.
    if s == 0xffff { 0 } else { s }
}

/// The one's-complement sum of the first three octets (the /24's network
/// part) as 16-bit words.
fn sum24(a: Ipv4Addr) -> u32 {
    let [a, b, c, _] = a.octets();
    fold((u32::from(a) << 8 | u32::from(b)) + (u32::from(c) << 8))
}

/// Whether replacing `real`'s first three octets by `alias`'s leaves every
/// checksum as it is.
pub fn neutral(real: Ipv4Addr, alias: Ipv4Addr) -> bool {
    sum24(real) == sum24(alias)
}

/// The /24 holding `addr`.
fn slash24(addr: Ipv4Addr) -> Ipv4Net {
    Ipv4Net::new(addr, 24)
        .map(|n| n.trunc())
        .unwrap_or_default()
}

/// Every checksum-neutral /24 for `real` inside `pool`, in address order.
pub fn neutral_aliases(real: Ipv4Addr, pool: Ipv4Net) -> Vec<Ipv4Net> {
    if pool.prefix_len() > 24 {
        return Vec::new();
    }
    let first = u32::from(pool.network()) >> 8;
    let count = 1u32 << (24 - pool.prefix_len());
    (0..count)
        .map(|i| Ipv4Addr::from((first + i) << 8))
        .filter(|a| neutral(real, *a))
        .map(slash24)
        .collect()
}

/// What to do with an uplink's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No collision with the LAN: the lease as it is.
    Plain,
    /// The router's stack sees `real` (the uplink's prefix) as `alias`.
    Absorb { real: Ipv4Net, alias: Ipv4Net },
    /// It collides and cannot be absorbed: why (the LAN moves instead).
    Cannot(String),
}

/// The verdict for `lease` (address with length) on an uplink, with the LAN
/// at `lan`; the alias comes from `pools` and must not touch `taken` (the
/// LAN's home, `avoid`, every other interface's prefix).
pub fn decide(lease: Ipv4Net, lan: Ipv4Net, pools: &[Ipv4Net], taken: &[Ipv4Net]) -> Verdict {
    let real = lease.trunc();
    if !overlaps(real, lan) {
        return Verdict::Plain;
    }
    if real.prefix_len() < MAX_LEN {
        return Verdict::Cannot(format!(
            "the uplink's prefix {real} is wider than /{MAX_LEN}: no alias keeps the checksums, so the LAN moves"
        ));
    }
    let clear = |n: &Ipv4Net| {
        !overlaps(*n, real) && !overlaps(*n, lan) && !taken.iter().any(|t| overlaps(*n, *t))
    };
    let found = pools
        .iter()
        .flat_map(|p| neutral_aliases(real.network(), *p))
        .find(clear);
    match found {
        // The alias of a /28 is the /28 at the same place in the alias /24.
        Some(a24) => {
            let at =
                map_host(real.network(), slash24(real.network()), a24).unwrap_or(a24.network());
            let alias = Ipv4Net::new(at, real.prefix_len()).unwrap_or(a24);
            Verdict::Absorb { real, alias }
        }
        None => Verdict::Cannot(format!(
            "no checksum-neutral alias for {real} is free in the pools: the LAN moves"
        )),
    }
}

/// `addr` as the router's stack sees it (in `alias` when it is in `real`).
pub fn to_alias(addr: Ipv4Addr, real: Ipv4Net, alias: Ipv4Net) -> Ipv4Addr {
    map_host(addr, real, alias).unwrap_or(addr)
}

/// The nftables table name for an uplink device (`eth0.2` -> `roadie_eth0_2`).
pub fn table_name(device: &str) -> String {
    let safe: String = device
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("roadie_{safe}")
}

/// The first three octets of `net` as one 24-bit number, for a raw payload
/// write.
fn hex24(net: Ipv4Net) -> String {
    format!("{:#08x}", u32::from(net.network()) >> 8)
}

/// `net`'s network part as a raw payload match of its length in bits.
fn raw_match(offset_bits: u32, net: Ipv4Net) -> String {
    let len = u32::from(net.prefix_len());
    let value = u32::from(net.network()) >> (32 - len);
    format!("@nh,{offset_bits},{len} {value:#x}")
}

/// One direction of the translation: addresses in `from` get `to`'s first
/// three octets.
fn rules(from: Ipv4Net, to: Ipv4Net) -> Vec<String> {
    let set = hex24(to);
    let icmp_errors =
        "ip hdrlength 5 icmp type { destination-unreachable, time-exceeded, parameter-problem }";
    vec![
        format!("ip saddr {from} @nh,96,24 set {set}"),
        format!("ip daddr {from} @nh,128,24 set {set}"),
        // ARP: sender at byte 14, target at byte 24 of the ARP header.
        format!("arp saddr ip {from} @nh,112,24 set {set}"),
        format!("arp daddr ip {from} @nh,192,24 set {set}"),
        // The header an ICMP error quotes: after 20 + 8 bytes, its source
        // at +12 and destination at +16.
        format!(
            "{icmp_errors} {} @nh,320,24 set {set}",
            raw_match(320, from)
        ),
        format!(
            "{icmp_errors} {} @nh,352,24 set {set}",
            raw_match(352, from)
        ),
    ]
}

/// The whole table for `device`: ingress maps the uplink's `real` prefix to
/// `alias`, egress maps back, and then lets out nothing with a source other
/// than the `lease` address (or 0.0.0.0, for DHCP): no frame from the router
/// ever speaks for the LAN's addresses on the uplink. Loading it replaces any
/// earlier version in one transaction.
pub fn ruleset(device: &str, real: Ipv4Net, alias: Ipv4Net, lease: Ipv4Addr) -> String {
    let table = table_name(device);
    let dev = device.replace('"', "");
    let mut s =
        format!("add table netdev {table}\ndelete table netdev {table}\ntable netdev {table} {{\n");
    s += &format!(
        "\tchain in {{\n\t\ttype filter hook ingress device \"{dev}\" priority -500; policy accept;\n"
    );
    for r in rules(real, alias) {
        s += &format!("\t\t{r}\n");
    }
    s += &format!(
        "\t}}\n\tchain out {{\n\t\ttype filter hook egress device \"{dev}\" priority 500; policy accept;\n"
    );
    for r in rules(alias, real) {
        s += &format!("\t\t{r}\n");
    }
    s += &format!("\t\tip saddr != {{ {lease}, 0.0.0.0 }} drop\n");
    s += &format!("\t\tarp saddr ip != {{ {lease}, 0.0.0.0 }} drop\n");
    s += "\t}\n}\n";
    s
}

/// dnsmasq's `alias=` lines for the absorbed uplinks (real, alias): an
/// upstream answer inside the uplink's network reaches the LAN as the alias
/// address, so hotel hosts are reached by name (dnsmasq's `--alias`, which
/// only ever rewrites answers from upstream servers, never its own).
/// Empty when nothing is absorbed.
pub fn dnsmasq_aliases(absorbed: &[(Ipv4Net, Ipv4Net)]) -> String {
    if absorbed.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# Written by roadie while it absorbs a colliding uplink (on_collision = \"absorb\");\n\
         # removed when the uplink stops colliding. Answers from the uplink's DNS\n\
         # in its network are rewritten to the alias the LAN reaches it at.\n",
    );
    for (real, alias) in absorbed {
        out += &format!(
            "alias={},{},{}\n",
            real.network(),
            alias.network(),
            real.netmask()
        );
    }
    out
}

/// Whether `argv` is a udhcpc on `dev` with OpenWrt netifd's own event
/// script: netifd still runs its stock `dhcp` protocol handler (it reads
/// /lib/netifd/proto/ only when it starts), so the lease goes in without
/// asking roadie.
pub fn stock_netifd_udhcpc(argv: &[&str], dev: &str) -> bool {
    let is_udhcpc = argv
        .first()
        .is_some_and(|a| a.rsplit('/').next() == Some("udhcpc"));
    let arg = |flag: &str| argv.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
    is_udhcpc && arg("-i") == Some(dev) && arg("-s") == Some("/lib/netifd/dhcp.script")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    const POOLS: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

    fn pools() -> Vec<Ipv4Net> {
        POOLS.iter().map(|p| net(p)).collect()
    }

    #[test]
    fn the_neutral_alias_of_192_168_1() {
        // The prototype's: the only one in 10/8.
        assert_eq!(
            neutral_aliases(ip("192.168.1.0"), net("10.0.0.0/8")),
            [net("10.168.183.0/24")]
        );
        assert!(neutral(ip("192.168.1.0"), ip("10.168.183.0")));
        assert!(!neutral(ip("192.168.1.0"), ip("100.127.1.0")));
        // Every alias found really is neutral, for a few hotel prefixes.
        for real in [
            "192.168.0.0",
            "192.168.8.0",
            "10.0.0.0",
            "172.20.10.0",
            "192.168.178.0",
        ] {
            for pool in pools() {
                for a in neutral_aliases(ip(real), pool) {
                    assert!(
                        pool.contains(&a.network()) && neutral(ip(real), a.network()),
                        "{real} -> {a}"
                    );
                }
            }
        }
    }

    #[test]
    fn verdicts() {
        let lan = net("192.168.1.0/24");
        let avoid = [net("10.42.0.0/16"), net("10.43.0.0/16")];
        let cases: Vec<(&str, Ipv4Net, Vec<Ipv4Net>, Verdict)> = vec![
            (
                "no collision",
                net("10.66.0.57/24"),
                avoid.to_vec(),
                Verdict::Plain,
            ),
            (
                "the hotel's /24 is ours",
                net("192.168.1.57/24"),
                avoid.to_vec(),
                Verdict::Absorb {
                    real: net("192.168.1.0/24"),
                    alias: net("10.168.183.0/24"),
                },
            ),
            (
                "a phone's /28 inside ours: the /28 at the same place",
                net("192.168.1.35/28"),
                avoid.to_vec(),
                Verdict::Absorb {
                    real: net("192.168.1.32/28"),
                    alias: net("10.168.183.32/28"),
                },
            ),
        ];
        for (what, lease, taken, want) in cases {
            assert_eq!(decide(lease, lan, &pools(), &taken), want, "{what}");
        }
        // The 10/8 alias taken: the next pool's neutral one, if any, or a move.
        let taken = [net("10.168.0.0/16")];
        match decide(net("192.168.1.57/24"), lan, &pools(), &taken) {
            Verdict::Absorb { alias, .. } => {
                assert!(
                    !overlaps(alias, taken[0]) && neutral(ip("192.168.1.0"), alias.network()),
                    "{alias}"
                )
            }
            Verdict::Cannot(why) => assert!(why.contains("no checksum-neutral alias"), "{why}"),
            v => panic!("{v:?}"),
        }
        let only10 = [net("10.0.0.0/8")];
        let Verdict::Cannot(why) = decide(net("192.168.1.57/24"), lan, &only10, &taken) else {
            panic!("no alias left")
        };
        assert!(
            why.contains("192.168.1.0/24") && why.contains("moves"),
            "{why}"
        );
        let Verdict::Cannot(why) = decide(net("192.168.1.57/16"), lan, &pools(), &[]) else {
            panic!("a /16 cannot be absorbed")
        };
        assert!(why.contains("wider than /24"), "{why}");
    }

    #[test]
    fn addresses_and_table_names() {
        let (real, alias) = (net("192.168.1.0/24"), net("10.168.183.0/24"));
        assert_eq!(to_alias(ip("192.168.1.1"), real, alias), ip("10.168.183.1"));
        assert_eq!(to_alias(ip("8.8.8.8"), real, alias), ip("8.8.8.8"));
        assert_eq!(table_name("eth0.2"), "roadie_eth0_2");
        assert_eq!(table_name("phy0-sta0"), "roadie_phy0_sta0");
    }

    #[test]
    fn the_ruleset_translates_both_ways_and_guards_the_source() {
        let r = ruleset(
            "wan0",
            net("192.168.1.0/24"),
            net("10.168.183.0/24"),
            ip("192.168.1.57"),
        );
        for want in [
            "add table netdev roadie_wan0\ndelete table netdev roadie_wan0\n",
            "type filter hook ingress device \"wan0\" priority -500;",
            "ip saddr 192.168.1.0/24 @nh,96,24 set 0x0aa8b7",
            "arp daddr ip 192.168.1.0/24 @nh,192,24 set 0x0aa8b7",
            "@nh,320,24 0xc0a801 @nh,320,24 set 0x0aa8b7",
            "type filter hook egress device \"wan0\" priority 500;",
            "ip daddr 10.168.183.0/24 @nh,128,24 set 0xc0a801",
            "@nh,352,24 0xaa8b7 @nh,352,24 set 0xc0a801",
            "ip saddr != { 192.168.1.57, 0.0.0.0 } drop",
            "arp saddr ip != { 192.168.1.57, 0.0.0.0 } drop",
        ] {
            assert!(r.contains(want), "missing {want:?} in\n{r}");
        }
        // A /28 matches its 28 bits in the quoted header.
        let r = ruleset(
            "usb0",
            net("172.20.10.0/28"),
            net("10.5.5.0/28"),
            ip("172.20.10.2"),
        );
        assert!(r.contains("@nh,320,28 0xac140a0 "), "{r}");
    }

    #[test]
    fn dnsmasq_aliases_map_each_absorbed_network() {
        let n = |s: &str| s.parse::<Ipv4Net>().unwrap();
        assert_eq!(dnsmasq_aliases(&[]), "");
        let text = dnsmasq_aliases(&[
            (n("192.168.1.0/24"), n("10.168.183.0/24")),
            (n("192.168.8.0/24"), n("10.168.176.0/24")),
        ]);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "alias=192.168.1.0,10.168.183.0,255.255.255.0",
                "alias=192.168.8.0,10.168.176.0,255.255.255.0"
            ]
        );
    }

    #[test]
    fn netifds_stock_udhcpc_is_recognised() {
        // What OpenWrt 24.10's dhcp.sh runs (proto_run_command), and roadie's.
        let stock = "/sbin/udhcpc -p /var/run/udhcpc-wan.pid -s /lib/netifd/dhcp.script -f -t 0 -i wan -x hostname:OpenWrt -C -R -O 121";
        let ours = stock.replace("/lib/netifd/dhcp.script", "/usr/libexec/roadie/dhcp.script");
        let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let check = |s: &str, dev: &str| {
            let a = argv(s);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            stock_netifd_udhcpc(&a, dev)
        };
        assert!(check(stock, "wan"));
        assert!(!check(stock, "wan2"), "another uplink");
        assert!(!check(&ours, "wan"), "roadie's handler");
        assert!(!check(
            "/usr/sbin/dhcpcd -s /lib/netifd/dhcp.script -i wan",
            "wan"
        ));
        assert!(!check("", "wan"));
    }
}
