//! luci-app-roadie's status page (openwrt-package/luci-app-roadie/), tested
//! without LuCI: headless Chromium loads the real view through a stand-in
//! for LuCI's client runtime (tests/doubles/luci-double.js) and a stand-in
//! for uhttpd + rpcd (tests/luci_lab), whose `roadie` ubus object is a real
//! roadie daemon in the namespace lab, reached the way rpcd reaches it
//! (`roadie rpcd call METHOD`). The lab: a hotel whose DHCP hands out the
//! cluster's own 192.168.1.0/24 (roadie moves the LAN), an OpenSSH server
//! behind it that prints a public URL (tunnel `ui`, two ways out) and
//! refuses one forward (tunnel `api`, in backoff with an error), and a
//! captive portal that starts holding the router midway.
//!
//! Chromium runs in a namespace of its own that has nothing but `lo`: the
//! page and its calls are all it can reach. Run as root:
//! `cargo test --test luci_view`. Without root or Chromium the lab test
//! prints SKIP (and fails under CI=true). The screenshot goes to
//! `$CARGO_TARGET_TMPDIR/luci-roadie.png`; with ROADIE_SCREENSHOT=PATH it
//! is also written there (the README's docs/luci-roadie.png).

mod common;
mod luci_lab;

use common::portal::{PORTAL, PROBE_PORT, PortalServer};
use common::*;
use luci_lab::browser::{self, Browser};
use luci_lab::{ACL, GROUP, Grants, MENU, Stand, VIEW, package};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

const HOME: &str = "192.168.1.0/24";
/// What the hotel's sshd prints on the session channel, like serveo.
const PUBLIC_URL: &str = "https://ui-lab.roadie.example";
/// sshd_config for that: every session runs this instead of a shell.
const FORCE: &str = "ForceCommand printf 'Forwarding HTTP traffic from https://ui-lab.roadie.example\\n'; exec cat\n";
/// The forward that sshd refuses: something else holds the port there.
const TAKEN_PORT: u16 = 18081;

/// What the page shows, read from the DOM (textContent, so no theme's
/// text-transform gets in the way).
const PAGE_JS: &str = r#"(() => {
  const q = s => document.querySelector(s);
  const t = n => n ? n.textContent.replace(/\s+/g, ' ').trim() : null;
  const shown = s => { const n = q(s); return (n && !n.classList.contains('hidden')) ? t(n) : null; };
  const hrefs = n => n ? [...n.querySelectorAll('a')].map(a => a.getAttribute('href')) : [];
  const facts = s => Object.fromEntries([...document.querySelectorAll(s + ' tr[data-fact]')]
    .map(tr => [tr.dataset.fact, t(tr.children[1])]));
  const cells = tr => [...tr.children].map(t);
  const tunnels = {};
  document.querySelectorAll('#roadie-tunnel-table tr[data-tunnel]').forEach(tr => {
    const st = tr.querySelector('[data-state]');
    tunnels[tr.dataset.tunnel] = {
      cells: cells(tr),
      state: st ? st.dataset.state : null,
      state_class: st ? st.className : null,
      links: hrefs(tr),
      ways: [...tr.querySelectorAll('[data-way]')].map(w => ({ text: t(w), active: w.dataset.active })),
      reconnects: t(tr.querySelector('.roadie-reconnects')),
      button: !!tr.querySelector('button:not([disabled])'),
    };
  });
  const res = q('#roadie-result [data-method]');
  return {
    loaded: !!q('#roadie-status'),
    down: shown('#roadie-down'),
    captive: shown('#roadie-captive'),
    captive_links: hrefs(q('#roadie-captive')),
    config_problem: shown('#roadie-config-problem'),
    daemon: facts('#roadie-daemon-facts'),
    lan: facts('#roadie-lan-facts'),
    uplinks: Object.fromEntries([...document.querySelectorAll('#roadie-uplink-table tr[data-uplink]')]
      .map(tr => [tr.dataset.uplink, cells(tr)])),
    history: [...document.querySelectorAll('#roadie-history tr[data-move]')].map(cells),
    hosts: Object.fromEntries([...document.querySelectorAll('#roadie-hosts tr[data-host]')]
      .map(tr => [tr.dataset.host, cells(tr)])),
    tunnels,
    result: res ? { method: res.dataset.method, class: res.className, text: t(res) } : null,
    buttons: [...document.querySelectorAll('#roadie-actions button')].map(b => ({ id: b.id, enabled: !b.disabled })),
    errors: window.__luciDouble ? window.__luciDouble.errors : ['no double'],
    translated: window.__luciDouble ? Object.keys(window.__luciDouble.translated) : [],
  };
})()"#;

fn tunnel<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["tunnels"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["name"] == name))
        .unwrap_or(&Value::Null)
}

fn page(b: &mut Browser) -> Value {
    b.eval(PAGE_JS)
}

/// Polls the page until `pred` holds (the view refreshes every 5 s);
/// panics with the last page after `timeout`.
fn wait_page(
    b: &mut Browser,
    what: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let p = page(b);
        if pred(&p) {
            return p;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for the page to show {what}; it shows:\n{}",
                serde_json::to_string_pretty(&p).unwrap()
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// The whole story through the page: what it shows against what the
/// daemon says, each button reaching the daemon, "roadie is not running"
/// for a daemon that hangs and for one that is gone, and polling on until
/// it is back; the screenshot on the way.
#[test]
fn status_page_in_chromium_against_a_lab_daemon() {
    let t0 = Instant::now();
    if !lab_possible() {
        return;
    }
    if !browser::installed() {
        skip("chromium is not installed (scripts/install-deps luci)");
        return;
    }
    let Some(mut lab) = Lab::new(LabOpts {
        upstream: "192.168.1.254/24".into(),
        range: ("192.168.1.50".into(), "192.168.1.150".into()),
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    lab.start_sshd_with(FORCE);
    let portal = PortalServer::start(&lab.up, &format!("{SSHD_ADDR}:{PROBE_PORT}"));
    portal.let_through();
    let _taken = ns::enter(&lab.up, || {
        TcpListener::bind(("0.0.0.0", TAKEN_PORT)).expect("hold the port sshd must refuse")
    });

    let wan = "[wan]\ninterfaces = [\"wan0\"]\n";
    let base = lab.config_text();
    assert!(base.contains(wan), "{base}");
    let server = |name: &str, session: &str| {
        format!(
            "\n[[server]]\nname = {name:?}\nhost = {SSHD_ADDR:?}\nuser = \"root\"\n\
             identity = {:?}\nknown_hosts = {:?}\nsession = {session:?}\nkeepalive_s = 2\n",
            lab.ssh_key().display().to_string(),
            lab.dir.join("known_hosts").display().to_string(),
        )
    };
    let tunnels = server("hotel", "shell")
        + &server("backup", "none")
        + "\n[[tunnel]]\nname = \"ui\"\ntarget = \"master:8080\"\n\
           [[tunnel.via]]\nserver = \"hotel\"\nremote = \"0.0.0.0:18080\"\n\
           [[tunnel.via]]\nserver = \"backup\"\nremote = \"0.0.0.0:18090\"\n"
        + &format!(
            "\n[[tunnel]]\nname = \"api\"\nserver = \"backup\"\nremote = \"0.0.0.0:{TAKEN_PORT}\"\n\
             target = \"master:6443\"\n"
        );
    let config = |probe: &str| {
        base.replace(
            wan,
            &format!("{wan}probe_url = \"http://{SSHD_ADDR}/{probe}\"\n"),
        ) + &tunnels
    };
    lab.write_config(&config("generate_204"));
    lab.start_daemon();

    // The daemon first: the LAN moved off the hotel's prefix, `ui` up with
    // its URL on both ways out, `api` refused, no portal.
    let s = lab.daemon.wait_status(
        "the LAN moved, ui up with its URL, api in backoff",
        LONG,
        |s| {
            let ui = tunnel(s, "ui");
            let api = tunnel(s, "api");
            lan_prefix(s) != HOME
                && !settling(s)
                && s["lan"]["hook"]["ok"] == true
                && ui["state"] == "up"
                && ui["public_urls"] == json!([PUBLIC_URL])
                && ui["via"]
                    .as_array()
                    .is_some_and(|w| w.iter().all(|w| w["healthy"] == true))
                && api["state"] == "backoff"
                && text(&api["last_error"]).contains("refused to listen")
                && s["probe"]["result"] == "open"
        },
    );
    let prefix = lan_prefix(&s);
    let node = format!("{}:8080", lab.node_in(&prefix));
    eprintln!(
        "luci: lab ready after {:?}: LAN {HOME} -> {prefix}",
        t0.elapsed()
    );
    let through = format!("http://{SSHD_ADDR}:18080/");
    wait_until("the node's page through tunnel ui", SHORT, || {
        lab.curl_page(&lab.up, &through)
    });
    let s = lab.daemon.wait_status("ui's traffic counted", SHORT, |s| {
        tunnel(s, "ui")["bytes_out"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(tunnel(&s, "ui")["target"], node.as_str(), "{s}");

    // The browser, in a namespace with only `lo`, and the router's web side.
    let ui_ns = Ns::new(&format!("{}-ui", lab.id));
    let stand = Stand::start(&ui_ns, &lab.daemon.sock);
    let dir = lab.dir.join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    let mut b = Browser::start(&ui_ns.name, &dir);
    b.open(&stand.url());

    // a) What the page shows, against the daemon's own status.
    let p = wait_page(&mut b, "both tunnels and the moved LAN", LONG, |p| {
        p["tunnels"]["ui"]["state"] == "up"
            && p["tunnels"]["api"]["state"] == "backoff"
            && p["lan"]["prefix"] == prefix.as_str()
            && p["tunnels"]["ui"]["links"] == json!([PUBLIC_URL])
    });
    eprintln!("luci: page up after {:?}", t0.elapsed());
    let s = lab.status();
    assert_eq!(p["errors"], json!([]), "{p:#}");
    assert!(p["down"].is_null() && p["captive"].is_null(), "{p:#}");
    assert!(p["config_problem"].is_null(), "{p:#}");
    assert_eq!(p["daemon"]["version"], s["version"], "{p:#}");
    assert_eq!(p["daemon"]["reloads"], "0", "{p:#}");
    assert!(text(&p["daemon"]["probe"]).starts_with("open"), "{p:#}");
    let w = &s["wan"][0];
    let lease = text(&w["addresses"][0]).to_string();
    assert!(lease.starts_with("192.168.1."), "{s}");
    assert_eq!(
        p["uplinks"]["wan0"],
        json!(["wan0", "up", lease, "192.168.1.254"]),
        "{p:#}"
    );
    let lan = &p["lan"];
    assert_eq!(lan["home"], HOME, "{p:#}");
    assert_eq!(lan["prefix"], prefix.as_str(), "{p:#}");
    assert_eq!(lan["address"], s["lan"]["address"], "{p:#}");
    let reason = text(&s["lan"]["history"][0]["reason"]);
    assert!(reason.contains("collides"), "{s}");
    assert_eq!(lan["moved"], format!("moved {reason}").as_str(), "{p:#}");
    assert!(text(&lan["hook"]).starts_with("ok "), "{p:#}");
    assert_eq!(lan["problem"], "none", "{p:#}");
    assert_eq!(p["history"].as_array().map(Vec::len), Some(1), "{p:#}");
    assert_eq!(p["history"][0][1], HOME, "{p:#}");
    assert_eq!(p["history"][0][2], prefix.as_str(), "{p:#}");
    assert_eq!(p["history"][0][3], reason, "{p:#}");
    // The cluster host followed the move (its hook moved it): where it is now.
    let s = lab.daemon.wait_status("master followed", LONG, |s| {
        s["lan"]["hosts"][0]["followed_ms"].is_u64()
    });
    let followed = s["lan"]["hosts"][0]["followed_ms"].as_u64().unwrap_or(0);
    let p = wait_page(&mut b, "the host table", LONG, |p| {
        p["hosts"]["master"][3]
            .as_str()
            .is_some_and(|c| c.starts_with("after "))
    });
    let cells = &p["hosts"]["master"];
    let first: Vec<&str> = (0..3).map(|i| text(&cells[i])).collect();
    assert_eq!(
        first,
        ["master", lab.node_in(&prefix).as_str(), "yes"],
        "{p:#}"
    );
    // Rounded by JavaScript's toFixed(1): within 0.05 s of followed_ms.
    let shown: f64 = text(&cells[3])
        .trim_start_matches("after ")
        .trim_end_matches(" s")
        .parse()
        .unwrap_or(-1.0);
    assert!(
        (shown - followed as f64 / 1000.0).abs() <= 0.051,
        "{followed} ms: {p:#}"
    );
    let ui = &p["tunnels"]["ui"];
    assert_eq!(ui["state_class"], "label success", "{p:#}");
    assert_eq!(ui["cells"][3], node.as_str(), "{p:#}");
    assert_eq!(
        ui["ways"],
        json!([
            {"text": "hotel 0.0.0.0:18080 healthy active", "active": "true"},
            {"text": "backup 0.0.0.0:18090 healthy", "active": "false"},
        ]),
        "{p:#}"
    );
    let traffic = text(&ui["cells"][5]);
    assert!(
        traffic.contains(" in, ") && !traffic.starts_with("0 B in, 0 B out"),
        "{traffic}"
    );
    assert_eq!(ui["reconnects"], "0", "{p:#}");
    assert_eq!(ui["cells"][7], "-", "{p:#}");
    let api = &p["tunnels"]["api"];
    assert_eq!(api["state_class"], "label warning", "{p:#}");
    assert_eq!(api["links"], json!([]), "{p:#}");
    let api_error = text(&api["cells"][7]);
    assert!(
        api_error.contains(&format!("refused to listen on 0.0.0.0:{TAKEN_PORT}")),
        "{p:#}"
    );
    assert!(ui["button"] == true && api["button"] == true, "{p:#}");

    // b) The hotel's portal starts holding the router; the config gets a new
    // probe URL, and "Reload" makes the daemon take it: the reply on the
    // page, config.reloads up, the portal found and its URL a link.
    portal.hold();
    lab.write_config(&config("hotspot-detect"));
    b.click("#roadie-reload");
    let p = wait_page(
        &mut b,
        "the reload's reply and the captive portal",
        LONG,
        |p| {
            p["result"]["method"] == "reload"
                && p["daemon"]["reloads"] == "1"
                && p["captive_links"] == json!([PORTAL])
        },
    );
    assert_eq!(p["result"]["class"], "alert-message success", "{p:#}");
    assert!(text(&p["result"]["text"]).contains("\"reloaded\""), "{p:#}");
    assert!(
        text(&p["captive"])
            .starts_with("Captive portal The uplink wants a login at http://portal.example/login."),
        "{p:#}"
    );
    let s = lab.status();
    assert_eq!(s["config"]["reloads"], 1, "{s}");
    assert_eq!(s["captive"]["url"], PORTAL, "{s}");
    assert_eq!(
        tunnel(&s, "ui")["state"],
        "up",
        "the portal tore down a live session: {s}"
    );

    // c) Restart `ui`: the daemon re-requests its forward (reconnects 1).
    b.click("#roadie-tunnel-table tr[data-tunnel=\"ui\"] button");
    let p = wait_page(&mut b, "ui restarted", LONG, |p| {
        p["result"]["method"] == "tunnel.restart"
            && p["tunnels"]["ui"]["reconnects"] == "1"
            && p["tunnels"]["ui"]["state"] == "up"
    });
    assert!(
        text(&p["result"]["text"]).contains("\"restarted\": \"ui\""),
        "{p:#}"
    );
    let s = lab
        .daemon
        .wait_tunnel("ui", "up after the restart", SHORT, |t| t["state"] == "up");
    assert_eq!(s["reconnects"], 1, "{s}");
    wait_until(
        "the node's page through ui after the restart",
        SHORT,
        || lab.curl_page(&lab.up, &through),
    );

    // The screenshot: portal banner, the moved LAN, both tunnels, a reply.
    let p = wait_page(&mut b, "everything for the screenshot", LONG, |p| {
        p["tunnels"]["ui"]["state"] == "up"
            && p["tunnels"]["ui"]["links"] == json!([PUBLIC_URL])
            && p["tunnels"]["api"]["state"] == "backoff"
            && !p["captive"].is_null()
    });
    assert_eq!(p["errors"], json!([]), "{p:#}");
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("luci-roadie.png");
    b.screenshot(&shot, 1000);
    eprintln!("luci: screenshot {}", shot.display());
    if let Some(to) = std::env::var_os("ROADIE_SCREENSHOT") {
        std::fs::copy(&shot, &to).unwrap();
        eprintln!("luci: screenshot also written to {}", to.to_string_lossy());
    }

    // d) Re-evaluate the LAN: one more evaluation, nothing moves.
    let evals = evaluations(&lab.status());
    b.click("#roadie-readdress");
    let p = wait_page(&mut b, "the readdress reply", LONG, |p| {
        p["result"]["method"] == "readdress"
            && p["lan"]["evaluations"]
                .as_str()
                .and_then(|e| e.parse::<u64>().ok())
                > Some(evals)
    });
    let r = text(&p["result"]["text"]);
    assert!(r.contains("\"changed\": false"), "{p:#}");
    assert!(r.contains(&format!("\"to\": \"{prefix}\"")), "{p:#}");
    assert!(evaluations(&lab.status()) > evals);

    // e) A daemon that does not answer (stopped): "roadie is not running"
    // within the view's timeout, the page stays usable, and it recovers.
    let pid = lab.daemon_pid();
    signal(pid, libc::SIGSTOP);
    let hung = Instant::now();
    let p = wait_page(&mut b, "roadie is not running (no answer)", LONG, |p| {
        text(&p["down"]).starts_with("roadie is not running")
    });
    let noticed = hung.elapsed();
    signal(pid, libc::SIGCONT);
    assert!(
        text(&p["down"]).contains("no answer within 8 seconds"),
        "{p:#}"
    );
    assert!(
        p["buttons"]
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["enabled"] == true)),
        "{p:#}"
    );
    // sshd gave up on the frozen sessions meanwhile (ClientAliveInterval):
    // they come back held by the portal. The page follows the daemon.
    let p = wait_page(
        &mut b,
        "the status again, ui as the daemon has it",
        LONG,
        |p| {
            p["down"].is_null()
                && lab
                    .daemon
                    .rpc("status", json!({}))
                    .is_ok_and(|s| p["tunnels"]["ui"]["state"] == tunnel(&s, "ui")["state"])
        },
    );
    assert_eq!(p["errors"], json!([]), "{p:#}");
    eprintln!("luci: a hung daemon was shown after {noticed:?}");

    // f) A daemon that is gone: the rpcd plugin's {"error": ...}, then
    // polling on until it is back.
    lab.stop_daemon(libc::SIGTERM);
    let p = wait_page(&mut b, "roadie is not running (stopped)", LONG, |p| {
        text(&p["down"]).starts_with("roadie is not running")
    });
    assert!(
        text(&p["down"]).contains("(roadie daemon is not running"),
        "{p:#}"
    );
    b.click("#roadie-reload");
    let p = wait_page(&mut b, "the reload's error", LONG, |p| {
        p["result"]["method"] == "reload" && text(&p["result"]["class"]).contains("error")
    });
    assert!(
        text(&p["result"]["text"]).contains("roadie daemon is not running"),
        "{p:#}"
    );
    lab.start_daemon();
    let p = wait_page(&mut b, "the restarted daemon", LONG, |p| {
        p["down"].is_null()
            && p["daemon"]["reloads"] == "0"
            && p["tunnels"]["api"]["cells"].is_array()
    });
    assert_eq!(p["errors"], json!([]), "{p:#}");

    // A user with read access only: the status, no usable button, and no
    // call the ACL's read side does not grant.
    b.navigate(&stand.readonly_url());
    let ro = wait_page(&mut b, "the read-only page", LONG, |p| {
        p["down"].is_null() && p["tunnels"]["ui"]["cells"].is_array() && p["lan"]["home"] == HOME
    });
    assert_eq!(ro["errors"], json!([]), "{ro:#}");
    assert!(
        ro["buttons"]
            .as_array()
            .is_some_and(|b| b.iter().all(|b| b["enabled"] == false)),
        "{ro:#}"
    );
    assert!(
        ro["tunnels"]["ui"]["button"] == false && ro["tunnels"]["api"]["button"] == false,
        "{ro:#}"
    );

    // The page went through _() for the texts asserted on above.
    let translated: BTreeSet<&str> = p["translated"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for s in [
        "roadie is not running",
        "Captive portal",
        "The uplink wants a login at",
        "Tunnels",
        "Cluster LAN",
        "Re-evaluate the LAN now",
        "Reload the configuration",
        "Restart",
        "moved",
        "healthy",
        "active",
        "up",
        "backoff",
        "%s replied:",
        "%s failed:",
        "no answer within %d seconds",
    ] {
        assert!(translated.contains(s), "{s:?} was not passed through _()");
    }

    // Every call the page made was granted by the package's ACL, and it
    // used each method the ACL grants.
    let calls: BTreeSet<String> = stand.calls().into_iter().collect();
    assert_eq!(stand.denied(), Vec::<String>::new());
    let granted = Grants::load(&package(ACL), GROUP).all();
    assert_eq!(calls, granted, "calls made vs granted");
    drop(b);
    drop(stand);
    drop(ui_ns);
    drop(portal);
    eprintln!("luci_view: {:?} in all", t0.elapsed());
}

/// The `rpc.declare` calls in the view: (object, method).
fn declared_calls(js: &str) -> Vec<(String, String)> {
    let quoted = |block: &str, key: &str| -> Option<String> {
        let at = block.find(&format!("{key}:"))? + key.len() + 1;
        let rest = block[at..].trim_start();
        let q = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = rest[1..].find(q)?;
        Some(rest[1..1 + end].to_string())
    };
    js.match_indices("rpc.declare(")
        .map(|(i, _)| {
            let block = &js[i..i + js[i..].find("})").expect("rpc.declare({ ... })")];
            (
                quoted(block, "object").expect("object: '...'"),
                quoted(block, "method").expect("method: '...'"),
            )
        })
        .collect()
}

/// The ACL against the view: every ubus method the view declares is granted
/// to the package's group, nothing else is (no other object, no uci, no
/// files), reading is `status` alone, and each method exists in roadie.
/// The menu entry names the view and depends on that group.
#[test]
fn acl_grants_exactly_what_the_view_calls() {
    let js = std::fs::read_to_string(package(VIEW)).unwrap();
    let declared = declared_calls(&js);
    let declared_set: BTreeSet<String> = declared.iter().map(|(o, m)| format!("{o}.{m}")).collect();
    assert_eq!(
        declared.len(),
        declared_set.len(),
        "a method declared twice"
    );
    assert_eq!(
        declared_set,
        BTreeSet::from(
            [
                "roadie.status",
                "roadie.reload",
                "roadie.readdress",
                "roadie.tunnel.restart"
            ]
            .map(String::from)
        ),
        "the view's calls"
    );
    // No other way to the router: only these modules, no raw requests.
    let requires: Vec<&str> = js
        .lines()
        .filter_map(|l| l.strip_prefix("'require ")?.strip_suffix("';"))
        .collect();
    assert_eq!(requires.join(" "), "view dom poll rpc ui");
    for other in [
        "rpc.list",
        "L.Request",
        "XMLHttpRequest",
        "fetch(",
        "fs.exec",
        "uci.",
    ] {
        assert!(!js.contains(other), "the view uses {other}");
    }

    let acl: Value = serde_json::from_str(&std::fs::read_to_string(package(ACL)).unwrap()).unwrap();
    let groups: Vec<&String> = acl.as_object().unwrap().keys().collect();
    assert_eq!(groups, [GROUP], "one group, named after the package");
    let g = acl[GROUP].as_object().unwrap();
    let mut keys: Vec<&str> = g.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["description", "read", "write"]);
    for side in ["read", "write"] {
        let scopes: Vec<&String> = g[side].as_object().unwrap().keys().collect();
        assert_eq!(scopes, ["ubus"], "{side}: ubus only (no uci, file, cgi-io)");
    }
    let grants = Grants::load(&package(ACL), GROUP);
    assert_eq!(grants.all(), declared_set, "granted vs called");
    assert_eq!(
        grants
            .read
            .keys()
            .chain(grants.write.keys())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([&"roadie".to_string()])
    );
    assert_eq!(
        grants.read["roadie"],
        BTreeSet::from(["status".to_string()]),
        "reading is status alone; everything that changes something is write"
    );
    assert!(!grants.write["roadie"].contains("status"));
    for call in &declared_set {
        let method = call.strip_prefix("roadie.").unwrap();
        assert!(
            roadie::control::protocol::METHODS
                .iter()
                .any(|(m, _)| *m == method),
            "roadie has no method {method}"
        );
    }

    let menu: Value =
        serde_json::from_str(&std::fs::read_to_string(package(MENU)).unwrap()).unwrap();
    let entries = menu.as_object().unwrap();
    assert_eq!(entries.len(), 1, "{menu}");
    let (path, entry) = entries.iter().next().unwrap();
    assert_eq!(path, "admin/status/roadie");
    assert_eq!(
        entry["action"],
        json!({"type": "view", "path": "roadie/status"})
    );
    assert_eq!(entry["depends"]["acl"], json!([GROUP]));
    assert!(
        package(&format!(
            "htdocs/luci-static/resources/view/{}.js",
            entry["action"]["path"].as_str().unwrap()
        ))
        .exists()
    );
}
