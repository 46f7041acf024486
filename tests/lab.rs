//! Network-namespace integration tests (see tests/common/mod.rs).
//! Run as root: `cargo test --test lab`. Without root they print SKIP (and
//! fail under CI=true).

mod common;

use common::*;
use std::path::Path;
use std::time::Instant;

/// The harness alone, without roadie: lease, reachability, renumbering,
/// teardown.
#[test]
fn lab_smoke() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    let setup = t0.elapsed();
    let lease = lab.wait_lease("10.66.0.0/24");
    assert!(lease.ends_with("/24"), "{lease}");
    let dsts = lab.route_dsts("wan0");
    assert!(
        dsts.contains(&"default".to_string()),
        "no default route: {dsts:?}"
    );
    lab.assert_reachable("192.168.1.100");

    let t1 = Instant::now();
    lab.renumber("10.77.0.254/24", "10.77.0.50", "10.77.0.150");
    let lease = lab.wait_lease("10.77.0.0/24");
    let renumber = t1.elapsed();
    assert_eq!(lab.addrs(&lab.rtr, "wan0"), vec![lease.clone()]);
    let default: Vec<_> = lab
        .routes(&lab.rtr, "wan0")
        .into_iter()
        .filter(|r| r["dst"] == "default")
        .collect();
    assert_eq!(default.len(), 1, "{default:?}");
    assert_eq!(default[0]["gateway"], "10.77.0.254");

    let pids = lab.pids();
    let names = [lab.up.clone(), lab.rtr.clone(), lab.cl.clone()];
    let dir = lab.dir.clone();
    let t2 = Instant::now();
    drop(lab);
    let teardown = t2.elapsed();
    for ns in &names {
        assert!(
            !Path::new("/var/run/netns").join(ns).exists(),
            "{ns} left behind"
        );
        assert!(
            !Path::new("/etc/netns").join(ns).exists(),
            "/etc/netns/{ns} left behind"
        );
    }
    for pid in pids {
        assert!(!alive(pid), "process {pid} still running after teardown");
    }
    assert!(!dir.exists(), "{} left behind", dir.display());
    eprintln!("lab_smoke: setup {setup:?}, renumber {renumber:?}, teardown {teardown:?}");
}
