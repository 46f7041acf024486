//! The control protocol: one JSON request per line, one JSON reply per line.
//! Parsing is pure so it can be table-tested and fuzzed.

use crate::quote::Q;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST: usize = 64 * 1024;

/// A parsed, validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Status,
    List,
    Reload,
    Readdress {
        prefix: Option<Ipv4Net>,
    },
    TunnelRestart {
        name: String,
    },
    /// A DHCP client's script reports a lease (crate::absorb).
    AbsorbLease {
        interface: String,
        address: Ipv4Net,
        router: Option<std::net::Ipv4Addr>,
        dns: Vec<std::net::Ipv4Addr>,
    },
    AbsorbRelease {
        interface: String,
    },
}

/// Methods and their parameters, for `roadie list` (like `ubus -v list`).
pub const METHODS: &[(&str, &str)] = &[
    ("status", "{}"),
    ("list", "{}"),
    ("reload", "{}"),
    (
        "readdress",
        r#"{"prefix":"String (optional): force this prefix, e.g. 10.9.8.0/24"}"#,
    ),
    (
        "tunnel.restart",
        r#"{"name":"String: the tunnel to restart, e.g. ui"}"#,
    ),
    (
        "absorb.lease",
        r#"{"interface":"String: the uplink, e.g. wan","address":"String: the lease with its length, e.g. 192.168.1.57/24","router":"String (optional): the lease's gateway","dns":"String (optional): its DNS servers, space-separated"}"#,
    ),
    (
        "absorb.release",
        r#"{"interface":"String: the uplink whose lease ended"}"#,
    ),
];

/// The methods as an rpcd exec plugin lists them (`{"readdress":{"prefix":"str"}}`):
/// rpcd types each parameter by the JSON type of its example value.
pub fn rpcd_signatures() -> Value {
    let mut out = serde_json::Map::new();
    for (method, params) in METHODS {
        let described: serde_json::Map<String, Value> =
            serde_json::from_str(params).unwrap_or_default();
        let sig: serde_json::Map<String, Value> = described
            .into_iter()
            .map(|(name, _)| (name, Value::String("str".into())))
            .collect();
        out.insert(method.to_string(), Value::Object(sig));
    }
    Value::Object(out)
}

/// What an rpcd exec plugin prints for a call: the daemon's reply when it is
/// a JSON object (rpcd passes on only objects), else the reply wrapped, and
/// errors as `{"error": "..."}` (rpcd ignores a plugin's exit code).
pub fn rpcd_reply(reply: Result<Value, String>) -> Value {
    match reply {
        Ok(v @ Value::Object(_)) => v,
        Ok(v) => json!({ "result": v }),
        Err(e) => json!({ "error": e }),
    }
}

/// Parse one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Call, String> {
    if line.len() > MAX_REQUEST {
        return Err(format!("request is larger than {MAX_REQUEST} bytes"));
    }
    let v: Value =
        serde_json::from_slice(line).map_err(|e| format!("request is not valid JSON: {e}"))?;
    let Value::Object(obj) = v else {
        return Err(r#"request must be a JSON object like {"method":"status","params":{}}"#.into());
    };
    if let Some(k) = obj.keys().find(|k| *k != "method" && *k != "params") {
        return Err(format!(
            "unknown request key {k_q} (expected \"method\" and \"params\")",
            k_q = Q(k)
        ));
    }
    let method = match obj.get("method") {
        Some(Value::String(m)) => m.as_str(),
        Some(_) => return Err("\"method\" must be a string".into()),
        None => return Err("request has no \"method\"".into()),
    };
    let empty = serde_json::Map::new();
    let params = match obj.get("params") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(p)) => p,
        Some(_) => return Err("\"params\" must be a JSON object".into()),
    };
    let no_params = |call: Call| -> Result<Call, String> {
        match params.keys().next() {
            Some(k) => Err(format!(
                "method {method_q} takes no parameters, got {k_q}",
                method_q = Q(method),
                k_q = Q(k)
            )),
            None => Ok(call),
        }
    };
    match method {
        "status" => no_params(Call::Status),
        "list" => no_params(Call::List),
        "reload" => no_params(Call::Reload),
        "readdress" => {
            if let Some(k) = params.keys().find(|k| *k != "prefix") {
                return Err(format!(
                    "readdress: unknown parameter {k_q} (expected \"prefix\")",
                    k_q = Q(k)
                ));
            }
            let prefix = match params.get("prefix") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.parse::<Ipv4Net>().map_err(|_| {
                    format!(
                        "readdress: prefix {s_q} is not an IPv4 prefix like 10.9.8.0/24",
                        s_q = Q(s)
                    )
                })?),
                Some(_) => {
                    return Err(
                        "readdress: \"prefix\" must be a string like \"10.9.8.0/24\"".into(),
                    );
                }
            };
            Ok(Call::Readdress { prefix })
        }
        "tunnel.restart" => {
            if let Some(k) = params.keys().find(|k| *k != "name") {
                return Err(format!(
                    "tunnel.restart: unknown parameter {} (expected \"name\")",
                    Q(k)
                ));
            }
            match params.get("name") {
                Some(Value::String(n)) if !n.is_empty() => {
                    Ok(Call::TunnelRestart { name: n.clone() })
                }
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    Err(r#"tunnel.restart: which tunnel? give {"name":"ui"}"#.into())
                }
                Some(_) => Err("tunnel.restart: \"name\" must be a string like \"ui\"".into()),
            }
        }
        "absorb.lease" | "absorb.release" => absorb_call(method, params),
        other => {
            let known: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
            Err(format!(
                "unknown method {other_q}; known: {}",
                known.join(", "),
                other_q = Q(other)
            ))
        }
    }
}

fn absorb_call(method: &str, params: &serde_json::Map<String, Value>) -> Result<Call, String> {
    let allowed: &[&str] = if method == "absorb.lease" {
        &["interface", "address", "router", "dns"]
    } else {
        &["interface"]
    };
    if let Some(k) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "{method}: unknown parameter {} (expected {})",
            Q(k),
            allowed.join(", ")
        ));
    }
    let text = |key: &str| -> Result<Option<&str>, String> {
        match params.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("{method}: \"{key}\" must be a string")),
        }
    };
    let ip = |key: &str, s: &str| {
        s.parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("{method}: {key} {} is not an IPv4 address", Q(s)))
    };
    let interface = text("interface")?
        .ok_or_else(|| format!(r#"{method}: which uplink? give {{"interface":"wan"}}"#))?
        .to_string();
    if method == "absorb.release" {
        return Ok(Call::AbsorbRelease { interface });
    }
    let address = text("address")?
        .ok_or_else(|| format!("{method}: no \"address\" (the lease, e.g. 192.168.1.57/24)"))?;
    let address = address.parse::<Ipv4Net>().map_err(|_| {
        format!(
            "{method}: address {} is not an address with its length, like 192.168.1.57/24",
            Q(address)
        )
    })?;
    let router = text("router")?.map(|r| ip("router", r)).transpose()?;
    let dns = match params.get("dns") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| format!("{method}: \"dns\" entries must be strings"))
                    .and_then(|s| ip("dns", s))
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => text("dns")?
            .unwrap_or("")
            .split_whitespace()
            .map(|s| ip("dns", s))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Call::AbsorbLease {
        interface,
        address,
        router,
        dns,
    })
}

pub fn ok_reply(result: Value) -> String {
    json!({ "result": result }).to_string()
}

pub fn error_reply(message: &str) -> String {
    json!({ "error": { "message": message } }).to_string()
}

/// Split a reply line into the result or the error message.
pub fn parse_reply(line: &str) -> Result<Result<Value, String>, String> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("daemon sent a malformed reply: {e}"))?;
    if let Some(r) = v.get("result") {
        return Ok(Ok(r.clone()));
    }
    match v
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
    {
        Some(m) => Ok(Err(m.to_string())),
        None => Err("daemon sent a reply with neither result nor error".into()),
    }
}

pub fn list_result() -> Value {
    let mut m = serde_json::Map::new();
    for (name, params) in METHODS {
        let p: Value = serde_json::from_str(params).unwrap_or(Value::Null);
        m.insert((*name).to_string(), p);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpcd_signatures_type_every_parameter_as_a_string() {
        assert_eq!(
            rpcd_signatures(),
            json!({"status": {}, "list": {}, "reload": {},
                   "readdress": {"prefix": "str"}, "tunnel.restart": {"name": "str"},
                   "absorb.lease": {"interface": "str", "address": "str", "router": "str", "dns": "str"},
                   "absorb.release": {"interface": "str"}})
        );
        for (reply, want) in [
            (Ok(json!({"a": 1})), json!({"a": 1})),
            (Ok(json!([1])), json!({"result": [1]})),
            (
                Err("not running".to_string()),
                json!({"error": "not running"}),
            ),
        ] {
            assert_eq!(rpcd_reply(reply), want);
        }
    }

    #[test]
    fn requests() {
        let ok: &[(&str, Call)] = &[
            (r#"{"method":"status"}"#, Call::Status),
            (r#"{"method":"status","params":{}}"#, Call::Status),
            (r#"{"method":"status","params":null}"#, Call::Status),
            (r#"{"method":"list"}"#, Call::List),
            (r#"{"method":"reload","params":{}}"#, Call::Reload),
            (
                r#"{"method":"readdress","params":{}}"#,
                Call::Readdress { prefix: None },
            ),
            (
                r#"{"method":"readdress","params":{"prefix":"10.9.8.0/24"}}"#,
                Call::Readdress {
                    prefix: Some("10.9.8.0/24".parse().unwrap()),
                },
            ),
            (
                r#"{"method":"tunnel.restart","params":{"name":"ui"}}"#,
                Call::TunnelRestart { name: "ui".into() },
            ),
            (
                r#"{"method":"absorb.lease","params":{"interface":"wan","address":"192.168.1.57/24","router":"192.168.1.1","dns":"192.168.1.1 9.9.9.9"}}"#,
                Call::AbsorbLease {
                    interface: "wan".into(),
                    address: "192.168.1.57/24".parse().unwrap(),
                    router: Some("192.168.1.1".parse().unwrap()),
                    dns: vec!["192.168.1.1".parse().unwrap(), "9.9.9.9".parse().unwrap()],
                },
            ),
            (
                r#"{"method":"absorb.lease","params":{"interface":"wan","address":"192.168.1.57/24","router":"","dns":["1.1.1.1"]}}"#,
                Call::AbsorbLease {
                    interface: "wan".into(),
                    address: "192.168.1.57/24".parse().unwrap(),
                    router: None,
                    dns: vec!["1.1.1.1".parse().unwrap()],
                },
            ),
            (
                r#"{"method":"absorb.release","params":{"interface":"wan"}}"#,
                Call::AbsorbRelease {
                    interface: "wan".into(),
                },
            ),
        ];
        for (line, want) in ok {
            assert_eq!(parse_request(line.as_bytes()).as_ref(), Ok(want), "{line}");
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let bad: &[(&[u8], &str)] = &[
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"[1,2]", "must be a JSON object"),
            (b"{}", "no \"method\""),
            (br#"{"method":5}"#, "must be a string"),
            (
                br#"{"method":"status","params":[]}"#,
                "must be a JSON object",
            ),
            (
                br#"{"method":"status","params":{"x":1}}"#,
                "takes no parameters",
            ),
            (
                br#"{"method":"reboot"}"#,
                "unknown method \"reboot\"; known: status",
            ),
            (
                br#"{"method":"status","extra":1}"#,
                "unknown request key \"extra\"",
            ),
            (
                br#"{"method":"readdress","params":{"prefix":7}}"#,
                "must be a string",
            ),
            (
                br#"{"method":"readdress","params":{"prefix":"10.9.8.0"}}"#,
                "not an IPv4 prefix",
            ),
            (
                br#"{"method":"readdress","params":{"prefx":"10.9.8.0/24"}}"#,
                "unknown parameter \"prefx\"",
            ),
            (br#"{"method":"tunnel.restart"}"#, "which tunnel?"),
            (
                br#"{"method":"tunnel.restart","params":{"name":""}}"#,
                "which tunnel?",
            ),
            (
                br#"{"method":"tunnel.restart","params":{"name":3}}"#,
                "must be a string",
            ),
            (
                br#"{"method":"tunnel.restart","params":{"name":"ui","x":1}}"#,
                "unknown parameter \"x\"",
            ),
            (br#"{"method":"absorb.lease","params":{"address":"1.2.3.4/24"}}"#, "which uplink?"),
            (br#"{"method":"absorb.lease","params":{"interface":"wan"}}"#, "no \"address\""),
            (
                br#"{"method":"absorb.lease","params":{"interface":"wan","address":"1.2.3.4"}}"#,
                "not an address with its length",
            ),
            (
                br#"{"method":"absorb.lease","params":{"interface":"wan","address":"1.2.3.4/24","router":"gw"}}"#,
                "router \"gw\" is not an IPv4 address",
            ),
            (
                br#"{"method":"absorb.lease","params":{"interface":"wan","address":"1.2.3.4/24","dns":[1]}}"#,
                "entries must be strings",
            ),
            (
                br#"{"method":"absorb.release","params":{"interface":"wan","address":"x"}}"#,
                "unknown parameter \"address\"",
            ),
        ];
        for (line, want) in bad {
            let e = parse_request(line).unwrap_err();
            assert!(e.contains(want), "{}: {e}", String::from_utf8_lossy(line));
        }
        let big = vec![b' '; MAX_REQUEST + 1];
        assert!(parse_request(&big).unwrap_err().contains("larger than"));
    }

    #[test]
    fn replies_round_trip() {
        assert_eq!(
            parse_reply(&ok_reply(json!({"a":1}))),
            Ok(Ok(json!({"a":1})))
        );
        assert_eq!(
            parse_reply(&error_reply("nope")),
            Ok(Err("nope".to_string()))
        );
        assert!(parse_reply("{}").is_err());
        assert!(parse_reply("garbage").is_err());
    }

    #[test]
    fn list_names_every_method() {
        let l = list_result();
        for (m, _) in METHODS {
            assert!(l.get(m).is_some(), "{m}");
        }
        assert!(l["readdress"]["prefix"].is_string());
        assert!(l["tunnel.restart"]["name"].is_string());
    }
}
