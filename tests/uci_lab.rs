//! `apply = "uci"` in the namespace lab (see tests/common/mod.rs): roadie runs
//! in the router namespace with [openwrt] pointing at test doubles of `uci`
//! (tests/doubles/uci-double, over real UCI files), `ubus` (whose `network
//! reload` puts the committed LAN address on lan0 with `ip`, like netifd) and
//! /etc/init.d/dnsmasq. Checked: the committed network and dhcp files after a
//! move, the reloads, the kernel address, status; and the revert when the
//! address never appears. Needs root; without it the lab tests print SKIP
//! (and fail under CI=true).

mod common;

use common::*;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn double(name: &str) -> String {
    format!("{REPO}/tests/doubles/{name}")
}

/// How the wrappers start the uci double: the system python directly (a
/// version manager's shim on PATH costs ~150 ms per call, and a move makes
/// about twenty calls).
fn uci_double() -> String {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    format!("{python} {}", double("uci-double"))
}

const NETWORK_NETMASK: &str = "
config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config interface 'lan'
\toption device 'lan0'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'
\toption ip6assign '60'

config interface 'wan'
\toption device 'wan0'
\toption proto 'dhcp'
";

const NETWORK_CIDR: &str = "
config interface 'lan'
\toption device 'lan0'
\toption proto 'static'
\tlist ipaddr '192.168.1.1/24'
\tlist ipaddr '172.31.0.1/16'

config interface 'wan'
\toption device 'wan0'
\toption proto 'dhcp'
";

const DHCP: &str = "
config dnsmasq
\toption domainneeded '1'
\toption local '/lan/'

config dhcp 'lan'
\toption interface 'lan'
\toption start '100'
\toption limit '150'
\toption leasetime '12h'

config host
\toption name 'master'
\toption mac '52:54:00:12:34:56'
\toption ip '192.168.1.100'

config host 'worker'
\toption name 'worker'
\toption mac '52:54:00:12:34:57'
\toption ip '192.168.1.101'

config host
\toption name 'elsewhere'
\toption ip '10.0.0.5'

config domain
\toption name 'api.cluster'
\toption ip '192.168.1.100'
";

struct UciLab {
    lab: Lab,
    conf: PathBuf,
    calls: PathBuf,
    /// The ubus double's netifd interfaces (see tests/doubles/ubus-double).
    ifaces: PathBuf,
}

/// How [`uci_lab_with`] sets up the lab.
struct UciOpts<'a> {
    network: &'a str,
    dhcp: &'a str,
    /// "apply" or "ignore" (a network reload that never brings the address up).
    reload: &'a str,
    timeout_ms: u64,
    /// A state file to start from (roadie's saved prefix).
    state: Option<&'a str>,
    lab: LabOpts,
    /// Turns the lab's config into this test's (after apply = "uci" and
    /// [openwrt] are in).
    edit: fn(String) -> String,
    /// netifd interfaces for the ubus double: (name, file content).
    ifaces: &'a [(&'a str, &'a str)],
}

impl Default for UciOpts<'_> {
    fn default() -> Self {
        UciOpts {
            network: NETWORK_NETMASK,
            dhcp: DHCP,
            reload: "apply",
            timeout_ms: 10_000,
            state: None,
            lab: LabOpts::default(),
            edit: |c| c,
            ifaces: &[],
        }
    }
}

/// The lab with roadie on apply = "uci" and the doubles.
fn uci_lab(network: &str, reload: &str, timeout_ms: u64, state: Option<&str>) -> Option<UciLab> {
    uci_lab_with(UciOpts {
        network,
        reload,
        timeout_ms,
        state,
        ..UciOpts::default()
    })
}

fn uci_lab_with(o: UciOpts) -> Option<UciLab> {
    let mut lab = Lab::new(LabOpts {
        start_daemon: false,
        settle_ms: 100,
        ..o.lab.clone()
    })?;
    let d = lab.dir.clone();
    let conf = d.join("uci/config");
    let ifaces = d.join("ifaces");
    for sub in [
        "uci/config",
        "uci/user",
        "uci/empty",
        "bin",
        "init.d",
        "ifaces",
    ] {
        fs::create_dir_all(d.join(sub)).unwrap();
    }
    fs::write(conf.join("network"), o.network).unwrap();
    fs::write(conf.join("dhcp"), o.dhcp).unwrap();
    for (name, content) in o.ifaces {
        fs::write(ifaces.join(name), content).unwrap();
    }
    let calls = d.join("calls.log");
    // uci-double with uci/user as its compiled-in default savedir (what
    // /tmp/.uci is on a router): where a user's `uci set` stages.
    let uci = |savedir: &str| {
        format!(
            "env UCI_DOUBLE_SAVEDIR={} {} -c {}",
            d.join(savedir).display(),
            uci_double(),
            conf.display()
        )
    };
    script(
        &d.join("bin/uci"),
        &format!("exec {} \"$@\"", uci("uci/user")),
    );
    // Like netifd, the ubus double reads the config with the default
    // savedir's staged changes applied.
    script(
        &d.join("bin/ubus"),
        &format!(
            "export UBUS_DOUBLE_LOG='{}' UBUS_DOUBLE_UCI='{}' UBUS_DOUBLE_RELOAD={} UBUS_DOUBLE_IFACES='{}'\nexec {} \"$@\"",
            calls.display(),
            uci("uci/user"),
            o.reload,
            ifaces.display(),
            double("ubus-double"),
        ),
    );
    script(
        &d.join("init.d/dnsmasq"),
        &format!(
            "export INIT_DOUBLE_LOG='{}'\nexec {} \"$@\"",
            calls.display(),
            double("dnsmasq-init-double")
        ),
    );
    let text = lab
        .config_text()
        .replace("[lan]\n", "[lan]\napply = \"uci\"\n")
        + &format!(
            "\n[openwrt]\nuci = {:?}\nubus = {:?}\ninit_d = {:?}\napply_timeout_ms = {}\nuci_savedir = {:?}\n",
            d.join("bin/uci").display().to_string(),
            d.join("bin/ubus").display().to_string(),
            d.join("init.d").display().to_string(),
            o.timeout_ms,
            d.join("uci/user").display().to_string(),
        );
    lab.write_config(&(o.edit)(text));
    if let Some(state) = o.state {
        fs::write(&lab.state, state).unwrap();
    }
    lab.start_daemon();
    lab.wait_ready();
    Some(UciLab {
        lab,
        conf,
        calls,
        ifaces,
    })
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

impl UciLab {
    /// `uci-double show CONFIG` over the committed files only.
    fn committed(&self, config: &str) -> String {
        self.uci_as("uci/empty", &["show", config])
    }

    /// uci-double as a user in a shell on the router: staging in the
    /// default savedir (uci/user).
    fn user(&self, args: &[&str]) -> String {
        self.uci_as("uci/user", args)
    }

    fn uci_as(&self, savedir: &str, args: &[&str]) -> String {
        run_ok(
            Command::new(double("uci-double"))
                .env("UCI_DOUBLE_SAVEDIR", self.lab.dir.join(savedir))
                .args(["-c", self.conf.to_str().unwrap()])
                .args(args),
        )
    }

    fn file(&self, config: &str) -> String {
        fs::read_to_string(self.conf.join(config)).unwrap()
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// What roadie left staged in its own savedir, or set aside and did not
    /// put back: both must be empty after every move.
    fn staged(&self) -> Vec<String> {
        let mut left = Vec::new();
        for dir in ["uci/user.roadie", "uci/user.roadie-aside"] {
            let Ok(entries) = fs::read_dir(self.lab.dir.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                if e.metadata().is_ok_and(|m| m.len() > 0) {
                    left.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        left
    }
}

impl UciLab {
    /// What the ubus double says netifd interface `name` runs on: the file
    /// is replaced in one rename, so a status call never reads half of it.
    fn set_iface(&self, name: &str, content: &str) {
        let tmp = self.ifaces.join(format!(".{name}.tmp"));
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, self.ifaces.join(name)).unwrap();
    }
}

fn count(lines: &[String], what: &str) -> usize {
    lines.iter().filter(|l| l.as_str() == what).count()
}

/// A real collision (the upstream renumbers into the LAN's prefix) with the
/// `ipaddr` + `netmask` style: UCI network and dhcp follow, netifd (the ubus
/// double) brings the address up, dnsmasq is reloaded, the hook runs.
#[test]
fn uci_lab_moves_network_and_dhcp_on_collision() {
    let Some(mut u) = uci_lab(NETWORK_NETMASK, "apply", 10_000, None) else {
        return;
    };
    let before = u.lab.status();
    assert_eq!(lan_prefix(&before), "192.168.1.0/24");
    assert!(before["lan"]["apply"].is_null(), "{before}");
    // Known hosts: [[lan.host]] master, and the reservations in the LAN
    // (master again by name, worker), not the one elsewhere; OpenWrt's 12 h
    // lease keeps udhcpc hosts from following a move within a minute.
    let names: Vec<&str> = before["lan"]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(names, ["master", "worker"], "{before}");
    let warning = before["lan"]["dhcp_warning"].as_str().unwrap_or_default();
    assert!(warning.contains("leasetime is 12h"), "{before}");
    assert!(u.calls().is_empty(), "no reload at start: {:?}", u.calls());

    u.lab
        .renumber("192.168.1.254/24", "192.168.1.50", "192.168.1.150");
    let lab = &u.lab;
    let s = lab.daemon.wait_status("the LAN to move", LONG, |s| {
        lan_prefix(s) != "192.168.1.0/24" && !s["lan"]["apply"].is_null()
    });
    let prefix = lan_prefix(&s);
    let router = host_in(&prefix, 1);
    let apply = &s["lan"]["apply"];
    assert_eq!(apply["ok"], true, "{s}");
    assert_eq!(apply["reverted"], false);
    assert!(
        apply["message"]
            .as_str()
            .unwrap()
            .contains("network.lan.ipaddr"),
        "{apply}"
    );
    assert!(s["lan"]["problem"].is_null(), "{s}");
    let worker = host_in(&prefix, 101).to_string();
    lab.daemon
        .wait_status("the reservation followed in lan.hosts", SHORT, |s| {
            s["lan"]["hosts"][1]["address"] == worker.as_str()
                && s["lan"]["follow"]["from"] == "192.168.1.0/24"
        });

    // The committed network config: ipaddr moved, netmask kept.
    let network = u.committed("network");
    assert!(
        network.contains(&format!("network.lan.ipaddr='{router}'\n")),
        "{network}"
    );
    assert!(network.contains("network.lan.netmask='255.255.255.0'\n"));
    assert!(network.contains("network.lan.ip6assign='60'\n"));
    assert!(network.contains("network.wan.proto='dhcp'\n"));
    assert!(
        u.file("network")
            .contains(&format!("\toption ipaddr '{router}'\n"))
    );
    // dhcp: reservations and names in the old prefix keep their offset.
    let dhcp = u.file("dhcp");
    let master = host_in(&prefix, 100);
    let worker = host_in(&prefix, 101);
    assert!(
        dhcp.contains(&format!(
            "config host\n\toption name 'master'\n\toption mac '52:54:00:12:34:56'\n\toption ip '{master}'\n"
        )),
        "{dhcp}"
    );
    assert!(dhcp.contains(&format!("config host 'worker'\n\toption name 'worker'\n\toption mac '52:54:00:12:34:57'\n\toption ip '{worker}'\n")), "{dhcp}");
    assert!(dhcp.contains("\toption ip '10.0.0.5'\n"), "{dhcp}");
    assert!(
        dhcp.contains(&format!(
            "config domain\n\toption name 'api.cluster'\n\toption ip '{master}'\n"
        )),
        "{dhcp}"
    );
    assert!(dhcp.contains("\toption start '100'\n\toption limit '150'\n"));
    assert!(!dhcp.contains("192.168.1."), "{dhcp}");
    assert!(u.staged().is_empty(), "left staged: {:?}", u.staged());

    // netifd (the double) put it on lan0; the kernel agrees.
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), vec![format!("{router}/24")]);
    let calls = u.calls();
    assert_eq!(count(&calls, "ubus call network reload"), 1, "{calls:?}");
    assert_eq!(count(&calls, "init.d/dnsmasq reload"), 1, "{calls:?}");
    assert!(
        calls.contains(&format!("applied {router} on lan0")),
        "{calls:?}"
    );

    // The rest of a move happened as with netlink.
    let state = lab.state_file();
    assert_eq!(state["prefix"].as_str(), Some(prefix.as_str()));
    let hooks = lab.hook_runs();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0].new, prefix);
    assert_eq!(hooks[0].lan, format!("{router}/24"));
    lab.assert_reachable(&lab.node_in(&prefix));
}

/// The CIDR-list style, forced through `readdress`: the entry in the old
/// prefix is replaced in place, the other one kept.
#[test]
fn uci_lab_moves_a_cidr_list() {
    let Some(u) = uci_lab(NETWORK_CIDR, "apply", 10_000, None) else {
        return;
    };
    let lab = &u.lab;
    let r = lab
        .daemon
        .call("readdress", json!({"prefix": "10.9.8.0/24"}))
        .unwrap_or_else(|e| panic!("readdress failed: {e}"));
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["to"], "10.9.8.0/24");
    let network = u.file("network");
    assert!(
        network.contains("\tlist ipaddr '10.9.8.1/24'\n\tlist ipaddr '172.31.0.1/16'\n"),
        "{network}"
    );
    assert!(
        u.committed("network")
            .contains("network.lan.ipaddr='10.9.8.1/24' '172.31.0.1/16'\n")
    );
    assert!(u.file("dhcp").contains("\toption ip '10.9.8.100'\n"));
    let mut addrs = lab.addrs(&lab.rtr, "lan0");
    addrs.sort();
    assert_eq!(addrs, ["10.9.8.1/24", "172.31.0.1/16"]);
    let s = lab.status();
    assert_eq!(lan_prefix(&s), "10.9.8.0/24");
    assert_eq!(s["lan"]["apply"]["ok"], true, "{s}");
}

/// netifd never brings the address up: roadie waits apply_timeout_ms, puts
/// the UCI config back as it was (and reloads again), stays where it was,
/// and says so in status.
#[test]
fn uci_lab_reverts_when_the_address_never_appears() {
    let Some(u) = uci_lab(NETWORK_NETMASK, "ignore", 1000, None) else {
        return;
    };
    let lab = &u.lab;
    let network_before = u.committed("network");
    let dhcp_before = u.committed("dhcp");
    let started = std::time::Instant::now();
    // The move, the 1 s wait and the revert run about twenty uci-double
    // (python) processes: more than `lab.call`'s 10 s on a loaded machine.
    let out = run_with(
        Command::new(ROADIE).arg("-s").arg(&lab.sock).args([
            "call",
            "readdress",
            r#"{"prefix":"10.9.8.0/24"}"#,
        ]),
        None,
        LONG,
    );
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "the move must fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("10.9.8.1/24 did not appear on lan0 within 1000 ms"),
        "{err}"
    );
    assert!(err.contains("reverted the UCI changes"), "{err}");
    assert!(
        took >= std::time::Duration::from_millis(1000) && took < LONG,
        "took {took:?}"
    );

    // UCI is back as it was, nothing left staged.
    assert_eq!(u.committed("network"), network_before);
    assert_eq!(u.committed("dhcp"), dhcp_before);
    assert!(u.staged().is_empty(), "left staged: {:?}", u.staged());
    // It was committed and reloaded twice: the move, then the revert.
    let calls = u.calls();
    assert_eq!(count(&calls, "ubus call network reload"), 2, "{calls:?}");
    assert_eq!(count(&calls, "init.d/dnsmasq reload"), 2, "{calls:?}");

    let s = lab.status();
    assert_eq!(lan_prefix(&s), "192.168.1.0/24");
    let apply: &Value = &s["lan"]["apply"];
    assert_eq!(apply["ok"], false, "{s}");
    assert_eq!(apply["reverted"], true, "{s}");
    assert!(
        s["lan"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("reverted")),
        "{s}"
    );
    assert_eq!(history_len(&s), 0);
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), ["192.168.1.1/24"]);
    assert!(lab.hook_runs().is_empty());
    let human = lab.daemon.cli(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(human.contains("reverted the UCI changes"), "{human}");
}

/// roadie's saved prefix says the LAN moved, but UCI is back at home (the
/// config was restored, or an apply was cut short): at start, roadie puts UCI
/// where the LAN is, dhcp included.
#[test]
fn uci_lab_start_brings_uci_to_the_saved_prefix() {
    let state = "seed = 7\nprefix = \"10.9.8.0/24\"\n";
    let Some(u) = uci_lab(NETWORK_NETMASK, "apply", 10_000, Some(state)) else {
        return;
    };
    let lab = &u.lab;
    let s = lab
        .daemon
        .wait_status("UCI brought to 10.9.8.0/24", LONG, |s| {
            !s["lan"]["apply"].is_null()
        });
    assert_eq!(lan_prefix(&s), "10.9.8.0/24");
    assert_eq!(s["lan"]["apply"]["ok"], true, "{s}");
    assert!(
        u.committed("network")
            .contains("network.lan.ipaddr='10.9.8.1'\n")
    );
    let dhcp = u.file("dhcp");
    assert!(dhcp.contains("\toption ip '10.9.8.100'\n"), "{dhcp}");
    assert!(dhcp.contains("\toption ip '10.9.8.101'\n"), "{dhcp}");
    assert_eq!(lab.addrs(&lab.rtr, "lan0"), ["10.9.8.1/24"]);
    // Not a move: no history entry, no hook.
    assert_eq!(history_len(&s), 0);
    assert!(lab.hook_runs().is_empty());
}

/// The same, with a netifd that never brings the address up: reverted once,
/// and not tried again at the next evaluation (each try reloads the
/// network).
#[test]
fn uci_lab_failed_start_sync_is_not_retried() {
    let state = "seed = 7\nprefix = \"10.9.8.0/24\"\n";
    let Some(u) = uci_lab(NETWORK_NETMASK, "ignore", 500, Some(state)) else {
        return;
    };
    let lab = &u.lab;
    let s = lab.daemon.wait_status("the UCI sync to fail", LONG, |s| {
        !s["lan"]["apply"].is_null()
    });
    assert_eq!(s["lan"]["apply"]["ok"], false, "{s}");
    assert_eq!(s["lan"]["apply"]["reverted"], true, "{s}");
    assert!(
        u.committed("network")
            .contains("network.lan.ipaddr='192.168.1.1'\n")
    );
    // Re-evaluate: the same sync is not tried again.
    let r = lab
        .daemon
        .call("readdress", json!({}))
        .expect("readdress {}");
    assert_eq!(r["changed"], false, "{r}");
    let calls = u.calls();
    assert_eq!(count(&calls, "ubus call network reload"), 2, "{calls:?}");
    assert!(evaluations(&lab.status()) >= 2);
}

/// `[lan] address` left out: the home comes from UCI network.lan (here
/// GL.iNet's 192.168.8.1/24, not OpenWrt's default) and is recorded in the
/// state file. After a move UCI holds the moved address; a restart still
/// knows home from the state file and stays where the LAN is.
#[test]
fn uci_lab_home_from_uci_survives_a_move_and_a_restart() {
    let network = NETWORK_NETMASK.replace("'192.168.1.1'", "'192.168.8.1'");
    let dhcp = DHCP.replace("192.168.1.", "192.168.8.");
    let Some(mut u) = uci_lab_with(UciOpts {
        network: &network,
        dhcp: &dhcp,
        lab: LabOpts {
            lan_address: "192.168.8.1/24".into(),
            node: "192.168.8.100".into(),
            ..LabOpts::default()
        },
        edit: |c| {
            let without = c.replace("address = \"192.168.8.1/24\"\n", "");
            assert_ne!(c, without, "the lab config has no [lan] address line");
            without
        },
        ..UciOpts::default()
    }) else {
        return;
    };
    let config = fs::read_to_string(&u.lab.cfg).unwrap();
    assert!(!config.contains("192.168.8.1/24"), "{config}");
    let s = u.lab.status();
    assert_eq!(s["lan"]["home"], "192.168.8.0/24", "{s}");
    assert_eq!(lan_prefix(&s), "192.168.8.0/24");
    assert_eq!(s["lan"]["address"], "192.168.8.1/24");
    assert!(s["lan"]["problem"].is_null(), "{s}");
    assert_eq!(
        u.lab.state_file().get("home").and_then(|v| v.as_str()),
        Some("192.168.8.1/24"),
        "home recorded at the first start"
    );
    assert!(u.calls().is_empty(), "no reload at start: {:?}", u.calls());

    u.lab
        .renumber("192.168.8.254/24", "192.168.8.50", "192.168.8.150");
    let s = u.lab.daemon.wait_status("the LAN to move", LONG, |s| {
        lan_prefix(s) != "192.168.8.0/24" && !s["lan"]["apply"].is_null()
    });
    assert_eq!(s["lan"]["apply"]["ok"], true, "{s}");
    let prefix = lan_prefix(&s);
    let router = host_in(&prefix, 1);
    assert!(
        u.committed("network")
            .contains(&format!("network.lan.ipaddr='{router}'\n"))
    );
    assert!(
        u.file("dhcp")
            .contains(&format!("\toption ip '{}'\n", host_in(&prefix, 100)))
    );

    // Restart: UCI says `router` now; home must come from the state file.
    u.lab.stop_daemon(libc::SIGTERM);
    u.lab.start_daemon();
    u.lab.wait_ready();
    let s = u.lab.status();
    assert_eq!(s["lan"]["home"], "192.168.8.0/24", "{s}");
    assert_eq!(lan_prefix(&s), prefix, "{s}");
    assert_eq!(s["lan"]["address"], format!("{router}/24"));
    assert_eq!(history_len(&s), 1, "{s}");
    // UCI already agrees: nothing applied, nothing reloaded again.
    assert!(s["lan"]["apply"].is_null(), "{s}");
    assert!(s["lan"]["problem"].is_null(), "{s}");
    assert_eq!(count(&u.calls(), "ubus call network reload"), 1);
    assert_eq!(u.lab.addrs(&u.lab.rtr, "lan0"), [format!("{router}/24")]);
    let st = u.lab.state_file();
    assert_eq!(
        st.get("home").and_then(|v| v.as_str()),
        Some("192.168.8.1/24")
    );
    assert_eq!(
        st.get("prefix").and_then(|v| v.as_str()),
        Some(prefix.as_str())
    );
}

/// `[wan] interfaces = ["@wan", "@wwan"]`, `[lan] interface = "@lan"`,
/// resolved through the ubus double (netifd's status objects) and followed:
/// a tether plugged in (a new link, wan's device becomes usb0) is seen at
/// once, its address reaches the planner; wan moving back with no link
/// change at all is found by the slow timer; a LAN without a device stops
/// the planner instead of making the LAN collide with itself.
#[test]
fn netifd_lab_follows_a_tether() {
    let Some(u) = uci_lab_with(UciOpts {
        ifaces: &[("wan", "wan0\n"), ("lan", "lan0\n")],
        edit: |c| {
            c.replace(
                "interfaces = [\"wan0\"]",
                "interfaces = [\"@wan\", \"@wwan\"]",
            )
            .replace("interface = \"lan0\"", "interface = \"@lan\"")
            .replace("apply = \"uci\"\n", "")
        },
        ..UciOpts::default()
    }) else {
        return;
    };
    let lab = &u.lab;
    let s = lab.status();
    let w = &s["wan"];
    assert_eq!(w[0]["netifd"], "wan", "{s}");
    assert_eq!(w[0]["interface"], "wan0");
    assert_eq!(w[0]["up"], true);
    let lease = w[0]["addresses"][0].as_str().unwrap_or_default();
    assert!(lease.starts_with("10.66.0."), "{s}");
    // netifd has no wwan: shown, down, no device, not an error.
    assert_eq!(w[1]["netifd"], "wwan");
    assert!(w[1]["interface"].is_null(), "{s}");
    assert_eq!(w[1]["up"], false);
    assert!(w[1]["netifd_problem"].is_null(), "{s}");
    assert_eq!(s["lan"]["netifd"], "lan");
    assert_eq!(s["lan"]["interface"], "lan0");
    assert!(s["lan"]["problem"].is_null(), "{s}");
    let calls = u.calls();
    assert!(
        calls.contains(&"ubus call network.interface.wan status".to_string())
            && calls.contains(&"ubus call network.interface.wwan status".to_string())
            && calls.contains(&"ubus call network.interface.lan status".to_string()),
        "{calls:?}"
    );
    let human = lab.daemon.cli(&["status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(&format!("uplink @wan (wan0): up, {lease}")),
        "{human}"
    );
    assert!(human.contains("uplink @wwan (no device): down"), "{human}");
    assert!(human.contains("LAN @lan (lan0): 192.168.1.1/24"), "{human}");

    // Plug in a tether: netifd's wan runs on usb0 now, which appears.
    u.set_iface("wan", "usb0\n");
    let t0 = std::time::Instant::now();
    common::ns::veth("tup0", &lab.up, "usb0", &lab.rtr);
    common::ns::ip_batch(
        &lab.up,
        "addr add 10.88.0.1/24 dev tup0\nlink set tup0 up\n",
    );
    common::ns::ip_batch(
        &lab.rtr,
        "addr add 10.88.0.2/24 dev usb0\nlink set usb0 up\n",
    );
    let s = lab
        .daemon
        .wait_status("@wan to follow the tether to usb0", SHORT, |s| {
            let w = &s["wan"][0];
            w["interface"] == "usb0" && w["up"] == true && w["addresses"] == json!(["10.88.0.2/24"])
        });
    let followed = t0.elapsed();
    eprintln!("netifd_lab: @wan followed the tether to usb0 in {followed:?}");
    assert_eq!(s["wan"][0]["netifd"], "wan");
    // A new link is a netlink hint: well before the slow timer.
    assert!(followed < std::time::Duration::from_secs(3), "{followed:?}");

    // The planner sees the new device: its network collides with the LAN.
    common::ns::ip(&lab.rtr, &["addr", "add", "192.168.1.77/24", "dev", "usb0"]);
    let s = lab
        .daemon
        .wait_status("the LAN to move off usb0's network", LONG, |s| {
            lan_prefix(s) != "192.168.1.0/24" && !settling(s)
        });
    let reason = s["lan"]["history"][0]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("usb0"), "{s}");
    let moved = lan_prefix(&s);
    assert_eq!(
        lab.addrs(&lab.rtr, "lan0"),
        [format!("{}/24", host_in(&moved, 1))]
    );

    // netifd moves wan back to wan0 and nothing happens on any link: only
    // the slow timer can notice.
    let evals = evaluations(&s);
    u.set_iface("wan", "wan0\n");
    let t1 = std::time::Instant::now();
    lab.daemon.wait_status("@wan back on wan0", LONG, |s| {
        s["wan"][0]["interface"] == "wan0"
    });
    let back = t1.elapsed();
    eprintln!("netifd_lab: @wan back on wan0 (timer only) in {back:?}");
    assert!(back < std::time::Duration::from_secs(8), "{back:?}");
    lab.wait_idle(evals + 1);

    // netifd takes the LAN down without a device: nothing is decided (the
    // LAN's own prefix on lan0 would look like another interface's).
    let before = lab.status();
    u.set_iface("lan", "");
    let s = lab
        .daemon
        .wait_status("the LAN without a device", LONG, |s| {
            s["lan"]["interface"].is_null()
                && s["lan"]["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("has no device"))
        });
    assert_eq!(lan_prefix(&s), moved, "{s}");
    assert_eq!(history_len(&s), history_len(&before), "{s}");
    u.set_iface("lan", "lan0\n");
    let s = lab.daemon.wait_status("the LAN back on lan0", LONG, |s| {
        s["lan"]["interface"] == "lan0" && s["lan"]["problem"].is_null() && !settling(s)
    });
    assert_eq!(lan_prefix(&s), moved, "{s}");
    assert_eq!(history_len(&s), history_len(&before), "{s}");
}

/// The ubus double answers `status` like netifd (no root needed): roadie's
/// own parser reads it.
#[test]
fn ubus_double_answers_status_like_netifd() {
    let d = std::env::temp_dir().join(format!("roadie-ubus-double-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("if")).unwrap();
    fs::write(d.join("if/lan"), "lo\n").unwrap();
    fs::write(d.join("if/wan"), "eth9 down\n").unwrap();
    fs::write(d.join("if/wwan"), "").unwrap();
    let ubus = |name: &str| {
        run_with(
            Command::new(double("ubus-double"))
                .env("UBUS_DOUBLE_LOG", d.join("log"))
                .env("UBUS_DOUBLE_IFACES", d.join("if"))
                .args(["call", &format!("network.interface.{name}"), "status"]),
            None,
            SHORT,
        )
    };
    let status = |name: &str| {
        let out = ubus(name);
        assert!(out.status.success(), "{name}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
        (roadie::netifd::parse_status(&text).unwrap(), v)
    };
    let (lan, v) = status("lan");
    assert_eq!((lan.up, lan.device.as_deref()), (true, Some("lo")));
    assert_eq!(v["l3_device"], "lo");
    // The kernel's addresses, as netifd lists them.
    assert!(
        v["ipv4-address"]
            .as_array()
            .unwrap()
            .contains(&json!({"address": "127.0.0.1", "mask": 8})),
        "{v}"
    );
    let (wan, v) = status("wan");
    assert_eq!((wan.up, wan.device.as_deref()), (false, Some("eth9")));
    assert!(v.get("l3_device").is_none(), "{v}");
    let (wwan, _) = status("wwan");
    assert_eq!((wwan.up, wwan.device), (false, None));
    let out = ubus("nothere");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Command failed: Not found\n"
    );
    let _ = fs::remove_dir_all(&d);
}

/// The uci double itself, over a temporary directory (no root needed).
#[test]
fn uci_double_implements_the_commands() {
    let d = std::env::temp_dir().join(format!("roadie-uci-double-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(d.join("c")).unwrap();
    fs::write(d.join("c/network"), NETWORK_CIDR).unwrap();
    fs::write(d.join("c/dhcp"), DHCP).unwrap();
    let uci = |args: &[&str]| -> (bool, String, String) {
        let out = run_with(
            Command::new(double("uci-double"))
                .env("UCI_DOUBLE_SAVEDIR", d.join("default"))
                .args(["-c", d.join("c").to_str().unwrap()])
                .args(["-t", d.join("s").to_str().unwrap()])
                .args(args),
            None,
            SHORT,
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (ok, out, err) = uci(args);
        assert!(ok, "uci {args:?}: {err}");
        out
    };
    assert_eq!(
        ok(&["get", "network.lan.ipaddr"]),
        "192.168.1.1/24 172.31.0.1/16\n"
    );
    assert_eq!(ok(&["get", "network.lan"]), "interface\n");
    assert_eq!(ok(&["get", "dhcp.@host[0].name"]), "master\n");
    assert_eq!(ok(&["get", "dhcp.@host[-1].name"]), "elsewhere\n");
    // -X names anonymous sections; the names work as keys.
    let shown = ok(&["-X", "show", "dhcp"]);
    let master = shown
        .lines()
        .find(|l| l.ends_with(".name='master'"))
        .and_then(|l| l.split('.').nth(1))
        .unwrap()
        .to_string();
    assert!(master.starts_with("cfg"), "{shown}");
    assert_eq!(
        ok(&["get", &format!("dhcp.{master}.ip")]),
        "192.168.1.100\n"
    );
    assert!(ok(&["show", "dhcp"]).contains("dhcp.@host[0].name='master'\n"));

    ok(&["set", "network.lan.proto=dhcp"]);
    ok(&["del_list", "network.lan.ipaddr=172.31.0.1/16"]);
    ok(&["add_list", "network.lan.ipaddr=10.0.0.1/8"]);
    ok(&["delete", &format!("dhcp.{master}.mac")]);
    ok(&["set", "dhcp.worker.name=it's"]);
    // Staged: visible to show/get, not yet in the file.
    assert_eq!(
        ok(&["show", "network.lan.ipaddr"]),
        "network.lan.ipaddr='192.168.1.1/24' '10.0.0.1/8'\n"
    );
    assert_eq!(
        ok(&["show", "dhcp.worker.name"]),
        "dhcp.worker.name='it'\\''s'\n"
    );
    assert!(
        fs::read_to_string(d.join("c/network"))
            .unwrap()
            .contains("'172.31.0.1/16'")
    );
    ok(&["commit", "network"]);
    let file = fs::read_to_string(d.join("c/network")).unwrap();
    assert!(
        file.contains(
            "\toption proto 'dhcp'\n\tlist ipaddr '192.168.1.1/24'\n\tlist ipaddr '10.0.0.1/8'\n"
        ),
        "{file}"
    );
    ok(&["revert", "dhcp"]);
    assert_eq!(ok(&["get", "dhcp.worker.name"]), "worker\n");
    assert!(ok(&["get", &format!("dhcp.{master}.mac")]).contains("52:54"));
    let (found, _, err) = uci(&["get", "network.lan.nothing"]);
    assert!(!found && err.contains("Entry not found"), "{err}");
    let (deleted, _, err) = uci(&["delete", "network.nowhere.x"]);
    assert!(!deleted && err.contains("Entry not found"), "{err}");
    let (bad, _, err) = uci(&["set", "network"]);
    assert!(!bad && err.contains("Invalid argument"), "{err}");
    let _ = fs::remove_dir_all(&d);
}

/// Defect 4 of the real-OpenWrt issue: changes a user staged in a shell
/// (`uci set`, not committed) are neither committed by roadie's move nor
/// lost: after the move they are still staged, and only roadie's own changes
/// are in the files.
#[test]
fn uci_lab_move_keeps_users_uncommitted_changes() {
    let Some(u) = uci_lab(NETWORK_NETMASK, "apply", 10_000, None) else {
        return;
    };
    u.user(&["set", "network.wan.metric=20"]);
    u.user(&["set", "dhcp.worker.name=worker2"]);
    let r = u
        .lab
        .daemon
        .call("readdress", json!({"prefix": "10.9.8.0/24"}))
        .expect("readdress");
    assert_eq!(r["changed"], true, "{r}");
    let network = u.file("network");
    assert!(
        network.contains("\toption ipaddr '10.9.8.1'\n"),
        "{network}"
    );
    assert!(
        !network.contains("metric"),
        "a user's change was committed:\n{network}"
    );
    let dhcp = u.file("dhcp");
    assert!(dhcp.contains("\toption ip '10.9.8.101'\n"), "{dhcp}");
    assert!(
        !dhcp.contains("worker2"),
        "a user's change was committed:\n{dhcp}"
    );
    assert_eq!(
        u.user(&["changes"]),
        "dhcp.worker.name='worker2'\nnetwork.wan.metric='20'\n",
        "the user's staged changes must stay staged"
    );
    assert!(u.staged().is_empty(), "left: {:?}", u.staged());
}

/// The same on the revert path: netifd never shows the address, roadie
/// undoes its own commit, and the user's staged change is still staged and
/// still not committed.
#[test]
fn uci_lab_revert_keeps_users_uncommitted_changes() {
    let Some(u) = uci_lab(NETWORK_NETMASK, "ignore", 500, None) else {
        return;
    };
    u.user(&["set", "network.wan.metric=20"]);
    let before = u.committed("network");
    let out = u
        .lab
        .daemon
        .call("readdress", json!({"prefix": "10.9.8.0/24"}));
    assert!(out.is_err(), "the move must fail: {out:?}");
    assert_eq!(u.committed("network"), before, "the file must be as it was");
    assert!(!u.file("network").contains("metric"));
    assert_eq!(u.user(&["changes"]), "network.wan.metric='20'\n");
    assert!(u.staged().is_empty(), "left: {:?}", u.staged());
}

/// The double's savedirs behave like uci 24.10's (the same assertions run
/// against the real uci with OPENWRT_ROOT, below): the default savedir stays
/// on the delta path under -t; commit writes its changes too but empties only
/// -t's; revert touches only -t's; -P never commits. That is what made roadie
/// set users' changes aside.
#[test]
fn uci_double_savedirs_are_ucis() {
    let d = std::env::temp_dir().join(format!("roadie-uci-savedirs-{}", std::process::id()));
    let default = d.join("default");
    savedir_facts(&d, &|savedir, args| {
        let mut cmd = Command::new(double("uci-double"));
        cmd.env("UCI_DOUBLE_SAVEDIR", &default)
            .args(["-c", d.join("c").to_str().unwrap()]);
        if let Some(s) = savedir {
            cmd.args([s, d.join("own").to_str().unwrap()]);
        }
        run_ok(cmd.args(args))
    });
}

/// The same facts, measured on OpenWrt's own uci from OPENWRT_ROOT: each
/// call runs in a mount namespace of its own whose /tmp is a tmpfs with the
/// test's directory as /tmp/.uci (uci's compiled-in default savedir), so the
/// host's /tmp is never touched.
#[test]
fn real_uci_savedirs_are_what_the_double_does() {
    let Some(root) = common::openwrt::openwrt_root() else {
        return;
    };
    let uci_bin = root.join("usr/bin/uci");
    assert!(uci_bin.exists(), "{} not found", uci_bin.display());
    // Outside /tmp: /tmp is replaced inside each call's namespace.
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uci-real-{}", std::process::id()));
    let default = d.join("default");
    savedir_facts(&d, &|savedir, args| {
        fs::create_dir_all(&default).unwrap();
        let mut inner = format!(
            "mount -t tmpfs none /tmp && mkdir /tmp/.uci && mount --bind '{}' /tmp/.uci && exec '{}' -c '{}'",
            default.display(),
            uci_bin.display(),
            d.join("c").display()
        );
        if let Some(s) = savedir {
            inner += &format!(" {s} '{}'", d.join("own").display());
        }
        inner += " \"$@\"";
        run_ok(
            Command::new("unshare")
                .args([
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    &inner,
                    "uci",
                ])
                .args(args),
        )
    });
}

fn savedir_facts(d: &Path, uci: &dyn Fn(Option<&str>, &[&str]) -> String) {
    let _ = fs::remove_dir_all(d);
    fs::create_dir_all(d.join("c")).unwrap();
    fs::write(d.join("c/network"), NETWORK_NETMASK).unwrap();
    uci(None, &["set", "network.wan.metric=20"]);
    uci(Some("-t"), &["set", "network.lan.ipaddr=10.9.8.1"]);
    assert_eq!(
        fs::read_to_string(d.join("default/network")).unwrap(),
        "network.wan.metric='20'\n"
    );
    assert_eq!(
        fs::read_to_string(d.join("own/network")).unwrap(),
        "network.lan.ipaddr='10.9.8.1'\n"
    );
    // -P: staged, never committed.
    uci(Some("-P"), &["commit", "network"]);
    assert!(
        !fs::read_to_string(d.join("c/network"))
            .unwrap()
            .contains("10.9.8.1")
    );
    // -t's revert drops only its own delta.
    uci(Some("-t"), &["revert", "network"]);
    assert_eq!(uci(None, &["changes"]), "network.wan.metric='20'\n");
    uci(Some("-t"), &["set", "network.lan.ipaddr=10.9.8.1"]);
    uci(Some("-t"), &["commit", "network"]);
    let file = fs::read_to_string(d.join("c/network")).unwrap();
    assert!(file.contains("\toption ipaddr '10.9.8.1'\n"), "{file}");
    assert!(file.contains("\toption metric '20'\n"), "{file}");
    assert_eq!(uci(None, &["changes"]), "network.wan.metric='20'\n");
    assert_eq!(fs::read_to_string(d.join("own/network")).unwrap(), "");
    let _ = fs::remove_dir_all(d);
}
