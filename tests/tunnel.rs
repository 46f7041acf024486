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
    let (bin, bout) = (ui["bytes_in"].as_u64().unwrap(), ui["bytes_out"].as_u64().unwrap());
    assert_eq!(bin, "GET / HTTP/1.0\r\nHost: x\r\n\r\n".len() as u64, "{ui}");
    assert!(bout > PAGE.len() as u64, "{ui}");
    // The CLI's table shows them.
    let out = r.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tunnel ui: up via vps localhost:18080 -> 127.0.0.1:8080"), "{text}");
    assert!(text.contains("tunnel web: up"), "{text}");
}
