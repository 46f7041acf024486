//! Pure decisions about the LAN prefix: collisions, the next prefix, host offsets.
//! No I/O here: everything is plain data in, plain data out, table-tested.

use ipnet::Ipv4Net;
use serde::Serialize;
use std::net::Ipv4Addr;

/// What the planner needs to know about one uplink (also shown in status).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Uplink {
    /// The kernel device; empty (null in status) when a netifd name has none.
    #[serde(serialize_with = "empty_as_null")]
    pub interface: String,
    /// The netifd interface it was configured as (`"@wan"` -> `wan`).
    pub netifd: Option<String>,
    /// Why ubus could not say where that interface is now.
    pub netifd_problem: Option<String>,
    pub up: bool,
    /// Addresses with their prefix length, e.g. 10.66.0.123/24.
    pub addresses: Vec<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// Non-default routes whose output interface is this uplink (connected ones included).
    #[serde(skip)]
    pub routes: Vec<Ipv4Net>,
}

fn empty_as_null<S: serde::Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
    if s.is_empty() {
        ser.serialize_none()
    } else {
        ser.serialize_str(s)
    }
}

/// A prefix used by another local interface (VPN, second LAN...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Other {
    pub interface: String,
    pub prefix: Ipv4Net,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// Home prefix (network form, e.g. 192.168.1.0/24).
    pub home: Ipv4Net,
    /// Prefix the LAN is on now (network form).
    pub current: Ipv4Net,
    pub uplinks: &'a [Uplink],
    pub others: &'a [Other],
    pub pools: &'a [Ipv4Net],
    pub avoid: &'a [Ipv4Net],
    pub return_home: bool,
    /// Per-router seed from the state file: makes choices stable here, different elsewhere.
    pub seed: u64,
}

/// Something the LAN prefix overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub prefix: Ipv4Net,
    /// For people, e.g. "eth1 address 192.168.1.23/24".
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    Move { to: Ipv4Net, reason: String },
    NoFreePrefix { reason: String },
}

/// Whether two prefixes share at least one address (for prefixes: one contains the other).
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    let len = a.prefix_len().min(b.prefix_len());
    (u32::from(a.addr()) ^ u32::from(b.addr())) & mask(len) == 0
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn net(addr: u32, len: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(addr & mask(len)), len).expect("prefix length <= 32")
}

/// Everything `lan` overlaps: uplink addresses, non-default routes through uplinks, other interfaces.
///
/// Order: uplinks in order (addresses, then routes), then `others`. Uplinks that are down count
/// too (their addresses are still configured). A prefix already reported for the same interface
/// is not reported again, so the connected route of an address does not show up twice.
pub fn collisions(lan: Ipv4Net, uplinks: &[Uplink], others: &[Other]) -> Vec<Collision> {
    let lan = lan.trunc();
    let mut seen: Vec<(Ipv4Net, &str)> = Vec::new();
    let mut out = Vec::new();
    let uplink_sources = uplinks.iter().flat_map(|uplink| {
        let name = uplink.interface.as_str();
        let addresses = uplink
            .addresses
            .iter()
            .map(move |a| (a.trunc(), name, format!("{name} address {a}")));
        let routes = uplink
            .routes
            .iter()
            .filter(|r| r.prefix_len() > 0)
            .map(move |r| (r.trunc(), name, format!("route {} via {name}", r.trunc())));
        addresses.chain(routes)
    });
    let other_sources = others.iter().map(|o| {
        let name = o.interface.as_str();
        (
            o.prefix.trunc(),
            name,
            format!("{name} prefix {}", o.prefix.trunc()),
        )
    });
    for (prefix, source, what) in uplink_sources.chain(other_sources) {
        if overlaps(lan, prefix) && !seen.contains(&(prefix, source)) {
            seen.push((prefix, source));
            out.push(Collision { prefix, what });
        }
    }
    out
}

/// One line for people: "192.168.1.0/24 collides with wan0 address 192.168.1.57/24 and 2 more".
/// None when there is no collision.
pub fn describe_collisions(lan: Ipv4Net, found: &[Collision]) -> Option<String> {
    let first = found.first()?;
    let mut s = format!("{} collides with {}", lan.trunc(), first.what);
    if found.len() > 1 {
        s.push_str(&format!(" and {} more", found.len() - 1));
    }
    Some(s)
}

/// Every prefix a new LAN prefix must not overlap: uplink address prefixes, non-default uplink
/// routes, other interfaces and `avoid`.
pub fn blockers(inputs: &Inputs) -> Vec<Ipv4Net> {
    let mut out: Vec<Ipv4Net> = Vec::new();
    for uplink in inputs.uplinks {
        out.extend(uplink.addresses.iter().map(|a| a.trunc()));
        out.extend(
            uplink
                .routes
                .iter()
                .filter(|r| r.prefix_len() > 0)
                .map(|r| r.trunc()),
        );
    }
    out.extend(inputs.others.iter().map(|o| o.prefix.trunc()));
    out.extend(inputs.avoid.iter().map(|a| a.trunc()));
    out.sort_unstable_by_key(|p| (u32::from(p.network()), p.prefix_len()));
    out.dedup();
    out
}

/// The candidate space: disjoint pieces of the pools (in pool order, then address order) that
/// can hold a prefix of length `len`. Pools shorter than `len` hold none; overlapping pools are
/// counted once, where they first appear.
#[derive(Debug, Clone)]
struct Space {
    len: u8,
    /// (piece, index of its first candidate)
    pieces: Vec<(Ipv4Net, u64)>,
    total: u64,
}

impl Space {
    fn new(len: u8, pools: &[Ipv4Net]) -> Space {
        let mut accepted: Vec<Ipv4Net> = Vec::new();
        let mut pieces = Vec::new();
        let mut total = 0u64;
        for pool in pools.iter().map(|p| p.trunc()) {
            if pool.prefix_len() > len {
                continue;
            }
            if accepted
                .iter()
                .any(|a| a.prefix_len() <= pool.prefix_len() && overlaps(*a, pool))
            {
                continue; // already counted
            }
            let holes: Vec<Ipv4Net> = accepted
                .iter()
                .copied()
                .filter(|a| overlaps(*a, pool))
                .collect();
            let mut rest = Vec::new();
            subtract(pool, &holes, &mut rest);
            for piece in rest {
                pieces.push((piece, total));
                total += 1u64 << (len - piece.prefix_len());
            }
            accepted.push(pool);
        }
        Space { len, pieces, total }
    }

    fn shift(&self) -> u32 {
        32 - u32::from(self.len)
    }

    /// The `index`-th candidate (`index < total`).
    fn get(&self, index: u64) -> Ipv4Net {
        let at = self.pieces.partition_point(|(_, first)| *first <= index) - 1;
        let (piece, first) = self.pieces[at];
        let base = u64::from(u32::from(piece.network()));
        let addr = base + ((index - first) << self.shift());
        net(addr as u32, self.len)
    }

    /// Candidate indices overlapping `blocker`, as half-open ranges.
    fn blocked_ranges(&self, blocker: Ipv4Net, out: &mut Vec<(u64, u64)>) {
        for &(piece, first) in &self.pieces {
            if !overlaps(piece, blocker) {
                continue;
            }
            let count = 1u64 << (self.len - piece.prefix_len());
            if blocker.prefix_len() <= piece.prefix_len() {
                out.push((first, first + count));
                continue;
            }
            // The blocker lies inside this piece.
            let offset = u64::from(u32::from(blocker.network()) - u32::from(piece.network()));
            let start = first + (offset >> self.shift());
            let n = if blocker.prefix_len() <= self.len {
                1u64 << (self.len - blocker.prefix_len())
            } else {
                1
            };
            out.push((start, start + n));
        }
    }
}

/// `prefix` minus `holes` (all overlapping `prefix`, none containing it), as disjoint prefixes
/// in address order.
fn subtract(prefix: Ipv4Net, holes: &[Ipv4Net], out: &mut Vec<Ipv4Net>) {
    if holes
        .iter()
        .any(|h| h.prefix_len() <= prefix.prefix_len() && overlaps(*h, prefix))
    {
        return;
    }
    let inside: Vec<Ipv4Net> = holes
        .iter()
        .copied()
        .filter(|h| overlaps(*h, prefix))
        .collect();
    if inside.is_empty() {
        out.push(prefix);
        return;
    }
    // A hole strictly inside means prefix_len < 32.
    let len = prefix.prefix_len() + 1;
    let base = u32::from(prefix.network());
    subtract(net(base, len), &inside, out);
    subtract(net(base | (1 << (32 - u32::from(len))), len), &inside, out);
}

/// How many distinct prefixes of length `len` the pools hold (overlapping pools counted once).
pub fn candidates_count(len: u8, pools: &[Ipv4Net]) -> u64 {
    Space::new(len.min(32), pools).total
}

/// splitmix64 finalizer over a counter step: a good 64-bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A full-cycle walk over 0..n decided by `seed`: (start, step) with gcd(step, n) == 1.
fn walk(seed: u64, n: u64) -> (u64, u64) {
    let a = splitmix64(seed);
    let b = splitmix64(a ^ 0xD1B5_4A32_D192_ED03);
    let start = a % n;
    let mut step = b % n;
    loop {
        if step == 0 {
            step = 1;
        }
        if gcd(step, n) == 1 {
            return (start, step);
        }
        step = (step + 1) % n;
    }
}

/// The seed's free prefix of length `len` in `pools`, overlapping none of `blocked`; None when
/// every candidate is blocked. Exhaustive: walks a full-cycle permutation of the candidate
/// indices (start and step from the seed, step coprime with their count), checking each index
/// against the merged blocked index ranges, so a free candidate is always found if one exists.
pub fn pick(seed: u64, len: u8, pools: &[Ipv4Net], blocked: &[Ipv4Net]) -> Option<Ipv4Net> {
    let space = Space::new(len, pools);
    if space.total == 0 {
        return None;
    }
    let mut ranges = Vec::new();
    for b in blocked {
        space.blocked_ranges(*b, &mut ranges);
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let blocked_count: u64 = merged.iter().map(|(s, e)| e - s).sum();
    if blocked_count >= space.total {
        return None;
    }
    let is_blocked = |i: u64| {
        let at = merged.partition_point(|(s, _)| *s <= i);
        at > 0 && merged[at - 1].1 > i
    };
    let (mut index, step) = walk(seed, space.total);
    for _ in 0..space.total.min(WALK_LIMIT) {
        if !is_blocked(index) {
            return Some(space.get(index));
        }
        index = (index + step) % space.total;
    }
    // Nearly everything blocked: the walk could need `total` steps (2^30 for a
    // /30 in 0.0.0.0/0; the fuzzer found one taking 18 s). Take the seed's k-th
    // free candidate by skipping over the blocked ranges instead.
    let mut k = splitmix64(seed ^ 0x5851_F42D_4C95_7F2D) % (space.total - blocked_count);
    let mut next = 0u64;
    for &(s, e) in merged.iter().chain([(space.total, space.total)].iter()) {
        if k < s - next {
            return Some(space.get(next + k));
        }
        k -= s - next;
        next = e;
    }
    None
}

/// Steps of the seed's walk before [`pick`] counts its way to a free candidate.
const WALK_LIMIT: u64 = 1 << 16;

/// Keep, move, or report that nothing is free.
///
/// Sticky: without a collision on the current prefix the LAN only moves to go home
/// (`return_home`). On a collision the home prefix is preferred when free; otherwise the seed
/// picks a prefix of the home length from the pools that overlaps no uplink address prefix,
/// non-default uplink route, other interface, `avoid` entry, or the current prefix.
pub fn decide(inputs: &Inputs) -> Decision {
    let home = inputs.home.trunc();
    let current = inputs.current.trunc();
    let home_free = || {
        collisions(home, inputs.uplinks, inputs.others).is_empty()
            && !inputs.avoid.iter().any(|a| overlaps(*a, home))
    };
    let found = collisions(current, inputs.uplinks, inputs.others);
    let Some(reason) = describe_collisions(current, &found) else {
        if inputs.return_home && current != home && home_free() {
            return Decision::Move {
                to: home,
                reason: format!("home prefix {home} is free again"),
            };
        }
        return Decision::Keep;
    };
    if current != home && home_free() {
        return Decision::Move { to: home, reason };
    }
    let mut blocked = blockers(inputs);
    blocked.push(current);
    let len = home.prefix_len();
    match pick(inputs.seed, len, inputs.pools, &blocked) {
        Some(to) => Decision::Move { to, reason },
        None => {
            let pools: Vec<String> = inputs.pools.iter().map(|p| p.to_string()).collect();
            let pools = if pools.is_empty() {
                "(none configured)".to_string()
            } else {
                pools.join(", ")
            };
            Decision::NoFreePrefix {
                reason: format!("{reason}; no free /{len} left in pools {pools}"),
            }
        }
    }
}

/// Whether a prefix forced by the user can be used; Err says why not.
/// Prefixes outside the pools are allowed: the user chose them explicitly.
pub fn check_forced(prefix: Ipv4Net, inputs: &Inputs) -> Result<(), String> {
    let need = inputs.home.prefix_len();
    if prefix.prefix_len() != need {
        return Err(format!(
            "{prefix} has length {}, the LAN needs /{need}",
            prefix.prefix_len()
        ));
    }
    if prefix.addr() != prefix.network() {
        return Err(format!(
            "{prefix} is not a prefix; did you mean {}?",
            prefix.trunc()
        ));
    }
    let found = collisions(prefix, inputs.uplinks, inputs.others);
    if let Some(reason) = describe_collisions(prefix, &found) {
        return Err(reason);
    }
    if let Some(a) = inputs.avoid.iter().find(|a| overlaps(**a, prefix)) {
        return Err(format!("{prefix} overlaps avoid {a}"));
    }
    Ok(())
}

/// The same host offset in another prefix of the same length (`.100` stays `.100`).
pub fn map_host(addr: Ipv4Addr, from: Ipv4Net, to: Ipv4Net) -> Option<Ipv4Addr> {
    if from.prefix_len() != to.prefix_len() || !from.contains(&addr) {
        return None;
    }
    let host = u32::from(addr) & !mask(from.prefix_len());
    Some(Ipv4Addr::from(u32::from(to.network()) | host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn n(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rfc1918() -> Vec<Ipv4Net> {
        vec![n("10.0.0.0/8"), n("172.16.0.0/12"), n("192.168.0.0/16")]
    }

    fn k3s() -> Vec<Ipv4Net> {
        vec![n("10.42.0.0/16"), n("10.43.0.0/16")]
    }

    fn uplink(name: &str, addresses: &[&str], routes: &[&str]) -> Uplink {
        Uplink {
            interface: name.to_string(),
            up: true,
            addresses: addresses.iter().map(|a| n(a)).collect(),
            gateway: None,
            routes: routes.iter().map(|r| n(r)).collect(),
            ..Uplink::default()
        }
    }

    fn other(name: &str, prefix: &str) -> Other {
        Other {
            interface: name.to_string(),
            prefix: n(prefix),
        }
    }

    /// Inputs with home 192.168.1.0/24, RFC 1918 pools, k3s avoid, seed 1.
    fn inputs<'a>(
        current: &str,
        uplinks: &'a [Uplink],
        others: &'a [Other],
        pools: &'a [Ipv4Net],
        avoid: &'a [Ipv4Net],
    ) -> Inputs<'a> {
        Inputs {
            home: n("192.168.1.0/24"),
            current: n(current),
            uplinks,
            others,
            pools,
            avoid,
            return_home: false,
            seed: 1,
        }
    }

    /// Everything a chosen prefix must stay clear of, computed independently of `blockers`.
    fn all_blockers(i: &Inputs) -> Vec<Ipv4Net> {
        let mut v = Vec::new();
        for u in i.uplinks {
            v.extend(u.addresses.iter().map(|a| a.trunc()));
            v.extend(u.routes.iter().filter(|r| r.prefix_len() > 0).copied());
        }
        v.extend(i.others.iter().map(|o| o.prefix));
        v.extend(i.avoid.iter().copied());
        v
    }

    fn assert_valid_choice(i: &Inputs, to: Ipv4Net) {
        assert_eq!(to.prefix_len(), i.home.prefix_len(), "{to}: wrong length");
        assert_eq!(to, to.trunc(), "{to}: host bits set");
        assert_ne!(to, i.current, "{to}: same as current");
        for b in all_blockers(i) {
            assert!(!overlaps(to, b), "{to} overlaps blocker {b}");
        }
        if to != i.home {
            assert!(
                i.pools.iter().any(|p| p.contains(&to)),
                "{to} is in no pool of {:?}",
                i.pools
            );
        }
    }

    fn moved_to(d: &Decision) -> Ipv4Net {
        match d {
            Decision::Move { to, .. } => *to,
            other => panic!("expected a move, got {other:?}"),
        }
    }

    /// A tiny deterministic generator for property-style tests.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn overlap_table() {
        let cases = [
            ("192.168.1.0/24", "192.168.1.0/24", true, "equal"),
            ("192.168.1.0/24", "192.168.0.0/16", true, "containing"),
            ("192.168.1.0/24", "192.168.1.128/25", true, "contained"),
            (
                "192.168.1.0/24",
                "192.168.1.77/32",
                true,
                "single host inside",
            ),
            ("192.168.1.0/24", "192.168.0.0/24", false, "adjacent below"),
            ("192.168.1.0/24", "192.168.2.0/24", false, "adjacent above"),
            ("192.168.1.0/24", "192.168.0.0/23", true, "supernet /23"),
            ("192.168.1.0/24", "192.168.2.0/23", false, "neighbour /23"),
            ("10.0.0.0/8", "11.0.0.0/8", false, "adjacent /8"),
            ("10.0.0.0/8", "0.0.0.0/0", true, "everything"),
        ];
        for (a, b, want, what) in cases {
            assert_eq!(overlaps(n(a), n(b)), want, "{what}: {a} vs {b}");
            assert_eq!(overlaps(n(b), n(a)), want, "{what} (swapped): {b} vs {a}");
        }
    }

    #[test]
    fn collision_table() {
        let lan = n("192.168.1.0/24");
        let cases: [(&str, &str, bool); 6] = [
            ("equal prefixes", "192.168.1.23/24", true),
            ("upstream contains the LAN", "192.168.7.9/16", true),
            ("upstream inside the LAN", "192.168.1.200/25", true),
            ("adjacent below", "192.168.0.5/24", false),
            ("adjacent above", "192.168.2.5/24", false),
            ("unrelated", "10.66.0.123/24", false),
        ];
        for (what, addr, want) in cases {
            let ups = [uplink("wan0", &[addr], &[])];
            let found = collisions(lan, &ups, &[]);
            assert_eq!(!found.is_empty(), want, "{what}: {addr} -> {found:?}");
        }
    }

    #[test]
    fn collision_what_strings() {
        let ups = [uplink(
            "wan0",
            &["192.168.1.23/24"],
            &["10.0.0.0/8", "0.0.0.0/0"],
        )];
        let others = [other("tun0", "10.8.0.0/24")];
        let found = collisions(n("0.0.0.0/0"), &ups, &others);
        let whats: Vec<&str> = found.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "wan0 address 192.168.1.23/24",
                "route 10.0.0.0/8 via wan0",
                "tun0 prefix 10.8.0.0/24",
            ]
        );
        assert_eq!(found[0].prefix, n("192.168.1.0/24"));
        assert_eq!(found[1].prefix, n("10.0.0.0/8"));
        assert_eq!(found[2].prefix, n("10.8.0.0/24"));
    }

    #[test]
    fn collisions_are_deduplicated_per_source() {
        // Two addresses in one prefix plus its connected route: one collision for wan0.
        // The same prefix on another interface is a separate collision.
        let ups = [
            uplink(
                "wan0",
                &["192.168.1.23/24", "192.168.1.24/24"],
                &["192.168.1.0/24", "192.168.1.0/24"],
            ),
            uplink("wan1", &["192.168.1.99/24"], &[]),
        ];
        let others = [
            other("tun0", "192.168.1.0/24"),
            other("tun0", "192.168.1.0/24"),
        ];
        let found = collisions(n("192.168.1.0/24"), &ups, &others);
        let whats: Vec<&str> = found.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "wan0 address 192.168.1.23/24",
                "wan1 address 192.168.1.99/24",
                "tun0 prefix 192.168.1.0/24",
            ]
        );
    }

    #[test]
    fn down_uplink_still_counts() {
        let mut up = uplink("wan0", &["192.168.1.57/24"], &[]);
        up.up = false;
        let found = collisions(n("192.168.1.0/24"), &[up], &[]);
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn route_via_uplink_collides_default_route_does_not() {
        let lan = n("10.1.2.0/24");
        let with_route = [uplink("wan0", &["172.20.0.5/24"], &["10.0.0.0/8"])];
        let found = collisions(lan, &with_route, &[]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].what, "route 10.0.0.0/8 via wan0");

        let default_only = [uplink("wan0", &["172.20.0.5/24"], &["0.0.0.0/0"])];
        assert!(collisions(lan, &default_only, &[]).is_empty());

        // Same through decide: the default route blocks nothing.
        let pools = rfc1918();
        let i = inputs("192.168.1.0/24", &default_only, &[], &pools, &[]);
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn other_interface_collides() {
        let ups = [uplink("wan0", &["10.66.0.123/24"], &[])];
        let others = [other("tun0", "192.168.0.0/20")];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("192.168.1.0/24", &ups, &others, &pools, &avoid);
        match decide(&i) {
            Decision::Move { to, reason } => {
                assert_eq!(
                    reason,
                    "192.168.1.0/24 collides with tun0 prefix 192.168.0.0/20"
                );
                assert_valid_choice(&i, to);
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn no_collision_keeps() {
        let ups = [uplink(
            "wan0",
            &["10.66.0.123/24"],
            &["10.66.0.0/24", "0.0.0.0/0"],
        )];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn sticky_without_collision() {
        let ups = [uplink("wan0", &["10.66.0.123/24"], &[])];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("172.23.4.0/24", &ups, &[], &pools, &avoid);
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn return_home_when_home_is_free() {
        let ups = [uplink("wan0", &["10.66.0.123/24"], &[])];
        let pools = rfc1918();
        let avoid = k3s();
        let mut i = inputs("172.23.4.0/24", &ups, &[], &pools, &avoid);
        i.return_home = true;
        assert_eq!(
            decide(&i),
            Decision::Move {
                to: n("192.168.1.0/24"),
                reason: "home prefix 192.168.1.0/24 is free again".to_string(),
            }
        );
        // Already home: nothing to do.
        i.current = i.home;
        assert_eq!(decide(&i), Decision::Keep);
    }

    /// Found by the fuzzer (planner, 18 s): a /30 in 0.0.0.0/0 with all
    /// but one candidate blocked. The one free prefix is found, for any seed.
    #[test]
    fn nearly_everything_blocked_finds_the_last_free_prefix() {
        let mut blocked = Vec::new();
        let mut rest = n("0.0.0.0/0");
        for len in 1..=30u8 {
            blocked.push(net(u32::from(rest.network()), len));
            rest = net(
                u32::from(rest.network()) | (1 << (32 - u32::from(len))),
                len,
            );
        }
        assert_eq!(rest, n("255.255.255.252/30"));
        for seed in [0u64, 1, 42, u64::MAX] {
            assert_eq!(
                pick(seed, 30, &[n("0.0.0.0/0")], &blocked),
                Some(rest),
                "seed {seed}"
            );
        }
        blocked.push(rest);
        assert_eq!(pick(7, 30, &[n("0.0.0.0/0")], &blocked), None);
    }

    #[test]
    fn return_home_stays_while_home_collides() {
        let ups = [uplink("wan0", &["192.168.1.57/24"], &[])];
        let others = [other("tun0", "10.8.0.0/24")];
        let pools = rfc1918();
        let avoid = k3s();
        let mut i = inputs("172.23.4.0/24", &ups, &others, &pools, &avoid);
        i.return_home = true;
        assert_eq!(decide(&i), Decision::Keep);

        // Home blocked by an Other interface, too.
        let ups = [uplink("wan0", &["10.66.0.1/24"], &[])];
        let others = [other("tun0", "192.168.1.0/24")];
        let mut i = inputs("172.23.4.0/24", &ups, &others, &pools, &avoid);
        i.return_home = true;
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn return_home_respects_avoid() {
        let ups = [uplink("wan0", &["10.66.0.123/24"], &[])];
        let pools = rfc1918();
        let avoid = [n("192.168.0.0/16")];
        let mut i = inputs("172.23.4.0/24", &ups, &[], &pools, &avoid);
        i.return_home = true;
        assert_eq!(decide(&i), Decision::Keep);
    }

    #[test]
    fn home_preferred_when_free() {
        // Current (a moved prefix) collides, home is free: go home even without return_home.
        let ups = [uplink("wan0", &["172.23.4.9/24"], &[])];
        let pools = rfc1918();
        let avoid = k3s();
        for seed in 0..20 {
            let mut i = inputs("172.23.4.0/24", &ups, &[], &pools, &avoid);
            i.seed = seed;
            assert_eq!(
                decide(&i),
                Decision::Move {
                    to: n("192.168.1.0/24"),
                    reason: "172.23.4.0/24 collides with wan0 address 172.23.4.9/24".to_string(),
                }
            );
        }
    }

    #[test]
    fn move_reason_names_first_collision_and_count() {
        let ups = [
            uplink("wan0", &["192.168.1.57/24"], &["192.168.0.0/16"]),
            uplink("wan1", &["192.168.1.200/25"], &[]),
        ];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
        match decide(&i) {
            Decision::Move { to, reason } => {
                assert_eq!(
                    reason,
                    "192.168.1.0/24 collides with wan0 address 192.168.1.57/24 and 2 more"
                );
                assert_valid_choice(&i, to);
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn upstream_slash8_covering_the_10_pool() {
        let pools = rfc1918();
        let avoid = k3s();
        let ups = [uplink(
            "wan0",
            &["10.1.2.3/8", "192.168.1.5/24"],
            &["10.0.0.0/8"],
        )];
        for seed in 0..50 {
            let mut i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
            i.seed = seed;
            let to = moved_to(&decide(&i));
            assert_valid_choice(&i, to);
            assert!(
                n("172.16.0.0/12").contains(&to) || n("192.168.0.0/16").contains(&to),
                "{to}"
            );
        }
    }

    #[test]
    fn several_uplinks_each_blocking_something() {
        // wan0 takes 10/8, wan1 172.16/12 by route, usb0 sits in the home prefix:
        // only 192.168/16 minus 192.168.1.0/24 is left.
        let ups = [
            uplink("wan0", &["10.20.30.40/8"], &[]),
            uplink("wan1", &["172.31.0.2/30"], &["172.16.0.0/12"]),
            uplink("usb0", &["192.168.1.129/25"], &["0.0.0.0/0"]),
        ];
        let pools = rfc1918();
        let avoid = k3s();
        let mut seen = Vec::new();
        for seed in 0..50 {
            let mut i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
            i.seed = seed;
            let to = moved_to(&decide(&i));
            assert_valid_choice(&i, to);
            assert!(n("192.168.0.0/16").contains(&to), "{to}");
            if !seen.contains(&to) {
                seen.push(to);
            }
        }
        assert!(seen.len() > 10, "poor spread: {seen:?}");
    }

    #[test]
    fn every_pool_exhausted() {
        let ups = [
            uplink("wan0", &["10.0.0.1/8"], &[]),
            uplink("wan1", &["172.16.0.1/12"], &[]),
            uplink("wan2", &["192.168.1.7/16"], &[]),
        ];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
        assert_eq!(
            decide(&i),
            Decision::NoFreePrefix {
                reason: "192.168.1.0/24 collides with wan2 address 192.168.1.7/16; \
                         no free /24 left in pools 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16"
                    .to_string(),
            }
        );
    }

    #[test]
    fn no_pools_means_no_free_prefix() {
        let ups = [uplink("wan0", &["192.168.1.7/24"], &[])];
        let i = inputs("192.168.1.0/24", &ups, &[], &[], &[]);
        match decide(&i) {
            Decision::NoFreePrefix { reason } => {
                assert!(reason.contains("no free /24"), "{reason}")
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn never_overlaps_avoid() {
        // The pool is 10.40.0.0/14 = 10.40–10.43; 10.40/16 is upstream, 10.42 and 10.43 are k3s:
        // every choice must be in 10.41/16.
        let ups = [uplink("wan0", &["192.168.1.3/24"], &["10.40.0.0/16"])];
        let pools = [n("10.40.0.0/14")];
        let avoid = k3s();
        for seed in 0..200 {
            let mut i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
            i.seed = seed;
            let to = moved_to(&decide(&i));
            assert_valid_choice(&i, to);
            assert!(n("10.41.0.0/16").contains(&to), "{to}");
        }
    }

    #[test]
    fn exhaustive_finds_the_only_free_prefix() {
        // Only 192.168.77.0/24 is free in 192.168/16.
        let mut routes: Vec<String> = Vec::new();
        for third in 0..=255u32 {
            if third != 77 {
                routes.push(format!("192.168.{third}.0/24"));
            }
        }
        let routes: Vec<&str> = routes.iter().map(|s| s.as_str()).collect();
        let ups = [uplink("wan0", &["192.168.1.5/24"], &routes)];
        let pools = [n("192.168.0.0/16")];
        for seed in 0..30 {
            let mut i = inputs("192.168.1.0/24", &ups, &[], &pools, &[]);
            i.seed = seed;
            assert_eq!(moved_to(&decide(&i)), n("192.168.77.0/24"), "seed {seed}");
        }
    }

    #[test]
    fn deterministic_per_seed_and_spread_across_seeds() {
        let ups = [uplink("wan0", &["192.168.1.57/24"], &[])];
        let pools = rfc1918();
        let avoid = k3s();
        let mut distinct = Vec::new();
        for seed in [0u64, 1, 2, 42, 0xdead_beef, u64::MAX] {
            let mut i = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
            i.seed = seed;
            let a = decide(&i);
            let b = decide(&i.clone());
            assert_eq!(a, b, "seed {seed} is not deterministic");
            let to = moved_to(&a);
            assert_valid_choice(&i, to);
            if !distinct.contains(&to) {
                distinct.push(to);
            }
        }
        assert!(distinct.len() >= 2, "all seeds chose {distinct:?}");
    }

    #[test]
    fn overlapping_pools_are_counted_once() {
        let cases: [(u8, &[&str], u64); 7] = [
            (
                24,
                &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
                65536 + 4096 + 256,
            ),
            (24, &["10.0.0.0/8", "10.42.0.0/16"], 65536),
            (24, &["10.42.0.0/16", "10.0.0.0/8"], 65536),
            (24, &["10.42.0.0/16", "10.0.0.0/8", "10.0.0.0/8"], 65536),
            (24, &["10.1.2.0/25"], 0),
            (30, &["10.0.0.0/8"], 1 << 22),
            (16, &["10.0.0.0/8", "10.255.0.0/16", "10.0.0.0/9"], 256),
        ];
        for (len, pools, want) in cases {
            let pools: Vec<Ipv4Net> = pools.iter().map(|p| n(p)).collect();
            assert_eq!(candidates_count(len, &pools), want, "/{len} in {pools:?}");
        }
        // Every candidate index maps to a distinct prefix inside a pool.
        let pools = [n("10.8.0.0/22"), n("10.0.0.0/12"), n("10.9.0.0/24")];
        let space = Space::new(24, &pools);
        let all: Vec<Ipv4Net> = (0..space.total).map(|i| space.get(i)).collect();
        assert_eq!(all.len(), 4096);
        let mut sorted = all.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 4096);
        assert_eq!(all[0], n("10.8.0.0/24")); // the first pool comes first
        assert!(all.iter().all(|p| n("10.0.0.0/12").contains(p)));
    }

    #[test]
    fn property_random_uplinks_many_seeds() {
        let mut rng = Lcg(0x1234_5678);
        let bases = [0x0A00_0000u32, 0xAC10_0000, 0xC0A8_0000]; // 10/8, 172.16/12, 192.168/16
        let spans = [24u32, 20, 16];
        let pools = rfc1918();
        let avoid = k3s();
        let mut moves = 0;
        for round in 0..300 {
            let home_len = [16u8, 20, 22, 24][rng.below(4) as usize];
            let random_prefix = |rng: &mut Lcg| {
                let which = rng.below(3) as usize;
                let addr = bases[which] | (rng.next() as u32 & ((1u32 << spans[which]) - 1));
                let len = 8 + rng.below(23) as u8;
                Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap()
            };
            let mut ups = Vec::new();
            for u in 0..1 + rng.below(3) {
                let mut up = Uplink {
                    interface: format!("wan{u}"),
                    up: rng.below(2) == 0,
                    ..Uplink::default()
                };
                for _ in 0..rng.below(4) {
                    up.addresses.push(random_prefix(&mut rng));
                }
                for _ in 0..rng.below(4) {
                    up.routes.push(random_prefix(&mut rng).trunc());
                }
                up.routes.push(n("0.0.0.0/0"));
                ups.push(up);
            }
            // Always collide with the current prefix.
            ups[0].addresses.push(n("192.168.1.1/24"));
            let others: Vec<Other> = (0..rng.below(3))
                .map(|k| Other {
                    interface: format!("tun{k}"),
                    prefix: random_prefix(&mut rng).trunc(),
                })
                .collect();
            let home = net(0xC0A8_0100, home_len);
            let i = Inputs {
                home,
                current: home,
                uplinks: &ups,
                others: &others,
                pools: &pools,
                avoid: &avoid,
                return_home: rng.below(2) == 0,
                seed: rng.next(),
            };
            let d = decide(&i);
            // Brute force over the candidate space for the expected outcome.
            let blockers = all_blockers(&i);
            let space = Space::new(home_len, &pools);
            let any_free = (0..space.total)
                .map(|k| space.get(k))
                .any(|c| c != home && blockers.iter().all(|b| !overlaps(c, *b)));
            match d {
                Decision::Move { to, .. } => {
                    assert!(any_free, "round {round}");
                    assert_valid_choice(&i, to);
                    moves += 1;
                }
                Decision::NoFreePrefix { .. } => assert!(!any_free, "round {round}: {i:?}"),
                Decision::Keep => panic!("round {round}: kept a colliding prefix"),
            }
        }
        assert!(moves > 200, "only {moves} moves");
    }

    #[test]
    fn slash30_in_10_8_completes_fast() {
        // Block all of 10/8 but the last /30 with 22 routes of falling size, so the walk may
        // need up to 2^22 steps; and the fully blocked case must return at once.
        let mut routes: Vec<Ipv4Net> = Vec::new();
        let mut addr = 0x0A00_0000u32;
        for len in 9..=30u8 {
            routes.push(net(addr, len)); // 10.0.0.0/9, 10.128.0.0/10, 10.192.0.0/11, ...
            addr += 1 << (32 - u32::from(len));
        }
        assert_eq!(Ipv4Addr::from(addr), ip("10.255.255.252"));
        let pools = [n("10.0.0.0/8")];
        let mut up = uplink("wan0", &["10.0.0.1/30"], &[]);
        up.routes = routes;
        let ups = [up];
        let mut i = inputs("10.0.0.0/30", &ups, &[], &pools, &[]);
        i.home = n("10.0.0.0/30");
        let started = Instant::now();
        for seed in 0..4 {
            i.seed = seed;
            assert_eq!(moved_to(&decide(&i)), n("10.255.255.252/30"), "seed {seed}");
        }
        let mut full = ups[0].clone();
        full.routes.push(n("10.255.255.252/30"));
        let full = [full];
        let mut j = inputs("10.0.0.0/30", &full, &[], &pools, &[]);
        j.home = n("10.0.0.0/30");
        assert!(matches!(decide(&j), Decision::NoFreePrefix { .. }));
        // A lightly blocked /30 space.
        let light = [uplink("wan0", &["10.0.0.1/30"], &["10.0.0.0/9"])];
        let avoid = k3s();
        let mut k = inputs("10.0.0.0/30", &light, &[], &pools, &avoid);
        k.home = n("10.0.0.0/30");
        let to = moved_to(&decide(&k));
        assert_valid_choice(&k, to);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn check_forced_cases() {
        let ups = [uplink("wan0", &["192.168.1.57/24"], &["10.0.0.0/8"])];
        let others = [other("tun0", "172.20.0.0/16")];
        let pools = rfc1918();
        let avoid = k3s();
        let i = inputs("192.168.1.0/24", &ups, &others, &pools, &avoid);
        let cases: [(&str, Result<(), &str>); 9] = [
            ("172.21.8.0/24", Ok(())),
            ("100.64.3.0/24", Ok(())), // outside the pools: the user asked for it
            (
                "10.9.8.0/25",
                Err("10.9.8.0/25 has length 25, the LAN needs /24"),
            ),
            (
                "172.21.8.1/24",
                Err("172.21.8.1/24 is not a prefix; did you mean 172.21.8.0/24?"),
            ),
            (
                "10.9.8.0/24",
                Err("10.9.8.0/24 collides with route 10.0.0.0/8 via wan0"),
            ),
            (
                "192.168.1.0/24",
                Err("192.168.1.0/24 collides with wan0 address 192.168.1.57/24"),
            ),
            (
                "172.20.5.0/24",
                Err("172.20.5.0/24 collides with tun0 prefix 172.20.0.0/16"),
            ),
            (
                "10.42.7.0/24",
                Err("10.42.7.0/24 collides with route 10.0.0.0/8 via wan0"),
            ),
            ("192.168.42.0/24", Ok(())),
        ];
        for (prefix, want) in cases {
            let got = check_forced(n(prefix), &i);
            assert_eq!(got, want.map_err(str::to_string), "{prefix}");
        }
        // Avoid, with nothing else in the way.
        let ups = [uplink("wan0", &["192.168.1.57/24"], &[])];
        let j = inputs("192.168.1.0/24", &ups, &[], &pools, &avoid);
        assert_eq!(
            check_forced(n("10.43.0.0/24"), &j),
            Err("10.43.0.0/24 overlaps avoid 10.43.0.0/16".to_string())
        );
    }

    #[test]
    fn map_host_cases() {
        let cases: [(&str, &str, &str, Option<&str>); 6] = [
            (
                "192.168.1.100",
                "192.168.1.0/24",
                "10.23.4.0/24",
                Some("10.23.4.100"),
            ),
            (
                "192.168.1.1",
                "192.168.1.0/24",
                "172.16.9.0/24",
                Some("172.16.9.1"),
            ),
            ("10.0.1.7", "10.0.0.0/23", "10.8.2.0/23", Some("10.8.3.7")),
            ("192.168.2.100", "192.168.1.0/24", "10.23.4.0/24", None),
            ("192.168.1.100", "192.168.1.0/24", "10.23.4.0/25", None),
            (
                "192.168.1.100",
                "192.168.1.0/24",
                "192.168.1.0/24",
                Some("192.168.1.100"),
            ),
        ];
        for (addr, from, to, want) in cases {
            assert_eq!(
                map_host(ip(addr), n(from), n(to)),
                want.map(ip),
                "{addr} {from} -> {to}"
            );
        }
    }
}
