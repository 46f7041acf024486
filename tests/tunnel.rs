//! The reverse tunnels against real OpenSSH (and a hostile russh server),
//! driving the real `roadie daemon` inside network namespaces.
//! Run as root: `cargo test --test tunnel`. Without root they print SKIP
//! (and fail under CI=true).

mod tunnel_lab;

use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tunnel_lab::*;

/// Several tunnels on one server, a port the server assigns, an RSA key on a
/// second server: every forward serves the node's page, and status counts.
#[test]
fn forwards_serve_and_are_counted() {
    let Some(mut lab) = Lab::new() else { return };
    let rsa = lab.dir.path().join("id_rsa");
    keygen(&rsa, "rsa");
    let second = Sshd::start(&lab.ns, lab.dir.path(), "127.0.0.1", 2223, &[&rsa]);
    let cfg = lab.config(
        "",
        &(tunnel_block("ui", "vps", "localhost:18080", "127.0.0.1:8080", "")
            + &tunnel_block("any", "vps", "127.0.0.1:0", "127.0.0.1:8080", "")
            + &server_block("other", &second, Some(&rsa), "")
            + &tunnel_block("web", "other", "18081", "127.0.0.1:8080", "")),
    );
    let t0 = Instant::now();
    lab.start(&cfg);
    let r = lab.roadie();
    for name in ["ui", "any", "web"] {
        r.wait_up(name);
    }
    eprintln!("three tunnels on two servers up in {:?}", t0.elapsed());
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    assert_eq!(lab.get(18081).as_deref(), Ok(PAGE));
    let any = r.tunnel("any");
    let port = any["assigned_port"].as_u64().expect("assigned_port") as u16;
    assert!(port > 0, "{any}");
    assert_eq!(lab.get(port).as_deref(), Ok(PAGE));
    let ui = r.wait_tunnel("ui", "counted", SHORT, |t| {
        t["connections"] == 1 && t["active"] == 0
    });
    assert_eq!(ui["server"], "vps");
    assert_eq!(ui["remote"], "localhost:18080");
    assert_eq!(ui["target"], "127.0.0.1:8080");
    assert_eq!(ui["reconnects"], 0);
    assert!(ui["last_error"].is_null(), "{ui}");
    assert_eq!(ui["public_urls"], json!([]));
    assert!(ui.get("assigned_port").is_none(), "{ui}");
    let (bin, bout) = (
        ui["bytes_in"].as_u64().unwrap(),
        ui["bytes_out"].as_u64().unwrap(),
    );
    assert_eq!(
        bin,
        "GET / HTTP/1.0\r\nHost: x\r\n\r\n".len() as u64,
        "{ui}"
    );
    assert!(bout > PAGE.len() as u64, "{ui}");
    // The CLI's table shows them.
    let out = r.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("ui")[..5],
        ["ui", "up", "vps", "localhost:18080", "127.0.0.1:8080"],
        "{text}"
    );
    assert_eq!(row("web")[..3], ["web", "up", "other"], "{text}");
}

/// A server that opens a `forwarded-tcpip` channel for a port nobody asked
/// for: refused (the router is no open proxy); the requested one is carried.
/// It also announces a URL on the session channel, which lands in
/// `public_urls`, and lets roadie in with "none" auth (no identity), as
/// localhost.run does.
#[test]
fn hostile_server_unrequested_channel_refused_and_url_banner_collected() {
    let Some(mut lab) = Lab::new() else { return };
    let fake = fake::Fake::start(
        &lab.ns,
        "127.0.0.1:0",
        &lab.sshd.host_key,
        "\u{1b}[32mForwarding HTTP traffic from https://ui-test.example/\u{1b}[0m\r\nDocs: https://127.0.0.1/docs/help\r\n",
    );
    let cfg = base_config(lab.dir.path())
        + &format!(
            "[[server]]\nname = \"fake\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"nokey\"\n\
             known_hosts = {:?}\nsession = \"shell\"\n\n",
            fake.port(),
            lab.dir.path().join("known_hosts").display().to_string()
        )
        + &tunnel_block("ui", "fake", "ui-test:80", "127.0.0.1:8080", "")
        + &tunnel_block("other", "fake", "0", "127.0.0.1:8080", "");
    lab.start(&cfg);
    let r = lab.roadie();
    r.wait_up("ui");
    let any = r.wait_up("other");
    assert_eq!(any["assigned_port"], fake::ASSIGNED_PORT);
    let ui = r.wait_tunnel("ui", "showing its public URL", SHORT, |t| {
        t["public_urls"] == json!(["https://ui-test.example/"])
    });
    assert_eq!(ui["state"], "up");
    let events = wait_for("the fake server's probes", SHORT, || {
        let e = fake.events();
        (e.iter().filter(|l| l.starts_with("requested")).count() == 2).then_some(e)
    });
    eprintln!("fake server saw: {events:#?}");
    assert!(
        events.contains(&"auth none nokey".to_string()),
        "{events:?}"
    );
    assert!(events.contains(&"shell".to_string()), "{events:?}");
    // The session channel came first (sish waits for it before forwards).
    let shell = events.iter().position(|e| e == "shell").unwrap();
    let fwd = events
        .iter()
        .position(|e| e.starts_with("forward"))
        .unwrap();
    assert!(shell < fwd, "{events:?}");
    for bind in ["ui-test", "localhost"] {
        let port = if bind == "ui-test" {
            80
        } else {
            fake::ASSIGNED_PORT
        };
        assert!(
            events.contains(&format!(
                "unrequested {bind}:{}: refused",
                fake::UNREQUESTED_PORT
            )),
            "{events:?}"
        );
        let got = events
            .iter()
            .find(|e| e.starts_with(&format!("requested {bind}:{port}: ")))
            .unwrap();
        assert!(got.ends_with(PAGE), "{got}");
    }
    assert!(
        r.log().contains("no forward was requested for it"),
        "{}",
        r.log()
    );
    // Nothing reached the target for the refused channels.
    assert_eq!(
        lab.target
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let other = r.tunnel("other");
    assert_eq!(other["public_urls"], json!([]), "{other}");
}

/// A key file others can read is refused like ssh refuses it, with the fix
/// in the message; after the fix, `tunnel.restart` brings it up at once.
#[test]
fn key_file_readable_by_others_is_refused_then_restart_fixes() {
    let Some(mut lab) = Lab::new() else { return };
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&lab.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = lab.config(
        "",
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    let t = r.wait_tunnel("ui", "failed", SHORT, |t| t["state"] == "failed");
    let err = t["last_error"].as_str().unwrap();
    assert!(err.contains("mode 0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", lab.key.display())),
        "{err}"
    );
    assert!(
        !lab.sshd.log().contains("Accepted"),
        "logged in with a bad key file"
    );
    std::fs::set_permissions(&lab.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = r.cli(&["call", "tunnel.restart", r#"{"name":"ui"}"#]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    r.wait_up("ui");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    // Unknown names are errors (exit 1) that list the known ones.
    let out = r.cli(&["call", "tunnel.restart", r#"{"name":"nope"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no tunnel named \"nope\"; known: ui"), "{err}");
}

/// Accept-new: the first host key is learned into known_hosts; a different
/// key later is refused, shown in status, and no forward comes up.
#[test]
fn host_key_learned_then_a_changed_key_is_refused() {
    let Some(mut lab) = Lab::new() else { return };
    let kh = lab.sshd.dir.join("known_hosts");
    assert!(!kh.exists());
    let cfg = lab.config(
        "",
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    );
    lab.start(&cfg);
    lab.roadie().wait_up("ui");
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("[127.0.0.1]:2222 ssh-ed25519 "), "{text}");
    assert_eq!(text.lines().count(), 1);

    lab.sshd.kill();
    lab.sshd.rekey();
    lab.sshd.run();
    let new_fp = lab.sshd.fingerprint();
    let r = lab.roadie();
    let t = r.wait_tunnel("ui", "refusing the new key", SHORT, |t| {
        t["state"] == "failed"
    });
    let err = t["last_error"].as_str().unwrap();
    assert!(
        err.contains("HOST KEY CHANGED for [127.0.0.1]:2222"),
        "{err}"
    );
    assert!(err.contains(&new_fp), "{err}");
    assert!(err.contains("ssh-keygen -R '[127.0.0.1]:2222'"), "{err}");
    assert!(
        !lab.ns.listening(18080),
        "a forward exists despite the refusal"
    );
    assert_eq!(
        std::fs::read_to_string(&kh).unwrap(),
        text,
        "known_hosts changed"
    );
    let human = String::from_utf8_lossy(&r.cli(&["status"]).stdout).to_string();
    assert!(human.contains("HOST KEY CHANGED"), "{human}");
}

/// `host_key` pins the fingerprint: the right one connects (and nothing is
/// learned), a wrong one is refused.
#[test]
fn pinned_host_key() {
    let Some(mut lab) = Lab::new() else { return };
    let fp = lab.sshd.fingerprint();
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let cfg = lab.config(
        &format!("host_key = {wrong:?}"),
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    let t = r.wait_tunnel("ui", "refusing the key", SHORT, |t| t["state"] == "failed");
    let err = t["last_error"].as_str().unwrap();
    assert!(err.contains(&format!("host_key pins {wrong}")), "{err}");
    assert!(err.contains(&fp), "{err}");
    r.write_config(&lab.config(
        &format!("host_key = {fp:?}"),
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    ));
    r.rpc("reload", json!({})).unwrap();
    r.wait_up("ui");
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    assert!(
        !lab.sshd.dir.join("known_hosts").exists(),
        "a pinned key was learned"
    );
}

/// The server dies and comes back: the session reconnects (first retry
/// after 0.5-1 s), serves again within 2 s of sshd listening, and
/// `reconnects` went up.
#[test]
fn sshd_killed_and_restarted_reconnects() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config("", &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""));
    lab.start(&cfg);
    lab.roadie().wait_up("ui");
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    lab.sshd.kill();
    let t = lab
        .roadie()
        .wait_tunnel("ui", "noticing the loss", SHORT, |t| t["state"] != "up");
    eprintln!("after kill: {} / {}", t["state"], t["last_error"]);
    lab.sshd.run();
    let t0 = Instant::now();
    let took = lab.wait_serving(18080, SHORT);
    eprintln!("serving again {took:?} after sshd listens");
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    let t = lab.roadie().wait_up("ui");
    assert_eq!(t["reconnects"], 1, "{t}");
    assert!(t["last_error"].as_str().unwrap().contains("session lost"), "{t}");
}

/// `tunnel.restart` re-requests the forward of a running tunnel; the other
/// tunnel on that session is not disturbed.
#[test]
fn tunnel_restart_re_requests_one_forward() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config(
        "",
        &(tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", "")
            + &tunnel_block("api", "vps", "18081", "127.0.0.1:8080", "")),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    r.wait_up("ui");
    r.wait_up("api");
    // A connection held open through "api" must survive restarting "ui".
    let mut held = lab.ns.connect("127.0.0.1:18081").unwrap();
    held.write_all(b"ECHOhello").unwrap();
    let mut buf = [0u8; 5];
    held.set_read_timeout(Some(SHORT)).unwrap();
    held.read_exact(&mut buf).unwrap();
    let out = r.cli(&["call", "tunnel.restart", r#"{"name":"ui"}"#]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply, json!({"restarted": "ui", "server": "vps"}));
    let t = r.wait_tunnel("ui", "restarted", SHORT, |t| t["reconnects"] == 1 && t["state"] == "up");
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE), "{t}");
    held.write_all(b"again").unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"again");
    assert_eq!(r.tunnel("api")["reconnects"], 0);
    assert!(r.log().contains("tunnel ui: restarting"), "{}", r.log());
}

/// Reload with one tunnel changed: the changed one restarts and serves its
/// new target; the unchanged one keeps its open connection and counters.
#[test]
fn reload_restarts_changed_tunnels_only() {
    let Some(mut lab) = Lab::new() else { return };
    let second = Target::start(&lab.ns, "127.0.0.1:8081", "the second target\n");
    let keep = tunnel_block("keep", "vps", "18080", "127.0.0.1:8080", "");
    let cfg = lab.config(
        "",
        &(keep.clone() + &tunnel_block("change", "vps", "18081", "127.0.0.1:8080", "")),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    r.wait_up("keep");
    r.wait_up("change");
    let mut held = lab.ns.connect("127.0.0.1:18080").unwrap();
    held.set_read_timeout(Some(SHORT)).unwrap();
    held.write_all(b"ECHOone").unwrap();
    let mut buf = [0u8; 3];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(lab.get(18081).as_deref(), Ok(PAGE));
    let before = r.wait_tunnel("keep", "counting the held connection", SHORT, |t| {
        t["active"] == 1 && t["bytes_out"] == 3
    });

    // Unchanged "keep"; "change" points at the second target; "new" is added.
    r.write_config(&lab.config(
        "",
        &(keep
            + &tunnel_block("change", "vps", "18081", "127.0.0.1:8081", "")
            + &tunnel_block("new", "vps", "18082", "127.0.0.1:8080", "")),
    ));
    let reply = r.rpc("reload", json!({})).unwrap();
    assert_eq!(reply["tunnels"]["restarted"], json!(["change"]), "{reply}");
    assert_eq!(reply["tunnels"]["unchanged"], json!(["keep"]), "{reply}");
    assert_eq!(reply["tunnels"]["added"], json!(["new"]), "{reply}");
    wait_for("the changed tunnel to serve its new target", SHORT, || {
        (lab.get(18081).ok().as_deref() == Some("the second target\n")).then_some(())
    });
    r.wait_up("new");
    assert_eq!(lab.get(18082).as_deref(), Ok(PAGE));
    // The held connection still works, and "keep" was not touched.
    held.write_all(b"two").unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two");
    let after = r.tunnel("keep");
    assert_eq!(after["connections"], before["connections"]);
    assert_eq!(after["active"], 1);
    assert_eq!(after["bytes_out"], 6);
    assert_eq!(after["reconnects"], 0);
    assert_eq!(after["up_since"], before["up_since"]);
    assert_eq!(second.accepted.load(std::sync::atomic::Ordering::Relaxed), 1);

    // SIGHUP does the same: removing "new" cancels its forward on the server.
    r.write_config(&lab.config(
        "",
        &(tunnel_block("keep", "vps", "18080", "127.0.0.1:8080", "")
            + &tunnel_block("change", "vps", "18081", "127.0.0.1:8081", "")),
    ));
    // SAFETY: kill(2) on the daemon this test started.
    unsafe { libc::kill(r.pid() as i32, libc::SIGHUP) };
    wait_for("the removed tunnel's port to close", SHORT, || {
        (!lab.ns.listening(18082)).then_some(())
    });
    held.write_all(b"3rd").unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"3rd");
}

/// SIGTERM with a connection open: the daemon exits within 2 s and the
/// server no longer listens for it (forwards cancelled, session closed).
#[test]
fn sigterm_with_open_connections_exits_within_two_seconds() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config(
        "",
        &(tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", "")
            + &tunnel_block("api", "vps", "18081", "127.0.0.1:8080", "")),
    );
    lab.start(&cfg);
    lab.roadie().wait_up("ui");
    lab.roadie().wait_up("api");
    let mut held = lab.ns.connect("127.0.0.1:18080").unwrap();
    held.set_read_timeout(Some(SHORT)).unwrap();
    held.write_all(b"ECHOx").unwrap();
    let mut b = [0u8; 1];
    held.read_exact(&mut b).unwrap();
    lab.roadie().wait_tunnel("ui", "holding a connection", SHORT, |t| t["active"] == 1);
    let (took, status) = lab.roadie.as_mut().unwrap().stop(libc::SIGTERM);
    eprintln!("SIGTERM -> exit in {took:?} ({status})");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(status.success(), "{status}");
    let log = lab.roadie().log();
    assert!(log.contains("server vps: disconnected"), "{log}");
    wait_for("the server to stop listening", Duration::from_secs(2), || {
        (!lab.ns.listening(18080) && !lab.ns.listening(18081)).then_some(())
    });
    // The held connection was closed.
    assert!(matches!(held.read(&mut b), Ok(0) | Err(_)));
}
