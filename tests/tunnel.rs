//! The reverse tunnels against real OpenSSH (and a hostile russh server),
//! driving the real `roadie daemon` inside network namespaces.
//! Run as root: `cargo test --test tunnel`. Without root they print SKIP
//! (and fail under CI=true).

mod common;
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

/// Each cipher roadie offers, against an OpenSSH sshd that allows only that
/// one (`Ciphers`, so the session uses it or fails): 1 MiB goes each way
/// through the tunnel and comes back byte for byte.
/// chacha20-poly1305 is roadie's own build of it (crates/openssh-chacha), so
/// this is where it meets OpenSSH's.
#[test]
fn every_cipher_carries_data_against_openssh() {
    const CIPHERS: [&str; 6] = [
        "chacha20-poly1305@openssh.com",
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
    ];
    const SIZE: usize = 1 << 20;
    let Some(mut lab) = Lab::new() else { return };
    let mut blocks = String::new();
    let mut servers = Vec::new(); // kept running until the end
    for (i, cipher) in CIPHERS.iter().enumerate() {
        let port = 2300 + i as u16;
        let extra = format!("ClientAliveInterval 2\nClientAliveCountMax 3\nCiphers {cipher}\n");
        let sshd = Sshd::start_with(
            &lab.ns,
            lab.dir.path(),
            "127.0.0.1",
            port,
            &[&lab.key],
            &extra,
        );
        blocks += &server_block(&format!("s{i}"), &sshd, Some(&lab.key), "");
        let remote = (18100 + i).to_string();
        blocks += &tunnel_block(
            &format!("t{i}"),
            &format!("s{i}"),
            &remote,
            "127.0.0.1:8080",
            "",
        );
        servers.push(sshd);
    }
    let cfg = lab.config("", &blocks);
    lab.start(&cfg);
    for (i, cipher) in CIPHERS.iter().enumerate() {
        lab.roadie().wait_up(&format!("t{i}"));
        let mut s = lab
            .ns
            .connect(&format!("127.0.0.1:{}", 18100 + i))
            .expect("connect");
        let data: Vec<u8> = (0..SIZE).map(|j| (j * 31 + i) as u8).collect();
        let got = echo(&mut s, data.clone());
        assert_eq!(got.len(), SIZE, "{cipher}");
        assert!(got == data, "{cipher}: the echoed data differs");
    }
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
    let cfg = lab.config(
        "",
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    );
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
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    let t = lab.roadie().wait_up("ui");
    assert_eq!(t["reconnects"], 1, "{t}");
    assert!(
        t["last_error"].as_str().unwrap().contains("session lost"),
        "{t}"
    );
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply, json!({"restarted": "ui", "server": "vps"}));
    let t = r.wait_tunnel("ui", "restarted", SHORT, |t| {
        t["reconnects"] == 1 && t["state"] == "up"
    });
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
    assert_eq!(
        second.accepted.load(std::sync::atomic::Ordering::Relaxed),
        1
    );

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
    lab.roadie()
        .wait_tunnel("ui", "holding a connection", SHORT, |t| t["active"] == 1);
    let (took, status) = lab.roadie.as_mut().unwrap().stop(libc::SIGTERM);
    eprintln!("SIGTERM -> exit in {took:?} ({status})");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(status.success(), "{status}");
    let log = lab.roadie().log();
    assert!(log.contains("server vps: disconnected"), "{log}");
    wait_for(
        "the server to stop listening",
        Duration::from_secs(2),
        || (!lab.ns.listening(18080) && !lab.ns.listening(18081)).then_some(()),
    );
    // The held connection was closed.
    assert!(matches!(held.read(&mut b), Ok(0) | Err(_)));
}

/// 200 connections at once through one tunnel, each echoing its own data:
/// all complete, and the byte counters match what was sent.
#[test]
fn two_hundred_concurrent_connections() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config(
        "",
        &tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", ""),
    );
    lab.start(&cfg);
    lab.roadie().wait_up("ui");
    const N: usize = 200;
    const SIZE: usize = 32 * 1024;
    let t0 = Instant::now();
    // Connect all first (from inside the namespace), then talk on all at once.
    let conns: Vec<std::net::TcpStream> = (0..N)
        .map(|_| lab.ns.connect("127.0.0.1:18080").expect("connect"))
        .collect();
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || {
                let data: Vec<u8> = (0..SIZE).map(|j| (i * 7 + j) as u8).collect();
                let got = echo(&mut s, data.clone());
                assert_eq!(got.len(), SIZE, "connection {i}");
                assert!(got == data, "connection {i}: data differs");
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a connection failed");
    }
    eprintln!("{N} connections x {SIZE} B echoed in {:?}", t0.elapsed());
    let want = (N * (SIZE + 4)) as u64;
    let t = lab
        .roadie()
        .wait_tunnel("ui", "all connections counted", SHORT, |t| {
            t["active"] == 0 && t["connections"] == N as u64 && t["bytes_out"] == (N * SIZE) as u64
        });
    assert_eq!(t["bytes_in"], want, "{t}");
    assert_eq!(t["refused"], 0);
}

/// Target down: the forwarded channel is closed cleanly (the client sees an
/// immediate close), the tunnel stays up and says why; the cap on
/// concurrent connections refuses the one too many.
#[test]
fn target_down_and_connection_cap() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config(
        "",
        &(tunnel_block("down", "vps", "18080", "127.0.0.1:8099", "")
            + &tunnel_block(
                "capped",
                "vps",
                "18081",
                "127.0.0.1:8080",
                "max_connections = 2",
            )),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    r.wait_up("down");
    r.wait_up("capped");
    let t0 = Instant::now();
    let e = lab.get(18080).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    eprintln!("target down: the client saw {e:?} after {:?}", t0.elapsed());
    let t = r.wait_tunnel("down", "reporting the target", SHORT, |t| {
        !t["last_error"].is_null()
    });
    assert_eq!(t["state"], "up");
    assert!(
        t["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect to target 127.0.0.1:8099"),
        "{t}"
    );
    assert_eq!(t["connections"], 0);
    assert_eq!(t["active"], 0);

    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = lab.ns.connect("127.0.0.1:18081").unwrap();
        s.write_all(b"ECHOx").unwrap();
        s.set_read_timeout(Some(SHORT)).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        held.push(s);
    }
    r.wait_tunnel("capped", "full", SHORT, |t| t["active"] == 2);
    let mut third = lab.ns.connect("127.0.0.1:18081").unwrap();
    third.set_read_timeout(Some(SHORT)).unwrap();
    let _ = third.write_all(b"ECHOx");
    let mut b = [0u8; 1];
    assert!(
        matches!(third.read(&mut b), Ok(0) | Err(_)),
        "the third connection was carried"
    );
    let t = r.wait_tunnel("capped", "counting the refusal", SHORT, |t| {
        t["refused"] == 1
    });
    assert_eq!(t["active"], 2);
    drop(held);
    r.wait_tunnel("capped", "drained", SHORT, |t| t["active"] == 0);
    assert_eq!(lab.get(18081).as_deref(), Ok(PAGE));
}

/// A server that refuses one forward (its port is taken, as when an old
/// session still holds it): that tunnel retries with backoff and comes up
/// once the port is free; the other tunnel on the server stays up.
#[test]
fn refused_forward_is_retried_and_others_stay_up() {
    let Some(mut lab) = Lab::new() else { return };
    let squatter = lab.ns.listen("127.0.0.1:18081");
    let cfg = lab.config(
        "",
        &(tunnel_block("ui", "vps", "127.0.0.1:18080", "127.0.0.1:8080", "")
            + &tunnel_block("busy", "vps", "127.0.0.1:18081", "127.0.0.1:8080", "")),
    );
    lab.start(&cfg);
    let r = lab.roadie();
    r.wait_up("ui");
    let t = r.wait_tunnel("busy", "refused", SHORT, |t| t["state"] == "backoff");
    assert!(
        t["last_error"]
            .as_str()
            .unwrap()
            .contains("refused to listen on 127.0.0.1:18081"),
        "{t}"
    );
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    assert_eq!(r.tunnel("ui")["state"], "up");
    drop(squatter);
    let t0 = Instant::now();
    r.wait_up("busy");
    eprintln!(
        "refused forward up {:?} after the port was freed",
        t0.elapsed()
    );
    assert_eq!(lab.get(18081).as_deref(), Ok(PAGE));
    assert_eq!(r.tunnel("ui")["reconnects"], 0);
}

/// Head-of-line: one forwarded connection whose target stops reading while
/// the public side keeps sending must not stall the other tunnels on the
/// same session. roadie closes the stuck one after 1 s without progress.
#[test]
fn a_stuck_target_does_not_stall_the_session() {
    let Some(mut lab) = Lab::new() else { return };
    let cfg = lab.config(
        "",
        &(tunnel_block("ui", "vps", "18080", "127.0.0.1:8080", "")
            + &tunnel_block("bulk", "vps", "18081", "127.0.0.1:8080", "")),
    );
    lab.start(&cfg);
    lab.roadie().wait_up("ui");
    lab.roadie().wait_up("bulk");
    // The stuck connection: SINK never reads; push 256 MB at it.
    let mut sink = lab.ns.connect("127.0.0.1:18081").unwrap();
    sink.set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let pusher = std::thread::spawn(move || {
        let chunk = vec![0x5a_u8; 1 << 20];
        let _ = sink.write_all(b"SINK");
        let mut sent = 0usize;
        let t0 = Instant::now();
        for _ in 0..256 {
            match sink.write_all(&chunk) {
                Ok(()) => sent += chunk.len(),
                Err(_) => break,
            }
        }
        (sent, t0.elapsed())
    });
    // Meanwhile, fetch through the other tunnel for 4 s and time each fetch.
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        assert_eq!(lab.get(18080).as_deref(), Ok(PAGE), "fetch {n} failed");
        worst = worst.max(t.elapsed());
        n += 1;
    }
    let (sent, push_time) = pusher.join().unwrap();
    let bulk = lab
        .roadie()
        .wait_tunnel("bulk", "closing the stuck connection", SHORT, |t| {
            t["stalled"] == 1
        });
    eprintln!(
        "HOL: {n} fetches in 4 s on the other tunnel, slowest {worst:?}; \
         pushed {} MB at the stuck target in {push_time:?}; bulk: in {} B, stalled {}",
        sent >> 20,
        bulk["bytes_in"],
        bulk["stalled"]
    );
    assert!(
        worst < Duration::from_millis(2500),
        "a fetch took {worst:?}"
    );
    assert!(n >= 20, "only {n} fetches in 4 s");
    assert_eq!(bulk["active"], 0);
}

/// The router's uplink is renumbered (a new lease): every session
/// reconnects at once from the new address, and the tunnels serve again.
/// The old sessions' forwards linger on sshd until it notices they are dead
/// (ClientAlive, about 2 s here), so the new forwards are retried until then.
#[test]
fn uplink_renumbered_every_session_reconnects_at_once() {
    let Some(mut road) = Road::new() else { return };
    let cfg = road.config(
        &(tunnel_block("ui", "vps", "localhost:18080", "master:8080", "")
            + &tunnel_block("api", "vps2", "localhost:18081", "master:8080", "")),
    );
    road.start(&cfg);
    road.roadie().wait_up("ui");
    road.roadie().wait_up("api");
    assert_eq!(road.get(18080).as_deref(), Ok(PAGE));
    assert_eq!(road.logins_from("10.66.0.2"), 2);

    let t0 = Instant::now();
    road.renumber("10.77.0.254/24", "10.77.0.2/24");
    wait_for(
        "both sessions to log in from the new address",
        SHORT,
        || (road.logins_from("10.77.0.2") == 2).then_some(()),
    );
    let relogin = t0.elapsed();
    let r = road.roadie();
    for name in ["ui", "api"] {
        r.wait_tunnel(name, "up again", Duration::from_secs(15), |t| {
            t["state"] == "up" && t["reconnects"] == 1
        });
    }
    let up = t0.elapsed();
    wait_for("the page through both tunnels", SHORT, || {
        (road.get(18080).ok().as_deref() == Some(PAGE)
            && road.get(18081).ok().as_deref() == Some(PAGE))
        .then_some(())
    });
    eprintln!(
        "renumber: both sessions logged in again after {relogin:?}; forwards up after {up:?}; serving after {:?}",
        t0.elapsed()
    );
    assert!(
        relogin < Duration::from_secs(1),
        "re-login took {relogin:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
}

/// An uplink change that leaves the old path working (a second address on
/// the uplink): sessions reconnect at once, from the new address, the old
/// session is closed cleanly (its forwards cancelled), so the new forwards
/// are accepted right away: serving again well within a second, even out of
/// a long backoff.
#[test]
fn uplink_change_skips_the_backoff() {
    let Some(mut road) = Road::new() else { return };
    let cfg = road.config(&tunnel_block(
        "ui",
        "vps",
        "localhost:18080",
        "master:8080",
        "",
    ));
    road.start(&cfg);
    road.roadie().wait_up("ui");
    // Put the session into backoff: sshd gone for two failed attempts.
    road.sshd.kill();
    let r = road.roadie();
    wait_for("two failed attempts", SHORT, || {
        (r.log().matches("cannot reach 198.18.0.1").count() >= 2).then_some(())
    });
    road.sshd.run();
    // The next attempt is 1-4 s away; an uplink change must not wait for it.
    let t0 = Instant::now();
    road.rtr.ip(&["addr", "add", "10.66.0.3/24", "dev", "wan0"]);
    road.roadie().wait_up("ui");
    let took = t0.elapsed();
    assert_eq!(road.get(18080).as_deref(), Ok(PAGE));
    eprintln!("uplink change during backoff: up again after {took:?}");
    assert!(took < Duration::from_millis(900), "took {took:?}");

    assert_eq!(road.logins_from("10.66.0.3"), 1, "{}", road.sshd.log());

    // Up and running: another new address reconnects at once, cleanly.
    let before = road.roadie().tunnel("ui")["reconnects"].as_u64().unwrap();
    let t0 = Instant::now();
    road.rtr.ip(&["addr", "add", "10.66.0.4/24", "dev", "wan0"]);
    road.roadie().wait_tunnel("ui", "reconnected", SHORT, |t| {
        t["state"] == "up" && t["reconnects"].as_u64() == Some(before + 1)
    });
    wait_for("the page", SHORT, || {
        (road.get(18080).ok().as_deref() == Some(PAGE)).then_some(())
    });
    let took = t0.elapsed();
    eprintln!("uplink change while up: serving again after {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(road.logins_from("10.66.0.4"), 1, "{}", road.sshd.log());
}

/// The README's sshd (ClientAliveInterval 5, ClientAliveCountMax 3) and a
/// visitor every 20 ms: the uplink gets a new address and loses the old one
/// 100 ms later (a renumbering on the same network that adds the new lease
/// first). roadie closes the old session while its address still works and
/// connects from the new one, so sshd lets go at once and the tunnel serves
/// again within 2 s; when the old address goes, the new session is kept.
/// Without that, sshd would hold the port for the old session for its TCP
/// timeout (about 15 minutes; bench/results.md).
#[test]
fn new_address_before_the_old_goes_serves_again_within_two_seconds_under_traffic() {
    let Some(mut road) = Road::with_sshd("ClientAliveInterval 5\nClientAliveCountMax 3\n") else {
        return;
    };
    road.promote_secondaries();
    let cfg = road.config_with(
        "keepalive_s = 5",
        &tunnel_block("ui", "vps", "0.0.0.0:18080", "master:8080", ""),
    );
    road.start(&cfg);
    let (took, failed, all, t) = served_again_after(&road, || {
        road.rtr.ip(&["addr", "add", "10.66.0.3/24", "dev", "wan0"]);
        // The network's own pace (the scenario), not a wait for roadie.
        std::thread::sleep(Duration::from_millis(100));
        road.rtr.ip(&["addr", "del", "10.66.0.2/24", "dev", "wan0"]);
    });
    eprintln!(
        "new address 100 ms before the old goes, a GET every 20 ms: serving again after {took:?} \
         ({failed} of {all} GETs failed); {t}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(t["state"], "up", "{t}");
    assert_eq!(t["reconnects"], 1, "one move to the new address: {t}");
    assert_eq!(road.logins_from("10.66.0.3"), 1, "{}", road.sshd.log());
    // The old session was closed, not left for sshd to time out.
    wait_for("sshd to hold only the new session", SHORT, || {
        (road.sshd_connections() == 1).then_some(())
    });
    let log = road.roadie().log();
    assert!(log.contains("closing the old session"), "{log}");
    // The old address going did not cost another reconnect (whether it went
    // before the new session was logged in or after).
    assert!(!log.contains("starting over"), "{log}");
}

/// With tunnel `ui` up and visitors on its port 18080 (a GET every 20 ms)
/// being served: `change` the uplinks, then wait until the visitors are
/// served again (2 s without a failure). Returns how long that took, the
/// GETs that failed and all GETs since the change, and the tunnel's status.
fn served_again_after(
    road: &Road,
    change: impl FnOnce(),
) -> (Duration, usize, usize, serde_json::Value) {
    road.roadie().wait_up("ui");
    let visitors = Visitors::start(&road.up, 18080);
    let start = Instant::now();
    wait_for("the visitors to be served", SHORT, || {
        visitors.serving_again(start, Duration::from_secs(1))
    });
    let t0 = Instant::now();
    change();
    let took = wait_for(
        "the visitors to be served again",
        Duration::from_secs(15),
        || visitors.serving_again(t0, Duration::from_secs(2)),
    );
    let (failed, all) = visitors.failed_since(t0);
    (took, failed, all, road.roadie().tunnel("ui"))
}

/// A second uplink (a phone tether) takes the default route while the first
/// still has its address, which goes a moment later (the hotel Wi-Fi lost):
/// roadie closes the old session through the first uplink, so sshd lets go
/// of the forward at once, and serves again through the second within 2 s,
/// with visitors the whole time.
#[test]
fn a_second_uplink_taking_over_serves_again_within_two_seconds_under_traffic() {
    let Some(mut road) = Road::with_sshd("ClientAliveInterval 5\nClientAliveCountMax 3\n") else {
        return;
    };
    // The second uplink: its own network to the same server, not up yet.
    common::ns::veth("up1", &road.up.name, "wan1", &road.rtr.name);
    road.up
        .batch("addr add 10.77.0.254/24 dev up1\nlink set up1 up\n");
    // The first uplink's default route at the metric netifd gives a wired wan.
    road.rtr.batch("route del default via 10.66.0.254 dev wan0\nroute add default via 10.66.0.254 dev wan0 metric 100\n");
    let cfg = road
        .config_with(
            "keepalive_s = 5",
            &tunnel_block("ui", "vps", "0.0.0.0:18080", "master:8080", ""),
        )
        .replace(
            "interfaces = [\"wan0\"]",
            "interfaces = [\"wan0\", \"wan1\"]",
        );
    road.start(&cfg);
    let (took, failed, all, t) = served_again_after(&road, || {
        road.rtr.batch("addr add 10.77.0.2/24 dev wan1\nlink set wan1 up\nroute add default via 10.77.0.254 dev wan1 metric 10\n");
        // The network's own pace (the scenario), not a wait for roadie.
        std::thread::sleep(Duration::from_millis(300));
        road.rtr.ip(&["addr", "del", "10.66.0.2/24", "dev", "wan0"]);
    });
    eprintln!(
        "a second uplink takes over, the first's address goes 300 ms later, a GET every 20 ms: \
         serving again after {took:?} ({failed} of {all} GETs failed); {t}"
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(t["state"], "up", "{t}");
    assert_eq!(road.logins_from("10.77.0.2"), 1, "{}", road.sshd.log());
    wait_for("sshd to hold only the new session", SHORT, || {
        (road.sshd_connections() == 1).then_some(())
    });
    let log = road.roadie().log();
    assert!(log.contains("closing the old session"), "{log}");
}

/// Renumbered the way udhcpc's script applies a lease (the old address goes
/// before the new one comes): roadie cannot close the old session, sshd
/// still holds its forward, and while it does the status says so and names
/// what ends it; the tunnel comes back by itself once sshd drops the old
/// session (idle here: its ClientAlive timeout, 2 x 2 s).
#[test]
fn renumbered_while_the_server_holds_the_forward_status_says_why() {
    let Some(mut road) = Road::with_sshd("ClientAliveInterval 2\nClientAliveCountMax 2\n") else {
        return;
    };
    let cfg = road.config_with(
        "keepalive_s = 5",
        &tunnel_block("ui", "vps", "0.0.0.0:18080", "master:8080", ""),
    );
    road.start(&cfg);
    road.roadie().wait_up("ui");
    let t0 = Instant::now();
    road.renumber("10.66.0.254/24", "10.66.0.3/24");
    let r = road.roadie();
    let t = r.wait_tunnel(
        "ui",
        "refused while sshd holds the old session",
        SHORT,
        |t| {
            t["state"] == "backoff"
                && t["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("refused to listen on 0.0.0.0:18080"))
        },
    );
    let why = t["last_error"].as_str().unwrap();
    for part in [
        "still holds the forward for the previous session",
        "ClientAlive timeout when idle",
        "TCP retransmission timeout when traffic keeps it busy",
        "StreamLocalBindUnlink",
    ] {
        assert!(why.contains(part), "{why:?} lacks {part:?}");
    }
    assert_eq!(
        road.sshd_connections(),
        2,
        "sshd holds the old session and the new one"
    );
    assert!(
        r.log().contains("the old session's address is gone"),
        "{}",
        r.log()
    );
    let t = r.wait_tunnel(
        "ui",
        "up once sshd dropped the old session",
        Duration::from_secs(60),
        |t| t["state"] == "up",
    );
    eprintln!(
        "held forward: refused ({why}), up again after {:?}; {t}",
        t0.elapsed()
    );
    wait_for("the page", SHORT, || {
        (road.get(18080).ok().as_deref() == Some(PAGE)).then_some(())
    });
}

/// The collision: upstream renumbers into the LAN's prefix, roadie moves
/// the LAN, the hook moves the node, and the tunnel's target follows: the
/// page comes through the tunnel from the node at its new address.
#[test]
fn lan_readdressed_the_target_follows() {
    let Some(mut road) = Road::new() else { return };
    let cfg = road.config(&tunnel_block(
        "ui",
        "vps",
        "localhost:18080",
        "master:8080",
        "",
    ));
    road.start(&cfg);
    let t = road.roadie().wait_up("ui");
    assert_eq!(t["target"], "192.168.1.100:8080");
    assert_eq!(road.get(18080).as_deref(), Ok(PAGE));

    let t0 = Instant::now();
    road.renumber("192.168.1.254/24", "192.168.1.50/24");
    let r = road.roadie();
    let s = wait_for("roadie to move the LAN", SHORT, || {
        let s = r.status();
        (s["lan"]["prefix"] != "192.168.1.0/24" && !s["lan"]["prefix"].as_str()?.is_empty())
            .then_some(s)
    });
    let prefix = s["lan"]["prefix"].as_str().unwrap().to_string();
    let net = prefix.split('/').next().unwrap();
    let node = format!("{}.100:8080", net.rsplit_once('.').unwrap().0);
    let t = r.wait_tunnel(
        "ui",
        "pointing at the moved node",
        Duration::from_secs(15),
        |t| t["target"] == node.as_str() && t["state"] == "up",
    );
    wait_for(
        "the page through the tunnel from the moved node",
        SHORT,
        || (road.get(18080).ok().as_deref() == Some(PAGE)).then_some(()),
    );
    eprintln!(
        "collision: LAN moved to {prefix}, tunnel serves the node at {node} after {:?}",
        t0.elapsed()
    );
    assert!(t["reconnects"].as_u64().unwrap() >= 1, "{t}");
    let hook = std::fs::read_to_string(road.dir.path().join("hook.log")).unwrap();
    assert!(
        hook.contains(&format!("192.168.1.0/24 -> {prefix}")),
        "{hook}"
    );
}

/// The road lab with one tunnel and `server_extra` in its server: once the
/// tunnel is up, the router's path upstream is blackholed (nothing comes
/// back, no link or address change). Returns the lab, the tunnel's status
/// once it is no longer up, and how long that took.
fn dead_path(server_extra: &str) -> Option<(Road, serde_json::Value, Duration)> {
    let mut road = Road::new()?;
    let cfg = road.config_with(
        server_extra,
        &tunnel_block("ui", "vps", "localhost:18080", "master:8080", ""),
    );
    road.start(&cfg);
    road.roadie().wait_up("ui");
    let t0 = Instant::now();
    road.up.ip(&["route", "add", "blackhole", "10.66.0.2/32"]);
    let t = road
        .roadie()
        .wait_tunnel("ui", "noticing the dead path", SHORT, |t| {
            t["state"] != "up"
        });
    let noticed = t0.elapsed();
    eprintln!(
        "dead path noticed after {noticed:?} ({server_extra:?}): {}",
        t["last_error"]
    );
    Some((road, t, noticed))
}

/// A path that dies silently (nothing comes back, no link or address
/// change): keepalives every `keepalive_s`, dead after 3 misses; the
/// session comes back once the path does.
#[test]
fn keepalive_notices_a_silently_dead_path() {
    let Some((road, t, noticed)) = dead_path("keepalive_s = 1") else {
        return;
    };
    assert!(
        t["last_error"]
            .as_str()
            .unwrap()
            .contains("stopped answering keepalives"),
        "{t}"
    );
    assert!(
        noticed >= Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
    assert!(
        noticed < Duration::from_secs(7),
        "noticed after {noticed:?}"
    );
    road.up.ip(&["route", "del", "blackhole", "10.66.0.2/32"]);
    let t1 = Instant::now();
    road.roadie()
        .wait_tunnel("ui", "back", Duration::from_secs(20), |t| {
            t["state"] == "up"
        });
    wait_for("the page", SHORT, || {
        (road.get(18080).ok().as_deref() == Some(PAGE)).then_some(())
    });
    eprintln!("path back: serving again after {:?}", t1.elapsed());
}

/// `keepalive_max = 1`: the dead path is noticed after one unanswered
/// keepalive (about 2 x keepalive_s) instead of three.
#[test]
fn keepalive_max_one_notices_sooner() {
    let Some((_road, t, noticed)) = dead_path("keepalive_s = 1\nkeepalive_max = 1") else {
        return;
    };
    assert!(
        t["last_error"]
            .as_str()
            .unwrap()
            .contains("stopped answering keepalives (1 missed, 1 s apart)"),
        "{t}"
    );
    assert!(
        noticed >= Duration::from_secs(1) && noticed < Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
}

/// Reload that changes one server's settings restarts that session only;
/// removing a server cancels its tunnels; the other server's connection
/// survives both.
#[test]
fn reload_restarts_a_changed_server_only() {
    let Some(mut lab) = Lab::new() else { return };
    let other = Sshd::start(&lab.ns, lab.dir.path(), "127.0.0.1", 2223, &[&lab.key]);
    let base = lab.config("", &tunnel_block("a", "vps", "18080", "127.0.0.1:8080", ""));
    let cfg = |other_extra: &str, with_other: bool| {
        let mut c = base.clone();
        if with_other {
            c += &server_block("other", &other, Some(&lab.key), other_extra);
            c += &tunnel_block("b", "other", "18081", "127.0.0.1:8080", "");
        }
        c
    };
    let (first, second, third) = (cfg("", true), cfg("keepalive_s = 5", true), cfg("", false));
    lab.start(&first);
    let r = lab.roadie();
    r.wait_up("a");
    r.wait_up("b");
    let mut held = lab.ns.connect("127.0.0.1:18080").unwrap();
    held.set_read_timeout(Some(SHORT)).unwrap();
    let mut buf = [0u8; 2];
    held.write_all(b"ECHOok").unwrap();
    held.read_exact(&mut buf).unwrap();

    let logins = |s: &Sshd| s.log().matches("Accepted publickey").count();
    assert_eq!(logins(&other), 1);
    r.write_config(&second);
    let reply = r.rpc("reload", json!({})).unwrap();
    assert_eq!(
        reply["tunnels"]["stopped_sessions"],
        json!(["other"]),
        "{reply}"
    );
    assert_eq!(
        reply["tunnels"]["started_sessions"],
        json!(["other"]),
        "{reply}"
    );
    wait_for("the changed server's new session", SHORT, || {
        (logins(&other) == 2).then_some(())
    });
    r.wait_tunnel("b", "up on the new session", SHORT, |t| t["state"] == "up");
    assert_eq!(lab.get(18081).as_deref(), Ok(PAGE));

    r.write_config(&third);
    r.rpc("reload", json!({})).unwrap();
    wait_for("the removed server's port to close", SHORT, || {
        (!lab.ns.listening(18081)).then_some(())
    });
    let s = r.status();
    assert_eq!(s["tunnels"].as_array().unwrap().len(), 1, "{s}");
    held.write_all(b"!!").unwrap();
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"!!");
    assert_eq!(logins(&lab.sshd), 1, "the unchanged server was reconnected");
}

/// Two ways out (two sshd): the preferred one dies, the tunnel serves
/// through the second within failover_s + 2 s; the preferred one comes back,
/// the tunnel moves back, and a connection in flight on the second way is
/// not cut (new connections go the preferred way).
#[test]
fn failover_to_the_second_way_out_and_back() {
    let Some(mut lab) = Lab::new() else { return };
    // The preferred way out is a second sshd this test owns; the lab's is the backup.
    let mut preferred = Sshd::start(&lab.ns, lab.dir.path(), "127.0.0.1", 2223, &[&lab.key]);
    let failover_s = 3;
    let cfg = base_config(lab.dir.path())
        + &server_block("a", &preferred, Some(&lab.key), "")
        + &server_block("b", &lab.sshd, Some(&lab.key), "")
        + &format!(
            "[[tunnel]]\nname = \"ui\"\ntarget = \"127.0.0.1:8080\"\nfailover_s = {failover_s}\nfailback_s = 2\n\
             [[tunnel.via]]\nserver = \"a\"\nremote = \"18080\"\n\
             [[tunnel.via]]\nserver = \"b\"\nremote = \"18081\"\n"
        );
    lab.start(&cfg);
    let r = lab.roadie();
    let t = r.wait_tunnel("ui", "up on a, b standing by", SHORT, |t| {
        t["state"] == "up" && t["via"][0]["active"] == true && t["via"][1]["healthy"] == true
    });
    assert_eq!(t["server"], "a", "{t}");
    assert_eq!(t["failovers"], 0, "{t}");
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    assert!(!lab.ns.listening(18081), "the standby way has no forward");

    preferred.kill();
    let killed = Instant::now();
    let took = lab.wait_serving(18081, Duration::from_secs(failover_s + 10));
    let after_kill = killed.elapsed();
    eprintln!("serving through b {after_kill:?} after a died (failover_s {failover_s})");
    assert!(
        after_kill < Duration::from_secs(failover_s + 2),
        "took {after_kill:?} ({took:?})"
    );
    let t = r.tunnel("ui");
    assert_eq!(t["server"], "b", "{t}");
    assert_eq!(t["remote"], "18081", "{t}");
    assert_eq!(t["via"][1]["active"], true, "{t}");
    assert_eq!(t["via"][0]["healthy"], false, "{t}");
    assert_eq!(t["failovers"], 1, "{t}");
    assert!(r.log().contains("moving to b"), "{}", r.log());

    // A connection in flight on the second way out.
    let mut conn = lab
        .ns
        .connect("127.0.0.1:18081")
        .expect("connect through b");
    conn.set_read_timeout(Some(SHORT)).unwrap();
    let echo = |c: &mut std::net::TcpStream, msg: &[u8]| -> Vec<u8> {
        c.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).unwrap();
        got
    };
    conn.write_all(b"ECHO").unwrap();
    assert_eq!(echo(&mut conn, b"before"), b"before");

    preferred.run();
    let back = Instant::now();
    let t = r.wait_tunnel("ui", "back on a", Duration::from_secs(60), |t| {
        t["via"][0]["active"] == true && t["state"] == "up"
    });
    eprintln!(
        "moved back to a {:?} after it listened again",
        back.elapsed()
    );
    assert_eq!(t["failovers"], 2, "{t}");
    assert_eq!(lab.get(18080).as_deref(), Ok(PAGE));
    // b no longer forwards: new connections go the preferred way ...
    wait_for("b to stop listening", SHORT, || {
        (!lab.ns.listening(18081)).then_some(())
    });
    // ... and the one in flight still works.
    assert_eq!(echo(&mut conn, b"after the move"), b"after the move");
    drop(conn);
    let t = r.wait_tunnel("ui", "done with the old connection", SHORT, |t| {
        t["active"] == 0
    });
    assert_eq!(t["state"], "up", "{t}");
}

/// `[daemon] url_hook` runs once per new public URL (a server that hands
/// out a new name on each connection, printing an http and an https form),
/// with the tunnel, the URL and the old URL; its failure is only logged.
#[test]
fn url_hook_runs_once_per_url_change() {
    let Some(mut lab) = Lab::new() else { return };
    let fake = fake::Fake::start(
        &lab.ns,
        "127.0.0.1:0",
        &lab.sshd.host_key,
        "Forwarding HTTP traffic from https://ui-{n}.example\r\nHTTP: http://ui-{n}.example\r\n",
    );
    let dir = lab.dir.path().to_path_buf();
    let calls = dir.join("url_hook.calls");
    let hook = dir.join("url_hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$ROADIE_TUNNEL|$ROADIE_URL|$ROADIE_OLD_URL\" >> {}\nexit 3\n",
            calls.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = |keepalive: u32| {
        base_config(&dir).replacen(
            "[daemon]\n",
            &format!("[daemon]\nurl_hook = {:?}\n", hook.display().to_string()),
            1,
        ) + &format!(
            "[[server]]\nname = \"fake\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"nokey\"\n\
             known_hosts = {:?}\nsession = \"shell\"\nkeepalive_s = {keepalive}\n\n",
            fake.port(),
            dir.join("known_hosts").display().to_string()
        ) + &tunnel_block("ui", "fake", "80", "127.0.0.1:8080", "")
    };
    let read_calls = || std::fs::read_to_string(&calls).unwrap_or_default();
    let wait_calls = |n: usize| -> Vec<String> {
        wait_for(&format!("{n} url_hook call(s)"), SHORT, || {
            let c: Vec<String> = read_calls().lines().map(String::from).collect();
            (c.len() >= n).then_some(c)
        })
    };
    lab.start(&config(5));
    let r = lab.roadie();
    r.wait_tunnel("ui", "showing its URL", SHORT, |t| {
        t["public_urls"] == json!(["https://ui-1.example", "http://ui-1.example"])
    });
    assert_eq!(wait_calls(1), ["ui|https://ui-1.example|"]);

    // A changed server setting restarts the session: connection 2, a new name.
    for (n, keepalive) in [(2, 6), (3, 5)] {
        r.write_config(&config(keepalive));
        r.rpc("reload", json!({})).expect("reload");
        let want = format!("https://ui-{n}.example");
        r.wait_tunnel("ui", "showing the new URL", SHORT, |t| {
            t["public_urls"]
                .as_array()
                .is_some_and(|a| a.contains(&json!(want)))
        });
        let calls = wait_calls(n);
        assert_eq!(
            calls[n - 1],
            format!("ui|{want}|https://ui-{}.example", n - 1),
            "{calls:?}"
        );
    }
    // Nothing more: the http form of each name was not a change.
    r.wait_up("ui");
    assert_eq!(read_calls().lines().count(), 3, "{}", read_calls());
    assert!(r.log().contains("url_hook"), "{}", r.log());
    assert!(r.log().contains("failed"), "the hook's exit 3 is logged");
    r.assert_alive();
}

/// Sends `data` to the target's ECHO service through `s` (writing from a
/// second thread, then half-closing) and returns what came back.
fn echo(s: &mut std::net::TcpStream, data: Vec<u8>) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"ECHO").unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    writer.join().unwrap();
    got
}

/// One GET through the unix socket sshd listens on for a `unix:` remote.
fn get_unix(path: &str) -> Result<String, String> {
    let mut s =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| format!("{path}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// `remote = "unix:..."` asks OpenSSH for streamlocal-forward: the page
/// comes through the socket; and with StreamLocalBindUnlink a second roadie
/// takes the socket over at once while sshd still holds the first one's
/// session (frozen with SIGSTOP: a SIGKILL would close its TCP connection
/// and sshd would let go by itself, which is not the case under test).
#[test]
fn unix_socket_remote_serves_and_is_taken_over_from_a_dead_session() {
    let Some(lab) = Lab::new() else { return };
    let sshd = Sshd::start_with(
        &lab.ns,
        lab.dir.path(),
        "127.0.0.1",
        2224,
        &[&lab.key],
        "AllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\nClientAliveInterval 5\nClientAliveCountMax 3\n",
    );
    // /tmp: the SSH user may create its socket there; the path is unique.
    let sock = format!("/tmp/{}-ui.sock", lab.id);
    let _ = std::fs::remove_file(&sock);
    let remote = format!("unix:{sock}");
    let config = |dir: &std::path::Path| {
        base_config(dir)
            + &server_block("own", &sshd, Some(&lab.key), "")
            + &tunnel_block("ui", "own", &remote, "127.0.0.1:8080", "")
    };
    let first = Roadie::start(&lab.ns, lab.dir.path(), &config(lab.dir.path()));
    let ui = first.wait_up("ui");
    assert_eq!(ui["remote"], remote.as_str(), "{ui}");
    assert!(ui.get("assigned_port").is_none(), "{ui}");
    let page = wait_for("the page through the unix socket", SHORT, || {
        get_unix(&sock).ok().filter(|p| p.contains(PAGE))
    });
    assert!(page.contains(PAGE), "{page}");

    // The first session goes silent: sshd still holds it and its socket.
    let frozen = first.pid();
    // SAFETY: a plain kill(2) on the roadie this test started.
    assert_eq!(unsafe { libc::kill(frozen as i32, libc::SIGSTOP) }, 0);
    let dir2 = Dir::new(&format!("{}b", lab.id));
    let t0 = Instant::now();
    let second = Roadie::start(&lab.ns, dir2.path(), &config(dir2.path()));
    second.wait_tunnel(
        "ui",
        "up on the second roadie",
        Duration::from_secs(5),
        |t| t["state"] == "up",
    );
    wait_for(
        "the page through the taken-over socket",
        Duration::from_secs(5),
        || get_unix(&sock).ok().filter(|p| p.contains(PAGE)),
    );
    let took = t0.elapsed();
    eprintln!("unix-socket takeover from a held dead session: serving again in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // sshd still held the frozen session all along: two logins are open.
    let out = crate::common::ns::exec(
        &lab.ns.name,
        &["ss", "-Htn", "state", "established", "( sport = :2224 )"],
        SHORT,
    );
    let held = String::from_utf8_lossy(&out.stdout).lines().count();
    assert_eq!(held, 2, "{}", String::from_utf8_lossy(&out.stdout));
    // SAFETY: as above; the frozen roadie ends here, not at drop.
    unsafe { libc::kill(frozen as i32, libc::SIGKILL) };
    drop(first);
    drop(second);
    let _ = std::fs::remove_file(&sock);
}
