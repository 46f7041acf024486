//! Arbitrary uplink snapshots through the planner: it never panics, and a
//! move never lands on anything it must avoid.
#![no_main]
use ipnet::Ipv4Net;
use libfuzzer_sys::fuzz_target;
use roadie::plan::{self, Decision, Inputs, Other, Uplink};
use std::net::Ipv4Addr;

/// Reads prefixes out of the fuzzer's bytes, 5 bytes each.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn net(&mut self, min_len: u8) -> Option<Ipv4Net> {
        let a = [self.byte()?, self.byte()?, self.byte()?, self.byte()?];
        let len = min_len + self.byte()? % (33 - min_len);
        Ipv4Net::new(Ipv4Addr::from(a), len).ok()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let (Some(home), Some(seed)) = (b.net(8), b.byte()) else { return };
    let home = Ipv4Net::new(home.addr(), home.prefix_len().min(30)).unwrap().trunc();
    let return_home = seed & 1 == 1;
    let mut uplinks = vec![Uplink { interface: "wan0".into(), up: true, ..Uplink::default() }];
    let mut others = Vec::new();
    let mut pools = Vec::new();
    let mut avoid = Vec::new();
    while let (Some(kind), Some(n)) = (b.byte(), b.net(0)) {
        match kind % 5 {
            0 => uplinks[0].addresses.push(n),
            1 => uplinks[0].routes.push(n),
            2 => others.push(Other { interface: "tun0".into(), prefix: n.trunc() }),
            3 => pools.push(n.trunc()),
            _ => avoid.push(n.trunc()),
        }
    }
    if pools.is_empty() {
        pools = vec!["10.0.0.0/8".parse().unwrap()];
    }
    let inputs = Inputs {
        home,
        current: home,
        uplinks: &uplinks,
        others: &others,
        pools: &pools,
        avoid: &avoid,
        return_home,
        seed: u64::from(seed),
    };
    if let Decision::Move { to, .. } = plan::decide(&inputs) {
        assert_eq!(to.prefix_len(), home.prefix_len());
        assert!(plan::collisions(to, &uplinks, &others).is_empty(), "{to} collides");
        assert!(!avoid.iter().any(|a| plan::overlaps(*a, to)), "{to} in avoid");
        assert!(to == home || pools.iter().any(|p| p.contains(&to)), "{to} outside pools");
    }
});
