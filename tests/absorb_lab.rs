//! `[lan] on_collision = "absorb"` in a namespace lab (see tests/common/dhcp.rs):
//! the hotel's network is the cluster's own 192.168.1.0/24, with its gateway
//! and DHCP server at 192.168.1.1, the router's LAN address. The router's
//! udhcpc runs examples/udhcpc-absorb.script, which asks roadie before the
//! lease goes in. Run as root: `cargo test --test absorb_lab`.

mod common;

use common::*;
use std::time::{Duration, Instant};

const HOME: &str = "192.168.1.0/24";
/// The checksum-neutral alias of 192.168.1.0/24 in 10/8.
const ALIAS: &str = "10.168.183.0/24";

fn nft(lab: &Lab, args: &[&str]) -> (bool, String) {
    let mut all = vec!["nft"];
    all.extend_from_slice(args);
    let out = lab.exec(&lab.rtr, &all, SHORT);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn table(lab: &Lab) -> Option<String> {
    let (ok, text) = nft(lab, &["list", "table", "netdev", "roadie_wan0"]);
    ok.then_some(text)
}

/// Sends 1400-byte UDP datagrams with DF set from `ns` to `to` until the
/// kernel refuses one (EMSGSIZE: it learned a smaller path MTU from an ICMP
/// "fragmentation needed"); whether it did within 3 s.
fn learns_path_mtu(lab: &Lab, ns: &str, to: &str) -> bool {
    let py = format!(
        "import socket, sys, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, 10, 2)\n\
         s.connect(('{to}', 9))\n\
         end = time.monotonic() + 3\n\
         while time.monotonic() < end:\n\
         \x20   try:\n\
         \x20       s.send(b'x' * 1400)\n\
         \x20   except OSError as e:\n\
         \x20       sys.exit(0 if e.errno == 90 else 2)\n\
         \x20   time.sleep(0.05)\n\
         sys.exit(1)\n"
    );
    lab.exec(ns, &["python3", "-c", &py], SHORT)
        .status
        .success()
}

/// What the router's DNS (at its LAN address) answers `name` with, as
/// busybox nslookup prints it.
fn lookup(lab: &Lab, ns: &str, name: &str) -> String {
    let out = lab.exec(ns, &["busybox", "nslookup", name, "192.168.1.1"], SHORT);
    let text = String::from_utf8_lossy(&out.stdout);
    // The answer follows the "Name:" line (the server's address comes first).
    text.split_once("Name:")
        .map(|(_, a)| a.to_string())
        .unwrap_or_default()
}

/// The router's dnsmasq, as procd runs OpenWrt's: respawned when it exits,
/// so that `init.d/dnsmasq restart` (a kill here) starts it again with the
/// files in its conf-dir. Returns the init.d directory and the alias file.
fn router_dnsmasq(lab: &mut Lab) -> (std::path::PathBuf, std::path::PathBuf) {
    let confdir = lab.dir.join("dnsmasq.d");
    let init_d = lab.dir.join("init.d");
    std::fs::create_dir_all(&confdir).unwrap();
    std::fs::create_dir_all(&init_d).unwrap();
    let pidfile = lab.dir.join("router-dnsmasq.pid");
    let run = format!(
        "trap 'kill $c 2>/dev/null; exit 0' TERM; \
         while :; do \
           dnsmasq --keep-in-foreground --conf-file=/dev/null --user=root --no-resolv --no-hosts \
             --listen-address=192.168.1.1 --bind-dynamic --server=10.168.183.1 --log-queries \
             --log-facility=- --conf-dir={confdir} & c=$!; echo $c > {pidfile}; wait $c; sleep 0.05; \
         done",
        confdir = confdir.display(),
        pidfile = pidfile.display()
    );
    let rtr = lab.rtr.clone();
    lab.spawn_extra(&rtr, &["sh", "-c", &run], "router-dnsmasq.log");
    // What roadie runs: `init.d/dnsmasq restart`.
    let script = init_d.join("dnsmasq");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# The lab's init script for the router's dnsmasq (respawned by its loop).\n\
             [ \"$1\" = restart ] && kill \"$(cat {})\"\n",
            pidfile.display()
        ),
    )
    .unwrap();
    chmod_x(&script);
    (init_d, confdir.join("roadie-absorb.conf"))
}

fn curl_out(lab: &Lab, ns: &str, url: &str) -> String {
    let out = lab.exec(ns, &["curl", "-s", "--max-time", "2", url], SHORT);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything in one lab (a lab takes seconds to build): arrival at a hotel
/// whose network is ours, what works through it, a new lease, a firewall
/// flush, kill -9, the hotel moving to another prefix, SIGTERM.
#[test]
fn absorbs_a_hotel_that_uses_the_clusters_prefix() {
    let t0 = Instant::now();
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        udhcpc_script: "examples/udhcpc-absorb.script",
        ..LabOpts::default()
    }) else {
        return;
    };
    let (ok, _) = nft(&lab, &["list", "tables"]);
    if !ok {
        skip("nft does not work here (nftables not installed?)");
        return;
    }
    lab.start_sshd();
    // The hotel's portal: a web server on its gateway address.
    let www = lab.dir.join("portal");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hotel portal\n").unwrap();
    let up = lab.up.clone();
    let www_s = www.display().to_string();
    lab.spawn_extra(
        &up,
        &[
            "python3",
            "-m",
            "http.server",
            "80",
            "--bind",
            "0.0.0.0",
            "--directory",
            &www_s,
        ],
        "portal.log",
    );
    // The hotel's DNS, at its gateway address: the portal and a printer
    // that has the node's address, 192.168.1.100 (on the hotel's side).
    lab.spawn_extra(
        &up,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--user=root",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=192.168.1.1",
            "--bind-dynamic",
            "--address=/portal.hotel/192.168.1.1",
            "--address=/printer.hotel/192.168.1.100",
            "--log-facility=-",
        ],
        "hotel-dns.log",
    );
    lab.exec(
        &up,
        &["ip", "addr", "add", "192.168.1.100/32", "dev", "lo"],
        SHORT,
    );
    let printer = lab.dir.join("printer");
    std::fs::create_dir_all(&printer).unwrap();
    std::fs::write(printer.join("index.html"), "hotel printer\n").unwrap();
    let printer_s = printer.display().to_string();
    lab.spawn_extra(
        &up,
        &[
            "python3",
            "-m",
            "http.server",
            "631",
            "--bind",
            "192.168.1.100",
            "--directory",
            &printer_s,
        ],
        "printer.log",
    );
    let (init_d, alias_file) = router_dnsmasq(&mut lab);
    // The router forwards and masquerades (what fw4 does on OpenWrt); the
    // node's default route is the router.
    lab.exec(
        &lab.rtr,
        &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
        SHORT,
    );
    let nat = "add table ip lab_nat; add chain ip lab_nat post { type nat hook postrouting priority 100; }; add rule ip lab_nat post oifname \"wan0\" masquerade";
    let out = lab.exec(&lab.rtr, &["nft", nat], SHORT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.exec(
        &lab.cl,
        &["ip", "route", "replace", "default", "via", "192.168.1.1"],
        SHORT,
    );
    // Beyond the hotel, behind a 1280-byte link: path-MTU discovery needs
    // the hotel's ICMP errors, whose quoted headers carry the lease address.
    let far = ns::Ns::new(&format!("{}-far", lab.id));
    ns::veth("up1", &lab.up, "far0", &far.name);
    ns::ip_batch(
        &lab.up,
        "link set up1 mtu 1280 up\naddr add 198.18.1.1/24 dev up1\n",
    );
    far.batch("link set far0 mtu 1280 up\naddr add 198.18.1.2/24 dev far0\nroute add default via 198.18.1.1\n");
    lab.exec(
        &lab.up,
        &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
        SHORT,
    );

    let cfg = lab.config_text().replace(
        "[lan]\n",
        &format!(
            "[lan]\non_collision = \"absorb\"\ndns_alias_file = {:?}\n",
            alias_file.display().to_string()
        ),
    ) + &lab.hotel_tunnel_config()
        + &format!("\n[openwrt]\ninit_d = {:?}\n", init_d.display().to_string());
    lab.write_config(&cfg);
    lab.start_daemon();
    lab.wait_ready();
    let url = format!("http://{SSHD_ADDR}:18080/");
    lab.daemon
        .wait_status("tunnel ui up", LONG, |s| tunnel0(s)["state"] == "up");

    // a) The hotel: 192.168.1.0/24, gateway and DHCP at 192.168.1.1.
    let t_lease = Instant::now();
    lab.renumber("192.168.1.1/24", "192.168.1.57", "192.168.1.57");
    let addr = lab.wait_lease(ALIAS);
    let absorbed_after = t_lease.elapsed();
    assert_eq!(addr, "10.168.183.57/24");
    let t = table(&lab).expect("the translation table");
    assert!(
        t.contains("ip saddr != { 0.0.0.0, 192.168.1.57 } drop"),
        "{t}"
    );
    let routes = lab.route_dsts("wan0");
    assert!(routes.contains(&"default".to_string()), "{routes:?}");
    let s = lab.daemon.wait_status("absorbed in status", SHORT, |s| {
        s["lan"]["absorbed"][0]["alias"] == ALIAS
    });
    let a = &s["lan"]["absorbed"][0];
    assert_eq!(
        (a["interface"].as_str(), a["prefix"].as_str()),
        (Some("wan0"), Some(HOME)),
        "{s}"
    );
    assert_eq!(
        (a["lease"].as_str(), a["address"].as_str()),
        (Some("192.168.1.57"), Some("10.168.183.57/24"))
    );
    // The cluster keeps every address: no move, the LAN at home.
    assert_eq!(lan_prefix(&s), HOME, "{s}");
    assert_eq!(history_len(&s), 0, "{s}");
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), ["192.168.1.1/24"]);
    // The uplink answers ARP only for its own address.
    let arp_ignore = lab.exec(
        &lab.rtr,
        &["cat", "/proc/sys/net/ipv4/conf/wan0/arp_ignore"],
        SHORT,
    );
    assert_eq!(String::from_utf8_lossy(&arp_ignore.stdout).trim(), "1");

    // b) What works through it: the tunnel (the router's own SSH through
    // the hotel) serving the node, the node reaching the Internet side and
    // the hotel's portal by its alias address, the node at its address.
    wait_until("the page through the tunnel", LONG, || {
        lab.curl_page(&lab.up, &url)
    });
    let working_after = t_lease.elapsed();
    assert!(
        curl_out(&lab, &lab.cl, "http://10.168.183.1/").contains("hotel portal"),
        "portal by alias"
    );
    let banner = curl_out(&lab, &lab.cl, &format!("telnet://{SSHD_ADDR}:22"));
    assert!(
        banner.starts_with("SSH-2.0-"),
        "the node reaches beyond the hotel: {banner:?}"
    );
    assert!(
        curl_out(&lab, &lab.rtr, "http://10.168.183.1/").contains("hotel portal"),
        "the router's own"
    );
    lab.assert_reachable("192.168.1.100");
    // The hotel's names, through the router's DNS: dnsmasq rewrites the
    // hotel's answers to the alias, so the printer that has the node's
    // address is reached by name while the node stays the node.
    wait_until("the printer's name gives its alias", SHORT, || {
        lookup(&lab, &lab.cl, "printer.hotel").contains("10.168.183.100")
    });
    assert!(lookup(&lab, &lab.cl, "portal.hotel").contains("10.168.183.1"));
    assert!(
        curl_out(&lab, &lab.cl, "http://10.168.183.100:631/").contains("hotel printer"),
        "the printer by its alias"
    );
    let text = std::fs::read_to_string(&alias_file).expect("the alias file");
    assert!(
        text.contains("alias=192.168.1.0,10.168.183.0,255.255.255.0"),
        "{text}"
    );
    let s = lab.status();
    assert_eq!(s["lan"]["absorbed"][0]["dns"], true, "{s}");
    assert_eq!(s["lan"]["collision"]["absorbed"], true, "{s}");
    assert_eq!(s["lan"]["collision"]["prefix"], HOME, "{s}");
    assert!(
        learns_path_mtu(&lab, &lab.cl, "198.18.1.2"),
        "the node learns the path MTU"
    );
    assert!(
        learns_path_mtu(&lab, &lab.rtr, "198.18.1.2"),
        "the router learns the path MTU"
    );
    // The hotel knows the router by its lease, at the router's uplink MAC.
    let neigh = lab.exec(
        &lab.up,
        &["ip", "-j", "neigh", "show", "192.168.1.57"],
        SHORT,
    );
    let n: serde_json::Value = serde_json::from_slice(&neigh.stdout).unwrap_or_default();
    let wan_mac = lab.exec(&lab.rtr, &["cat", "/sys/class/net/wan0/address"], SHORT);
    assert_eq!(
        n[0]["lladdr"].as_str(),
        Some(String::from_utf8_lossy(&wan_mac.stdout).trim()),
        "{n}"
    );
    eprintln!(
        "absorb: lease -> alias on wan0 {absorbed_after:?}, -> tunnel page {working_after:?}"
    );

    // b2) Software flow offload (fw4's `flow_offloading`: a flowtable on the
    // uplink, hooked at ingress priority 0, after the translation's -500):
    // an offloaded flow still goes through the translation. The forward
    // chain counts only what was not offloaded.
    std::fs::write(www.join("big"), vec![b'x'; 4 << 20]).unwrap();
    let ft = "add table inet lab_ft; \
              add flowtable inet lab_ft ft { hook ingress priority 0; devices = { wan0, lan0 }; }; \
              add chain inet lab_ft through { type filter hook forward priority 0; }; \
              add rule inet lab_ft through meta l4proto tcp counter flow add @ft";
    let out = lab.exec(&lab.rtr, &["nft", ft], SHORT);
    if out.status.success() {
        let got = curl_out(&lab, &lab.cl, "http://10.168.183.1/big");
        assert_eq!(got.len(), 4 << 20, "the download through an offloaded flow");
        let (_, rules) = nft(&lab, &["list", "chain", "inet", "lab_ft", "through"]);
        let forwarded: u64 = rules
            .split("packets ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX);
        // 4 MiB is about 2900 segments and their ACKs; offloaded, only the
        // first packets of the flow pass the forward chain.
        assert!(
            forwarded < 200,
            "offloaded: {forwarded} packets forwarded\n{rules}"
        );
        eprintln!("absorb: offloaded download, {forwarded} packets through the forward chain");
        nft(&lab, &["delete", "table", "inet", "lab_ft"]);
    } else {
        // Only a kernel without flowtables is a reason to skip.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("No such file or directory") || err.contains("not supported"),
            "the flowtable: {err}"
        );
        eprintln!("SKIP flow offload: {}", err.trim());
    }

    // c) A firewall restart flushes every table: roadie loads its own again.
    nft(&lab, &["flush", "ruleset"]);
    lab.daemon.wait_status("the table restored", SHORT, |s| {
        s["lan"]["absorbed"][0]["restored"] == 1
    });
    assert!(table(&lab).is_some());
    lab.exec(&lab.rtr, &["nft", nat], SHORT);

    // d) A new lease in the same network: the table follows it.
    lab.renumber("192.168.1.1/24", "192.168.1.60", "192.168.1.60");
    assert_eq!(lab.wait_lease(ALIAS), "10.168.183.60/24");
    wait_until("the table for the new lease", SHORT, || {
        table(&lab).is_some_and(|t| t.contains("192.168.1.60 } drop"))
    });
    wait_until("the page through the tunnel (new lease)", LONG, || {
        lab.curl_page(&lab.up, &url)
    });

    // e) kill -9: the next start removes the table it left; the next DHCP
    // event (a renew here) absorbs again.
    lab.stop_daemon(libc::SIGKILL);
    assert!(table(&lab).is_some(), "kill -9 leaves the table");
    lab.start_daemon();
    lab.wait_ready();
    wait_until("the stale table removed", SHORT, || table(&lab).is_none());
    signal(lab.udhcpc_pid(), libc::SIGUSR1);
    wait_until("absorbed again after a renew", LONG, || {
        table(&lab).is_some()
    });
    wait_until("the alias file written again", SHORT, || {
        alias_file.exists()
    });
    wait_until("the page through the tunnel (restart)", LONG, || {
        lab.curl_page(&lab.up, &url)
    });

    // f) The hotel moves to a prefix that does not collide: no translation.
    lab.renumber("10.66.0.254/24", "10.66.0.50", "10.66.0.150");
    lab.wait_lease("10.66.0.0/24");
    wait_until("the table removed", SHORT, || table(&lab).is_none());
    assert!(!alias_file.exists(), "no alias file when nothing collides");
    let s = lab.daemon.wait_status("nothing absorbed", SHORT, |s| {
        s["lan"]["absorbed"].as_array().is_some_and(Vec::is_empty)
    });
    assert_eq!(history_len(&s), 0, "still no move: {s}");

    // g) Absorbed again, then SIGTERM: roadie takes its table with it.
    lab.renumber("192.168.1.1/24", "192.168.1.57", "192.168.1.57");
    lab.wait_lease(ALIAS);
    wait_until("absorbed again", SHORT, || table(&lab).is_some());
    let (took, _) = lab.stop_daemon(libc::SIGTERM);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(table(&lab).is_none(), "SIGTERM leaves no table");
    assert!(!alias_file.exists(), "SIGTERM leaves no alias file");
    eprintln!(
        "absorbs_a_hotel_that_uses_the_clusters_prefix: {:?}",
        t0.elapsed()
    );
}

/// `on_collision = "move"` (the default) never absorbs: the lease goes in
/// as it is and the LAN moves.
#[test]
fn move_is_the_default() {
    let Some(mut lab) = Lab::new(LabOpts {
        udhcpc_script: "examples/udhcpc-absorb.script",
        ..LabOpts::default()
    }) else {
        return;
    };
    lab.renumber("192.168.1.1/24", "192.168.1.57", "192.168.1.57");
    assert_eq!(lab.wait_lease(HOME), "192.168.1.57/24");
    let s = lab
        .daemon
        .wait_status("the LAN moved", LONG, |s| history_len(s) == 1);
    assert_ne!(lan_prefix(&s), HOME, "{s}");
    assert_eq!(s["lan"]["absorbed"], serde_json::json!([]), "{s}");
}

/// `on_collision = "absorb"` with a DHCP client that does not ask roadie
/// (the lab's plain udhcpc script; on OpenWrt, netifd's stock handler until
/// netifd restarts): the lease goes in as it is, the LAN moves, and status
/// says why it did not absorb and what to change.
#[test]
fn a_lease_that_did_not_ask_is_named() {
    let Some(mut lab) = Lab::new(LabOpts {
        start_daemon: false,
        ..LabOpts::default()
    }) else {
        return;
    };
    let cfg = lab
        .config_text()
        .replace("[lan]\n", "[lan]\non_collision = \"absorb\"\n");
    lab.write_config(&cfg);
    lab.start_daemon();
    lab.wait_ready();
    lab.renumber("192.168.1.1/24", "192.168.1.57", "192.168.1.57");
    assert_eq!(lab.wait_lease(HOME), "192.168.1.57/24");
    let s = lab.daemon.wait_status("the reason in status", LONG, |s| {
        s["lan"]["absorb_problem"]
            .as_str()
            .is_some_and(|p| p.contains("went in without asking roadie"))
    });
    let p = s["lan"]["absorb_problem"].as_str().unwrap_or_default();
    assert!(
        p.starts_with("wan0: its address 192.168.1.57/24") && p.contains("roadie absorb-lease"),
        "{p}"
    );
    lab.daemon
        .wait_status("the LAN moved instead", LONG, |s| history_len(s) == 1);
    assert_eq!(s["lan"]["absorbed"], serde_json::json!([]), "{s}");
}
