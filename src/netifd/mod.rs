//! netifd interface names in the config (`"@wan"`, `"@lan"`): which kernel
//! device each one runs on now, as `ubus call network.interface.<name> status`
//! says, followed while netifd changes it (a wifi uplink coming up, a tether
//! plugged in, wan's device changing).
//!
//! The resolution is part of [`NetState`]: the task ([`task`]) writes its
//! field, netwatch writes the kernel's, and everything that reads the
//! snapshot (planner, tunnels, prober, status) sees a changed device the way
//! it sees a netlink change. This file is the pure part: names, the ubus
//! answer, what changed.

pub mod task;

pub use task::{Resolver, resolve_all};

use crate::netwatch::NetState;
use crate::quote::Q;
use serde_json::Value;

/// What marks a netifd interface name in the config.
pub const MARK: char = '@';

/// `"@wan"` -> `Some("wan")`; a kernel link name -> `None`.
pub fn name(configured: &str) -> Option<&str> {
    configured.strip_prefix(MARK)
}

/// Whether `name` can be a netifd interface: a UCI section name (letters,
/// digits, '_'), which is also what ubus's object path allows.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The netifd names among the configured interfaces (without the mark),
/// sorted, each once.
pub fn names<'a>(configured: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = configured
        .into_iter()
        .filter_map(name)
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// One netifd interface roadie follows, as ubus last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// `wan` (no mark).
    pub name: String,
    /// The kernel device it runs on now; `None`: netifd has none for it
    /// (down without a device, or no such interface).
    pub device: Option<String>,
    /// netifd's own `up`.
    pub up: bool,
    /// The last ubus answer could not be used (the device from before is
    /// kept, so a ubus hiccup does not make an uplink flap).
    pub problem: Option<String>,
}

/// What one `ubus call network.interface.<name> status` came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exit 0: the status object (JSON).
    Status(String),
    /// netifd has no such interface (ubus: "Command failed: Not found", exit 4).
    NotFound,
    /// Anything else: ubus missing, ubusd down, a timeout.
    Failed(String),
}

/// UBUS_STATUS_NOT_FOUND, which the ubus CLI returns as its exit code.
const UBUS_NOT_FOUND: i32 = 4;

/// Sorts a finished ubus call into an [`Answer`]. `failure` describes the
/// call for the error case.
pub fn classify(code: Option<i32>, stdout: &str, stderr: &str, failure: String) -> Answer {
    match code {
        Some(0) => Answer::Status(stdout.to_string()),
        Some(UBUS_NOT_FOUND) if stderr.contains("Not found") => Answer::NotFound,
        _ => Answer::Failed(failure),
    }
}

/// The parts of netifd's status object roadie uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub up: bool,
    /// `l3_device` (where the addresses are: `pppoe-wan` for PPPoE), else
    /// `device` (netifd shows it also while the interface is down or waiting
    /// for its DHCP lease), else none.
    pub device: Option<String>,
}

/// Parses netifd's answer to `status` (interface_dump_status in netifd's
/// ubus.c: `up`, `l3_device` only while up, `device` whenever it has one).
pub fn parse_status(json: &str) -> Result<Status, String> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| format!("ubus answered something that is not JSON ({e})"))?;
    let Value::Object(o) = v else {
        return Err("ubus answered JSON that is not an object".to_string());
    };
    let text = |key: &str| -> Result<Option<String>, String> {
        match o.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) if plausible_device(s) => Ok(Some(s.clone())),
            Some(Value::String(s)) => Err(format!("{key} {} is not a link name", Q(s))),
            Some(_) => Err(format!("{key} is not a string")),
        }
    };
    let up = match o.get("up") {
        Some(Value::Bool(b)) => *b,
        None => false,
        Some(_) => return Err("`up` is not true or false".to_string()),
    };
    let l3 = text("l3_device")?;
    let device = text("device")?;
    Ok(Status {
        up,
        device: l3.or(device),
    })
}

/// A kernel link name (IFNAMSIZ, no '/' or spaces): what roadie will look
/// for in netlink.
fn plausible_device(s: &str) -> bool {
    s.len() <= 15
        && !s
            .chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control())
}

/// The new state of interface `name`, from its previous one and ubus's answer.
pub fn next(name: &str, prev: Option<&Iface>, answer: Answer) -> Iface {
    let failed = |problem: String| Iface {
        name: name.to_string(),
        device: prev.and_then(|p| p.device.clone()),
        up: prev.is_some_and(|p| p.up),
        problem: Some(problem),
    };
    match answer {
        Answer::Status(json) => match parse_status(&json) {
            Ok(s) => Iface {
                name: name.to_string(),
                device: s.device,
                up: s.up,
                problem: None,
            },
            Err(e) => failed(format!("network.interface.{name} status: {e}")),
        },
        Answer::NotFound => Iface {
            name: name.to_string(),
            device: None,
            up: false,
            problem: None,
        },
        Answer::Failed(e) => failed(e),
    }
}

/// One line for the log; `warn`: ubus could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warn: bool,
    pub text: String,
}

/// What changed between two resolutions, one line each, for the log: every
/// device the first time, then device changes, and a ubus problem once when
/// it starts (and when it ends).
pub fn changes(old: &[Iface], new: &[Iface]) -> Vec<Note> {
    let dev = |d: &Option<String>| d.clone().unwrap_or_else(|| "no device".to_string());
    let mut out = Vec::new();
    let mut say = |warn: bool, text: String| out.push(Note { warn, text });
    for n in new {
        let o = old.iter().find(|o| o.name == n.name);
        let what = format!("netifd interface {}", n.name);
        match (o, &n.problem) {
            (None, None) => say(false, format!("{what}: {}", dev(&n.device))),
            (None, Some(p)) => say(true, format!("{what}: {p}")),
            (Some(o), _) if o.device != n.device => say(
                false,
                format!("{what}: {} -> {}", dev(&o.device), dev(&n.device)),
            ),
            _ => {}
        }
        match (o.and_then(|o| o.problem.as_ref()), &n.problem) {
            (old, Some(p)) if o.is_some() && old != Some(p) => {
                say(true, format!("{what}: {p}; keeping {}", dev(&n.device)))
            }
            (Some(_), None) => say(false, format!("{what}: ubus answers again")),
            _ => {}
        }
    }
    out
}

/// Whether netlink saw a link change (a link added, removed, renamed, up or
/// down, or its addresses): a device netifd uses may have come or gone, so
/// the names are resolved again. Routes and the resolution itself do not
/// count.
pub fn links_changed(old: &NetState, new: &NetState) -> bool {
    old.links != new.links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netwatch::{LinkState, RouteState};

    fn iface(name: &str, device: Option<&str>, up: bool, problem: Option<&str>) -> Iface {
        Iface {
            name: name.into(),
            device: device.map(str::to_string),
            up,
            problem: problem.map(str::to_string),
        }
    }

    /// What the real netifd (24.10, ea01ed4) printed for `ubus call
    /// network.interface.lan status` (shortened: the empty IPv6 lists).
    const LAN_UP: &str = r#"{
	"up": true,
	"pending": false,
	"available": true,
	"autostart": true,
	"dynamic": false,
	"uptime": 0,
	"l3_device": "lan0",
	"proto": "static",
	"device": "lan0",
	"updated": [
		"addresses"
	],
	"metric": 0,
	"dns_metric": 0,
	"delegation": true,
	"ipv4-address": [
		{
			"address": "192.168.1.1",
			"mask": 24
		}
	],
	"ipv6-address": [
		
	],
	"route": [
		
	],
	"inactive": {
		"ipv4-address": [
			
		]
	},
	"data": {
		
	}
}"#;

    /// The same netifd after `ifdown wan`: no l3_device, the device stays.
    const WAN_DOWN: &str = r#"{
	"up": false,
	"pending": false,
	"available": true,
	"autostart": false,
	"dynamic": false,
	"proto": "static",
	"device": "wan0",
	"data": {
		
	}
}"#;

    #[test]
    fn status_answers() {
        let ok = |up, dev: Option<&str>| {
            Ok(Status {
                up,
                device: dev.map(str::to_string),
            })
        };
        let cases: &[(&str, &str, Result<Status, &str>)] = &[
            ("real netifd, lan up", LAN_UP, ok(true, Some("lan0"))),
            (
                "real netifd, wan after ifdown",
                WAN_DOWN,
                ok(false, Some("wan0")),
            ),
            (
                "PPPoE: the addresses are on l3_device",
                r#"{"up":true,"l3_device":"pppoe-wan","device":"eth1"}"#,
                ok(true, Some("pppoe-wan")),
            ),
            (
                "wifi client not associated: no device at all",
                r#"{"up":false,"pending":false,"proto":"dhcp"}"#,
                ok(false, None),
            ),
            (
                "DHCP waiting for a lease",
                r#"{"up":false,"pending":true,"proto":"dhcp","device":"eth1"}"#,
                ok(false, Some("eth1")),
            ),
            (
                "empty names count as none",
                r#"{"up":true,"l3_device":"","device":""}"#,
                ok(true, None),
            ),
            (
                "no up key: down",
                r#"{"device":"eth1"}"#,
                ok(false, Some("eth1")),
            ),
            ("not JSON", "Command failed: Not found", Err("not JSON")),
            ("an array", "[]", Err("not an object")),
            (
                "device a number",
                r#"{"up":true,"device":3}"#,
                Err("device is not a string"),
            ),
            (
                "device not a link name",
                r#"{"up":true,"l3_device":"../../etc"}"#,
                Err("l3_device \"../../etc\" is not a link name"),
            ),
            (
                "up a string",
                r#"{"up":"yes"}"#,
                Err("`up` is not true or false"),
            ),
        ];
        for (name, json, want) in cases {
            match (parse_status(json), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{name}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ubus_exits_are_classified() {
        let f = || "ubus failed".to_string();
        // What the real ubus CLI did: 0 with JSON, 4 "Command failed: Not
        // found" for an interface netifd does not have, 255 "Failed to
        // connect to ubus" without ubusd.
        assert_eq!(
            classify(Some(0), "{}", "", f()),
            Answer::Status("{}".into())
        );
        assert_eq!(
            classify(Some(4), "", "Command failed: Not found\n", f()),
            Answer::NotFound
        );
        assert_eq!(
            classify(Some(255), "", "Failed to connect to ubus\n", f()),
            Answer::Failed("ubus failed".into())
        );
        assert_eq!(
            classify(Some(4), "", "other", f()),
            Answer::Failed("ubus failed".into())
        );
        assert_eq!(
            classify(None, "", "", f()),
            Answer::Failed("ubus failed".into())
        );
    }

    #[test]
    fn next_state_from_an_answer() {
        let was = iface("wan", Some("eth1"), true, None);
        let cases: Vec<(&str, Option<&Iface>, Answer, Iface)> = vec![
            (
                "first answer",
                None,
                Answer::Status(r#"{"up":true,"l3_device":"eth1","device":"eth1"}"#.into()),
                iface("wan", Some("eth1"), true, None),
            ),
            (
                "the tether: wan's device changed",
                Some(&was),
                Answer::Status(r#"{"up":true,"l3_device":"usb0","device":"usb0"}"#.into()),
                iface("wan", Some("usb0"), true, None),
            ),
            (
                "no such interface: down, not an error",
                Some(&was),
                Answer::NotFound,
                iface("wan", None, false, None),
            ),
            (
                "ubus failed: the device from before is kept",
                Some(&was),
                Answer::Failed("cannot run /bin/ubus: not found".into()),
                iface(
                    "wan",
                    Some("eth1"),
                    true,
                    Some("cannot run /bin/ubus: not found"),
                ),
            ),
            (
                "ubus failed before any answer: none",
                None,
                Answer::Failed("x".into()),
                iface("wan", None, false, Some("x")),
            ),
            (
                "an answer that does not parse counts as a failure",
                Some(&was),
                Answer::Status("garbage".into()),
                iface(
                    "wan",
                    Some("eth1"),
                    true,
                    Some(
                        "network.interface.wan status: ubus answered something that is not JSON (expected value at line 1 column 1)",
                    ),
                ),
            ),
        ];
        for (name, prev, answer, want) in cases {
            assert_eq!(next("wan", prev, answer), want, "{name}");
        }
    }

    #[test]
    fn changes_for_the_log() {
        let a = [
            iface("lan", Some("br-lan"), true, None),
            iface("wan", Some("eth1"), true, None),
        ];
        // (case, before, after, log lines)
        type Case<'a> = (&'a str, &'a [Iface], Vec<Iface>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            (
                "first resolution names every device",
                &[],
                a.to_vec(),
                vec!["netifd interface lan: br-lan", "netifd interface wan: eth1"],
            ),
            ("nothing changed", &a, a.to_vec(), vec![]),
            (
                "up/down alone is not a device change",
                &a,
                vec![a[0].clone(), iface("wan", Some("eth1"), false, None)],
                vec![],
            ),
            (
                "a tether",
                &a,
                vec![a[0].clone(), iface("wan", Some("usb0"), true, None)],
                vec!["netifd interface wan: eth1 -> usb0"],
            ),
            (
                "gone",
                &a,
                vec![a[0].clone(), iface("wan", None, false, None)],
                vec!["netifd interface wan: eth1 -> no device"],
            ),
            (
                "ubus fails, then answers again",
                &a,
                vec![
                    a[0].clone(),
                    iface("wan", Some("eth1"), true, Some("ubus down")),
                ],
                vec!["netifd interface wan: ubus down; keeping eth1"],
            ),
        ];
        let text = |old: &[Iface], new: &[Iface]| -> Vec<(bool, String)> {
            changes(old, new)
                .into_iter()
                .map(|n| (n.warn, n.text))
                .collect()
        };
        for (name, old, new, want) in cases {
            let got: Vec<String> = text(old, &new).into_iter().map(|(_, t)| t).collect();
            assert_eq!(got, want, "{name}");
        }
        let failing = [iface("wan", Some("eth1"), true, Some("ubus down"))];
        assert!(changes(&failing, &failing).is_empty(), "said once");
        assert_eq!(
            text(&failing, &[iface("wan", Some("eth1"), true, None)]),
            [(
                false,
                "netifd interface wan: ubus answers again".to_string()
            )]
        );
        assert_eq!(
            text(&a, &failing),
            [(
                true,
                "netifd interface wan: ubus down; keeping eth1".to_string()
            )]
        );
        // ubus failing from the start: one warning, no "no device" line.
        assert_eq!(
            text(
                &[],
                &[iface("wan", None, false, Some("cannot run /bin/ubus"))]
            ),
            [(
                true,
                "netifd interface wan: cannot run /bin/ubus".to_string()
            )]
        );
    }

    #[test]
    fn only_link_changes_trigger_a_resolution() {
        let link = |up: bool, addrs: &[&str]| LinkState {
            index: 2,
            name: "eth1".into(),
            up,
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        let base = NetState {
            links: vec![link(true, &[])],
            ..NetState::default()
        };
        let with = |f: &dyn Fn(&mut NetState)| {
            let mut s = base.clone();
            f(&mut s);
            s
        };
        let cases: Vec<(&str, NetState, bool)> = vec![
            ("same", base.clone(), false),
            ("carrier lost", with(&|s| s.links[0].up = false), true),
            (
                "address added (a DHCP lease)",
                with(&|s| s.links[0] = link(true, &["10.0.0.2/24"])),
                true,
            ),
            (
                "a link appeared (usb0)",
                with(&|s| {
                    s.links.push(LinkState {
                        index: 9,
                        name: "usb0".into(),
                        up: false,
                        addrs: vec![],
                    })
                }),
                true,
            ),
            (
                "a route alone",
                with(&|s| {
                    s.routes.push(RouteState {
                        dst: "0.0.0.0/0".parse().unwrap(),
                        gateway: None,
                        oif: Some(2),
                    })
                }),
                false,
            ),
            (
                "the resolution itself",
                with(&|s| s.netifd.push(iface("wan", Some("eth1"), true, None))),
                false,
            ),
        ];
        for (name, new, want) in cases {
            assert_eq!(links_changed(&base, &new), want, "{name}");
        }
    }

    #[test]
    fn names_and_marks() {
        assert_eq!(name("@wan"), Some("wan"));
        assert_eq!(name("eth1"), None);
        assert_eq!(
            names(["@wwan", "eth1", "@wan", "@wan", "@lan"]),
            ["lan", "wan", "wwan"]
        );
        for (n, ok) in [
            ("wan", true),
            ("wan_6", true),
            ("WAN2", true),
            ("", false),
            ("wan.x", false),
            ("a b", false),
            ("@x", false),
            ("wan-1", false),
        ] {
            assert_eq!(valid_name(n), ok, "{n}");
        }
    }
}
