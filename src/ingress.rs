//! `roadie ingress`: a `networking.k8s.io/v1` Ingress with one rule per tunnel
//! that names a cluster `service`, for the host name the tunnel service gave
//! out. Pure: the CLI supplies the config's tunnels and the daemon's status.
//!
//! The YAML is written by hand (a YAML library would cost flash on a 16 MB
//! router); every value is validated first, and strings that YAML could read
//! as something else are quoted.

use crate::config::Tunnel;
use crate::quote::Q;
use crate::tunnel::urls::host_of;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// The `metadata.name` of the emitted Ingress.
pub const NAME: &str = "roadie";

const HOST_RULE: &str = "RFC 1123: lower-case letters, digits, \"-\" and \".\"; \
    each label 1-63 characters, starting and ending with a letter or digit";

/// What the command line adds to the Ingress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub namespace: Option<String>,
    pub class: Option<String>,
}

impl Options {
    /// What is wrong with the namespace and the class name.
    pub fn problems(&self) -> Vec<Problem> {
        let ns = self.namespace.as_ref().and_then(|v| {
            label_problem(v).map(|why| Problem::BadOption {
                option: "--namespace",
                value: v.clone(),
                why,
            })
        });
        let class = self.class.as_ref().and_then(|v| {
            subdomain_problem(v).map(|why| Problem::BadOption {
                option: "--class",
                value: v.clone(),
                why,
            })
        });
        ns.into_iter().chain(class).collect()
    }
}

/// Where a rule's host comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSource {
    /// The host of a public URL the running daemon reports for the tunnel.
    Live(String),
    /// `public_host` from the config.
    PublicHost(String),
    /// Neither; `daemon_running` says which advice fits.
    Missing { daemon_running: bool },
}

/// One tunnel with a `service`, as input to [`render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub tunnel: String,
    /// `name:port` as written in the config.
    pub service: String,
    pub host: HostSource,
}

/// A Kubernetes service port: a number or a named port of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Port {
    Number(u16),
    Name(String),
}

/// One reason the Ingress cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No tunnel has a `service` key.
    NoService,
    /// The host name would be rejected by Kubernetes (fix: the config).
    BadHost {
        tunnel: String,
        host: String,
        why: String,
        live: bool,
    },
    /// Two tunnels would answer for the same host.
    SameHost {
        tunnel: String,
        host: String,
        first: String,
    },
    /// A `service` the config validator should have refused.
    BadService {
        tunnel: String,
        service: String,
        why: String,
    },
    /// No host known for the tunnel.
    NoHost {
        tunnel: String,
        daemon_running: bool,
    },
    /// `--namespace` or `--class` is not a valid name.
    BadOption {
        option: &'static str,
        value: String,
        why: String,
    },
}

impl Problem {
    /// A config problem (exit 2), or one that time or the daemon can fix (exit 1).
    pub fn is_config(&self) -> bool {
        !matches!(self, Problem::NoHost { .. })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NoService => write!(
                f,
                "no [[tunnel]] has a `service` key; add `service = \"name:port\"` (the cluster \
                 service the tunnel's traffic is for) to the tunnels the Ingress should route"
            ),
            Problem::BadHost {
                tunnel,
                host,
                why,
                live,
            } => {
                let from = if *live {
                    "it is the host of the public URL the daemon reports; change the tunnel's \
                     `remote` bind name so that the service gives out a valid one"
                } else {
                    "it is the tunnel's `public_host` in the config"
                };
                write!(
                    f,
                    "tunnel {}: host {} is not a valid Kubernetes host name: {why} ({HOST_RULE}); {from}",
                    Q(tunnel),
                    Q(host)
                )
            }
            Problem::SameHost {
                tunnel,
                host,
                first,
            } => write!(
                f,
                "tunnel {}: host {} is already used by tunnel {}; one Ingress rule per host",
                Q(tunnel),
                Q(host),
                Q(first)
            ),
            Problem::BadService {
                tunnel,
                service,
                why,
            } => write!(f, "tunnel {}: service {}: {why}", Q(tunnel), Q(service)),
            Problem::NoHost {
                tunnel,
                daemon_running: false,
            } => write!(
                f,
                "tunnel {}: no host name known: the daemon is not running and the tunnel has no \
                 `public_host`; set `public_host = \"…\"` in its [[tunnel]], or start the daemon \
                 and wait until the tunnel is up",
                Q(tunnel)
            ),
            Problem::NoHost {
                tunnel,
                daemon_running: true,
            } => write!(
                f,
                "tunnel {}: no host name known: the daemon reports no public URL for it yet and \
                 it has no `public_host`; wait until the tunnel is up (`roadie status`), or set \
                 `public_host = \"…\"` in its [[tunnel]]",
                Q(tunnel)
            ),
            Problem::BadOption { option, value, why } => {
                write!(f, "{option} {}: {why}", Q(value))
            }
        }
    }
}

/// Everything wrong, in config order; nothing is printed when this is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub problems: Vec<Problem>,
}

impl Error {
    /// 2 when the config has to change, else 1 (the contract's exit codes).
    pub fn exit_code(&self) -> i32 {
        if self.problems.iter().any(Problem::is_config) {
            2
        } else {
            1
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Each tunnel's live host from a status object: the host of its first
/// `https://` public URL, else of its first URL. Tunnels without one are absent.
pub fn hosts_from_status(status: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for t in status["tunnels"].as_array().into_iter().flatten() {
        let Some(name) = t["name"].as_str() else {
            continue;
        };
        let urls: Vec<&str> = t["public_urls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let url = urls
            .iter()
            .find(|u| u.starts_with("https://"))
            .or(urls.first());
        if let Some(host) = url.and_then(|u| host_of(u)) {
            out.insert(name.to_string(), host);
        }
    }
    out
}

/// The tunnels with a `service`, in config order, each with its host: the
/// live one when the daemon runs (`live` is `Some`) and knows a URL, else
/// `public_host`.
pub fn entries(tunnels: &[Tunnel], live: Option<&HashMap<String, String>>) -> Vec<Entry> {
    tunnels
        .iter()
        .filter_map(|t| {
            let service = t.service.clone()?;
            let host = match (live.and_then(|l| l.get(&t.name)), &t.public_host) {
                (Some(h), _) => HostSource::Live(h.clone()),
                (None, Some(h)) => HostSource::PublicHost(h.clone()),
                (None, None) => HostSource::Missing {
                    daemon_running: live.is_some(),
                },
            };
            Some(Entry {
                tunnel: t.name.clone(),
                service,
                host,
            })
        })
        .collect()
}

/// The Ingress as YAML, or every problem that keeps it from being written.
pub fn render(entries: &[Entry], opts: &Options) -> Result<String, Error> {
    let mut problems = Vec::new();
    if entries.is_empty() {
        problems.push(Problem::NoService);
    }
    let mut rules: Vec<(&Entry, &str, String, Port)> = Vec::new();
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for e in entries {
        let host = match &e.host {
            HostSource::Live(h) | HostSource::PublicHost(h) => match host_problem(h) {
                None => Some(h.as_str()),
                Some(why) => {
                    problems.push(Problem::BadHost {
                        tunnel: e.tunnel.clone(),
                        host: h.clone(),
                        why,
                        live: matches!(e.host, HostSource::Live(_)),
                    });
                    None
                }
            },
            HostSource::Missing { daemon_running } => {
                problems.push(Problem::NoHost {
                    tunnel: e.tunnel.clone(),
                    daemon_running: *daemon_running,
                });
                None
            }
        };
        if let Some(h) = host {
            if let Some(first) = seen.get(h) {
                problems.push(Problem::SameHost {
                    tunnel: e.tunnel.clone(),
                    host: h.to_string(),
                    first: first.to_string(),
                });
            } else {
                seen.insert(h, &e.tunnel);
            }
        }
        let service = match parse_service(&e.service) {
            Ok(s) => Some(s),
            Err(why) => {
                problems.push(Problem::BadService {
                    tunnel: e.tunnel.clone(),
                    service: e.service.clone(),
                    why,
                });
                None
            }
        };
        if let (Some(h), Some((name, port))) = (host, service) {
            rules.push((e, h, name, port));
        }
    }
    problems.extend(opts.problems());
    if !problems.is_empty() {
        return Err(Error { problems });
    }

    let mut y = String::new();
    y.push_str("# Written by `roadie ingress`: one rule per tunnel with a `service`.\n");
    y.push_str("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n");
    y.push_str(&format!("  name: {}\n", scalar(NAME)));
    if let Some(ns) = &opts.namespace {
        y.push_str(&format!("  namespace: {}\n", scalar(ns)));
    }
    y.push_str("  labels:\n    app.kubernetes.io/managed-by: roadie\nspec:\n");
    if let Some(class) = &opts.class {
        y.push_str(&format!("  ingressClassName: {}\n", scalar(class)));
    }
    y.push_str("  rules:\n");
    for (e, host, name, port) in rules {
        let from = match e.host {
            HostSource::Live(_) => "the running daemon",
            _ => "public_host",
        };
        // Tunnel names are [a-z0-9_-] (config), safe inside a comment.
        y.push_str(&format!("    # tunnel {}, host from {from}\n", e.tunnel));
        y.push_str(&format!("    - host: {}\n", scalar(host)));
        y.push_str(
            "      http:\n        paths:\n          - path: /\n            pathType: Prefix\n",
        );
        y.push_str("            backend:\n              service:\n");
        y.push_str(&format!("                name: {}\n", scalar(&name)));
        y.push_str("                port:\n");
        match port {
            Port::Number(n) => y.push_str(&format!("                  number: {n}\n")),
            Port::Name(p) => y.push_str(&format!("                  name: {}\n", scalar(&p))),
        }
    }
    Ok(y)
}

/// `"name:port"`: a Kubernetes service name and a port (number or name).
pub fn parse_service(s: &str) -> Result<(String, Port), String> {
    let Some((name, port)) = s.rsplit_once(':') else {
        return Err(
            "not \"name:port\"; expected e.g. \"ui:80\" or \"ui:http\" (a service of the cluster and its port)"
                .to_string(),
        );
    };
    if let Some(why) = service_name_problem(name) {
        return Err(format!("service name {}: {why}", Q(name)));
    }
    let port = parse_port(port)?;
    Ok((name.to_string(), port))
}

/// Digits: a port number 1-65535; otherwise a named port of the service
/// (IANA service name rules, as Kubernetes checks them).
pub fn parse_port(p: &str) -> Result<Port, String> {
    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
        return match p.parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(Port::Number(n as u16)),
            _ => Err(format!("port {p} is out of range 1-65535")),
        };
    }
    let ok = !p.is_empty()
        && p.len() <= 15
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && p.bytes().any(|b| b.is_ascii_lowercase())
        && !p.starts_with('-')
        && !p.ends_with('-')
        && !p.contains("--");
    if ok {
        Ok(Port::Name(p.to_string()))
    } else {
        Err(format!(
            "port {} is neither a number 1-65535 nor a port name (at most 15 lower-case \
             letters, digits and \"-\", with a letter, no \"-\" at either end or twice in a row)",
            Q(p)
        ))
    }
}

/// Why `s` is not a service name (RFC 1035 label: starts with a letter), if it is not.
pub fn service_name_problem(s: &str) -> Option<String> {
    let mut why = label_reasons(s);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        why.push(format!("{} starts with a digit", Q(s)));
    }
    (!why.is_empty()).then(|| {
        format!(
            "{} (RFC 1035: lower-case letters, digits and \"-\", at most 63 characters, \
             starting with a letter and ending with a letter or digit)",
            join(&why)
        )
    })
}

/// Why `s` is not an RFC 1123 label (a namespace name), if it is not.
pub fn label_problem(s: &str) -> Option<String> {
    let why = label_reasons(s);
    (!why.is_empty()).then(|| {
        format!(
            "{} (RFC 1123: lower-case letters, digits and \"-\", at most 63 characters, \
             starting and ending with a letter or digit)",
            join(&why)
        )
    })
}

/// The reasons `s` is not an RFC 1123 label, without the rule.
fn label_reasons(s: &str) -> Vec<String> {
    let mut why = char_problems(s, false);
    size_problems(s, 63, &mut why);
    edge_problems(s, &mut why);
    why
}

/// Why `s` is not an RFC 1123 subdomain (an ingress class name), if it is not.
pub fn subdomain_problem(s: &str) -> Option<String> {
    subdomain_reasons(s).map(|why| format!("{why} ({HOST_RULE})"))
}

/// Why `s` cannot be an Ingress rule's host, if it cannot: not an RFC 1123
/// subdomain, or an IP address (Kubernetes wants a DNS name there).
pub fn host_problem(s: &str) -> Option<String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Some("it is an IP address; an Ingress rule needs a DNS name".to_string());
    }
    subdomain_reasons(s)
}

/// The reasons alone, without the rule (the caller adds it).
fn subdomain_reasons(s: &str) -> Option<String> {
    let mut why = char_problems(s, true);
    size_problems(s, 253, &mut why);
    if !s.is_empty() && s.split('.').any(str::is_empty) {
        why.push("it has an empty label (\"..\" or a \".\" at either end)".to_string());
    }
    for label in s.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            why.push(format!(
                "label {} is {} characters long, at most 63 are allowed",
                Q(label),
                label.len()
            ));
        }
        edge_problems(label, &mut why);
    }
    (!why.is_empty()).then(|| join(&why))
}

/// Upper case and every other character outside `[a-z0-9-]` (and `.` when
/// `dots`), as one reason: `upper case and "_" are not allowed`.
fn char_problems(s: &str, dots: bool) -> Vec<String> {
    let mut bad: Vec<String> = Vec::new();
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        bad.push("upper case".to_string());
    }
    let mut chars: Vec<char> = Vec::new();
    for c in s.chars() {
        let fine = c.is_ascii_lowercase()
            || c.is_ascii_digit()
            || c.is_ascii_uppercase()
            || c == '-'
            || (dots && c == '.');
        if !fine && !chars.contains(&c) {
            chars.push(c);
        }
    }
    bad.extend(chars.iter().map(|c| Q(&c.to_string()).to_string()));
    if bad.is_empty() {
        Vec::new()
    } else {
        let verb = if bad.len() == 1 { "is" } else { "are" };
        vec![format!("{} {verb} not allowed", join(&bad))]
    }
}

/// Empty, or longer than `max` characters.
fn size_problems(s: &str, max: usize, why: &mut Vec<String>) {
    if s.is_empty() {
        why.push("it is empty".to_string());
    }
    if s.len() > max {
        why.push(format!(
            "it is {} characters long, at most {max} are allowed",
            s.len()
        ));
    }
}

/// A label that starts or ends with "-".
fn edge_problems(label: &str, why: &mut Vec<String>) {
    if label.starts_with('-') {
        why.push(format!("{} starts with \"-\"", Q(label)));
    } else if label.ends_with('-') {
        why.push(format!("{} ends with \"-\"", Q(label)));
    }
}

/// "a", "a and b", "a, b and c".
fn join(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A YAML scalar: plain when no YAML 1.1 or 1.2 reader can take it for
/// anything but a string (kubectl's reader knows `yes`, `on`, `0x1f`...),
/// double-quoted otherwise.
fn scalar(s: &str) -> String {
    const SPECIAL: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '/'))
        && !SPECIAL.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        return s.to_string();
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => q.push_str(&format!("\\x{:02x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(tunnel: &str, service: &str, host: HostSource) -> Entry {
        Entry {
            tunnel: tunnel.into(),
            service: service.into(),
            host,
        }
    }

    fn public(h: &str) -> HostSource {
        HostSource::PublicHost(h.into())
    }

    #[test]
    fn host_names() {
        let table: &[(&str, Option<&str>)] = &[
            ("ui-julio.serveo.net", None),
            ("a", None),
            ("0abc.example", None),
            ("x.y-z.example", None),
            (
                "UI_julio.serveo.net",
                Some("upper case and \"_\" are not allowed"),
            ),
            ("ui_julio.serveo.net", Some("\"_\" is not allowed")),
            ("Ui.example", Some("upper case is not allowed")),
            ("*.example", Some("\"*\" is not allowed")),
            ("a b", Some("\" \" is not allowed")),
            ("", Some("it is empty")),
            ("a..b", Some("empty label")),
            ("a.example.", Some("empty label")),
            ("-a.example", Some("\"-a\" starts with \"-\"")),
            ("a-.example", Some("\"a-\" ends with \"-\"")),
            ("10.0.0.1", Some("IP address")),
            ("::1", Some("IP address")),
            ("[::1]", Some("\"[\", \":\" and \"]\" are not allowed")),
        ];
        for &(h, want) in table {
            let got = host_problem(h);
            match want {
                None => assert_eq!(got, None, "{h}"),
                Some(w) => {
                    let got = got.unwrap_or_else(|| panic!("{h} accepted"));
                    assert!(got.contains(w), "{h}: {got}");
                }
            }
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(host_problem(&long_label).unwrap().contains("at most 63"));
        assert_eq!(host_problem(&format!("{}.example", "a".repeat(63))), None);
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(long.len(), 259);
        assert!(host_problem(&long).unwrap().contains("at most 253"));
    }

    #[test]
    fn names_and_ports() {
        for (s, ok) in [
            ("web", true),
            ("web-1", true),
            ("a", true),
            ("1web", false),
            ("Web", false),
            ("web_ui", false),
            ("web-", false),
            ("", false),
        ] {
            assert_eq!(service_name_problem(s).is_none(), ok, "{s}");
        }
        assert!(service_name_problem(&"a".repeat(64)).is_some());
        for (s, ok) in [
            ("default", true),
            ("kube-system", true),
            ("1st", true),
            ("Default", false),
            ("a.b", false),
            ("-x", false),
            ("", false),
        ] {
            assert_eq!(label_problem(s).is_none(), ok, "{s}");
        }
        for (s, ok) in [
            ("traefik", true),
            ("nginx.example.org", true),
            ("Nginx", false),
        ] {
            assert_eq!(subdomain_problem(s).is_none(), ok, "{s}");
        }
        for (p, want) in [
            ("80", Ok(Port::Number(80))),
            ("65535", Ok(Port::Number(65535))),
            ("1", Ok(Port::Number(1))),
            ("http", Ok(Port::Name("http".into()))),
            ("web-ui2", Ok(Port::Name("web-ui2".into()))),
            ("0", Err("out of range")),
            ("65536", Err("out of range")),
            ("99999999999", Err("out of range")),
            ("HTTP", Err("neither")),
            ("a--b", Err("neither")),
            ("-http", Err("neither")),
            ("sixteen-chars-xx", Err("neither")),
            ("", Err("neither")),
        ] {
            match (parse_port(p), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{p}"),
                (Err(got), Err(w)) => assert!(got.contains(w), "{p}: {got}"),
                (got, w) => panic!("{p}: got {got:?}, want {w:?}"),
            }
        }
        assert_eq!(
            parse_service("web:80"),
            Ok(("web".into(), Port::Number(80)))
        );
        assert!(
            parse_service("web")
                .unwrap_err()
                .contains("not \"name:port\"")
        );
        assert!(
            parse_service("Web:80")
                .unwrap_err()
                .contains("service name")
        );
        assert!(parse_service(":80").unwrap_err().contains("service name"));
        assert!(
            parse_service("1web:80")
                .unwrap_err()
                .contains("\"1web\" starts with a digit (RFC 1035"),
            "{:?}",
            parse_service("1web:80")
        );
    }

    #[test]
    fn scalars_are_quoted_when_yaml_would_misread_them() {
        for (s, want) in [
            ("ui-julio.serveo.net", "ui-julio.serveo.net"),
            ("traefik", "traefik"),
            ("/", "\"/\""),
            ("on", "\"on\""),
            ("Yes", "\"Yes\""),
            ("null", "\"null\""),
            ("1abc.example", "\"1abc.example\""),
            ("0x1f", "\"0x1f\""),
            ("", "\"\""),
            ("a:b", "\"a:b\""),
            ("a\"b\\c\n", "\"a\\\"b\\\\c\\x0a\""),
        ] {
            assert_eq!(scalar(s), want, "{s}");
        }
    }

    #[test]
    fn hosts_come_from_https_urls_first() {
        let status = json!({"tunnels": [
            {"name": "ui", "public_urls": ["http://ui-julio.serveo.net", "https://UI-julio.serveo.net"]},
            {"name": "api", "public_urls": ["http://abc.lhr.life:8080/"]},
            {"name": "down", "public_urls": []},
            {"name": "odd", "public_urls": ["nonsense"]},
            {"public_urls": ["https://nameless.example"]}
        ]});
        let hosts = hosts_from_status(&status);
        assert_eq!(
            hosts.get("ui").map(String::as_str),
            Some("ui-julio.serveo.net")
        );
        assert_eq!(hosts.get("api").map(String::as_str), Some("abc.lhr.life"));
        assert_eq!(hosts.len(), 2, "{hosts:?}");
        assert!(hosts_from_status(&json!({})).is_empty());
    }

    #[test]
    fn live_hosts_win_over_public_host() {
        use crate::config::{Target, TargetHost};
        let t = |name: &str, service: Option<&str>, public: Option<&str>| Tunnel {
            name: name.into(),
            target: Target {
                host: TargetHost::Name("master".into()),
                port: 80,
            },
            via: Vec::new(),
            max_connections: 1,
            service: service.map(String::from),
            public_host: public.map(String::from),
            failover_s: 1,
            failback_s: 1,
        };
        let tunnels = [
            t("ui", Some("web:80"), Some("ui.example.org")),
            t("ssh", None, Some("ssh.example.org")),
            t("api", Some("api:443"), None),
        ];
        let live: HashMap<String, String> = [("ui".to_string(), "ui-1.serveo.net".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            entries(&tunnels, None),
            [
                entry("ui", "web:80", public("ui.example.org")),
                entry(
                    "api",
                    "api:443",
                    HostSource::Missing {
                        daemon_running: false
                    }
                ),
            ]
        );
        assert_eq!(
            entries(&tunnels, Some(&live)),
            [
                entry("ui", "web:80", HostSource::Live("ui-1.serveo.net".into())),
                entry(
                    "api",
                    "api:443",
                    HostSource::Missing {
                        daemon_running: true
                    }
                ),
            ]
        );
    }

    #[test]
    fn renders_a_full_ingress() {
        let y = render(
            &[
                entry(
                    "ui",
                    "web:80",
                    HostSource::Live("ui-julio.serveo.net".into()),
                ),
                entry("api", "api:https", public("api.example.org")),
            ],
            &Options {
                namespace: Some("default".into()),
                class: Some("traefik".into()),
            },
        )
        .unwrap();
        assert_eq!(
            y,
            "\
# Written by `roadie ingress`: one rule per tunnel with a `service`.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: roadie
  namespace: default
  labels:
    app.kubernetes.io/managed-by: roadie
spec:
  ingressClassName: traefik
  rules:
    # tunnel ui, host from the running daemon
    - host: ui-julio.serveo.net
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: web
                port:
                  number: 80
    # tunnel api, host from public_host
    - host: api.example.org
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: api
                port:
                  name: https
"
        );
        let bare = render(
            &[entry("ui", "web:80", public("ui.example"))],
            &Options::default(),
        )
        .unwrap();
        assert!(!bare.contains("namespace:"), "{bare}");
        assert!(!bare.contains("ingressClassName"), "{bare}");
    }

    #[test]
    fn every_problem_is_reported_and_nothing_rendered() {
        let err = render(
            &[
                entry("ui", "web:80", public("UI_julio.serveo.net")),
                entry("ok", "web:80", public("ok.example")),
                entry("dup", "web:81", HostSource::Live("ok.example".into())),
                entry(
                    "api",
                    "api:443",
                    HostSource::Missing {
                        daemon_running: false,
                    },
                ),
                entry("bad", "Bad:80", public("bad.example")),
            ],
            &Options::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "tunnel \"ui\": host \"UI_julio.serveo.net\" is not a valid Kubernetes host name: \
             upper case and \"_\" are not allowed (RFC 1123: lower-case letters, digits, \"-\" \
             and \".\"; each label 1-63 characters, starting and ending with a letter or digit); \
             it is the tunnel's `public_host` in the config"
        );
        assert!(lines[1].contains("already used by tunnel \"ok\""), "{text}");
        assert!(
            lines[2].contains("tunnel \"api\": no host name known"),
            "{text}"
        );
        assert!(lines[2].contains("set `public_host"), "{text}");
        assert!(
            lines[3].contains("tunnel \"bad\": service \"Bad:80\""),
            "{text}"
        );
        assert_eq!(err.exit_code(), 2);

        let waiting = render(
            &[entry(
                "api",
                "api:443",
                HostSource::Missing {
                    daemon_running: true,
                },
            )],
            &Options::default(),
        )
        .unwrap_err();
        assert!(waiting.to_string().contains("wait until the tunnel is up"));
        assert_eq!(waiting.exit_code(), 1);

        let opts = Options {
            namespace: Some("Default".into()),
            class: Some("my_class".into()),
        };
        let bad = render(&[entry("ok", "web:80", public("ok.example"))], &opts).unwrap_err();
        let text = bad.to_string();
        assert!(
            text.contains("--namespace \"Default\": upper case"),
            "{text}"
        );
        assert!(
            text.contains("--class \"my_class\": \"_\" is not allowed"),
            "{text}"
        );

        let none = render(&[], &Options::default()).unwrap_err();
        assert_eq!(none.problems, [Problem::NoService]);
        assert_eq!(none.exit_code(), 2);
    }
}
