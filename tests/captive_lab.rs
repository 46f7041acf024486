//! Captive portal in the namespace lab (see tests/common/mod.rs): the
//! upstream namespace answers the probe URL like a hotel's portal (302 to a
//! login page), then like the Internet (204). Run as root:
//! `cargo test --test captive_lab`. Without root it prints SKIP (and fails
//! under CI=true).

mod common;

use common::portal::{PORTAL, PROBE_PORT, PortalServer};
use common::*;
use std::time::{Duration, Instant};

fn sshd_connections(lab: &Lab) -> usize {
    lab.read_log("sshd.log")
        .lines()
        .filter(|l| l.contains("Connection from"))
        .count()
}

/// The proof for issue 6's captive portal: roadie reports the portal, holds
/// the tunnel in `blocked` (no SSH attempts, no backoff), polls the portal,
/// and serves through the tunnel within 1 s of the portal letting it through.
#[test]
fn captive_portal_holds_tunnels_then_releases_them_at_once() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::with_sshd() else {
        return;
    };
    let portal = PortalServer::start(&lab.up, &format!("{SSHD_ADDR}:{PROBE_PORT}"));
    let probe_url = format!("http://{SSHD_ADDR}/generate_204");
    let wan = "[wan]\ninterfaces = [\"wan0\"]\n";
    let text = lab.config_text();
    assert!(text.contains(wan), "{text}");
    let cfg = text.replace(wan, &format!("{wan}probe_url = {probe_url:?}\n"))
        + &lab.hotel_tunnel_config();
    lab.write_config(&cfg);
    let check = lab
        .daemon
        .cli(&["-c", lab.cfg.to_str().unwrap(), "check-config"]);
    assert!(check.status.success(), "{check:?}");
    let started = Instant::now();
    lab.start_daemon();

    // The portal is reported and the tunnel is held.
    let s = lab
        .daemon
        .wait_status("the captive portal in status", LONG, |s| {
            s["captive"]["url"] == PORTAL && tunnel0(s)["state"] == "blocked"
        });
    let found = started.elapsed();
    assert_eq!(s["captive"]["probe_url"], probe_url.as_str(), "{s}");
    assert!(s["captive"]["since"].as_u64().is_some(), "{s}");
    assert_eq!(s["probe"]["result"], "portal", "{s}");
    assert_eq!(s["probe"]["detail"], PORTAL, "{s}");
    let t = tunnel0(&s);
    assert_eq!(
        t["last_error"],
        format!("captive portal at {PORTAL}: open it from a device on the LAN").as_str(),
        "{s}"
    );
    assert_eq!(t["reconnects"], 0, "{s}");
    let human = lab.daemon.cli(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(
        human.contains(&format!(
            "CAPTIVE PORTAL: the uplink wants a login at {PORTAL} \u{2014} open it from a device on the LAN"
        )),
        "{human}"
    );

    // Held: the portal is polled (fast), nothing dials sshd, nothing backs off.
    let ssh_before = sshd_connections(&lab);
    let count = s["probe"]["count"].as_u64().unwrap_or(0);
    let held_from = Instant::now();
    let s = lab
        .daemon
        .wait_status("three more probes while held", SHORT, |s| {
            s["probe"]["count"].as_u64().unwrap_or(0) >= count + 3
        });
    let held = held_from.elapsed();
    assert_eq!(tunnel0(&s)["state"], "blocked", "{s}");
    assert_eq!(tunnel0(&s)["reconnects"], 0, "{s}");
    assert_eq!(s["captive"]["url"], PORTAL, "{s}");
    assert_eq!(
        sshd_connections(&lab),
        ssh_before,
        "roadie dialled sshd while held:\n{}",
        lab.read_log("sshd.log")
    );
    let log = lab.read_log("roadie.log");
    assert!(
        !log.contains("retrying in") && !log.contains("tunnel ui: up"),
        "the tunnel tried (or came up) behind the portal:\n{log}"
    );
    assert!(portal.requests() >= 4, "{} probes", portal.requests());

    // The portal lets the router through: serving within 1 s.
    let url = format!("http://{SSHD_ADDR}:18080/");
    assert!(!lab.curl_page(&lab.up, &url), "served while held");
    let flip = Instant::now();
    portal.let_through();
    wait_until("the page through the tunnel after the flip", SHORT, || {
        lab.curl_page(&lab.up, &url)
    });
    let serving = flip.elapsed();
    let seen_open = portal
        .first_open
        .lock()
        .unwrap()
        .map(|t| t.duration_since(flip));
    let s = lab.status();
    eprintln!(
        "captive: portal reported {found:?} after roadie started; held for {} probes in {held:?}; \
         after the flip the probe saw 204 at {seen_open:?}, the page came through the tunnel \
         at {serving:?} (sshd connections while held: {ssh_before})",
        s["probe"]["count"].as_u64().unwrap_or(0) - count,
    );
    assert!(
        serving < Duration::from_secs(1),
        "serving {serving:?} after the portal let the router through"
    );
    assert!(s["captive"].is_null(), "{s}");
    assert_eq!(s["probe"]["result"], "open", "{s}");
    assert_eq!(tunnel0(&s)["state"], "up", "{s}");
    assert_eq!(tunnel0(&s)["reconnects"], 0, "{s}");
    let human = String::from_utf8_lossy(&lab.daemon.cli(&["status"]).stdout).into_owned();
    assert!(!human.contains("CAPTIVE"), "{human}");
    drop(portal);
    eprintln!("captive_lab: {:?} in all", t0.elapsed());
}
