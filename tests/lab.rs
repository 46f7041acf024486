//! Network-namespace integration tests (see tests/common/mod.rs).
//! Run as root: `cargo test --test lab`. Without root they print SKIP (and
//! fail under CI=true).

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

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
    if std::env::var_os("ROADIE_LAB_KEEP").is_none() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    eprintln!("lab_smoke: setup {setup:?}, renumber {renumber:?}, teardown {teardown:?}");
}

// ---------------------------------------------------------------------------
// Helpers shared by the scenarios

const HOME: &str = "192.168.1.0/24";

/// The router's host offset in its home prefix (…`.1`).
fn router_offset(lab: &Lab) -> u32 {
    let a = net(&lab.opts.lan_address);
    u32::from(a.addr()) - u32::from(a.network())
}

/// The router's LAN address (with length) once the LAN is in `prefix`.
fn lan_address_in(lab: &Lab, prefix: &str) -> String {
    format!(
        "{}/{}",
        host_in(prefix, router_offset(lab)),
        net(prefix).prefix_len()
    )
}

fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (net(a).trunc(), net(b).trunc());
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Waits until roadie has moved the LAN away from `old` and is idle with
/// its hook reported; returns that status.
fn wait_moved(lab: &Lab, old: &str) -> serde_json::Value {
    lab.daemon.wait_status(
        &format!("roadie to move the LAN away from {old} (idle, hook reported)"),
        LONG,
        |s| !settling(s) && lan_prefix(s) != old && !s["lan"]["hook"].is_null(),
    )
}

/// Everything that must hold after exactly one move from `old`: kernel
/// state, the hook's run, the node's reachability, status and state file.
/// Returns the new prefix.
fn assert_moved_once(lab: &Lab, s: &serde_json::Value, old: &str) -> String {
    let new = lan_prefix(s);
    assert_ne!(new, old);
    assert_eq!(new, prefix_of(&new), "lan.prefix is not a network: {new}");
    let lan_addr = lan_address_in(lab, &new);
    assert_eq!(s["lan"]["address"], lan_addr.as_str(), "status: {s}");
    assert_eq!(s["lan"]["home"], prefix_of(&lab.opts.lan_address).as_str());
    assert!(
        s["lan"]["collision"].is_null(),
        "collision after the move: {s}"
    );
    assert!(s["lan"]["problem"].is_null(), "problem after the move: {s}");
    for w in s["wan"].as_array().unwrap() {
        for a in w["addresses"].as_array().unwrap() {
            let a = a.as_str().unwrap();
            assert!(!overlaps(a, &new), "new LAN {new} overlaps WAN {a}");
        }
    }

    // The kernel: one address, the connected route moved with it.
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec![lan_addr.clone()]);
    let dsts = lab.route_dsts("lan0");
    assert!(dsts.contains(&new), "no route for {new} on lan0: {dsts:?}");
    assert!(
        !dsts.contains(&old.to_string()),
        "route for {old} still on lan0: {dsts:?}"
    );

    // The hook: once, with the right environment, and it succeeded.
    let runs = lab.hook_runs();
    assert_eq!(runs.len(), 1, "hook runs: {runs:?}");
    let run = &runs[0];
    assert_eq!(run.old, old);
    assert_eq!(run.new, new);
    assert_eq!(run.lan, lan_addr);
    assert!(!run.reason.trim().is_empty(), "empty ROADIE_REASON");
    assert_eq!(s["lan"]["hook"]["ok"], true, "hook: {}", s["lan"]["hook"]);

    // The node followed, at its offset.
    lab.assert_reachable(&lab.node_in(&new));

    // History in status and in the state file.
    let h = s["lan"]["history"].as_array().unwrap();
    assert_eq!(h.len(), 1, "history: {h:?}");
    assert_eq!(h[0]["from"], old);
    assert_eq!(h[0]["to"], new.as_str());
    assert!(
        h[0]["at"].as_u64().unwrap_or(0) > 1_600_000_000,
        "at: {}",
        h[0]["at"]
    );
    let st = lab.state_file();
    assert_eq!(
        st.get("prefix").and_then(|v| v.as_str()),
        Some(new.as_str()),
        "state: {st}"
    );
    let sh = st
        .get("history")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    assert_eq!(sh, 1, "state history: {st}");
    new
}

/// Upstream moves into the LAN's home /24; roadie must move the LAN.
fn collide_upstream(lab: &mut Lab) -> String {
    lab.renumber("192.168.1.254/24", "192.168.1.200", "192.168.1.240");
    let lease = lab.wait_lease(HOME);
    let s = wait_moved(lab, HOME);
    let w = wan(&s, "wan0");
    assert_eq!(w["addresses"], serde_json::json!([lease]), "status: {s}");
    assert_eq!(w["gateway"], "192.168.1.254");
    assert_moved_once(lab, &s, HOME)
}

/// After a change: wait until roadie settled and evaluated, assert it was
/// exactly one evaluation (also a little later). Returns the status.
fn expect_one_evaluation(lab: &Lab, before: u64, what: &str) -> serde_json::Value {
    expect_evaluations(lab, before, 1, what)
}

/// Like [`expect_one_evaluation`], allowing up to `max` evaluations.
fn expect_evaluations(lab: &Lab, before: u64, max: u64, what: &str) -> serde_json::Value {
    let s = lab
        .daemon
        .wait_status(&format!("an evaluation after {what}"), LONG, |s| {
            !settling(s) && evaluations(s) > before
        });
    let got = evaluations(&s) - before;
    assert!(
        got <= max,
        "{what}: {got} evaluations, expected at most {max}"
    );
    std::thread::sleep(Duration::from_millis(lab.opts.settle_ms + 250));
    let later = lab.status();
    let got = evaluations(&later) - before;
    assert!(
        got <= max,
        "{what}: late extra evaluations ({got}, expected at most {max})"
    );
    assert!(!settling(&later));
    later
}

/// Sends `sig`; roadie must exit cleanly within 2 s. Returns how long it took.
fn stops_within_2s(lab: &mut Lab, sig: libc::c_int) -> Duration {
    let (took, status) = lab.stop_daemon(sig);
    assert!(took < Duration::from_secs(2), "signal {sig}: took {took:?}");
    assert!(
        status.success(),
        "roadie exited with {status} on signal {sig}"
    );
    took
}

fn elapsed(name: &str, t0: Instant) {
    eprintln!("{name}: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------------
// Scenarios

/// a) A lease that does not collide: nothing moves; status shows the lease.
#[test]
fn a_no_collision_nothing_moves() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let lease = lab.wait_lease("10.66.0.0/24");
    let s = lab.status();
    assert_eq!(s["lan"]["interface"], "lan0");
    assert_eq!(s["lan"]["prefix"], HOME);
    assert_eq!(s["lan"]["home"], HOME);
    assert_eq!(s["lan"]["address"], "192.168.1.1/24");
    assert_eq!(history_len(&s), 0, "{s}");
    assert!(s["lan"]["collision"].is_null(), "{s}");
    assert!(s["lan"]["problem"].is_null(), "{s}");
    assert!(s["lan"]["hook"].is_null(), "{s}");
    assert!(s["version"].is_string() && s["uptime_s"].is_u64(), "{s}");
    assert!(s["tunnels"].is_array(), "{s}");
    let w = wan(&s, "wan0");
    assert_eq!(w["up"], true);
    assert_eq!(w["addresses"], serde_json::json!([lease]));
    assert_eq!(w["gateway"], "10.66.0.254");

    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["192.168.1.1/24"]);
    assert!(lab.route_dsts("lan0").contains(&HOME.to_string()));
    lab.assert_reachable("192.168.1.100");
    assert!(lab.hook_runs().is_empty());

    // `status --json` is the same object as `call status`.
    let out = lab.daemon.cli(&["status", "--json"]);
    assert!(out.status.success(), "status --json: {out:?}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(j["lan"]["prefix"], s["lan"]["prefix"]);
    assert_eq!(j["wan"], s["wan"]);
    let out = lab.daemon.cli(&["status"]);
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "status: {out:?}"
    );
    let out = lab.daemon.cli(&["list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "list: {out:?}");
    for m in ["status", "reload", "readdress"] {
        assert!(list.contains(m), "`roadie list` lacks {m}: {list}");
    }

    // SIGINT stops it cleanly too, within 2 s.
    let mut lab = lab;
    stops_within_2s(&mut lab, libc::SIGINT);
    elapsed("a_no_collision_nothing_moves", t0);
}

/// b) Upstream renumbers into the LAN's /24: the LAN moves, once.
#[test]
fn b_upstream_collision_moves_lan() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let new = collide_upstream(&mut lab);
    assert!(!overlaps(&new, HOME));
    // Nothing else happens afterwards.
    std::thread::sleep(Duration::from_millis(lab.opts.settle_ms + 250));
    let s = lab.status();
    assert_eq!(lan_prefix(&s), new);
    assert_eq!(history_len(&s), 1);
    assert_eq!(lab.hook_runs().len(), 1);
    elapsed("b_upstream_collision_moves_lan", t0);
}

/// c) After a move, a restart keeps the prefix and moves nothing.
#[test]
fn c_restart_keeps_prefix() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let new = collide_upstream(&mut lab);
    stops_within_2s(&mut lab, libc::SIGTERM);

    lab.start_daemon();
    let s = lab.wait_ready();
    assert_eq!(lan_prefix(&s), new, "{s}");
    assert_eq!(s["lan"]["address"], lan_address_in(&lab, &new).as_str());
    assert_eq!(history_len(&s), 1, "{s}");
    assert_eq!(lab.hook_runs().len(), 1, "the hook ran again");
    assert_eq!(
        lab.addrs(&lab.rtr, "lan0"),
        vec![lan_address_in(&lab, &new)]
    );
    let st = lab.state_file();
    assert_eq!(
        st.get("prefix").and_then(|v| v.as_str()),
        Some(new.as_str())
    );
    lab.assert_reachable(&lab.node_in(&new));
    elapsed("c_restart_keeps_prefix", t0);
}

fn wide_upstream_opts(pools: &[&str]) -> LabOpts {
    LabOpts {
        lan_address: "10.1.2.1/24".into(),
        node: "10.1.2.100".into(),
        upstream: "10.0.0.1/8".into(),
        range: ("10.0.0.50".into(), "10.0.0.150".into()),
        pools: Some(pools.iter().map(|p| p.to_string()).collect()),
        ..LabOpts::default()
    }
}

/// d) Upstream hands out 10.0.0.0/8 over a 10.x LAN: the new prefix comes
/// from the next pool.
#[test]
fn d_wide_upstream_uses_next_pool() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(wide_upstream_opts(&["10.0.0.0/8", "172.16.0.0/12"])) else {
        return;
    };
    let s = wait_moved(&lab, "10.1.2.0/24");
    let new = assert_moved_once(&lab, &s, "10.1.2.0/24");
    assert!(
        net("172.16.0.0/12").contains(&net(&new).network()),
        "{new} is not from 172.16.0.0/12"
    );
    elapsed("d_wide_upstream_uses_next_pool", t0);
}

/// d') Every pool is covered by the uplink: roadie reports the problem and
/// leaves the LAN alone.
#[test]
fn d_no_free_prefix_reports_problem() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(wide_upstream_opts(&["10.0.0.0/8"])) else {
        return;
    };
    let s = lab
        .daemon
        .wait_status("lan.problem to be reported", LONG, |s| {
            !settling(s) && s["lan"]["problem"].is_string()
        });
    let problem = s["lan"]["problem"].as_str().unwrap();
    assert!(problem.contains("no free prefix"), "problem: {problem}");
    assert!(
        !s["lan"]["collision"].is_null(),
        "no collision reported: {s}"
    );
    assert_eq!(lan_prefix(&s), "10.1.2.0/24");
    assert_eq!(s["lan"]["address"], "10.1.2.1/24");
    assert_eq!(history_len(&s), 0);
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["10.1.2.1/24"]);
    assert!(lab.hook_runs().is_empty());
    lab.assert_daemon_alive();
    let s = lab.status();
    assert_eq!(lan_prefix(&s), "10.1.2.0/24");
    // The /24 on lan0 is more specific than the uplink's /8.
    lab.assert_reachable("10.1.2.100");
    elapsed("d_no_free_prefix_reports_problem", t0);
}

/// e) Uplink changes that do not collide: exactly one evaluation each.
#[test]
fn e_uplink_changes_evaluate_once() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts {
        settle_ms: 500,
        ..LabOpts::default()
    }) else {
        return;
    };
    let mut n = evaluations(&lab.wait_idle(1));

    // Carrier loss (the cable is pulled at the far end).
    let up = lab.up.clone();
    lab.ip(&up, &["link", "set", "up0", "down"]);
    let s = expect_one_evaluation(&lab, n, "carrier loss");
    assert_eq!(wan(&s, "wan0")["up"], false, "wan0 without carrier: {s}");
    n = evaluations(&s);

    lab.ip(&up, &["link", "set", "up0", "up"]);
    let s = expect_one_evaluation(&lab, n, "carrier back");
    assert_eq!(wan(&s, "wan0")["up"], true, "wan0 with carrier: {s}");
    n = evaluations(&s);

    // A new lease in another, non-colliding network.
    lab.renumber("10.88.0.254/24", "10.88.0.50", "10.88.0.150");
    let lease = lab.wait_lease("10.88.0.0/24");
    let s = expect_one_evaluation(&lab, n, "a lease change");
    let w = wan(&s, "wan0");
    assert_eq!(w["addresses"], serde_json::json!([lease]), "{s}");
    assert_eq!(w["gateway"], "10.88.0.254");

    assert_eq!(lan_prefix(&s), HOME);
    assert_eq!(history_len(&s), 0);
    assert!(lab.hook_runs().is_empty());
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["192.168.1.1/24"]);
    elapsed("e_uplink_changes_evaluate_once", t0);
}

/// e') The router's own uplink taken down and up (admin), then a renew that
/// restores the default route: one evaluation each, and status follows
/// the kernel (no stale gateway while the link is down).
#[test]
fn e_admin_down_up_evaluates_once() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(LabOpts {
        settle_ms: 500,
        ..LabOpts::default()
    }) else {
        return;
    };
    let lease = lab.wait_lease("10.66.0.0/24");
    let mut n = evaluations(&lab.wait_idle(1));
    let rtr = lab.rtr.clone();

    lab.ip(&rtr, &["link", "set", "wan0", "down"]);
    let s = expect_one_evaluation(&lab, n, "wan0 set down");
    let w = wan(&s, "wan0");
    assert_eq!(w["up"], false, "wan0 down: {s}");
    // The kernel dropped the default route with the link (silently: no
    // RTM_DELROUTE); status must not keep a stale gateway.
    assert!(!lab.route_dsts("wan0").contains(&"default".to_string()));
    assert!(w["gateway"].is_null(), "stale gateway with wan0 down: {s}");
    n = evaluations(&s);

    // Admin up is two kernel events: IFF_UP (and the connected route) at
    // once, the carrier (IFF_RUNNING) through linkwatch, which may hold it
    // back up to 1 s (seen: 480 ms and more than settle_ms). Quiet time
    // cannot join them, so roadie may evaluate once or twice here.
    lab.ip(&rtr, &["link", "set", "wan0", "up"]);
    wait_until("wan0 operstate UP", SHORT, || {
        lab.ip(&rtr, &["-j", "link", "show", "dev", "wan0"])
            .contains("\"operstate\":\"UP\"")
    });
    let s = expect_evaluations(&lab, n, 2, "wan0 set up");
    let w = wan(&s, "wan0");
    assert_eq!(w["up"], true, "wan0 up: {s}");
    assert_eq!(w["addresses"], serde_json::json!([lease]), "{s}");
    n = evaluations(&s);

    // udhcpc renews (same lease) and its script puts the default route back.
    signal(lab.udhcpc_pid(), libc::SIGUSR1);
    wait_until("the default route back on wan0", SHORT, || {
        lab.route_dsts("wan0").contains(&"default".to_string())
    });
    let s = expect_one_evaluation(&lab, n, "the renew");
    assert_eq!(wan(&s, "wan0")["gateway"], "10.66.0.254", "{s}");

    assert_eq!(lan_prefix(&s), HOME);
    assert_eq!(history_len(&s), 0);
    assert!(lab.hook_runs().is_empty());
    elapsed("e_admin_down_up_evaluates_once", t0);
}

/// f) A forced prefix moves the LAN; a forced colliding one is refused.
#[test]
fn f_forced_readdress() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let r = lab
        .daemon
        .call("readdress", serde_json::json!({"prefix": "10.9.8.0/24"}))
        .expect("readdress to 10.9.8.0/24");
    assert_eq!(r["to"], "10.9.8.0/24", "reply: {r}");
    let s = wait_moved(&lab, HOME);
    let new = assert_moved_once(&lab, &s, HOME);
    assert_eq!(new, "10.9.8.0/24");

    // Into the uplink's network: refused, naming the collision.
    let err = lab
        .daemon
        .call("readdress", serde_json::json!({"prefix": "10.66.0.0/24"}))
        .expect_err("a prefix that collides with the uplink must be refused");
    eprintln!("f: colliding readdress refused: {err}");
    assert!(
        err.contains("10.66.0.") || err.contains("wan0"),
        "error does not name the collision: {err}"
    );
    // Re-evaluation with nothing colliding: no move.
    lab.daemon
        .call("readdress", serde_json::json!({}))
        .expect("readdress {}");
    let s = lab.wait_idle(1);
    assert_eq!(lan_prefix(&s), "10.9.8.0/24");
    assert_eq!(history_len(&s), 1);
    assert_eq!(lab.hook_runs().len(), 1);
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["10.9.8.1/24"]);
    lab.assert_reachable("10.9.8.100");
    elapsed("f_forced_readdress", t0);
}

/// g) Bad control requests, many clients, bad reloads.
#[test]
fn g_control_robustness() {
    let t0 = Instant::now();
    let Some(lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let mut oversized = br#"{"method":"status","params":{}}"#.to_vec();
    oversized.extend(std::iter::repeat_n(b' ', 70 * 1024));
    oversized.push(b'\n');
    let no_newline = vec![b'x'; 1024 * 1024];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed JSON", b"{\"method\": \"status\",\n".to_vec()),
        ("not an object", b"[1,2,3]\n".to_vec()),
        ("no method", b"{\"params\":{}}\n".to_vec()),
        (
            "unknown method",
            b"{\"method\":\"frobnicate\",\"params\":{}}\n".to_vec(),
        ),
        ("oversized line (valid JSON + 70 KiB of spaces)", oversized),
        ("1 MiB without a newline", no_newline),
        (
            "prefix of the wrong type",
            b"{\"method\":\"readdress\",\"params\":{\"prefix\":42}}\n".to_vec(),
        ),
        (
            "params of the wrong type",
            b"{\"method\":\"readdress\",\"params\":\"10.9.8.0/24\"}\n".to_vec(),
        ),
        (
            "prefix that is no prefix",
            b"{\"method\":\"readdress\",\"params\":{\"prefix\":\"10.9.8.0/33\"}}\n".to_vec(),
        ),
        ("invalid UTF-8", b"{\"method\":\"st\xffatus\"}\n".to_vec()),
    ];
    for (what, bytes) in &cases {
        let line = lab
            .daemon
            .raw(bytes)
            .unwrap_or_else(|e| panic!("{what}: no reply ({e})"));
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{what}: reply is not JSON ({e}): {line:?}"));
        assert!(v.get("result").is_none(), "{what}: got a result: {line}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        eprintln!("g: {what}: {msg}");
        assert!(!msg.is_empty(), "{what}: no error message: {line}");
        lab.assert_daemon_alive();
    }
    // Nothing moved, and it still serves.
    let s = lab.status();
    assert_eq!(lan_prefix(&s), HOME);

    // Many clients at once, while one idle connection and one half-written
    // request hang around.
    let idle = std::os::unix::net::UnixStream::connect(&lab.sock).expect("connect");
    let mut half = std::os::unix::net::UnixStream::connect(&lab.sock).expect("connect");
    std::io::Write::write_all(&mut half, br#"{"method":"sta"#).unwrap();
    let t = Instant::now();
    std::thread::scope(|sc| {
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let lab = &lab;
                sc.spawn(move || {
                    let s = lab
                        .daemon
                        .rpc("status", serde_json::json!({}))
                        .unwrap_or_else(|e| panic!("client {i}: {e}"));
                    assert_eq!(s["lan"]["prefix"], HOME, "client {i}");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    eprintln!("g: 20 concurrent status calls took {:?}", t.elapsed());
    drop((idle, half));

    // An invalid config: reload is refused naming file:line:col, the old
    // config stays.
    let good = lab.config_text();
    let bad = good.replace(
        "address = \"192.168.1.1/24\"",
        "address = \"192.168.5.1/24\"\nbogus_key = 1",
    );
    let line = bad
        .lines()
        .position(|l| l.starts_with("bogus_key"))
        .unwrap()
        + 1;
    lab.write_config(&bad);
    let err = lab
        .daemon
        .call("reload", serde_json::json!({}))
        .expect_err("reload of an invalid config must fail");
    eprintln!("g: reload refused: {err}");
    let at = format!("roadie.toml:{line}:");
    let pos = err
        .find(&at)
        .unwrap_or_else(|| panic!("reload error does not name {at}<col>: {err}"));
    assert!(
        err[pos + at.len()..].starts_with(|c: char| c.is_ascii_digit()),
        "no column in: {err}"
    );
    let s = lab.status();
    assert_eq!(s["lan"]["home"], HOME, "the bad config was applied: {s}");
    assert_eq!(s["lan"]["address"], "192.168.1.1/24");

    // SIGHUP with the bad config: still alive, still the old config.
    let reloads = s["config"]["reloads"].as_u64().expect("config.reloads");
    assert!(
        s["config"]["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains(&at)),
        "{s}"
    );
    signal(lab.daemon_pid(), libc::SIGHUP);
    let s = lab
        .daemon
        .wait_status("the SIGHUP reload to be refused", LONG, |s| {
            s["config"]["reloads"].as_u64() == Some(reloads + 1)
        });
    lab.assert_daemon_alive();
    assert!(
        s["config"]["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains(&at)),
        "{s}"
    );
    assert_eq!(s["lan"]["home"], HOME, "the bad config was applied: {s}");
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["192.168.1.1/24"]);

    // A good config reloads fine.
    lab.write_config(&good);
    lab.daemon
        .call("reload", serde_json::json!({}))
        .expect("reload of the good config");
    lab.assert_daemon_alive();
    let s = lab.status();
    assert!(s["config"]["reload_error"].is_null(), "{s}");
    elapsed("g_control_robustness", t0);
}

/// Without a daemon the client fails with exit 1 and a plain message.
#[test]
fn cli_without_daemon_exits_1() {
    for args in [
        &["-s", "/nonexistent.sock", "status"][..],
        &["-s", "/nonexistent.sock", "status", "--json"][..],
        &["-s", "/nonexistent.sock", "call", "status"][..],
    ] {
        let out = run_with(std::process::Command::new(ROADIE).args(args), None, SHORT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "roadie {args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "roadie {args:?} printed: {out:?}");
        assert!(!err.trim().is_empty(), "roadie {args:?}: no message");
        assert!(!err.contains("panicked"), "roadie {args:?} panicked: {err}");
        assert!(
            err.trim().lines().count() <= 2,
            "not a plain message: {err}"
        );
    }
}

/// h) With return_home, the LAN goes back home once the uplink leaves it.
#[test]
fn h_return_home() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts {
        return_home: Some(true),
        ..LabOpts::default()
    }) else {
        return;
    };
    let away = collide_upstream(&mut lab);
    lab.renumber("10.66.0.254/24", "10.66.0.50", "10.66.0.150");
    lab.wait_lease("10.66.0.0/24");
    let s = lab.daemon.wait_status("roadie to return home", LONG, |s| {
        !settling(s) && lan_prefix(s) == HOME && history_len(s) == 2
    });
    assert_eq!(s["lan"]["address"], "192.168.1.1/24");
    let h = &s["lan"]["history"][1];
    assert_eq!(h["from"], away.as_str());
    assert_eq!(h["to"], HOME);
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec!["192.168.1.1/24"]);
    let dsts = lab.route_dsts("lan0");
    assert!(
        !dsts.contains(&away),
        "route for {away} still on lan0: {dsts:?}"
    );
    wait_until("the hook's second run", SHORT, || {
        lab.hook_runs().len() >= 2
    });
    let runs = lab.hook_runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1].old, away);
    assert_eq!(runs[1].new, HOME);
    assert_eq!(runs[1].lan, "192.168.1.1/24");
    lab.assert_reachable("192.168.1.100");
    // The state file says home: no prefix (absent means home) or the home one.
    let st = lab.state_file();
    let p = st.get("prefix").and_then(|v| v.as_str());
    assert!(p.is_none() || p == Some(HOME), "state prefix {p:?}: {st}");
    let sh = st
        .get("history")
        .and_then(|v| v.as_array())
        .map_or(0, Vec::len);
    assert_eq!(sh, 2, "state history: {st}");
    elapsed("h_return_home", t0);
}

/// Without return_home (the default) the LAN stays where it went.
#[test]
fn h_stays_away_by_default() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    let away = collide_upstream(&mut lab);
    let n = evaluations(&lab.status());
    lab.renumber("10.66.0.254/24", "10.66.0.50", "10.66.0.150");
    lab.wait_lease("10.66.0.0/24");
    let s = lab
        .daemon
        .wait_status("an evaluation after the uplink left", LONG, |s| {
            !settling(s) && evaluations(s) > n
        });
    assert_eq!(lan_prefix(&s), away);
    assert_eq!(history_len(&s), 1);
    assert_eq!(lab.hook_runs().len(), 1);
    lab.assert_reachable(&lab.node_in(&away));
    elapsed("h_stays_away_by_default", t0);
}

// ---------------------------------------------------------------------------
// A tunnel through the real pieces: udhcpc leases, OpenSSH's sshd upstream

fn reconnects(s: &serde_json::Value) -> u64 {
    tunnel0(s)["reconnects"].as_u64().unwrap_or(0)
}

/// How long a renumbered router may take to serve through its tunnel again.
/// The old session's forward still holds 0.0.0.0:18080 on the server until
/// sshd gives up on it: OpenSSH 9.2 probes only after a quiet poll and
/// more than `ClientAliveInterval` whole seconds after the last probe
/// (every ~2 s here) and gives up at the third, so ~6 s after the old path
/// died. roadie re-requests the refused forward at 0.25-0.5, 0.5-1, 1-2,
/// 2-4, 4-8 s, so the retry that finds the port free can come up to 8 s
/// after that: ~14 s at worst, hence 20. Measured: 5.7-6.8 s, or 10.5-12.7 s
/// when the fourth retry came just before sshd let go.
const RENUMBER_BOUND: Duration = Duration::from_secs(20);

/// Waits until the tunnel is `up` again on a new session (`reconnects`
/// above `before`) and `pred` holds, then until curl in `up` gets the page
/// through it. Returns the status and both times from `t0`.
fn wait_tunnel_back(
    lab: &Lab,
    url: &str,
    before: u64,
    t0: Instant,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Duration, Duration) {
    // Status first (over the control socket), curl after: curl at the
    // stale forward keeps the old session's sshd busy, and sshd probes a
    // client only after a quiet poll.
    let s = lab.daemon.wait_status(
        &format!("tunnel ui up again (reconnects > {before})"),
        RENUMBER_BOUND + SHORT,
        |s| reconnects(s) > before && tunnel0(s)["state"] == "up" && pred(s),
    );
    let up = t0.elapsed();
    wait_until(
        &format!("the page through the tunnel ({url})"),
        SHORT,
        || lab.curl_page(&lab.up, url),
    );
    (s, up, t0.elapsed())
}

/// How many requests python's http.server on the node logged from `ip`.
fn node_gets_from(lab: &Lab, ip: &str) -> usize {
    lab.read_log("http.log")
        .lines()
        .filter(|l| l.starts_with(&format!("{ip} - ")) && l.contains("\"GET / "))
        .count()
}

/// t) A reverse tunnel (roadie -> sshd upstream, `0.0.0.0:18080` ->
/// `master:8080`), end to end with real components: it comes up on the
/// first lease; upstream renumbers by DHCP and the page comes through the
/// tunnel again; upstream renumbers into the LAN's prefix, roadie moves the
/// LAN, the hook moves the node, and the tunnel reaches the node at its
/// new address.
#[test]
fn t_tunnel_through_dhcp_renumber_and_collision() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::with_sshd() else {
        return;
    };
    let cfg = lab.config_text() + &lab.hotel_tunnel_config();
    lab.write_config(&cfg);
    lab.start_daemon();
    lab.wait_ready();
    let url = format!("http://{SSHD_ADDR}:18080/");
    let through_tunnel = |lab: &Lab| lab.curl_page(&lab.up, &url);

    // a) First lease: the tunnel comes up and carries the page.
    let s = lab
        .daemon
        .wait_status("tunnel ui up", LONG, |s| tunnel0(s)["state"] == "up");
    let t = tunnel0(&s);
    assert_eq!(t["name"], "ui", "{s}");
    assert_eq!(t["server"], "hotel", "{s}");
    assert_eq!(t["remote"], "0.0.0.0:18080", "{s}");
    assert_eq!(t["target"], "192.168.1.100:8080", "{s}");
    wait_until("the page through the tunnel (first lease)", SHORT, || {
        through_tunnel(&lab)
    });
    assert!(
        std::fs::read_to_string(lab.dir.join("known_hosts")).is_ok_and(|k| k.contains(SSHD_ADDR)),
        "sshd's host key was not learned"
    );
    let before = reconnects(&lab.status());
    eprintln!("t: a) tunnel up and serving after {:?}", t0.elapsed());

    // b) Upstream renumbers (DHCP, no collision): the page comes through
    // the tunnel again, on a new session.
    lab.renumber("10.77.0.254/24", "10.77.0.50", "10.77.0.150");
    let lease = lab.wait_lease("10.77.0.0/24");
    let t1 = Instant::now();
    let (s, up, renumbered) = wait_tunnel_back(&lab, &url, before, t1, |_| true);
    let t = tunnel0(&s);
    eprintln!(
        "t: b) renumbered: lease {lease} -> tunnel up after {up:?}, page through it after \
         {renumbered:?} (reconnects {before} -> {}, last_error {})",
        reconnects(&s),
        t["last_error"]
    );
    assert_eq!(t["target"], "192.168.1.100:8080", "{s}");
    assert_eq!(
        lan_prefix(&s),
        HOME,
        "the LAN moved without a collision: {s}"
    );
    assert!(
        renumbered < RENUMBER_BOUND,
        "renumber: page after {renumbered:?}"
    );
    let before = reconnects(&s);

    // c) Upstream renumbers into the LAN's prefix: the LAN moves, the hook
    // moves the node, the tunnel's target follows.
    lab.renumber("192.168.1.254/24", "192.168.1.200", "192.168.1.240");
    let lease = lab.wait_lease(HOME);
    let t2 = Instant::now();
    let s = wait_moved(&lab, HOME);
    let moved = t2.elapsed();
    let new = lan_prefix(&s);
    let node = lab.node_in(&new);
    let router = host_in(&new, router_offset(&lab)).to_string();
    let target = format!("{node}:8080");
    let gets = node_gets_from(&lab, &router);
    let (s, up, serving) = wait_tunnel_back(&lab, &url, before, t2, |s| {
        tunnel0(s)["target"] == target.as_str()
    });
    let t = tunnel0(&s);
    eprintln!(
        "t: c) collision: lease {lease}, LAN {HOME} -> {new} after {moved:?}, tunnel up \
         (target {target}) after {up:?}, page through it after {serving:?} \
         (reconnects {before} -> {}, last_error {})",
        reconnects(&s),
        t["last_error"]
    );
    // The page came from the node at its new address (it has no other),
    // fetched by roadie from the router's new LAN address.
    assert_eq!(lab.addrs(&lab.cl, "eth0"), vec![format!("{node}/24")]);
    assert!(
        node_gets_from(&lab, &router) > gets,
        "the node logged no request from {router}:\n{}",
        lab.read_log("http.log")
    );
    assert!(
        serving < RENUMBER_BOUND,
        "collision: page after {serving:?}"
    );
    assert_moved_once(&lab, &s, HOME);
    assert!(through_tunnel(&lab), "the tunnel stopped serving");
    elapsed("t_tunnel_through_dhcp_renumber_and_collision", t0);
}

/// SIGTERM while the captive-portal probe waits on a resolver that never
/// answers (a blocked name lookup runs on a thread nobody can cancel): roadie
/// still exits within 2 s.
#[test]
fn sigterm_while_a_name_lookup_hangs() {
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    lab.stop_daemon(libc::SIGTERM);
    // The router's resolver is an address the upstream drops silently.
    let resolv = Path::new("/etc/netns").join(&lab.rtr).join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 198.18.0.77\noptions timeout:5 attempts:3\n",
    )
    .unwrap();
    let up = lab.up.clone();
    lab.ip(&up, &["route", "add", "blackhole", "198.18.0.77/32"]);
    lab.start_daemon();
    let pid = lab.daemon_pid();
    // The lookup runs on a blocking-pool thread: wait until it exists.
    wait_until("the probe's name lookup to start", SHORT, || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Threads:") && l.split_whitespace().nth(1) != Some("1"))
    });
    let took = stops_within_2s(&mut lab, libc::SIGTERM);
    eprintln!("stopped {took:?} after SIGTERM with a name lookup hanging");
}

/// Defect 3 of the real-OpenWrt issue: under procd every stderr line lands
/// at daemon.err, so `roadie daemon --syslog` sends each line to the syslog
/// socket (logd's /dev/log) with its own priority: facility daemon, info 30,
/// warning 28, err 27, debug 31; nothing goes to stderr.
#[test]
fn syslog_lines_carry_their_priority() {
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    let path = lab.dir.join("dev-log");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the syslog socket");
    sock.set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .unwrap();
    lab.daemon.daemon_args = vec![format!("--syslog={}", path.display())];
    lab.start_daemon();
    let mut lines: Vec<String> = Vec::new();
    let mut take = |want: &dyn Fn(&str) -> bool, what: &str| -> String {
        wait_for(what, LONG, || {
            let mut buf = [0u8; 4096];
            if let Ok(n) = sock.recv(&mut buf) {
                lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            lines.iter().find(|l| want(l)).cloned()
        })
    };
    let pid = lab.daemon_pid();
    let started = take(
        &|l| l.contains(": roadie ") && l.contains(" started: "),
        "the start line at info",
    );
    assert!(
        started.starts_with(&format!("<30>roadie[{pid}]: ")),
        "{started}"
    );
    let debug = take(&|l| l.starts_with("<31>"), "a debug line");
    assert!(
        debug.contains(": [roadie"),
        "debug lines name their module: {debug}"
    );

    let good = lab.config_text();
    lab.write_config(&good.replace("[wan]", "bogus = 1\n[wan]"));
    signal(pid, libc::SIGHUP);
    let refused = take(&|l| l.contains("reload refused"), "the refusal at err");
    assert!(refused.starts_with("<27>"), "{refused}");
    let moved_socket = good.replace("roadie.sock", "other.sock");
    lab.write_config(&moved_socket);
    signal(pid, libc::SIGHUP);
    let warn = take(
        &|l| l.contains("take effect at the next start"),
        "a warning",
    );
    assert!(warn.starts_with("<28>"), "{warn}");
    lab.stop_daemon(libc::SIGTERM);
    let log = lab.daemon.log();
    assert!(
        !log.contains("INFO") && !log.contains("ERROR"),
        "with --syslog nothing is logged to stderr:\n{log}"
    );
}

/// Defect 7: a typo in the config must not keep roadie down at the next
/// start. The last configuration that loaded is kept beside the file; a start
/// with an invalid file runs with it and says why (status `config.problem`,
/// the log); a good reload clears the problem. Without a copy, a start with
/// an invalid file exits 2 naming file:line.
#[test]
fn start_with_an_invalid_config_runs_the_last_good_one() {
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    lab.wait_ready();
    let copy = lab.daemon.dir.join("roadie.toml.last-good");
    let good = lab.config_text();
    assert_eq!(
        fs::read_to_string(&copy).ok().as_deref(),
        Some(good.as_str())
    );
    let s = lab.status();
    assert!(s["config"]["problem"].is_null(), "{s}");
    lab.stop_daemon(libc::SIGTERM);

    let bad = good.replace("settle_ms", "settle_msec");
    lab.write_config(&bad);
    lab.start_daemon();
    let s = lab.wait_ready();
    let problem = s["config"]["problem"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        problem.contains("roadie.toml:")
            && problem.contains("settle_msec")
            && problem.contains("last-good"),
        "{s}"
    );
    assert_eq!(s["lan"]["home"], "192.168.1.0/24");
    assert!(lab.daemon.log().contains("last configuration that loaded"));
    let human = lab.daemon.cli(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(
        human.contains("settle_msec"),
        "roadie status must say so:\n{human}"
    );
    // The copy is still the good one; a fixed file clears the problem.
    assert_eq!(fs::read_to_string(&copy).unwrap(), good);
    lab.write_config(&good);
    lab.daemon
        .call("reload", serde_json::json!({}))
        .expect("reload");
    assert!(lab.status()["config"]["problem"].is_null());
    lab.stop_daemon(libc::SIGTERM);

    // No copy and an invalid file: exit 2 with the errors.
    fs::remove_file(&copy).unwrap();
    lab.write_config(&bad);
    let out = run_with(
        std::process::Command::new(ROADIE).args(["-c", lab.daemon.cfg.to_str().unwrap(), "daemon"]),
        None,
        SHORT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("roadie.toml:") && err.contains("settle_msec"),
        "{err}"
    );
}

/// The rpcd exec plugin protocol (`roadie rpcd list|call METHOD`, what
/// /usr/libexec/rpcd/roadie runs): the signatures rpcd registers, a call's
/// reply as the same JSON as `roadie call`, and errors as {"error": ...}
/// (rpcd ignores exit codes and passes on only JSON objects).
#[test]
fn rpcd_plugin_protocol() {
    let Some(lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    lab.wait_ready();
    let sock = lab.daemon.sock.to_str().unwrap().to_string();
    let rpcd = |args: &[&str], stdin: &str| -> serde_json::Value {
        let out = run_with(
            std::process::Command::new(ROADIE)
                .args(["-s", &sock, "rpcd"])
                .args(args),
            Some(stdin.as_bytes()),
            SHORT,
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).expect("one JSON object")
    };
    let list = rpcd(&["list"], "");
    assert_eq!(list["readdress"], serde_json::json!({"prefix": "str"}));
    assert_eq!(list["tunnel.restart"], serde_json::json!({"name": "str"}));
    let status = rpcd(&["call", "status"], "{ }");
    let direct = lab.status();
    assert_eq!(status["lan"]["prefix"], direct["lan"]["prefix"]);
    assert_eq!(status["version"], direct["version"]);
    // uhttpd's /ubus adds the session to every call: not a parameter.
    let through_uhttpd = rpcd(&["call", "status"], r#"{"ubus_rpc_session":"0123abcd"}"#);
    assert_eq!(
        through_uhttpd["version"], direct["version"],
        "{through_uhttpd}"
    );
    let r = rpcd(
        &["call", "tunnel.restart"],
        r#"{"ubus_rpc_session":"0123abcd","name":"nosuch"}"#,
    );
    let e = r["error"].as_str().unwrap_or_default();
    assert!(
        e.contains("nosuch") && !e.contains("ubus_rpc_session"),
        "{r}"
    );
    let bad = rpcd(&["call", "readdress"], r#"{"prefix":"nonsense"}"#);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("not an IPv4 prefix")),
        "{bad}"
    );
    let bad = rpcd(&["call", "status"], "{not json");
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("not valid JSON")),
        "{bad}"
    );
    let out = run_with(
        std::process::Command::new(ROADIE).args([
            "-s",
            "/nonexistent.sock",
            "rpcd",
            "call",
            "status",
        ]),
        Some(b"{}"),
        SHORT,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("not running")),
        "{v}"
    );
}

/// Fewer moves: check-config warns (and still says ok) when the home prefix
/// is one that networks on the road hand out by default; suggest-prefix
/// proposes one that is not, the same for the same router (its seed).
#[test]
fn crowded_home_warning_and_suggest_prefix() {
    let dir = std::env::temp_dir().join(format!("roadie-suggest-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("roadie.toml");
    let write = |address: &str| {
        fs::write(
            &cfg,
            format!(
                "[daemon]\nstate = {:?}\n[wan]\ninterfaces = [\"eth1\"]\n[lan]\ninterface = \"br-lan\"\naddress = \"{address}\"\n",
                dir.join("state.toml").display().to_string()
            ),
        )
        .unwrap();
    };
    fs::write(dir.join("state.toml"), "seed = 12345\n").unwrap();
    let roadie = |args: &[&str]| {
        run_with(
            std::process::Command::new(ROADIE)
                .arg("-c")
                .arg(&cfg)
                .args(args),
            None,
            SHORT,
        )
    };
    write("192.168.8.1/24");
    let out = roadie(&["check-config"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning:") && err.contains("GL.iNet") && err.contains("suggest-prefix"),
        "{err}"
    );

    let out = roadie(&["suggest-prefix"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let suggested = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let again = roadie(&["suggest-prefix"]);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        suggested,
        "same seed, same answer"
    );
    let router = suggested.replace(".0/24", ".1/24");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&router),
        "{out:?}"
    );
    write(&router);
    let out = roadie(&["check-config"]);
    assert!(out.stderr.is_empty(), "no warning for {router}: {out:?}");
    let _ = fs::remove_dir_all(&dir);
}

/// A `[lan] interface` that does not exist (the packaged default on a
/// router whose LAN is not br-lan): the LAN's own address sits on another
/// link and looks like a collision. roadie must not move the LAN off itself:
/// it decides nothing and says which link has the LAN's address.
#[test]
fn a_missing_lan_interface_moves_nothing() {
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    let text = lab
        .config_text()
        .replace("interface = \"lan0\"", "interface = \"br-lan\"");
    lab.write_config(&text);
    lab.start_daemon();
    let s = lab
        .daemon
        .wait_status("the missing LAN interface reported", LONG, |s| {
            evaluations(s) >= 1
                && s["lan"]["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("br-lan does not exist"))
        });
    let problem = s["lan"]["problem"].as_str().unwrap();
    assert!(
        problem.contains("lan0 has the LAN's address 192.168.1.1/24"),
        "{problem}"
    );
    // A forced re-evaluation must not move it either.
    let _ = lab.daemon.call("readdress", serde_json::json!({}));
    let s = lab.status();
    assert_eq!(lan_prefix(&s), "192.168.1.0/24", "{s}");
    assert_eq!(history_len(&s), 0, "{s}");
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), ["192.168.1.1/24"]);
}

/// The blackhole rules roadie keeps (priority 97) in `ns`, as `ip rule` prints them.
fn roadie_rules(lab: &Lab) -> Vec<String> {
    let out = lab.exec(&lab.rtr, &["ip", "rule", "show"], SHORT);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("97:"))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .collect()
}

/// After a move roadie stands in for the old router address: a host still
/// in the old prefix gets ARP answers for it from the router, LAN traffic to
/// it is dropped by a rule (never forwarded to the uplink, whose own network
/// now holds that prefix), and status shows the stand-in and each known
/// host's move. The rule goes with SIGTERM, and one a killed roadie left
/// behind is removed at the next start.
#[test]
fn i_follow_stands_in_for_the_old_router() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts::default()) else {
        return;
    };
    // Known hosts are probed by ARP from the start.
    let s = lab
        .daemon
        .wait_status("master reachable before the move", SHORT, |s| {
            s["lan"]["hosts"][0]["reachable"] == true
        });
    assert_eq!(s["lan"]["hosts"][0]["address"], "192.168.1.100", "{s}");
    assert!(s["lan"]["hosts"][0]["mac"].is_string(), "{s}");
    assert_eq!(s["lan"]["follow"], serde_json::Value::Null);

    let new = collide_upstream(&mut lab);
    // The follow task hears of the move right after the LAN task published it.
    wait_until(
        "the blackhole rule for the old router address",
        SHORT,
        || roadie_rules(&lab) == ["from all to 192.168.1.1 iif lan0 blackhole"],
    );
    // The hook moved the node; it answers at its new address.
    let node = lab.node_in(&new);
    let s = lab.daemon.wait_status("master followed", LONG, |s| {
        s["lan"]["hosts"][0]["followed_ms"].is_u64()
    });
    let h = &s["lan"]["hosts"][0];
    assert_eq!(
        (h["address"].as_str(), h["reachable"].as_bool()),
        (Some(node.as_str()), Some(true)),
        "{s}"
    );
    let f = &s["lan"]["follow"];
    assert_eq!(
        (f["from"].as_str(), f["server_id"].as_str()),
        (Some(HOME), Some("192.168.1.1")),
        "{s}"
    );
    assert!(
        f["until"].as_u64() > Some(roadie::lan::now_unix() + 3600),
        "12 h by default: {s}"
    );

    // A host that still has its old address asks for the old router.
    lab.exec(
        &lab.cl,
        &["ip", "addr", "add", "192.168.1.100/24", "dev", "eth0"],
        SHORT,
    );
    let mac = |ns: &str, dev: &str| {
        let out = lab.exec(ns, &["ip", "-j", "link", "show", dev], SHORT);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v[0]["address"].as_str().unwrap_or("").to_string()
    };
    let router_mac = mac(&lab.rtr, "lan0");
    wait_until(
        "the old router address resolved to the router",
        SHORT,
        || {
            // Any packet to 192.168.1.1 makes the node's kernel ask ARP for it.
            lab.exec(
                &lab.cl,
                &[
                    "curl",
                    "-s",
                    "--interface",
                    "192.168.1.100",
                    "--connect-timeout",
                    "0.3",
                    "http://192.168.1.1:9/",
                ],
                SHORT,
            );
            let out = lab.exec(
                &lab.cl,
                &["ip", "-j", "neigh", "show", "192.168.1.1"],
                SHORT,
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            v[0]["lladdr"] == router_mac.as_str()
        },
    );
    let s = lab.daemon.wait_status("an ARP reply counted", SHORT, |s| {
        s["lan"]["follow"]["arp_replies"].as_u64() > Some(0)
    });
    assert_eq!(
        s["lan"]["follow"]["naks"], 0,
        "the node asked for no lease: {s}"
    );

    // SIGTERM takes the rule away; a killed roadie's rule goes at the next start.
    stops_within_2s(&mut lab, libc::SIGTERM);
    assert_eq!(
        roadie_rules(&lab),
        Vec::<String>::new(),
        "left after SIGTERM"
    );
    lab.start_daemon();
    lab.wait_ready();
    lab.daemon
        .call("readdress", serde_json::json!({"prefix": "10.9.8.0/24"}))
        .expect("readdress");
    wait_until("a rule for the second old address", SHORT, || {
        roadie_rules(&lab)
            .iter()
            .any(|r| r.contains(&lan_address_in(&lab, &new).replace("/24", "")))
    });
    lab.stop_daemon(libc::SIGKILL);
    assert_eq!(
        roadie_rules(&lab).len(),
        1,
        "kill -9 leaves it: {:?}",
        roadie_rules(&lab)
    );
    lab.start_daemon();
    lab.wait_ready();
    wait_until("the stale rule removed at start", SHORT, || {
        roadie_rules(&lab).is_empty()
    });
    elapsed("i_follow_stands_in_for_the_old_router", t0);
}

/// A static host that the hook does not move: `lan.hosts` and `roadie
/// status` say it did not follow, and where it still is.
#[test]
fn j_a_static_host_that_did_not_follow_is_named() {
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    // A hook that leaves the node where it is.
    let cfg = lab.config_text();
    let hook = lab.dir.join("hook.sh").display().to_string();
    lab.write_config(&cfg.replace(&format!("hook = {hook:?}\n"), ""));
    lab.start_daemon();
    lab.wait_ready();
    lab.renumber("192.168.1.254/24", "192.168.1.200", "192.168.1.240");
    let s = lab
        .daemon
        .wait_status("master still at its old address", LONG, |s| {
            lan_prefix(s) != HOME && s["lan"]["hosts"][0]["still_at"] == "192.168.1.100"
        });
    let h = &s["lan"]["hosts"][0];
    assert_eq!(h["followed_ms"], serde_json::Value::Null, "{s}");
    assert_ne!(h["address"], "192.168.1.100", "{s}");
    let out = lab.daemon.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("HOST master did not follow: still at 192.168.1.100"),
        "{text}"
    );
}
