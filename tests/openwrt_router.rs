//! The package on the real thing: OpenWrt's own procd, ubusd, uci, netifd,
//! rpcd, logd, opkg and uhttpd (`OPENWRT_ROOT`, see tests/common/openwrt.rs),
//! in a throw-away router per test. Each test builds nothing itself but the
//! x86_64 package (once per test binary: `scripts/cross-build
//! x86_64-unknown-linux-musl`, `scripts/build-ipk x86_64-unknown-linux-musl`;
//! the static musl binary runs here), installs it with `opkg install` and
//! does what a router owner does, asserting each step: the service enabled
//! and started under procd, the `roadie` ubus object through rpcd, `status`,
//! `stop`, `reload` (and a broken config), the log's priorities, a respawn
//! after kill -9, a re-address through uci and netifd (also with a user's
//! change staged), rpcd's ACL through uhttpd's /ubus, and `opkg remove`.
//!
//! Without `OPENWRT_ROOT` every test prints
//! `SKIP: OPENWRT_ROOT not set: using the doubles` (once) and passes, also
//! under CI=true. Timings go to stdout (`-- --nocapture`).

mod common;

use common::openwrt::{Out, Router, openwrt_root};
use common::{LONG, Ns, SHORT, Sshd, host_in, prefix_of, run_with, unique, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const TARGET: &str = "x86_64-unknown-linux-musl";
/// Where the package is copied in the router (its own /tmp).
const IPK: &str = "/tmp/roadie_x86_64.ipk";
/// crypt("secret") (`openssl passwd -1 -salt abcdefgh secret`).
const SECRET_MD5: &str = "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1";

// ---------------------------------------------------------------------------
// The package

/// Runs a host command (deadline `timeout`), which must exit 0; its stdout.
fn host(cmd: &mut Command, timeout: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = run_with(cmd, None, timeout);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The x86_64 .ipk, built once per test binary, as a router owner gets it
/// without the SDK.
fn package() -> PathBuf {
    static PKG: OnceLock<PathBuf> = OnceLock::new();
    PKG.get_or_init(|| {
        let t = Instant::now();
        host(
            Command::new(Path::new(REPO).join("scripts/cross-build")).arg(TARGET),
            Duration::from_secs(40 * 60),
        );
        let built = t.elapsed();
        // Replaced at each run: nothing piles up.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openwrt-router-ipk");
        let _ = fs::remove_dir_all(&out);
        let printed = host(
            Command::new(Path::new(REPO).join("scripts/build-ipk"))
                .arg(TARGET)
                .env("OUT", &out),
            Duration::from_secs(120),
        );
        let ipk = PathBuf::from(printed.trim());
        assert!(
            ipk.starts_with(&out) && ipk.is_file(),
            "build-ipk printed {printed:?}"
        );
        println!(
            "TIMING package: cross-build {:.1} s, build-ipk {:.1} s: {}",
            built.as_secs_f64(),
            (t.elapsed() - built).as_secs_f64(),
            ipk.display()
        );
        ipk
    })
    .clone()
}

// ---------------------------------------------------------------------------
// A router with roadie installed

struct Owrt {
    r: Router,
    /// `opkg install`'s output.
    install: Out,
}

/// A fresh router with the package installed; None when skipped.
fn installed() -> Option<Owrt> {
    let root = openwrt_root()?;
    Some(install_into(Router::start(&root)))
}

/// Installs the package into `r` with opkg (which must succeed cleanly) and
/// waits until roadie answers.
fn install_into(r: Router) -> Owrt {
    let ipk = package();
    r.write(IPK, fs::read(&ipk).expect("read the package"));
    let t = Instant::now();
    let install = r.run_for(
        &format!("opkg install {IPK}"),
        None,
        Duration::from_secs(60),
    );
    println!("TIMING opkg install: {:.2} s", t.elapsed().as_secs_f64());
    let all = install.both();
    assert_eq!(install.code, 0, "opkg install: {all}");
    assert!(
        !all.contains("Collected errors"),
        "opkg install complained: {all}"
    );
    assert!(
        !all.to_lowercase().contains("sha256"),
        "opkg install: checksum trouble: {all}"
    );
    assert!(all.contains("Configuring roadie."), "{all}");
    let o = Owrt { r, install };
    o.status();
    o
}

impl Owrt {
    /// `roadie call status` inside the router, once it answers.
    fn status(&self) -> Value {
        wait_for("roadie to answer `roadie call status`", SHORT, || {
            let out = self.r.run("roadie call status");
            (out.code == 0)
                .then(|| serde_json::from_str(&out.stdout).ok())
                .flatten()
        })
    }

    /// Polls `roadie call status` until `pred` holds; returns it.
    fn wait_status(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        common::wait::wait_status(
            what,
            timeout,
            Duration::from_millis(20),
            || {
                let out = self.r.run("roadie call status");
                if out.code != 0 {
                    return None;
                }
                serde_json::from_str(&out.stdout).ok()
            },
            pred,
        )
    }

    /// procd's running instance of roadie: its PID inside the router.
    fn pid(&self) -> u64 {
        match self.r.procd_instance("roadie") {
            Some((true, Some(pid))) => pid,
            other => panic!("procd has no running roadie: {other:?}"),
        }
    }

    /// Writes roadie's config and restarts the service with it.
    fn configure(&self, toml: &str) -> Value {
        let old = self.pid();
        self.r.write("/etc/roadie/roadie.toml", toml);
        let out = self.r.run("/etc/init.d/roadie restart");
        assert_eq!(out.code, 0, "/etc/init.d/roadie restart: {}", out.both());
        wait_for("procd to run roadie again", SHORT, || {
            match self.r.procd_instance("roadie") {
                Some((true, Some(p))) if p != old => Some(()),
                _ => None,
            }
        });
        self.status()
    }

    /// `logread -e roadie`'s lines.
    fn log(&self) -> Vec<String> {
        self.r
            .sh("logread -e roadie")
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Every key path of a JSON value (`lan.history[].to`, ...).
fn key_paths(v: &Value) -> BTreeSet<String> {
    fn walk(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    out.insert(p.clone());
                    walk(x, &p, out);
                }
            }
            Value::Array(a) => {
                for x in a {
                    walk(x, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(v, "", &mut out);
    out
}

/// Checks that do not stop the test: each failure is printed and kept, and
/// [`Checks::done`] fails the test naming all of them, so one defect does
/// not hide the next.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let m = what();
            println!("FAILED CHECK: {m}");
            self.0.push(m);
        }
    }

    fn done(self) {
        assert!(
            self.0.is_empty(),
            "{} check(s) failed:\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

// ---------------------------------------------------------------------------
// Install, procd, rpcd, status, stop

#[test]
fn opkg_install_enables_and_starts_roadie_under_procd() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    println!("opkg install said:\n{}", o.install.both());

    // default_postinst: enabled (START=95, STOP=10) and started.
    for link in ["/etc/rc.d/S95roadie", "/etc/rc.d/K10roadie"] {
        let target = fs::read_link(r.path(link)).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert_eq!(target, Path::new("../init.d/roadie"), "{link}");
    }
    let out = r.run("/etc/init.d/roadie enabled");
    assert_eq!(out.code, 0, "enabled: {}", out.both());
    let svc = r.ubus("service", "list", &json!({"name": "roadie"}));
    let inst = &svc["roadie"]["instances"]["instance1"];
    assert_eq!(inst["running"], true, "{svc}");
    assert_eq!(
        inst["command"],
        json!([
            "/usr/sbin/roadie",
            "-c",
            "/etc/roadie/roadie.toml",
            "daemon",
            "--syslog"
        ]),
        "{svc}"
    );
    assert!(inst["respawn"].is_object(), "no respawn: {svc}");

    // The package's postinst-pkg reloaded rpcd: the plugin is a ubus object.
    let listed = wait_for("the roadie ubus object (rpcd reload)", SHORT, || {
        let out = r.run("ubus -v list roadie");
        (out.code == 0).then_some(out.stdout)
    });
    for method in ["status", "list", "reload", "readdress", "tunnel.restart"] {
        assert!(
            listed.contains(&format!("\"{method}\":")),
            "ubus -v list roadie lacks {method}:\n{listed}"
        );
    }
    assert!(
        listed.contains("\"readdress\":{\"prefix\":\"String\"}"),
        "{listed}"
    );
    assert!(
        listed.contains("\"tunnel.restart\":{\"name\":\"String\"}"),
        "{listed}"
    );

    // ubus call roadie status = roadie call status.
    let via_ubus = r.json("ubus call roadie status");
    let direct = o.status();
    assert_eq!(
        key_paths(&via_ubus),
        key_paths(&direct),
        "ubus call roadie status:\n{via_ubus}\nroadie call status:\n{direct}"
    );
    assert_eq!(via_ubus["version"], direct["version"]);
    let list = r.json("ubus call roadie list");
    assert!(list.to_string().contains("readdress"), "{list}");

    // /etc/init.d/roadie status: roadie's own summary.
    let out = r.run("/etc/init.d/roadie status");
    assert_eq!(out.code, 0, "status: {}", out.both());
    assert!(
        out.stdout.starts_with(&format!(
            "roadie {}, running for",
            direct["version"].as_str().unwrap()
        )),
        "{}",
        out.both()
    );
    // The packaged config names netifd's interfaces: shown with their devices.
    assert!(
        out.stdout.contains("LAN @lan (br-lan): 192.168.1.1/24"),
        "{}",
        out.both()
    );
    assert_eq!(direct["lan"]["netifd"], "lan", "{direct}");
    assert_eq!(direct["lan"]["interface"], "br-lan", "{direct}");
    assert_eq!(direct["lan"]["home"], "192.168.1.0/24", "{direct}");

    // stop: procd forgets the service, status answers like every procd
    // service. procd's stop returns before the process has exited.
    let pid = o.pid();
    let out = r.run("/etc/init.d/roadie stop");
    assert_eq!(out.code, 0, "stop: {}", out.both());
    let t = Instant::now();
    let first = r.run("/etc/init.d/roadie status");
    let mut answers = vec![(first.code, first.stdout.trim().to_string())];
    let last = wait_for("status to say inactive after stop", SHORT, || {
        let out = r.run("/etc/init.d/roadie status");
        let a = (out.code, out.stdout.trim().to_string());
        if answers.last() != Some(&a) {
            answers.push(a.clone());
        }
        (a.0 == 3).then_some(a)
    });
    println!(
        "TIMING stop -> status inactive: {:.0} ms; answers in between: {answers:?}",
        t.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(last, (3, "inactive".to_string()));
    assert!(
        !r.exists(&format!("/proc/{pid}")),
        "roadie (pid {pid}) still runs after stop"
    );
    assert_eq!(r.procd_instance("roadie"), None);
    // Right after stop, procd still lists the stopping instance; status
    // must not claim roadie runs then.
    assert_ne!(
        answers[0].0, 0,
        "status said running after stop: {answers:?}"
    );
}

// ---------------------------------------------------------------------------
// The log, reload, the last good config

/// A config that is not valid: an unknown key, at a known line.
fn broken(toml: &str) -> String {
    format!("{toml}\n[lan_typo]\nsettle_ms = 100\n")
}

#[test]
fn logread_has_roadies_lines_at_their_own_priority() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let pid = o.pid();
    let started = wait_for("roadie's start line in logread", SHORT, || {
        o.log().into_iter().find(|l| {
            l.contains(&format!("daemon.info roadie[{pid}]: roadie ")) && l.contains(" started: ")
        })
    });
    println!("{started}");

    let good = r.read("/etc/roadie/roadie.toml");
    r.write("/etc/roadie/roadie.toml", broken(&good));
    let out = r.run("/etc/init.d/roadie reload");
    assert!(out.stderr.contains("reload refused"), "{}", out.both());
    let err = wait_for("the refused reload at daemon.err", SHORT, || {
        o.log()
            .into_iter()
            .find(|l| l.contains(&format!("daemon.err roadie[{pid}]: reload refused")))
    });
    println!("{err}");
    let lines = o.log();
    let mine: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!("roadie[{pid}]:")))
        .collect();
    let at = |prio: &str| mine.iter().filter(|l| l.contains(prio)).count();
    let (info, errs) = (at(" daemon.info "), at(" daemon.err "));
    println!("logread -e roadie:\n{}", lines.join("\n"));
    assert!(info >= 2, "info lines: {info}\n{}", lines.join("\n"));
    assert!(errs >= 1 && errs < mine.len(), "{}", lines.join("\n"));
    // The error names where the config is wrong, at err too.
    assert!(
        mine.iter()
            .any(|l| l.contains(" daemon.err ") && l.contains("roadie.toml:")),
        "{}",
        lines.join("\n")
    );
    // Nothing of roadie's reached logd through procd's stderr capture
    // (which would be daemon.err, tagged with the same name and PID, and
    // carry the stderr format `LEVEL [module] message`).
    assert!(
        !mine
            .iter()
            .any(|l| l.contains(": INFO [") || l.contains(": ERROR [")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn reload_reaches_the_daemon_and_a_broken_config_runs_the_last_good_copy() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let s = o.status();
    assert_eq!(s["config"]["reloads"], 0, "{s}");
    assert!(s["config"]["problem"].is_null(), "{s}");
    let pid = o.pid();
    let good = r.read("/etc/roadie/roadie.toml");
    assert_eq!(
        r.read("/etc/roadie/roadie.toml.last-good"),
        good,
        "the first start keeps a copy"
    );

    let out = r.run("/etc/init.d/roadie reload");
    assert_eq!(out.code, 0, "reload: {}", out.both());
    let s = o.wait_status("reload #1 to reach the daemon", SHORT, |s| {
        s["config"]["reloads"] == 1
    });
    assert!(s["config"]["reload_error"].is_null(), "{s}");
    assert!(s["config"]["problem"].is_null(), "{s}");

    r.write("/etc/roadie/roadie.toml", broken(&good));
    let out = r.run("/etc/init.d/roadie reload");
    assert!(out.stderr.contains("reload refused"), "{}", out.both());
    let s = o.wait_status("reload #2 (broken) to reach the daemon", SHORT, |s| {
        s["config"]["reloads"] == 2
    });
    let problem = s["config"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("reload refused") && problem.contains("lan_typo"),
        "{s}"
    );
    assert_eq!(o.pid(), pid, "a refused reload must not restart roadie");
    assert_eq!(
        r.read("/etc/roadie/roadie.toml.last-good"),
        good,
        "a broken file must not become the last good copy"
    );

    // A restart (a reboot) with the broken file runs the last good copy.
    let out = r.run("/etc/init.d/roadie restart");
    assert_eq!(out.code, 0, "restart: {}", out.both());
    assert!(
        out.stderr
            .contains("has errors; running the last configuration that loaded"),
        "{}",
        out.both()
    );
    let s = o.wait_status("roadie restarted on the copy", SHORT, |s| {
        s["config"]["reloads"] == 0
    });
    assert_ne!(o.pid(), pid, "restart did not restart");
    let problem = s["config"]["problem"].as_str().unwrap_or_default();
    assert!(
        problem.contains("/etc/roadie/roadie.toml.last-good") && problem.contains("lan_typo"),
        "{s}"
    );
    let human = r.run("/etc/init.d/roadie status");
    assert_eq!(human.code, 0, "{}", human.both());
    assert!(human.stdout.contains("last-good"), "{}", human.both());
}

// ---------------------------------------------------------------------------
// procd's respawn

#[test]
fn procd_respawns_roadie_after_kill_9() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let pid = o.pid();
    let respawn = r.ubus("service", "list", &json!({"name": "roadie"}))["roadie"]["instances"]
        ["instance1"]["respawn"]
        .clone();
    r.sh(&format!("kill -9 {pid}"));
    let t = Instant::now();
    let new = wait_for(
        "procd to respawn roadie",
        Duration::from_secs(20),
        || match r.procd_instance("roadie") {
            Some((true, Some(p))) if p != pid => Some(p),
            _ => None,
        },
    );
    let took = t.elapsed();
    o.status();
    println!(
        "TIMING respawn after kill -9: {:.2} s (pid {pid} -> {new}; procd respawn {respawn})",
        took.as_secs_f64()
    );
    assert!(
        !r.exists(&format!("/proc/{pid}/exe")),
        "the old roadie lives"
    );
}

// ---------------------------------------------------------------------------
// Re-addressing through uci and netifd

/// The router's network: lan on br-lan (port lan0, home 192.168.1.1/24),
/// wan on wan0 with proto none (its addresses come from "the hotel's DHCP":
/// the test).
const NETWORK: &str = "config interface 'loopback'
\toption device 'lo'
\toption proto 'static'
\toption ipaddr '127.0.0.1'
\toption netmask '255.0.0.0'

config device
\toption name 'br-lan'
\toption type 'bridge'
\tlist ports 'lan0'

config interface 'lan'
\toption device 'br-lan'
\toption proto 'static'
\toption ipaddr '192.168.1.1'
\toption netmask '255.255.255.0'

config interface 'wan'
\toption device 'wan0'
\toption proto 'none'
";

const ROADIE_TOML: &str = r#"[daemon]
state = "/etc/roadie/state.toml"
socket = "/var/run/roadie.sock"
log_level = "info"

[wan]
interfaces = ["wan0"]

[lan]
interface = "br-lan"
address = "192.168.1.1/24"
apply = "uci"
settle_ms = 100
"#;

/// A veth from `hotel` (hup0) into the router (its wan0).
fn hotel_link(r: &Router, hotel: &Ns) {
    host(
        Command::new("ip").args([
            "-n",
            &hotel.name,
            "link",
            "add",
            "hup0",
            "type",
            "veth",
            "peer",
            "name",
            "wan0",
            "netns",
            &r.pid().to_string(),
        ]),
        SHORT,
    );
}

/// The uplink: a "hotel" namespace (hup0, 172.30.0.254/24) behind the
/// router's wan0 (172.30.0.2/24, default route through the hotel), with
/// netifd's config above.
fn uplink(r: &Router) -> Ns {
    r.write("/etc/config/network", NETWORK);
    r.sh("ubus call network reload");
    let hotel = Ns::create(&unique("owh"), false).unwrap_or_else(|e| panic!("{e}"));
    hotel_link(r, &hotel);
    hotel.batch("addr add 172.30.0.254/24 dev hup0\nlink set hup0 up\n");
    wait_for("netifd to bring wan up", SHORT, || {
        let s = r.run("ubus call network.interface.wan status");
        (s.code == 0 && s.stdout.contains("\"up\": true")).then_some(())
    });
    r.sh(
        "ip link set wan0 up && ip addr add 172.30.0.2/24 dev wan0 && \
         ip route add default via 172.30.0.254",
    );
    hotel
}

/// The hotel renumbers into the cluster's prefix and the router's DHCP
/// client follows: wan0 gets 192.168.1.50/24. Returns when that was done.
fn collide(r: &Router, hotel: &Ns) -> Instant {
    hotel.batch("addr flush dev hup0\naddr add 192.168.1.254/24 dev hup0\n");
    let t = Instant::now();
    r.sh(
        "ip addr flush dev wan0 && ip addr add 192.168.1.50/24 dev wan0 && \
         ip route replace default via 192.168.1.254",
    );
    t
}

/// roadie on the uplink, at home, settled.
fn at_home(o: &Owrt) -> Value {
    o.configure(ROADIE_TOML);
    o.wait_status("roadie to see wan0 and settle at home", LONG, |s| {
        s["wan"][0]["interface"] == "wan0"
            && s["wan"][0]["addresses"] == json!(["172.30.0.2/24"])
            && s["lan"]["settling"] == false
            && s["lan"]["prefix"] == "192.168.1.0/24"
    })
}

/// Waits until netifd has moved br-lan off 192.168.1.1; (new address,
/// time).
fn moved(r: &Router, since: Instant) -> (String, Duration) {
    let addr = wait_for("a new address on br-lan", LONG, || {
        let a = r.addrs("br-lan");
        (a.len() == 1 && a[0] != "192.168.1.1/24").then(|| a[0].clone())
    });
    (addr, since.elapsed())
}

#[test]
fn a_collision_moves_the_lan_through_uci_and_netifd() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let _hotel = uplink(r);
    at_home(&o);
    let since = collide(r, &_hotel);
    let (addr, took) = moved(r, since);
    let prefix = prefix_of(&addr);
    let router = host_in(&prefix, 1).to_string();
    println!(
        "TIMING collision -> {addr} on br-lan through uci + netifd: {:.0} ms (settle_ms 100)",
        took.as_secs_f64() * 1000.0
    );
    assert_eq!(addr, format!("{router}/24"));

    // Committed, in the file netifd reads at boot.
    let file = r.read("/etc/config/network");
    assert!(
        file.contains(&format!("\toption ipaddr '{router}'\n")),
        "{file}"
    );
    assert!(
        file.contains("\toption netmask '255.255.255.0'\n"),
        "{file}"
    );
    assert_eq!(r.sh("uci get network.lan.ipaddr").trim(), router);
    assert_eq!(r.sh("uci changes").trim(), "", "left staged");
    // netifd's own view.
    let lan = r.json("ubus call network.interface.lan status");
    assert_eq!(lan["up"], true, "{lan}");
    assert_eq!(lan["ipv4-address"][0]["address"], router.as_str(), "{lan}");
    // roadie's.
    let s = o.wait_status("the move in status", SHORT, |s| {
        !s["lan"]["apply"].is_null()
    });
    assert_eq!(s["lan"]["prefix"], prefix.as_str(), "{s}");
    assert_eq!(s["lan"]["apply"]["ok"], true, "{s}");
    assert_eq!(s["lan"]["history"].as_array().map(Vec::len), Some(1), "{s}");
    assert!(s["lan"]["problem"].is_null(), "{s}");
    let state = r.read("/etc/roadie/state.toml");
    assert!(state.contains(&format!("prefix = \"{prefix}\"")), "{state}");
}

#[test]
fn a_move_leaves_a_users_staged_change_staged() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let hotel = uplink(r);
    at_home(&o);
    // Someone (LuCI, a shell) has a change staged, not committed.
    r.sh("uci set network.wan.metric=20");
    assert_eq!(r.sh("uci changes").trim(), "network.wan.metric='20'");
    let since = collide(r, &hotel);
    let (addr, took) = moved(r, since);
    let router = addr.trim_end_matches("/24").to_string();
    println!(
        "TIMING collision -> {addr} on br-lan (a change staged): {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    // The move is over when roadie says so (it puts users' changes back
    // after the reload).
    let s = o.wait_status("the move in status", SHORT, |s| {
        !s["lan"]["apply"].is_null()
    });
    assert_eq!(s["lan"]["apply"]["ok"], true, "{s}");
    let file = r.read("/etc/config/network");
    let changes = r.sh("uci changes");
    let mut c = Checks::default();
    c.check(
        file.contains(&format!("\toption ipaddr '{router}'\n")),
        || format!("the move is not committed:\n{file}"),
    );
    c.check(!file.contains("metric"), || {
        format!("roadie's commit committed the user's staged change:\n{file}")
    });
    c.check(changes.trim() == "network.wan.metric='20'", || {
        format!(
            "`uci changes` after the move: {changes:?}, not only the user's network.wan.metric='20'"
        )
    });
    c.done();
}

/// The packaged config names `@lan`; on a router whose network.lan is on
/// another device (here lan0, no bridge), roadie follows netifd there, and
/// the LAN's own address is no collision: installing roadie must not
/// renumber the LAN.
#[test]
fn the_packaged_config_leaves_a_lan_without_br_lan_alone() {
    let Some(root) = openwrt_root() else { return };
    let r = Router::start(&root);
    r.write(
        "/etc/config/network",
        NETWORK
            .replace("config device\n\toption name 'br-lan'\n\toption type 'bridge'\n\tlist ports 'lan0'\n\n", "")
            .replace("\toption device 'br-lan'", "\toption device 'lan0'"),
    );
    r.sh("ubus call network reload");
    wait_for("netifd to put the LAN on lan0", SHORT, || {
        (r.addrs("lan0") == ["192.168.1.1/24"]).then_some(())
    });
    let o = install_into(r);
    let r = &o.r;
    let s = o.wait_status("roadie's first decision", LONG, |s| {
        s["lan"]["settling"] == false && s["lan"]["evaluations"].as_u64() >= Some(1)
    });
    let mut c = Checks::default();
    c.check(
        s["lan"]["apply"].is_null() && s["lan"]["history"] == json!([]),
        || format!("roadie tried to move the LAN: {}", s["lan"]),
    );
    c.check(
        s["lan"]["interface"] == "lan0" && s["lan"]["netifd"] == "lan",
        || format!("@lan is not lan0: {}", s["lan"]),
    );
    let moves: Vec<String> = o
        .log()
        .into_iter()
        .filter(|l| l.contains("moving LAN"))
        .collect();
    c.check(moves.is_empty(), || format!("logread: {moves:?}"));
    let ipaddr = r.sh("uci get network.lan.ipaddr");
    c.check(ipaddr.trim() == "192.168.1.1", || {
        format!("network.lan.ipaddr is {ipaddr:?}")
    });
    let addrs = r.addrs("lan0");
    c.check(addrs == ["192.168.1.1/24"], || {
        format!("lan0 has {addrs:?}")
    });
    c.done();
}

// ---------------------------------------------------------------------------
// uci-defaults at install

/// OpenWrt 24.10's default /etc/config/dhcp (dnsmasq's package): a lan pool
/// with a 12 h lease, no DHCP on wan.
const DHCP_DEFAULT: &str = "config dnsmasq
\toption domainneeded '1'
\toption localise_queries '1'
\toption local '/lan/'
\toption domain 'lan'
\toption authoritative '1'
\toption leasefile '/tmp/dhcp.leases'

config dhcp 'lan'
\toption interface 'lan'
\toption start '100'
\toption limit '150'
\toption leasetime '12h'

config dhcp 'wan'
\toption interface 'wan'
\toption ignore '1'
";

/// opkg's default_postinst runs the package's /etc/uci-defaults script
/// through the real uci: short leases on the LAN, committed, and the script
/// removed (it runs once).
#[test]
fn opkg_install_runs_the_uci_defaults_script_once() {
    let Some(root) = openwrt_root() else { return };
    let r = Router::start(&root);
    r.write("/etc/config/dhcp", DHCP_DEFAULT);
    let o = install_into(r);
    let r = &o.r;
    assert_eq!(r.sh("uci get dhcp.lan.leasetime").trim(), "2m");
    assert_eq!(r.sh("uci get dhcp.lan.dhcp_option").trim(), "58,30 59,90");
    assert!(
        !r.exists("/etc/uci-defaults/90-roadie-dhcp"),
        "the uci-defaults script is still there"
    );
    // Committed, not staged: in the file dnsmasq's init script reads.
    let file = r.read("/etc/config/dhcp");
    for line in [
        "\toption leasetime '2m'\n",
        "\tlist dhcp_option '58,30'\n",
        "\tlist dhcp_option '59,90'\n",
    ] {
        assert!(file.contains(line), "{line:?} not in:\n{file}");
    }
    assert_eq!(r.sh("uci changes").trim(), "", "left staged");
    assert_eq!(r.sh("uci get dhcp.wan.ignore").trim(), "1");
    assert!(
        r.run("uci -q get dhcp.wan.leasetime").code != 0,
        "wan touched"
    );
}

// ---------------------------------------------------------------------------
// on_collision = "absorb" on netifd's dhcp protocol

/// The router's network with wan on netifd's dhcp protocol (OpenWrt's
/// default wan).
fn network_dhcp() -> String {
    NETWORK.replace(
        "\toption device 'wan0'\n\toption proto 'none'\n",
        "\toption device 'wan0'\n\toption proto 'dhcp'\n",
    )
}

/// The checksum-neutral alias of 192.168.1.0/24 (see tests/absorb_lab.rs).
const ALIAS: &str = "10.168.183.0/24";

/// Kills a host process at the end of a test.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The hotel of the absorb issue: 192.168.1.0/24 with its gateway, DNS and
/// DHCP server (dnsmasq) at 192.168.1.1, the router's own LAN address,
/// handing out 192.168.1.57; behind the router's wan0.
fn colliding_hotel(r: &Router) -> (Ns, Reap) {
    let hotel = Ns::create(&unique("owa"), false).unwrap_or_else(|e| panic!("{e}"));
    hotel_link(r, &hotel);
    hotel.batch("addr add 192.168.1.1/24 dev hup0\nlink set hup0 up\n");
    let log = r.dir.join("hotel-dnsmasq.log");
    let leases = r.dir.join("hotel.leases");
    let child = common::ns::spawn_in(
        &hotel.name,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--user=root",
            "--port=0",
            "--no-ping",
            "--dhcp-authoritative",
            "--interface=hup0",
            "--bind-interfaces",
            "--log-facility=-",
            "--log-dhcp",
            &format!("--dhcp-leasefile={}", leases.display()),
            "--dhcp-range=192.168.1.57,192.168.1.57,255.255.255.0,1h",
            "--dhcp-option=3,192.168.1.1",
            "--dhcp-option=6,192.168.1.1",
        ],
        &log,
    );
    let pid = child.id();
    common::proc::wait_listening("the hotel's dnsmasq", pid, "udp", 67, &log);
    (hotel, Reap(child))
}

/// netifd's dhcp protocol with the package installed (netifd restarted, so
/// that it reads /lib/netifd/proto/dhcp-roadie.sh): the colliding lease is
/// absorbed, netifd installs the alias values, and wan0 never carries the
/// colliding prefix, not even for a moment.
#[test]
fn netifds_dhcp_installs_the_alias_lease() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    if r.run("nft list tables").code != 0 {
        common::skip("nft does not work here (nftables not installed?)");
        return;
    }
    // netifd reads its protocol handlers at start: as after a reboot.
    r.sh("/etc/init.d/network restart");
    wait_for("netifd back with lan up", SHORT, || {
        let s = r.run("ubus call network.interface.lan status");
        (s.code == 0 && s.stdout.contains("\"up\": true")).then_some(())
    });
    let toml = ROADIE_TOML.replace("[lan]\n", "[lan]\non_collision = \"absorb\"\n");
    o.configure(&toml);
    let (_hotel, _dnsmasq) = colliding_hotel(r);
    // Every address change on wan0 from now on.
    let mon = r.dir.join("wan0-monitor.log");
    let _monitor = r.spawn("exec ip -o -4 monitor address dev wan0", &mon);
    // A marker address (TEST-NET-3, on wan0 only) tells when it listens.
    wait_for("ip monitor to listen", SHORT, || {
        r.sh("ip addr add 203.0.113.9/32 dev wan0 && ip addr del 203.0.113.9/32 dev wan0");
        let seen = fs::read_to_string(&mon).unwrap_or_default();
        seen.contains("203.0.113.9").then_some(())
    });
    r.write("/etc/config/network", network_dhcp());
    let t = Instant::now();
    r.sh("ubus call network reload");
    let want = "10.168.183.57/24";
    wait_for("netifd to put the alias lease on wan0", LONG, || {
        (r.addrs("wan0") == [want]).then_some(())
    });
    let took = t.elapsed();
    println!(
        "TIMING network reload -> {want} on wan0 through netifd's dhcp + roadie: {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
    // udhcpc runs roadie's event script.
    let pid = r.sh("cat /var/run/udhcpc-wan0.pid");
    let cmdline = r.sh(&format!("tr '\\0' ' ' </proc/{}/cmdline", pid.trim()));
    assert!(
        cmdline.contains("-s /usr/libexec/roadie/dhcp.script"),
        "{cmdline}"
    );
    // netifd's view: the alias lease, gateway and DNS.
    let wan = r.json("ubus call network.interface.wan status");
    assert_eq!(wan["up"], true, "{wan}");
    assert_eq!(wan["proto"], "dhcp", "{wan}");
    assert_eq!(wan["ipv4-address"][0]["address"], "10.168.183.57", "{wan}");
    assert_eq!(wan["ipv4-address"][0]["mask"], 24, "{wan}");
    assert_eq!(wan["dns-server"], json!(["10.168.183.1"]), "{wan}");
    let default = wan
        .pointer("/route")
        .unwrap_or(&Value::Null)
        .as_array()
        .into_iter()
        .flatten()
        .find(|rt| rt["target"] == "0.0.0.0" && rt["mask"] == 0)
        .unwrap_or_else(|| panic!("no default route in netifd's wan: {wan}"));
    assert_eq!(default["nexthop"], "10.168.183.1", "{wan}");
    // The kernel's: the default route through the alias gateway, the LAN
    // where it was, the translation loaded.
    let routes = r.sh("ip -4 route show default");
    assert!(routes.contains("via 10.168.183.1 dev wan0"), "{routes}");
    assert_eq!(r.addrs("br-lan"), ["192.168.1.1/24"]);
    let table = r.sh("nft list table netdev roadie_wan0");
    assert!(
        table.contains("ip saddr != { 0.0.0.0, 192.168.1.57 } drop"),
        "{table}"
    );
    // The hotel's gateway answers the router at its alias address.
    r.sh("busybox ping -c 1 -W 2 10.168.183.1");
    let s = o.wait_status("absorbed in status", SHORT, |s| {
        s["lan"]["absorbed"][0]["alias"] == ALIAS
    });
    assert_eq!(s["lan"]["prefix"], "192.168.1.0/24", "{s}");
    // Never, not for a moment, the colliding address on wan0.
    let seen = fs::read_to_string(&mon).unwrap_or_default();
    assert!(seen.contains("10.168.183.57/24"), "monitor saw:\n{seen}");
    assert!(
        !seen.contains("192.168.1."),
        "the colliding prefix was up on wan0:\n{seen}"
    );

    // A renewal (netifd's renew: SIGUSR1 to udhcpc): the unicast renew
    // cannot leave (its source, the lease address, is not the router's),
    // the broadcast rebind gets the hotel's ACK, and roadie's answer goes to
    // netifd again.
    let log = r.dir.join("hotel-dnsmasq.log");
    let acks = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("DHCPACK(hup0) 192.168.1.57")
            .count()
    };
    let before = acks();
    let t = Instant::now();
    r.sh("ubus call network.interface.wan renew");
    wait_for("the hotel to ACK the renewal", LONG, || {
        (acks() > before).then_some(())
    });
    println!(
        "TIMING renew -> hotel's ACK (absorbed): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    wait_for("netifd to have the renewed alias lease", SHORT, || {
        let w = r.json("ubus call network.interface.wan status");
        (w["ipv4-address"][0]["address"] == "10.168.183.57").then_some(())
    });
    assert_eq!(r.addrs("wan0"), [want]);
    let seen = fs::read_to_string(&mon).unwrap_or_default();
    assert!(
        !seen.contains("192.168.1."),
        "the colliding prefix was up on wan0 after the renewal:\n{seen}"
    );

    // The interface goes down: udhcpc's deconfig, roadie lets the uplink go.
    r.sh("ubus call network.interface.wan down");
    wait_for("the translation removed", SHORT, || {
        (r.run("nft list table netdev roadie_wan0").code != 0).then_some(())
    });
    wait_for("wan0 without addresses", SHORT, || {
        r.addrs("wan0").is_empty().then_some(())
    });
}

/// fw4 (OpenWrt's firewall, firewall4 on ucode, built into the tree when
/// there) beside the absorb table: starting, restarting and reloading it
/// leaves roadie's table alone (fw4 keeps to `table inet fw4`), the router
/// still reaches the hotel through its wan zone, and `fw4 flush`, which
/// deletes every table, has roadie load its own again.
#[test]
fn fw4_keeps_to_its_table_beside_the_absorb_table() {
    let Some(root) = common::openwrt::openwrt_root() else {
        return;
    };
    if !root.join("usr/sbin/fw4").exists() || !root.join("usr/bin/utpl").exists() {
        common::skip("no fw4 (firewall4 and ucode) in OPENWRT_ROOT");
        return;
    }
    let o = install_into(Router::start(&root));
    let r = &o.r;
    if r.run("nft list tables").code != 0 {
        common::skip("nft does not work here (nftables not installed?)");
        return;
    }
    r.sh("/etc/init.d/network restart");
    wait_for("netifd back with lan up", SHORT, || {
        let s = r.run("ubus call network.interface.lan status");
        (s.code == 0 && s.stdout.contains("\"up\": true")).then_some(())
    });
    let toml = ROADIE_TOML.replace("[lan]\n", "[lan]\non_collision = \"absorb\"\n");
    o.configure(&toml);
    let (_hotel, _dnsmasq) = colliding_hotel(r);
    r.write("/etc/config/network", network_dhcp());
    r.sh("ubus call network reload");
    wait_for("the alias lease on wan0", LONG, || {
        (r.addrs("wan0") == ["10.168.183.57/24"]).then_some(())
    });
    let absorbed = |restored: u64| {
        o.wait_status("absorbed, table restored as counted", SHORT, |s| {
            s["lan"]["absorbed"][0]["alias"] == ALIAS
                && s["lan"]["absorbed"][0]["restored"] == restored
        })
    };
    absorbed(0);
    let check = |what: &str| {
        let fw = r.run("nft list table inet fw4");
        assert_eq!(fw.code, 0, "{what}: fw4's table: {}", fw.both());
        let ours = r.run("nft list table netdev roadie_wan0");
        assert_eq!(ours.code, 0, "{what}: roadie's table: {}", ours.both());
        // The router's own traffic through fw4's wan zone and the translation.
        r.sh("busybox ping -c 1 -W 2 10.168.183.1");
    };
    let t = Instant::now();
    r.sh("fw4 start");
    println!(
        "TIMING fw4 start: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    check("fw4 start");
    // fw4's wan zone covers wan0 and masquerades there: to the alias
    // address, which the egress translation turns into the lease.
    let masq = r.sh("nft list chain inet fw4 srcnat_wan");
    assert!(masq.contains("masquerade"), "{masq}");
    let zones = r.sh("nft list table inet fw4");
    assert!(
        zones.contains("\"wan0\""),
        "fw4's wan zone on wan0:\n{zones}"
    );
    for cmd in ["fw4 restart", "fw4 reload", "/etc/init.d/firewall restart"] {
        r.sh(cmd);
        check(cmd);
        // Not a reload of roadie's table: fw4 never touched it.
        absorbed(0);
    }
    // `fw4 flush` deletes every table, roadie's too: back on the notification.
    r.sh("fw4 flush");
    absorbed(1);
    let ours = r.run("nft list table netdev roadie_wan0");
    assert_eq!(ours.code, 0, "{}", ours.both());
    r.sh("fw4 start");
    check("fw4 start after the flush");
}

// ---------------------------------------------------------------------------
// rpcd's ACL through uhttpd

const LOGINS: &str = "
config login
\toption username 'roadie-admin'
\toption password 'SECRET'
\tlist read 'roadie'
\tlist write 'roadie'

config login
\toption username 'roadie-viewer'
\toption password 'SECRET'
\tlist read 'roadie'

config login
\toption username 'someone-else'
\toption password 'SECRET'
\tlist read 'unauthenticated'
";

const PORT: u16 = 8080;

/// One JSON-RPC request to uhttpd's /ubus, through curl on the router's
/// loopback.
fn jsonrpc(r: &Router, sid: &str, object: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "call",
                      "params": [sid, object, method, params]});
    let out = r.run_for(
        &format!(
            "curl -sS -m 10 -H 'Content-Type: application/json' --data-binary @- \
             http://127.0.0.1:{PORT}/ubus"
        ),
        Some(body.to_string().as_bytes()),
        SHORT,
    );
    assert_eq!(out.code, 0, "curl /ubus {object} {method}: {}", out.both());
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("/ubus {object} {method}: not JSON ({e}): {}", out.stdout))
}

fn login(r: &Router, user: &str) -> String {
    let v = r.json(&format!(
        "ubus call session login '{{\"username\":\"{user}\",\"password\":\"secret\"}}'"
    ));
    v["ubus_rpc_session"]
        .as_str()
        .unwrap_or_else(|| panic!("login {user}: {v}"))
        .to_string()
}

fn access(r: &Router, sid: &str, method: &str) -> bool {
    let v = r.json(&format!(
        "ubus call session access '{{\"ubus_rpc_session\":\"{sid}\",\"scope\":\"ubus\",\
         \"object\":\"roadie\",\"function\":\"{method}\"}}'"
    ));
    v["access"] == true
}

fn denied(v: &Value) -> bool {
    v["error"]["code"] == -32002 && v["error"]["message"] == "Access denied"
}

#[test]
fn rpcd_acl_through_uhttpd() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let rpcd = r.read("/etc/config/rpcd");
    r.write(
        "/etc/config/rpcd",
        rpcd + &LOGINS.replace("SECRET", SECRET_MD5),
    );
    let log = r.dir.join("uhttpd.log");
    let _uhttpd = r.spawn(
        &format!("mkdir -p /www && exec uhttpd -f -p 127.0.0.1:{PORT} -h /www -u /ubus"),
        &log,
    );
    wait_for("uhttpd to listen", SHORT, || {
        r.listening(PORT).then_some(())
    });
    // The ACL file as packaged.
    let acl: Value = serde_json::from_str(
        &fs::read_to_string(Path::new(REPO).join("openwrt-package/files/roadie.acl.json")).unwrap(),
    )
    .unwrap();
    let names = |kind: &str| -> Vec<String> {
        acl["roadie"][kind]["ubus"]["roadie"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect()
    };
    let (reads, writes) = (names("read"), names("write"));
    assert_eq!(reads, ["status", "list"]);
    assert_eq!(
        writes,
        [
            "reload",
            "readdress",
            "tunnel.restart",
            "absorb.lease",
            "absorb.release"
        ]
    );

    let admin = login(r, "roadie-admin");
    let viewer = login(r, "roadie-viewer");
    let other = login(r, "someone-else");
    for m in &reads {
        assert!(access(r, &admin, m), "admin may not {m}");
        assert!(access(r, &viewer, m), "viewer may not {m}");
        assert!(!access(r, &other, m), "someone else may {m}");
    }
    for m in &writes {
        assert!(access(r, &admin, m), "admin may not {m}");
        assert!(!access(r, &viewer, m), "a read-only login may {m}");
        assert!(!access(r, &other, m), "someone else may {m}");
    }

    // Over HTTP: rpcd lets through what the ACL grants, and roadie answers.
    // (uhttpd adds "ubus_rpc_session" to every call's parameters.)
    let mut c = Checks::default();
    let direct = o.status();
    let v = jsonrpc(r, &admin, "roadie", "status", json!({}));
    c.check(v["result"][0] == 0, || format!("admin status: {v}"));
    c.check(key_paths(&v["result"][1]) == key_paths(&direct), || {
        format!("status through /ubus is not roadie's status:\n{v}\nroadie call status:\n{direct}")
    });
    let v = jsonrpc(r, &viewer, "roadie", "status", json!({}));
    c.check(
        v["result"][0] == 0 && v["result"][1]["version"] == direct["version"],
        || format!("read-only status through /ubus: {v}"),
    );
    let v = jsonrpc(r, &viewer, "roadie", "list", json!({}));
    c.check(
        v["result"][0] == 0 && v["result"][1].get("error").is_none(),
        || format!("read-only list through /ubus: {v}"),
    );
    // Without the ACL: refused by rpcd, roadie never asked.
    let v = jsonrpc(r, &other, "roadie", "status", json!({}));
    c.check(denied(&v), || format!("status without the ACL: {v}"));
    let v = jsonrpc(
        r,
        "00000000000000000000000000000000",
        "roadie",
        "status",
        json!({}),
    );
    c.check(denied(&v), || format!("status without a session: {v}"));
    // Writing needs write.
    let before = o.status()["config"]["reloads"].as_u64().unwrap();
    let v = jsonrpc(r, &viewer, "roadie", "reload", json!({}));
    c.check(denied(&v), || format!("reload with read only: {v}"));
    let v = jsonrpc(
        r,
        &viewer,
        "roadie",
        "readdress",
        json!({"prefix": "10.9.8.0/24"}),
    );
    c.check(denied(&v), || format!("readdress with read only: {v}"));
    let v = jsonrpc(
        r,
        &viewer,
        "roadie",
        "tunnel.restart",
        json!({"name": "ui"}),
    );
    c.check(denied(&v), || format!("tunnel.restart with read only: {v}"));
    let after = o.status()["config"]["reloads"].clone();
    c.check(after == before, || {
        format!("a refused reload ran: reloads {before} -> {after}")
    });
    let v = jsonrpc(r, &admin, "roadie", "reload", json!({}));
    c.check(
        v["result"][0] == 0 && v["result"][1]["reloaded"].is_string(),
        || format!("admin reload through /ubus: {v}"),
    );
    let after = o.status()["config"]["reloads"].clone();
    c.check(after == before + 1, || {
        format!("the admin's reload did not reach roadie: reloads {before} -> {after}")
    });
    let v = jsonrpc(
        r,
        &admin,
        "roadie",
        "tunnel.restart",
        json!({"name": "nope"}),
    );
    c.check(
        v["result"][0] == 0
            && v["result"][1]["error"]
                .as_str()
                .is_some_and(|e| e.contains("nope")),
        || format!("admin tunnel.restart of an unknown tunnel, roadie's own answer: {v}"),
    );
    c.done();
}

// ---------------------------------------------------------------------------
// opkg remove

/// The files README says `opkg remove` leaves in /etc/roadie: the
/// backquoted names in its "opkg remove leaves" sentence.
fn readme_leaves() -> BTreeSet<String> {
    let readme = fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let start = readme
        .find("`opkg remove roadie` leaves")
        .expect("README says what `opkg remove roadie` leaves (under Install on OpenWrt)");
    let para = &readme[start..];
    let para = &para[..para.find("\n\n").unwrap_or(para.len())];
    para.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.contains(' '))
        .filter_map(|w| w.strip_prefix("/etc/roadie/").or(Some(w)))
        .filter(|w| {
            w.starts_with("roadie.toml") || w.starts_with("state") || w.starts_with("known")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn opkg_remove_stops_disables_and_leaves_what_roadie_wrote() {
    let Some(o) = installed() else { return };
    let r = &o.r;
    let hotel = uplink(r);
    // A tunnel server in the hotel: roadie learns its host key (accept-new)
    // before it is refused ("none" auth).
    let dir = common::lab_dir("roadie-openwrt", &unique("sshd"));
    let _sshd = Sshd::start(&hotel, &dir, "172.30.0.254", 2222, &[]);
    o.configure(&format!(
        "{ROADIE_TOML}
[[server]]
name = \"hotel\"
host = \"172.30.0.254\"
port = 2222
user = \"{}\"

[[tunnel]]
name = \"ui\"
server = \"hotel\"
remote = \"ui:80\"
target = \"192.168.1.100:80\"
",
        common::USER
    ));
    wait_for("roadie to learn the server's host key", LONG, || {
        (!r.read("/etc/roadie/known_hosts").is_empty()).then_some(())
    });
    let out = r.run("roadie call readdress '{\"prefix\":\"10.9.8.0/24\"}'");
    assert_eq!(out.code, 0, "readdress: {}", out.both());
    assert!(r.read("/etc/roadie/state.toml").contains("10.9.8.0/24"));
    let ls = |dir: &str| -> BTreeSet<String> {
        fs::read_dir(r.path(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = ls("/etc/roadie");
    println!("/etc/roadie before opkg remove: {before:?}");
    let pid = o.pid();

    let out = r.run_for("opkg remove roadie", None, Duration::from_secs(60));
    println!("opkg remove said:\n{}", out.both());
    assert_eq!(out.code, 0, "opkg remove: {}", out.both());
    assert!(!out.both().contains("Collected errors"), "{}", out.both());
    // Stopped: procd forgot it, the process is gone.
    assert_eq!(r.procd_instance("roadie"), None);
    wait_for("roadie to exit", SHORT, || {
        (!r.exists(&format!("/proc/{pid}/exe"))).then_some(())
    });
    // Disabled and gone.
    for gone in [
        "/etc/rc.d/S95roadie",
        "/etc/rc.d/K10roadie",
        "/usr/sbin/roadie",
        "/etc/init.d/roadie",
        "/usr/libexec/rpcd/roadie",
        "/usr/share/rpcd/acl.d/roadie.json",
        "/lib/upgrade/keep.d/roadie",
    ] {
        assert!(!r.exists(gone), "{gone} is still there after opkg remove");
    }
    let after = ls("/etc/roadie");
    println!("/etc/roadie after opkg remove: {after:?}");
    assert_eq!(
        after,
        readme_leaves(),
        "what opkg remove leaves is not what README says"
    );
    // rpcd learns of the plugin at install; the object must not outlive
    // the package either.
    let listed = r.run("ubus list roadie");
    let called = r.run("ubus call roadie status");
    println!(
        "after opkg remove: `ubus list roadie` {}; `ubus call roadie status` {}",
        listed.both().trim(),
        called.both().trim()
    );
    common::remove_lab_dir(&dir);
    let mut c = Checks::default();
    c.check(listed.code != 0, || {
        format!(
            "the roadie ubus object outlives the package (rpcd not reloaded on removal): \
             `ubus list roadie` {}; `ubus call roadie status` {}",
            listed.both().trim(),
            called.both().trim()
        )
    });
    c.done();
}
