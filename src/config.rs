//! Configuration: TOML schema, defaults, validation with file:line:column errors.
//!
//! Parsing goes through span-carrying raw structs (`raw` below) so that every
//! error, syntactic or semantic, can name where it is; the validated
//! [`Config`] holds plain types only.

use crate::quote::Q;
use ipnet::Ipv4Net;
use raw::{Int, List, Str};
use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub const DEFAULT_CONFIG: &str = "/etc/roadie/roadie.toml";
pub const DEFAULT_SOCKET: &str = "/var/run/roadie.sock";
pub const DEFAULT_STATE: &str = "/etc/roadie/state.toml";
pub const DEFAULT_KNOWN_HOSTS: &str = "/etc/roadie/known_hosts";
pub const DEFAULT_UCI: &str = "/sbin/uci";
/// uci's compiled-in savedir.
pub const DEFAULT_UCI_SAVEDIR: &str = "/tmp/.uci";
pub const DEFAULT_UBUS: &str = "/bin/ubus";
pub const DEFAULT_INIT_D: &str = "/etc/init.d";
pub const DEFAULT_NETWORK_SECTION: &str = "lan";
pub const DEFAULT_APPLY_TIMEOUT_MS: u64 = 15_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from (used in messages and by `reload`).
    pub path: PathBuf,
    pub daemon: Daemon,
    pub wan: Wan,
    pub lan: Lan,
    pub servers: Vec<Server>,
    pub tunnels: Vec<Tunnel>,
    pub openwrt: OpenWrt,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Daemon {
    pub state: PathBuf,
    pub socket: PathBuf,
    pub log_level: log::LevelFilter,
    pub url_hook: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Wan {
    /// Kernel link names (`eth1`) or netifd interface names (`@wan`, see
    /// crate::netifd), as written.
    pub interfaces: Vec<String>,
    /// Plain `http://` (a portal cannot answer for HTTPS); `None`: the default URL.
    pub probe_url: Option<String>,
    pub probe_expect: Option<String>,
    /// While tunnels cannot connect, probe at most this often.
    pub probe_interval_s: u64,
    /// While a captive portal holds the uplink, probe this often.
    pub captive_poll_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    Netlink,
    Uci,
}

/// `[lan] on_collision`: what a colliding uplink makes roadie do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCollision {
    /// Re-address the LAN (hosts keep their offsets).
    Move,
    /// Keep the LAN; translate the uplink's prefix at its edge (crate::absorb).
    Absorb,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lan {
    /// A kernel link name (`br-lan`) or a netifd interface name (`@lan`).
    pub interface: String,
    /// The router's home address with its prefix length, e.g. 192.168.1.1/24.
    /// `None` (only with apply = "uci"): read from UCI at start, see
    /// crate::lan::home.
    pub address: Option<Ipv4Net>,
    pub pools: Vec<Ipv4Net>,
    pub avoid: Vec<Ipv4Net>,
    pub apply: ApplyMode,
    pub hook: Option<PathBuf>,
    pub settle_ms: u64,
    pub return_home: bool,
    pub hosts: Vec<Host>,
    /// After a move, stand in for the old router address (ARP, DHCP NAKs)
    /// so hosts renew now (crate::follow).
    pub follow: bool,
    /// How long after a move: the longest lease the old prefix handed out.
    pub follow_s: u64,
    /// After a move, take the LAN bridge's wired ports down once, so hosts
    /// on them see their link drop and ask for an address again.
    pub flap_ports: bool,
    pub flap_ms: u64,
    pub on_collision: OnCollision,
    /// Where dnsmasq's `alias=` lines go while an uplink is absorbed (a file
    /// in dnsmasq's conf-dir; with apply = "uci" OpenWrt's by default).
    pub dns_alias_file: Option<PathBuf>,
}

/// `[openwrt]`: the OpenWrt commands `apply = "uci"` runs, and where the LAN
/// lives in UCI. Paths are configurable so that tests can use doubles.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenWrt {
    pub uci: PathBuf,
    pub ubus: PathBuf,
    /// Directory of the init scripts (`dnsmasq reload` is run from here).
    pub init_d: PathBuf,
    /// The UCI section of the LAN in /etc/config/network.
    pub network_section: String,
    /// How long to wait for the new address to show on the LAN interface
    /// after `network reload` before the UCI changes are reverted.
    pub apply_timeout_ms: u64,
    /// uci's default savedir, where a user's (a shell's) uncommitted changes
    /// are staged. roadie stages its own elsewhere and sets these aside while
    /// it commits and reloads, so it never commits or loses them.
    pub uci_savedir: PathBuf,
}

impl Default for OpenWrt {
    fn default() -> Self {
        OpenWrt {
            uci: PathBuf::from(DEFAULT_UCI),
            ubus: PathBuf::from(DEFAULT_UBUS),
            init_d: PathBuf::from(DEFAULT_INIT_D),
            network_section: DEFAULT_NETWORK_SECTION.to_string(),
            apply_timeout_ms: DEFAULT_APPLY_TIMEOUT_MS,
            uci_savedir: PathBuf::from(DEFAULT_UCI_SAVEDIR),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub name: String,
    pub address: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionMode {
    None,
    Shell,
    Exec(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity: Option<PathBuf>,
    pub known_hosts: PathBuf,
    pub host_key: Option<String>,
    pub session: SessionMode,
    pub keepalive_s: u64,
    /// Unanswered keepalives before the server is considered gone.
    pub keepalive_max: u32,
}

/// `remote = "ui_julio:80"` or `remote = "80"`: bind address (may be empty) and port.
/// `remote = "unix:/run/roadie/ui.sock"`: a socket on the server
/// (`streamlocal-forward@openssh.com`); `bind` is empty and `port` 0 then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub bind: String,
    pub port: u16,
    /// The server-side socket path of a `unix:` remote.
    pub unix: Option<String>,
}

/// Longest `unix:` path: sun_path holds 108 bytes on Linux (104 on BSDs)
/// with the terminating NUL; 100 leaves room on every server.
pub const UNIX_PATH_MAX: usize = 100;

/// Checks a `unix:` remote's path; the message says what is wrong.
pub fn check_unix_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err("the socket path must be absolute (start with /)".into());
    }
    if p.contains('\0') || p.contains('\n') || p.contains('\r') {
        return Err("the socket path must not contain NUL or line breaks".into());
    }
    if p.len() > UNIX_PATH_MAX {
        return Err(format!(
            "the socket path is {} bytes; at most {UNIX_PATH_MAX} fit in a unix socket address",
            p.len()
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// A `[[lan.host]]` name.
    Name(String),
    Addr(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: TargetHost,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub server: String,
    pub remote: Remote,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tunnel {
    pub name: String,
    pub target: Target,
    /// Ways out in order of preference; `server` + `remote` on the tunnel is the one-entry form.
    pub via: Vec<Via>,
    pub max_connections: u32,
    pub service: Option<String>,
    pub public_host: Option<String>,
    pub failover_s: u64,
    /// How long a preferred way out must stay healthy before the tunnel moves back.
    pub failback_s: u64,
}

/// One problem found in a config file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// All problems found; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub diags: Vec<Diag>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diags.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        diags: vec![Diag {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(&text, path)
}

/// Parse and validate config text; `path` is used in messages and kept in the result.
///
/// Syntax and type errors stop at the first one (that is all the TOML parser
/// reports); semantic errors are all collected, in file order.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let mut cx = Ctx {
        text,
        file: path.display().to_string(),
        diags: Vec::new(),
    };
    let file: raw::File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().lines().next().unwrap_or("").trim().to_string();
            if message.is_empty() {
                message = "invalid TOML".to_string();
            }
            message = restore_found_string(&message, text.get(span.clone()).unwrap_or(""));
            // `[server]` where `[[server]]` was meant.
            let at = text.get(span.clone()).unwrap_or("");
            if message.contains("expected a sequence")
                && at.starts_with('[')
                && !at.starts_with("[[")
            {
                message.push_str(" (write [[...]] with double brackets for each entry)");
            }
            cx.err(span, message);
            return Err(cx.finish());
        }
    };
    let cfg = validate(&mut cx, &file, path);
    match cfg {
        Some(cfg) if cx.diags.is_empty() => Ok(cfg),
        _ => {
            if cx.diags.is_empty() {
                // Cannot happen: every `None` above comes with a diagnostic.
                cx.err(0..0, "invalid configuration");
            }
            Err(cx.finish())
        }
    }
}

impl Lan {
    /// The `[[lan.host]]` entry with this name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }
}

impl Config {
    /// The `[[server]]` entry with this name.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.iter().find(|s| s.name == name)
    }
}

impl fmt::Display for Remote {
    /// As written in the config: `bind:port`, or just `port` when there is no bind address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.unix {
            write!(f, "unix:{p}")
        } else if self.bind.is_empty() {
            write!(f, "{}", self.port)
        } else {
            write!(f, "{}:{}", self.bind, self.port)
        }
    }
}

impl fmt::Display for Target {
    /// As written in the config: `master:80` or `192.168.1.100:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            TargetHost::Name(n) => write!(f, "{n}:{}", self.port),
            TargetHost::Addr(a) => write!(f, "{a}:{}", self.port),
        }
    }
}

/// What the TOML looks like, with spans; every key optional so that missing
/// keys are reported together with everything else.
mod raw {
    use serde::Deserialize;
    use toml::Spanned;

    pub type Str = Spanned<String>;
    pub type Int = Spanned<i64>;
    pub type List = Spanned<Vec<Str>>;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct File {
        pub daemon: Option<Spanned<Daemon>>,
        pub wan: Option<Spanned<Wan>>,
        pub lan: Option<Spanned<Lan>>,
        #[serde(default)]
        pub server: Vec<Spanned<Server>>,
        #[serde(default)]
        pub tunnel: Vec<Spanned<Tunnel>>,
        pub openwrt: Option<Spanned<OpenWrt>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OpenWrt {
        pub uci: Option<Str>,
        pub ubus: Option<Str>,
        pub init_d: Option<Str>,
        pub network_section: Option<Str>,
        pub apply_timeout_ms: Option<Int>,
        pub uci_savedir: Option<Str>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Daemon {
        pub state: Option<Str>,
        pub socket: Option<Str>,
        pub log_level: Option<Str>,
        pub url_hook: Option<Str>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Wan {
        pub interfaces: Option<List>,
        pub probe_url: Option<Str>,
        pub probe_expect: Option<Str>,
        pub probe_interval_s: Option<Int>,
        pub captive_poll_ms: Option<Int>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Lan {
        pub interface: Option<Str>,
        pub address: Option<Str>,
        pub pools: Option<List>,
        pub avoid: Option<List>,
        pub apply: Option<Str>,
        pub hook: Option<Str>,
        pub settle_ms: Option<Int>,
        pub return_home: Option<bool>,
        pub follow: Option<bool>,
        pub follow_s: Option<Int>,
        pub flap_ports: Option<bool>,
        pub flap_ms: Option<Int>,
        pub on_collision: Option<Str>,
        pub dns_alias_file: Option<Str>,
        #[serde(default)]
        pub host: Vec<Spanned<Host>>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Host {
        pub name: Option<Str>,
        pub address: Option<Str>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Server {
        pub name: Option<Str>,
        pub host: Option<Str>,
        pub port: Option<Int>,
        pub user: Option<Str>,
        pub identity: Option<Str>,
        pub known_hosts: Option<Str>,
        pub host_key: Option<Str>,
        pub session: Option<Str>,
        pub keepalive_s: Option<Int>,
        pub keepalive_max: Option<Int>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Tunnel {
        pub name: Option<Str>,
        pub target: Option<Str>,
        pub server: Option<Str>,
        pub remote: Option<Str>,
        pub via: Option<Spanned<Vec<Spanned<Via>>>>,
        pub max_connections: Option<Int>,
        pub service: Option<Str>,
        pub public_host: Option<Str>,
        pub failover_s: Option<Int>,
        pub failback_s: Option<Int>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Via {
        pub server: Option<Str>,
        pub remote: Option<Str>,
    }
}

const DEFAULT_POOLS: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];
const DEFAULT_AVOID: [&str; 2] = ["10.42.0.0/16", "10.43.0.0/16"];
const DEFAULT_SETTLE_MS: i64 = 250;
const MAX_SETTLE_MS: i64 = 60_000;
/// OpenWrt's default DHCP lease (12 h): no lease from before a move outlives it.
const DEFAULT_FOLLOW_S: i64 = 12 * 3600;
const MAX_FOLLOW_S: i64 = 30 * 24 * 3600;
/// Long enough for dhcpcd and systemd-networkd to notice the carrier loss.
const DEFAULT_FLAP_MS: i64 = 1500;
/// `[lan] dns_alias_file` with apply = "uci": in the conf-dir OpenWrt's
/// dnsmasq.init gives dnsmasq.
pub const DEFAULT_UCI_DNS_ALIAS_FILE: &str = "/tmp/dnsmasq.d/roadie-absorb.conf";
const MAX_FLAP_MS: i64 = 30_000;
const DEFAULT_PORT: i64 = 22;
const DEFAULT_USER: &str = "roadie";
const DEFAULT_KEEPALIVE_S: i64 = 15;
const DEFAULT_KEEPALIVE_MAX: i64 = 3;
const DEFAULT_MAX_CONNECTIONS: i64 = 256;
const DEFAULT_FAILOVER_S: i64 = 30;
const DEFAULT_FAILBACK_S: i64 = 60;
const DEFAULT_PROBE_INTERVAL_S: i64 = 300;
const DEFAULT_CAPTIVE_POLL_MS: i64 = 500;
/// Linux IFNAMSIZ minus the terminating NUL.
const MAX_IFNAME: usize = 15;

/// Collects diagnostics for one file.
struct Ctx<'a> {
    text: &'a str,
    file: String,
    diags: Vec<Diag>,
}

impl Ctx<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.diags.push(Diag {
            file: self.file.clone(),
            line,
            column,
            message: message.into(),
        });
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    fn finish(mut self) -> ConfigError {
        // Stable: messages at the same place keep the order they were found in.
        self.diags.sort_by_key(|d| (d.line, d.column));
        ConfigError { diags: self.diags }
    }

    /// A required key: reports it missing at the table's header.
    fn required<'r, T>(
        &mut self,
        value: &'r Option<Spanned<T>>,
        table: &Range<usize>,
        what: &str,
        key: &str,
        hint: &str,
    ) -> Option<&'r Spanned<T>> {
        if value.is_none() {
            self.err(table.clone(), format!("{what} is missing `{key}` ({hint})"));
        }
        value.as_ref()
    }

    /// A non-empty string.
    fn text_value(&mut self, v: &Str, key: &str) -> Option<String> {
        if v.get_ref().trim().is_empty() {
            self.err(v.span(), format!("`{key}` must not be empty"));
            return None;
        }
        Some(v.get_ref().clone())
    }

    fn opt_text(&mut self, v: &Option<Str>, key: &str) -> Option<Option<String>> {
        match v {
            None => Some(None),
            Some(v) => self.text_value(v, key).map(Some),
        }
    }

    /// A non-empty string without whitespace (host names, user names, ...).
    fn word(&mut self, v: &Str, key: &str) -> Option<String> {
        let s = self.text_value(v, key)?;
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.err(
                v.span(),
                format!("`{key}` must not contain spaces, got {s_q}", s_q = Q(&s)),
            );
            return None;
        }
        Some(s)
    }

    fn path(&mut self, v: &Option<Str>, key: &str, default: &str) -> Option<PathBuf> {
        match v {
            None => Some(PathBuf::from(default)),
            Some(v) => self.text_value(v, key).map(PathBuf::from),
        }
    }

    fn opt_path(&mut self, v: &Option<Str>, key: &str) -> Option<Option<PathBuf>> {
        self.opt_text(v, key).map(|o| o.map(PathBuf::from))
    }

    /// An integer in `min..=max`, or `default` when absent.
    /// One of `choices` by name; left out, the first. Anything else is
    /// reported as `unknown WHAT "x"; expected "a" or "b"`.
    fn choice<T: Copy>(&mut self, v: &Option<Str>, what: &str, choices: &[(&str, T)]) -> Option<T> {
        let Some(v) = v else {
            return choices.first().map(|c| c.1);
        };
        let given = v.get_ref().as_str();
        if let Some((_, t)) = choices.iter().find(|(name, _)| *name == given) {
            return Some(*t);
        }
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("\"{n}\"")).collect();
        self.err(
            v.span(),
            format!(
                "unknown {what} {}; expected {}",
                Q(given),
                names.join(" or ")
            ),
        );
        None
    }

    fn int(&mut self, v: &Option<Int>, key: &str, default: i64, min: i64, max: i64) -> Option<i64> {
        let Some(v) = v else {
            return Some(default);
        };
        let n = *v.get_ref();
        if n < min || n > max {
            let expected = if max == i64::MAX {
                format!("at least {min}")
            } else {
                format!("between {min} and {max}")
            };
            self.err(v.span(), format!("`{key}` must be {expected}, got {n}"));
            return None;
        }
        Some(n)
    }

    /// A kernel link name as `ip link` would accept it, or a netifd
    /// interface name after an `@`.
    fn ifname(&mut self, v: &Str, key: &str) -> Option<String> {
        let s = v.get_ref();
        const EXPECTED: &str = "expected a kernel link name such as \"eth1\" or a netifd interface name such as \"@wan\"";
        if let Some(name) = crate::netifd::name(s) {
            if crate::netifd::valid_name(name) {
                return Some(s.clone());
            }
            self.err(
                v.span(),
                format!(
                    "{key} {s_q} is not a netifd interface name (after '@': letters, digits and '_', as in /etc/config/network); {EXPECTED}",
                    s_q = Q(s)
                ),
            );
            return None;
        }
        let problem = if s.is_empty() {
            Some("must not be empty".to_string())
        } else if s.len() > MAX_IFNAME {
            Some(format!(
                "is {} bytes long; Linux allows at most {MAX_IFNAME}",
                s.len()
            ))
        } else if s == "."
            || s == ".."
            || s.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            Some("is not a valid link name (no '/', ':' or spaces)".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            self.err(v.span(), format!("{key} {s_q} {p}; {EXPECTED}", s_q = Q(s)));
            return None;
        }
        Some(s.clone())
    }

    /// A prefix with its host bits zero (pools, avoid).
    fn prefix(&mut self, v: &Str, what: &str) -> Option<Ipv4Net> {
        let s = v.get_ref();
        let Ok(net) = s.parse::<Ipv4Net>() else {
            self.err(
                v.span(),
                format!(
                    "{what} {s_q} is not an IPv4 prefix; expected e.g. \"10.0.0.0/8\"",
                    s_q = Q(s)
                ),
            );
            return None;
        };
        if net.trunc() != net {
            self.err(
                v.span(),
                format!(
                    "{what} {s} has host bits set; did you mean {}?",
                    net.trunc()
                ),
            );
            return None;
        }
        Some(net)
    }

    /// A list of prefixes, or the defaults.
    fn prefixes(
        &mut self,
        v: &Option<List>,
        what: &str,
        default: &[&str],
    ) -> Option<Vec<(Ipv4Net, Range<usize>)>> {
        let Some(list) = v else {
            return Some(
                default
                    .iter()
                    .map(|s| (s.parse().expect("default prefix"), 0..0))
                    .collect(),
            );
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in list.get_ref() {
            match self.prefix(item, what) {
                Some(net) => out.push((net, item.span())),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// serde names a wrong string value with `{:?}` ("invalid type: string
/// \"250\", expected i64"), which prints nothing in the router builds
/// (`-Zfmt-debug=none`, see crate::quote): put the value back as written in
/// the file. Messages that still have it are returned unchanged.
fn restore_found_string(message: &str, found: &str) -> String {
    let quoted = found.starts_with('"') || found.starts_with('\'');
    if !quoted || found.contains('\n') {
        return message.to_string();
    }
    for gap in ["string , ", "string ,", "string "] {
        if let Some(at) = message.find(gap)
            && (gap != "string " || at + gap.len() == message.len())
        {
            let tail = &message[at + gap.len()..];
            let sep = if gap.contains(',') { ", " } else { "" };
            return format!("{}string {found}{sep}{tail}", &message[..at]);
        }
    }
    message.to_string()
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(text.len());
    while !text.is_char_boundary(off) {
        off -= 1;
    }
    let before = &text[..off];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// Digits only, `min..=65535`.
fn parse_port(s: &str, min: u16) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port {s_q} is not a number", s_q = Q(s)));
    }
    match s.parse::<u32>() {
        Ok(n) if n >= u32::from(min) && n <= 65535 => Ok(n as u16),
        _ => Err(format!("port {s} is out of range {min}-65535")),
    }
}

/// `[a-z0-9-_]`, 1 to 63 characters.
fn valid_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `"a", "b"` for messages.
fn list_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|n| format!("{n_q}", n_q = Q(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate(cx: &mut Ctx<'_>, file: &raw::File, path: &Path) -> Option<Config> {
    let daemon = validate_daemon(cx, file.daemon.as_ref());
    let wan = match &file.wan {
        Some(w) => validate_wan(cx, w),
        None => {
            cx.err(
                0..0,
                "missing [wan] table; expected e.g. [wan] interfaces = [\"eth1\"]",
            );
            None
        }
    };
    let (lan, host_names) = match &file.lan {
        Some(l) => validate_lan(cx, l),
        None => {
            cx.err(
                0..0,
                "missing [lan] table; expected e.g. [lan] interface = \"br-lan\", address = \"192.168.1.1/24\"",
            );
            (None, Vec::new())
        }
    };
    if let (Some(w), Some(l)) = (&file.wan, &file.lan)
        && let (Some(wi), Some(li)) = (&w.get_ref().interfaces, &l.get_ref().interface)
        && wi.get_ref().iter().any(|i| i.get_ref() == li.get_ref())
    {
        cx.err(
            li.span(),
            format!(
                "LAN interface {} is also listed in [wan] interfaces; the LAN needs its own link",
                Q(li.get_ref())
            ),
        );
    }

    // Servers: names first, so tunnels can refer to them even when a server
    // has some other problem.
    let mut servers = Vec::new();
    let mut server_names: Vec<&str> = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for s in &file.server {
        if let Some(n) = &s.get_ref().name {
            if let Some(first) = seen.get(n.get_ref().as_str()) {
                let line = cx.line(first);
                cx.err(
                    n.span(),
                    format!(
                        "duplicate server name {} (first defined on line {line})",
                        Q(n.get_ref())
                    ),
                );
            } else {
                seen.insert(n.get_ref(), n.span());
                server_names.push(n.get_ref());
            }
        }
        servers.push(validate_server(cx, s));
    }

    let mut tunnels = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    // (server, bind, port) -> tunnel name, for remotes requested twice
    // (a `unix:` remote is keyed by its path, port 0 never clashes).
    let mut remotes: HashMap<(String, String, u16), String> = HashMap::new();
    for t in &file.tunnel {
        if let Some(n) = &t.get_ref().name
            && let Some(first) = seen.insert(n.get_ref(), n.span())
        {
            let line = cx.line(&first);
            cx.err(
                n.span(),
                format!(
                    "duplicate tunnel name {} (first defined on line {line})",
                    Q(n.get_ref())
                ),
            );
            // Keep pointing at the first definition.
            seen.insert(n.get_ref(), first);
        }
        // Without a [lan] table there is nothing to check host names against.
        let hosts = file.lan.as_ref().map(|_| host_names.as_slice());
        let tunnel = validate_tunnel(cx, t, &server_names, hosts);
        if let Some(tun) = &tunnel {
            for (v, span) in tun.via.iter().zip(via_spans(t.get_ref())) {
                let key = match &v.remote.unix {
                    Some(p) => (v.server.clone(), format!("unix:{p}"), 0),
                    None if v.remote.port == 0 => continue,
                    None => (v.server.clone(), v.remote.bind.clone(), v.remote.port),
                };
                if let Some(other) = remotes.get(&key) {
                    cx.err(
                        span,
                        format!(
                            "remote \"{}\" on server {} is already requested by tunnel {other_q}; the server can only forward it once",
                            v.remote, Q(&v.server), other_q = Q(other)),
                    );
                } else {
                    remotes.insert(key, tun.name.clone());
                }
            }
        }
        tunnels.push(tunnel);
    }

    let servers: Option<Vec<Server>> = servers.into_iter().collect();
    let tunnels: Option<Vec<Tunnel>> = tunnels.into_iter().collect();
    let openwrt = validate_openwrt(cx, file.openwrt.as_ref());
    let (Some(daemon), Some(wan), Some(lan), Some(servers), Some(tunnels), Some(openwrt)) =
        (daemon, wan, lan, servers, tunnels, openwrt)
    else {
        return None;
    };
    Some(Config {
        path: path.to_path_buf(),
        daemon,
        wan,
        lan,
        servers,
        tunnels,
        openwrt,
    })
}

const MAX_APPLY_TIMEOUT_MS: i64 = 300_000;

fn validate_openwrt(cx: &mut Ctx<'_>, o: Option<&Spanned<raw::OpenWrt>>) -> Option<OpenWrt> {
    let Some(o) = o else {
        return Some(OpenWrt::default());
    };
    let o = o.get_ref();
    let mut command = |v: &Option<Str>, key: &str, default: &str| -> Option<PathBuf> {
        let Some(v) = v else {
            return Some(PathBuf::from(default));
        };
        let s = v.get_ref();
        if !s.starts_with('/') || s.chars().any(char::is_control) {
            cx.err(
                v.span(),
                format!(
                    "`{key}` must be an absolute path, got {}; expected e.g. {}",
                    Q(s),
                    Q(default)
                ),
            );
            return None;
        }
        Some(PathBuf::from(s))
    };
    let uci = command(&o.uci, "uci", DEFAULT_UCI);
    let ubus = command(&o.ubus, "ubus", DEFAULT_UBUS);
    let init_d = command(&o.init_d, "init_d", DEFAULT_INIT_D);
    let uci_savedir = command(&o.uci_savedir, "uci_savedir", DEFAULT_UCI_SAVEDIR);
    let network_section = match &o.network_section {
        None => Some(DEFAULT_NETWORK_SECTION.to_string()),
        Some(v) => {
            let s = v.get_ref();
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                Some(s.clone())
            } else {
                cx.err(
                    v.span(),
                    format!(
                        "network_section {} is not a UCI section name; expected letters, digits and '_', e.g. \"lan\"",
                        Q(s)
                    ),
                );
                None
            }
        }
    };
    let timeout = cx.int(
        &o.apply_timeout_ms,
        "apply_timeout_ms",
        DEFAULT_APPLY_TIMEOUT_MS as i64,
        100,
        MAX_APPLY_TIMEOUT_MS,
    );
    Some(OpenWrt {
        uci: uci?,
        ubus: ubus?,
        init_d: init_d?,
        network_section: network_section?,
        apply_timeout_ms: timeout? as u64,
        uci_savedir: uci_savedir?,
    })
}

/// Spans of a tunnel's `remote` values, in the order of its `via` list.
fn via_spans(t: &raw::Tunnel) -> Vec<Range<usize>> {
    match (&t.via, &t.remote) {
        (Some(via), _) => via
            .get_ref()
            .iter()
            .map(|v| v.get_ref().remote.as_ref().map_or(v.span(), |r| r.span()))
            .collect(),
        (None, Some(r)) => vec![r.span()],
        (None, None) => Vec::new(),
    }
}

fn validate_daemon(cx: &mut Ctx<'_>, d: Option<&Spanned<raw::Daemon>>) -> Option<Daemon> {
    let Some(d) = d else {
        return Some(Daemon {
            state: PathBuf::from(DEFAULT_STATE),
            socket: PathBuf::from(DEFAULT_SOCKET),
            log_level: log::LevelFilter::Info,
            url_hook: None,
        });
    };
    let d = d.get_ref();
    let state = cx.path(&d.state, "state", DEFAULT_STATE);
    let socket = cx.path(&d.socket, "socket", DEFAULT_SOCKET);
    let log_level = match &d.log_level {
        None => Some(log::LevelFilter::Info),
        Some(v) => {
            let level = match v.get_ref().to_ascii_lowercase().as_str() {
                "off" => Some(log::LevelFilter::Off),
                "error" => Some(log::LevelFilter::Error),
                "warn" => Some(log::LevelFilter::Warn),
                "info" => Some(log::LevelFilter::Info),
                "debug" => Some(log::LevelFilter::Debug),
                "trace" => Some(log::LevelFilter::Trace),
                _ => None,
            };
            if level.is_none() {
                cx.err(
                    v.span(),
                    format!(
                        "unknown log_level {}; expected one of \"error\", \"warn\", \"info\", \"debug\", \"trace\", \"off\"",
                        Q(v.get_ref())
                    ),
                );
            }
            level
        }
    };
    let url_hook = cx.opt_path(&d.url_hook, "url_hook");
    let (Some(state), Some(socket), Some(log_level), Some(url_hook)) =
        (state, socket, log_level, url_hook)
    else {
        return None;
    };
    Some(Daemon {
        state,
        socket,
        log_level,
        url_hook,
    })
}

fn validate_wan(cx: &mut Ctx<'_>, w: &Spanned<raw::Wan>) -> Option<Wan> {
    let span = w.span();
    let w = w.get_ref();
    let interfaces = cx
        .required(
            &w.interfaces,
            &span,
            "[wan]",
            "interfaces",
            "the uplinks' kernel link names or netifd interfaces, e.g. [\"eth1\"] or [\"@wan\"]",
        )
        .and_then(|list| {
            if list.get_ref().is_empty() {
                cx.err(
                    list.span(),
                    "`interfaces` must list at least one link, e.g. [\"eth1\"]",
                );
                return None;
            }
            let mut out: Vec<String> = Vec::new();
            let mut ok = true;
            for item in list.get_ref() {
                match cx.ifname(item, "interface") {
                    Some(name) if out.contains(&name) => {
                        cx.err(
                            item.span(),
                            format!("interface {name_q} is listed twice", name_q = Q(&name)),
                        );
                        ok = false;
                    }
                    Some(name) => out.push(name),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        });
    let probe_url = match &w.probe_url {
        None => Some(None),
        Some(v) if v.get_ref() == crate::captive::probe::OFF => Some(Some(v.get_ref().clone())),
        Some(v) => {
            let s = v.get_ref();
            match crate::captive::probe::parse_url(s) {
                Ok(_) => Some(Some(s.clone())),
                Err(e) => {
                    cx.err(
                        v.span(),
                        format!(
                            "probe_url {s_q} {e}; expected e.g. \"{}\"",
                            crate::captive::probe::DEFAULT_URL,
                            s_q = Q(s)
                        ),
                    );
                    None
                }
            }
        }
    };
    let probe_expect = cx.opt_text(&w.probe_expect, "probe_expect");
    let probe_interval_s = cx.int(
        &w.probe_interval_s,
        "probe_interval_s",
        DEFAULT_PROBE_INTERVAL_S,
        10,
        86_400,
    );
    let captive_poll_ms = cx.int(
        &w.captive_poll_ms,
        "captive_poll_ms",
        DEFAULT_CAPTIVE_POLL_MS,
        100,
        60_000,
    );
    let (
        Some(interfaces),
        Some(probe_url),
        Some(probe_expect),
        Some(probe_interval_s),
        Some(captive_poll_ms),
    ) = (
        interfaces,
        probe_url,
        probe_expect,
        probe_interval_s,
        captive_poll_ms,
    )
    else {
        return None;
    };
    Some(Wan {
        interfaces,
        probe_url,
        probe_expect,
        probe_interval_s: probe_interval_s as u64,
        captive_poll_ms: captive_poll_ms as u64,
    })
}

/// The router's address on the LAN, with a host part and a sensible length.
fn lan_address(cx: &mut Ctx<'_>, v: &Str) -> Option<Ipv4Net> {
    let s = v.get_ref();
    const EXPECTED: &str =
        "expected the router's address with its prefix length, e.g. \"192.168.1.1/24\"";
    if !s.contains('/') {
        cx.err(
            v.span(),
            format!("address {s_q} has no prefix length; {EXPECTED}", s_q = Q(s)),
        );
        return None;
    }
    let Ok(net) = s.parse::<Ipv4Net>() else {
        cx.err(
            v.span(),
            format!(
                "address {s_q} is not an IPv4 address; {EXPECTED}",
                s_q = Q(s)
            ),
        );
        return None;
    };
    if !(8..=30).contains(&net.prefix_len()) {
        cx.err(
            v.span(),
            format!(
                "address {s}: prefix length /{} is out of range; expected /8 to /30",
                net.prefix_len()
            ),
        );
        return None;
    }
    let which = if net.addr() == net.network() {
        "network"
    } else if net.addr() == net.broadcast() {
        "broadcast"
    } else {
        return Some(net);
    };
    let example = Ipv4Net::new(
        Ipv4Addr::from(u32::from(net.network()) + 1),
        net.prefix_len(),
    )
    .expect("valid length");
    cx.err(
        v.span(),
        format!(
            "address {s} is the {which} address of {}, not a host address; {EXPECTED} (here: {example})",
            net.trunc()
        ),
    );
    None
}

/// Returns the validated section and every host name written (valid or not),
/// so that tunnels naming them are not reported a second time.
fn validate_lan(cx: &mut Ctx<'_>, l: &Spanned<raw::Lan>) -> (Option<Lan>, Vec<String>) {
    let span = l.span();
    let l = l.get_ref();
    let interface = cx
        .required(
            &l.interface,
            &span,
            "[lan]",
            "interface",
            "the LAN's kernel link name or netifd interface, e.g. \"br-lan\" or \"@lan\"",
        )
        .and_then(|v| cx.ifname(v, "interface"));
    let on_collision = cx.choice(
        &l.on_collision,
        "on_collision",
        &[("move", OnCollision::Move), ("absorb", OnCollision::Absorb)],
    );
    let apply = cx.choice(
        &l.apply,
        "apply mode",
        &[("netlink", ApplyMode::Netlink), ("uci", ApplyMode::Uci)],
    );
    // Some(None): left out, which apply = "uci" allows (the home address is
    // read from UCI at start); None: a problem was reported.
    let address: Option<Option<Ipv4Net>> = match &l.address {
        Some(v) => lan_address(cx, v).map(Some),
        None if apply == Some(ApplyMode::Uci) => Some(None),
        // An unknown apply mode was reported already.
        None if apply.is_none() => None,
        None => {
            cx.err(
                span.clone(),
                "[lan] is missing `address` (the router's home address, e.g. \"192.168.1.1/24\"; only apply = \"uci\" may leave it out, to read it from UCI network.lan)",
            );
            None
        }
    };

    let pools = cx
        .prefixes(&l.pools, "pool", &DEFAULT_POOLS)
        .and_then(|pools| {
            if pools.is_empty() {
                let span = l.pools.as_ref().map_or(0..0, |p| p.span());
                cx.err(
                    span,
                    "`pools` must list at least one prefix, e.g. [\"10.0.0.0/8\"]",
                );
                return None;
            }
            // Without an address here, checked against UCI's at start (check_home).
            let Some(Some(addr)) = address else {
                return Some(pools.into_iter().map(|(n, _)| n).collect::<Vec<_>>());
            };
            let mut ok = true;
            for (pool, pspan) in &pools {
                if let Some(p) = pool_problem(*pool, addr) {
                    cx.err(pspan.clone(), p);
                    ok = false;
                }
            }
            ok.then(|| pools.into_iter().map(|(n, _)| n).collect())
        });
    let avoid = cx
        .prefixes(&l.avoid, "avoid entry", &DEFAULT_AVOID)
        .map(|v| v.into_iter().map(|(n, _)| n).collect::<Vec<_>>());

    let hook = cx.opt_path(&l.hook, "hook");
    // OpenWrt's dnsmasq.init gives dnsmasq `--conf-dir=/tmp/dnsmasq.d`.
    let dns_alias_file = cx.opt_path(&l.dns_alias_file, "dns_alias_file").map(|p| {
        p.or_else(|| {
            (apply == Some(ApplyMode::Uci)).then(|| PathBuf::from(DEFAULT_UCI_DNS_ALIAS_FILE))
        })
    });
    let settle_ms = cx.int(
        &l.settle_ms,
        "settle_ms",
        DEFAULT_SETTLE_MS,
        0,
        MAX_SETTLE_MS,
    );
    let return_home = l.return_home.unwrap_or(false);
    let follow_s = cx.int(&l.follow_s, "follow_s", DEFAULT_FOLLOW_S, 0, MAX_FOLLOW_S);
    let flap_ms = cx.int(&l.flap_ms, "flap_ms", DEFAULT_FLAP_MS, 100, MAX_FLAP_MS);

    let mut names: Vec<String> = Vec::new();
    let mut first_at: HashMap<String, Range<usize>> = HashMap::new();
    let mut hosts = Vec::new();
    let mut hosts_ok = true;
    for h in &l.host {
        let hspan = h.span();
        let h = h.get_ref();
        let name = cx
            .required(&h.name, &hspan, "[[lan.host]]", "name", "e.g. \"master\"")
            .and_then(|v| {
                let s = v.get_ref();
                if !names.contains(s) {
                    names.push(s.clone());
                }
                if !valid_host_name(s) {
                    cx.err(
                        v.span(),
                        format!("host name {s_q} is not valid; expected 1-63 characters from a-z, 0-9, '-' and '_'", s_q = Q(s)),
                    );
                    return None;
                }
                if let Some(first) = first_at.get(s) {
                    let line = cx.line(first);
                    cx.err(v.span(), format!("duplicate host name {s_q} (first defined on line {line})", s_q = Q(s)));
                    return None;
                }
                first_at.insert(s.clone(), v.span());
                Some(s.clone())
            });
        let haddr = cx
            .required(&h.address, &hspan, "[[lan.host]]", "address", "an address in the home prefix, e.g. \"192.168.1.100\"")
            .and_then(|v| {
                let s = v.get_ref();
                let Ok(a) = s.parse::<Ipv4Addr>() else {
                    cx.err(v.span(), format!("host address {s_q} is not an IPv4 address; expected e.g. \"192.168.1.100\" (no prefix length)", s_q = Q(s)));
                    return None;
                };
                match address? {
                    // Checked against UCI's address at start (check_home).
                    None => Some(a),
                    Some(net) => match host_problem(a, net) {
                        Some(p) => {
                            cx.err(v.span(), p);
                            None
                        }
                        None => Some(a),
                    },
                }
            });
        match (name, haddr) {
            (Some(name), Some(address)) => hosts.push(Host { name, address }),
            _ => hosts_ok = false,
        }
    }

    let (
        Some(interface),
        Some(address),
        Some(pools),
        Some(avoid),
        Some(apply),
        Some(hook),
        Some(settle_ms),
        Some(follow_s),
        Some(flap_ms),
        Some(on_collision),
        Some(dns_alias_file),
        true,
    ) = (
        interface,
        address,
        pools,
        avoid,
        apply,
        hook,
        settle_ms,
        follow_s,
        flap_ms,
        on_collision,
        dns_alias_file,
        hosts_ok,
    )
    else {
        return (None, names);
    };
    (
        Some(Lan {
            interface,
            address,
            pools,
            avoid,
            apply,
            hook,
            settle_ms: settle_ms as u64,
            return_home,
            hosts,
            follow: l.follow.unwrap_or(true),
            follow_s: follow_s as u64,
            flap_ports: l.flap_ports.unwrap_or(true),
            flap_ms: flap_ms as u64,
            on_collision,
            dns_alias_file,
        }),
        names,
    )
}

/// Why `pool` cannot take the LAN of `address`'s length, if it cannot.
fn pool_problem(pool: Ipv4Net, address: Ipv4Net) -> Option<String> {
    let len = address.prefix_len();
    (pool.prefix_len() > len).then(|| {
        format!("pool {pool} cannot hold a /{len} LAN prefix; use a pool of /{len} or shorter")
    })
}

/// Why `a` cannot be a cluster host beside the router at `address`, if it cannot.
fn host_problem(a: Ipv4Addr, address: Ipv4Net) -> Option<String> {
    let home = address.trunc();
    let problem = if !home.contains(&a) {
        format!("is outside the home prefix {home}")
    } else if a == home.network() {
        format!("is the network address of {home}")
    } else if a == home.broadcast() {
        format!("is the broadcast address of {home}")
    } else if a == address.addr() {
        "is the router's own address".to_string()
    } else {
        return None;
    };
    Some(format!(
        "host address {a} {problem}; expected a host address inside {home} other than {}",
        address.addr()
    ))
}

/// The checks [`parse`] makes against `[lan] address`, for a home address
/// learnt at start (UCI, the state file) when the file has none: `pools`
/// must hold its prefix, `[[lan.host]]` addresses must lie in it. `from`
/// says where it came from, for the message.
pub fn check_home(lan: &Lan, address: Ipv4Net, from: &str) -> Result<(), String> {
    let mut problems: Vec<String> = lan
        .pools
        .iter()
        .filter_map(|p| pool_problem(*p, address))
        .collect();
    for h in &lan.hosts {
        if let Some(p) = host_problem(h.address, address) {
            problems.push(format!("[[lan.host]] {}: {p}", Q(&h.name)));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "[lan] address is left out and the home address is {address} ({from}): {}",
        problems.join("; ")
    ))
}

fn validate_server(cx: &mut Ctx<'_>, s: &Spanned<raw::Server>) -> Option<Server> {
    let span = s.span();
    let s = s.get_ref();
    let name = cx
        .required(
            &s.name,
            &span,
            "[[server]]",
            "name",
            "what tunnels call it, e.g. \"serveo\"",
        )
        .and_then(|v| cx.word(v, "name"));
    let host = cx
        .required(
            &s.host,
            &span,
            "[[server]]",
            "host",
            "the SSH server's host name or address, e.g. \"serveo.net\"",
        )
        .and_then(|v| cx.word(v, "host"));
    let port = cx.int(&s.port, "port", DEFAULT_PORT, 1, 65535);
    let user = match &s.user {
        None => Some(DEFAULT_USER.to_string()),
        Some(v) => cx.word(v, "user"),
    };
    let identity = cx.opt_path(&s.identity, "identity");
    let known_hosts = cx.path(&s.known_hosts, "known_hosts", DEFAULT_KNOWN_HOSTS);
    let host_key = match &s.host_key {
        None => Some(None),
        Some(v) => {
            let k = v.get_ref();
            match k.strip_prefix("SHA256:") {
                Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
                    Some(Some(k.clone()))
                }
                _ => {
                    cx.err(
                        v.span(),
                        format!("host_key {k_q} is not a key fingerprint; expected \"SHA256:...\" as printed by ssh-keygen -lf", k_q = Q(k)),
                    );
                    None
                }
            }
        }
    };
    let session = match &s.session {
        None => Some(SessionMode::Shell),
        Some(v) => match v.get_ref().as_str() {
            "none" => Some(SessionMode::None),
            "shell" => Some(SessionMode::Shell),
            other => match other.strip_prefix("exec:") {
                Some(cmd) if !cmd.trim().is_empty() => Some(SessionMode::Exec(cmd.to_string())),
                _ => {
                    cx.err(
                        v.span(),
                        format!("unknown session {other_q}; expected \"none\", \"shell\" or \"exec:<command>\"", other_q = Q(other)),
                    );
                    None
                }
            },
        },
    };
    let keepalive_s = cx.int(
        &s.keepalive_s,
        "keepalive_s",
        DEFAULT_KEEPALIVE_S,
        1,
        i64::MAX,
    );
    let keepalive_max = cx.int(
        &s.keepalive_max,
        "keepalive_max",
        DEFAULT_KEEPALIVE_MAX,
        1,
        100,
    );
    let (
        Some(name),
        Some(host),
        Some(port),
        Some(user),
        Some(identity),
        Some(known_hosts),
        Some(host_key),
        Some(session),
        Some(keepalive_s),
        Some(keepalive_max),
    ) = (
        name,
        host,
        port,
        user,
        identity,
        known_hosts,
        host_key,
        session,
        keepalive_s,
        keepalive_max,
    )
    else {
        return None;
    };
    Some(Server {
        name,
        host,
        port: port as u16,
        user,
        identity,
        known_hosts,
        host_key,
        session,
        keepalive_s: keepalive_s as u64,
        keepalive_max: keepalive_max as u32,
    })
}

/// `bind:port` or `port`; port 0 lets the server choose; `unix:/path`.
fn remote(cx: &mut Ctx<'_>, v: &Str) -> Option<Remote> {
    let s = v.get_ref();
    if let Some(path) = s.strip_prefix("unix:") {
        return match check_unix_path(path) {
            Ok(()) => Some(Remote {
                bind: String::new(),
                port: 0,
                unix: Some(path.to_string()),
            }),
            Err(e) => {
                cx.err(
                    v.span(),
                    format!(
                        "remote {s_q}: {e}; e.g. \"unix:/run/roadie/ui.sock\"",
                        s_q = Q(s)
                    ),
                );
                None
            }
        };
    }
    let (bind, port) = s.rsplit_once(':').unwrap_or(("", s));
    match parse_port(port, 0) {
        Ok(port) => Some(Remote {
            bind: bind.to_string(),
            port,
            unix: None,
        }),
        Err(e) => {
            cx.err(v.span(), format!("remote {s_q}: {e}; expected \"bind:port\" or \"port\", e.g. \"ui:80\" or \"8080\"", s_q = Q(s)));
            None
        }
    }
}

/// A server reference: must name a `[[server]]`.
fn server_ref(cx: &mut Ctx<'_>, v: &Str, servers: &[&str]) -> Option<String> {
    let s = v.get_ref();
    if servers.contains(&s.as_str()) {
        return Some(s.clone());
    }
    let known = if servers.is_empty() {
        "no [[server]] is defined".to_string()
    } else {
        format!("known servers: {}", list_names(servers.iter().copied()))
    };
    cx.err(
        v.span(),
        format!("unknown server {s_q}; {known}", s_q = Q(s)),
    );
    None
}

fn validate_tunnel(
    cx: &mut Ctx<'_>,
    t: &Spanned<raw::Tunnel>,
    servers: &[&str],
    hosts: Option<&[String]>,
) -> Option<Tunnel> {
    let span = t.span();
    let t = t.get_ref();
    let name = cx
        .required(&t.name, &span, "[[tunnel]]", "name", "e.g. \"ui\"")
        .and_then(|v| cx.word(v, "name"));
    let target = cx
        .required(
            &t.target,
            &span,
            "[[tunnel]]",
            "target",
            "a [[lan.host]] name or IPv4 address and a port, e.g. \"master:80\"",
        )
        .and_then(|v| {
            let s = v.get_ref();
            let Some((host, port)) = s.rsplit_once(':') else {
                cx.err(
                    v.span(),
                    format!(
                        "target {s_q} has no port; expected \"host:port\", e.g. \"master:80\"",
                        s_q = Q(s)
                    ),
                );
                return None;
            };
            let port = match parse_port(port, 1) {
                Ok(p) => p,
                Err(e) => {
                    cx.err(
                        v.span(),
                        format!(
                            "target {s_q}: {e}; expected \"host:port\", e.g. \"master:80\"",
                            s_q = Q(s)
                        ),
                    );
                    return None;
                }
            };
            let host = if let Ok(a) = host.parse::<Ipv4Addr>() {
                TargetHost::Addr(a)
            } else if hosts.is_none_or(|hosts| hosts.iter().any(|h| h == host)) {
                TargetHost::Name(host.to_string())
            } else {
                let hosts = hosts.unwrap_or_default();
                let known = if hosts.is_empty() {
                    "no [[lan.host]] is defined; use an IPv4 address or add one".to_string()
                } else {
                    format!(
                        "known hosts: {}; or use an IPv4 address",
                        list_names(hosts.iter().map(String::as_str))
                    )
                };
                cx.err(
                    v.span(),
                    format!(
                        "target {s_q}: unknown host {host_q}; {known}",
                        s_q = Q(s),
                        host_q = Q(host)
                    ),
                );
                return None;
            };
            Some(Target { host, port })
        });

    let via = match (&t.server, &t.remote, &t.via) {
        (None, None, None) => {
            cx.err(
                span.clone(),
                "[[tunnel]] has no way out; set `server` and `remote`, or add [[tunnel.via]] entries",
            );
            None
        }
        (None, None, Some(via)) => {
            if via.get_ref().is_empty() {
                cx.err(
                    via.span(),
                    "`via` must list at least one way out (server and remote)",
                );
                None
            } else {
                let mut out = Vec::new();
                let mut ok = true;
                for v in via.get_ref() {
                    let vspan = v.span();
                    let v = v.get_ref();
                    let server = cx
                        .required(
                            &v.server,
                            &vspan,
                            "[[tunnel.via]]",
                            "server",
                            "a [[server]] name",
                        )
                        .and_then(|s| server_ref(cx, s, servers));
                    let remote = cx
                        .required(
                            &v.remote,
                            &vspan,
                            "[[tunnel.via]]",
                            "remote",
                            "\"bind:port\" or \"port\", e.g. \"ui:80\"",
                        )
                        .and_then(|r| remote(cx, r));
                    match (server, remote) {
                        (Some(server), Some(remote)) => out.push(Via { server, remote }),
                        _ => ok = false,
                    }
                }
                ok.then_some(out)
            }
        }
        (s, r, Some(via)) => {
            let at = s.as_ref().or(r.as_ref()).map_or(via.span(), |v| v.span());
            cx.err(
                at,
                "[[tunnel]] has both `server`/`remote` and [[tunnel.via]]; use one form: the shorthand is a single [[tunnel.via]]",
            );
            None
        }
        (s, r, None) => {
            let server = cx
                .required(
                    s,
                    &span,
                    "[[tunnel]]",
                    "server",
                    "a [[server]] name, used with `remote`",
                )
                .and_then(|s| server_ref(cx, s, servers));
            let remote = cx
                .required(
                    r,
                    &span,
                    "[[tunnel]]",
                    "remote",
                    "\"bind:port\" or \"port\", used with `server`",
                )
                .and_then(|r| remote(cx, r));
            match (server, remote) {
                (Some(server), Some(remote)) => Some(vec![Via { server, remote }]),
                _ => None,
            }
        }
    };

    let max_connections = cx.int(
        &t.max_connections,
        "max_connections",
        DEFAULT_MAX_CONNECTIONS,
        1,
        i64::from(u32::MAX),
    );
    // The same rules `roadie ingress` applies: a Kubernetes service name and
    // a port number or port name, so a config that passes is one it can use.
    let service = match &t.service {
        None => Some(None),
        Some(v) => {
            let s = v.get_ref();
            match crate::ingress::parse_service(s) {
                Ok(_) => Some(Some(s.clone())),
                Err(why) => {
                    cx.err(v.span(), format!("service {s_q}: {why}", s_q = Q(s)));
                    None
                }
            }
        }
    };
    let public_host = match &t.public_host {
        None => Some(None),
        Some(v) => cx.word(v, "public_host").map(Some),
    };
    let failover_s = cx.int(&t.failover_s, "failover_s", DEFAULT_FAILOVER_S, 1, i64::MAX);
    let failback_s = cx.int(&t.failback_s, "failback_s", DEFAULT_FAILBACK_S, 1, i64::MAX);

    let (
        Some(name),
        Some(target),
        Some(via),
        Some(max_connections),
        Some(service),
        Some(public_host),
        Some(failover_s),
        Some(failback_s),
    ) = (
        name,
        target,
        via,
        max_connections,
        service,
        public_host,
        failover_s,
        failback_s,
    )
    else {
        return None;
    };
    Some(Tunnel {
        name,
        target,
        via,
        max_connections: max_connections as u32,
        service,
        public_host,
        failover_s: failover_s as u64,
        failback_s: failback_s as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "\
[wan]
interfaces = [\"eth1\"]

[lan]
interface = \"br-lan\"
address = \"192.168.1.1/24\"
";

    const SERVERS: &str = "
[[server]]
name = \"serveo\"
host = \"serveo.net\"

[[server]]
name = \"vps\"
host = \"vps.example.org\"
";

    const HOSTS: &str = "
[[lan.host]]
name = \"master\"
address = \"192.168.1.100\"
";

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/etc/roadie/roadie.toml"))
    }

    /// `line:column: message` for every diagnostic.
    fn errs(text: &str) -> Vec<String> {
        match parse_str(text) {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => {
                for d in &e.diags {
                    assert_eq!(d.file, "/etc/roadie/roadie.toml");
                }
                e.diags
                    .iter()
                    .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
                    .collect()
            }
        }
    }

    /// Exactly one diagnostic, at `at` ("line:col"), containing `needle`.
    fn assert_one(name: &str, text: &str, at: &str, needle: &str) {
        let e = errs(text);
        assert_eq!(e.len(), 1, "{name}: expected one error, got {e:#?}");
        assert!(
            e[0].starts_with(&format!("{at}: ")),
            "{name}: expected error at {at}, got {:?}",
            e[0]
        );
        assert!(
            e[0].contains(needle),
            "{name}: expected {needle:?} in {:?}",
            e[0]
        );
        assert!(
            !e[0].contains('\n'),
            "{name}: multi-line message {:?}",
            e[0]
        );
    }

    fn ok(text: &str) -> Config {
        parse_str(text).unwrap_or_else(|e| panic!("expected valid config, got:\n{e}\n---\n{text}"))
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn minimal_config_gets_all_defaults() {
        let c = ok(MIN);
        assert_eq!(c.path, PathBuf::from("/etc/roadie/roadie.toml"));
        assert_eq!(
            c.daemon,
            Daemon {
                state: PathBuf::from("/etc/roadie/state.toml"),
                socket: PathBuf::from("/var/run/roadie.sock"),
                log_level: log::LevelFilter::Info,
                url_hook: None,
            }
        );
        assert_eq!(
            c.wan,
            Wan {
                interfaces: vec!["eth1".into()],
                probe_url: None,
                probe_expect: None,
                probe_interval_s: 300,
                captive_poll_ms: 500,
            }
        );
        assert_eq!(
            c.lan,
            Lan {
                interface: "br-lan".into(),
                address: Some(net("192.168.1.1/24")),
                pools: vec![
                    net("10.0.0.0/8"),
                    net("172.16.0.0/12"),
                    net("192.168.0.0/16")
                ],
                avoid: vec![net("10.42.0.0/16"), net("10.43.0.0/16")],
                apply: ApplyMode::Netlink,
                hook: None,
                settle_ms: 250,
                return_home: false,
                hosts: vec![],
                follow: true,
                follow_s: 43_200,
                flap_ports: true,
                flap_ms: 1500,
                on_collision: OnCollision::Move,
                dns_alias_file: None,
            }
        );
        assert_eq!(
            c.lan.address.map(|a| a.trunc()),
            Some(net("192.168.1.0/24"))
        );
        assert!(c.servers.is_empty());
        assert!(c.tunnels.is_empty());
        assert_eq!(
            c.openwrt,
            OpenWrt {
                uci: PathBuf::from("/sbin/uci"),
                ubus: PathBuf::from("/bin/ubus"),
                init_d: PathBuf::from("/etc/init.d"),
                network_section: "lan".into(),
                apply_timeout_ms: 15_000,
                uci_savedir: PathBuf::from("/tmp/.uci"),
            }
        );
    }

    #[test]
    fn openwrt_table() {
        let c = ok(&format!(
            "{MIN}\n[openwrt]\nuci = \"/t/uci-double\"\nubus = \"/t/ubus-double\"\ninit_d = \"/t/init.d\"\nnetwork_section = \"lan_2\"\napply_timeout_ms = 500\nuci_savedir = \"/t/save\"\n"
        ));
        assert_eq!(c.openwrt.uci_savedir, PathBuf::from("/t/save"));
        assert_eq!(c.openwrt.uci, PathBuf::from("/t/uci-double"));
        assert_eq!(c.openwrt.ubus, PathBuf::from("/t/ubus-double"));
        assert_eq!(c.openwrt.init_d, PathBuf::from("/t/init.d"));
        assert_eq!(c.openwrt.network_section, "lan_2");
        assert_eq!(c.openwrt.apply_timeout_ms, 500);
        // (text after MIN, "line:col", substring of the message)
        let cases = [
            (
                "uci = \"uci\"",
                "9:7",
                "`uci` must be an absolute path, got \"uci\"; expected e.g. \"/sbin/uci\"",
            ),
            ("ubus = \"\"", "9:8", "`ubus` must be an absolute path"),
            (
                "init_d = \"etc/init.d\"",
                "9:10",
                "`init_d` must be an absolute path",
            ),
            (
                "network_section = \"lan.1\"",
                "9:19",
                "not a UCI section name",
            ),
            ("network_section = \"\"", "9:19", "not a UCI section name"),
            ("apply_timeout_ms = 99", "9:20", "between 100 and 300000"),
            (
                "apply_timeout_ms = 300001",
                "9:20",
                "between 100 and 300000",
            ),
            ("dnsmasq = \"/x\"", "9:1", "unknown field `dnsmasq`"),
        ];
        for (extra, at, needle) in cases {
            assert_one(extra, &format!("{MIN}\n[openwrt]\n{extra}\n"), at, needle);
        }
    }

    #[test]
    fn netifd_interface_names() {
        let c = ok(
            "[wan]\ninterfaces = [\"@wan\", \"@wwan\", \"usb0\"]\n[lan]\ninterface = \"@lan\"\naddress = \"192.168.1.1/24\"\n",
        );
        assert_eq!(c.wan.interfaces, ["@wan", "@wwan", "usb0"]);
        assert_eq!(c.lan.interface, "@lan");
        // (name, interfaces, lan, "line:col", message)
        let cases = [
            (
                "not a UCI section name",
                "[\"@wan-2\"]",
                "\"br-lan\"",
                "2:15",
                "interface \"@wan-2\" is not a netifd interface name (after '@': letters, digits and '_', as in /etc/config/network); expected a kernel link name such as \"eth1\" or a netifd interface name such as \"@wan\"",
            ),
            (
                "only the mark",
                "[\"@\"]",
                "\"br-lan\"",
                "2:15",
                "is not a netifd interface name",
            ),
            (
                "the LAN as a netifd name",
                "[\"@wan\"]",
                "\"@l an\"",
                "5:13",
                "is not a netifd interface name",
            ),
            (
                "listed twice",
                "[\"@wan\", \"@wan\"]",
                "\"br-lan\"",
                "2:23",
                "interface \"@wan\" is listed twice",
            ),
            (
                "the LAN is a WAN",
                "[\"@lan\"]",
                "\"@lan\"",
                "5:13",
                "LAN interface \"@lan\" is also listed in [wan]",
            ),
        ];
        for (name, wan, lan, at, needle) in cases {
            let text = format!(
                "[wan]\ninterfaces = {wan}\n\n[lan]\ninterface = {lan}\naddress = \"192.168.1.1/24\"\n"
            );
            assert_one(name, &text, at, needle);
        }
    }

    /// apply = "uci" may leave `[lan] address` out (read from UCI at
    /// start); then hosts and pools are checked at start (check_home).
    #[test]
    fn lan_address_from_uci() {
        let uci =
            "[wan]\ninterfaces = [\"@wan\"]\n\n[lan]\ninterface = \"@lan\"\napply = \"uci\"\n";
        let c = ok(uci);
        assert_eq!(c.lan.address, None);
        // Hosts and pools cannot be checked against an address that is not there.
        let c = ok(&format!(
            "{uci}pools = [\"10.0.0.0/25\"]\n[[lan.host]]\nname = \"master\"\naddress = \"192.168.8.100\"\n"
        ));
        assert_eq!(c.lan.hosts[0].address, Ipv4Addr::new(192, 168, 8, 100));
        // netlink needs it: the error names the [lan] table.
        assert_one(
            "netlink without an address",
            "[wan]\ninterfaces = [\"eth1\"]\n\n[lan]\ninterface = \"br-lan\"\napply = \"netlink\"\n",
            "4:1",
            "[lan] is missing `address` (the router's home address, e.g. \"192.168.1.1/24\"; only apply = \"uci\" may leave it out, to read it from UCI network.lan)",
        );
        // An unknown apply mode is the one error.
        assert_one(
            "unknown apply, no address",
            "[wan]\ninterfaces = [\"eth1\"]\n\n[lan]\ninterface = \"br-lan\"\napply = \"ip\"\n",
            "6:9",
            "unknown apply mode",
        );
    }

    #[test]
    fn home_checks_at_start() {
        let c = ok(&format!(
            "[wan]\ninterfaces = [\"@wan\"]\n[lan]\ninterface = \"@lan\"\napply = \"uci\"\npools = [\"10.0.0.0/8\", \"172.16.0.0/20\"]\n{HOSTS}"
        ));
        let from = "from UCI network.lan";
        assert_eq!(check_home(&c.lan, net("192.168.1.1/24"), from), Ok(()));
        let cases = [
            (
                "192.168.8.1/24",
                "[lan] address is left out and the home address is 192.168.8.1/24 (from UCI network.lan): [[lan.host]] \"master\": host address 192.168.1.100 is outside the home prefix 192.168.8.0/24; expected a host address inside 192.168.8.0/24 other than 192.168.8.1",
            ),
            (
                "192.168.1.100/24",
                "\"master\": host address 192.168.1.100 is the router's own address",
            ),
            (
                "192.168.0.1/16",
                "pool 172.16.0.0/20 cannot hold a /16 LAN prefix; use a pool of /16 or shorter",
            ),
        ];
        for (home, needle) in cases {
            let e = check_home(&c.lan, net(home), from).unwrap_err();
            assert!(e.contains(needle), "{home}: {e}");
        }
    }

    #[test]
    fn server_and_tunnel_defaults() {
        let c = ok(&format!(
            "{MIN}{HOSTS}{SERVERS}
[[tunnel]]
name = \"ui\"
server = \"serveo\"
remote = \"80\"
target = \"master:80\"
"
        ));
        assert_eq!(
            c.servers[0],
            Server {
                name: "serveo".into(),
                host: "serveo.net".into(),
                port: 22,
                user: "roadie".into(),
                identity: None,
                known_hosts: PathBuf::from("/etc/roadie/known_hosts"),
                host_key: None,
                session: SessionMode::Shell,
                keepalive_s: 15,
                keepalive_max: 3,
            }
        );
        assert_eq!(
            c.tunnels[0],
            Tunnel {
                name: "ui".into(),
                target: Target {
                    host: TargetHost::Name("master".into()),
                    port: 80
                },
                via: vec![Via {
                    server: "serveo".into(),
                    remote: Remote {
                        bind: String::new(),
                        port: 80,
                        unix: None
                    },
                }],
                max_connections: 256,
                service: None,
                public_host: None,
                failover_s: 30,
                failback_s: 60,
            }
        );
        assert_eq!(c.tunnels[0].via[0].remote.to_string(), "80");
        assert_eq!(c.tunnels[0].target.to_string(), "master:80");
        assert_eq!(
            c.server("vps").map(|s| s.host.as_str()),
            Some("vps.example.org")
        );
        assert_eq!(
            c.lan.host("master").map(|h| h.address),
            Some(Ipv4Addr::new(192, 168, 1, 100))
        );
    }

    #[test]
    fn example_file_is_valid() {
        let c = parse(
            include_str!("../examples/roadie.toml"),
            Path::new("examples/roadie.toml"),
        )
        .unwrap_or_else(|e| panic!("examples/roadie.toml is invalid:\n{e}"));
        assert_eq!(c.daemon.log_level, log::LevelFilter::Info);
        assert_eq!(
            c.daemon.url_hook,
            Some(PathBuf::from("/etc/roadie/url-changed.sh"))
        );
        assert_eq!(c.wan.interfaces, ["eth1", "wlan0"]);
        assert!(c.wan.probe_url.is_some() && c.wan.probe_expect.is_some());
        assert_eq!(c.lan.address, Some(net("192.168.1.1/24")));
        assert_eq!(c.lan.apply, ApplyMode::Uci);
        assert_eq!(c.openwrt, OpenWrt::default());
        assert_eq!(c.lan.hook, Some(PathBuf::from("/etc/roadie/readdress.sh")));
        assert_eq!(
            c.lan.hosts,
            [
                Host {
                    name: "master".into(),
                    address: Ipv4Addr::new(192, 168, 1, 100)
                },
                Host {
                    name: "worker".into(),
                    address: Ipv4Addr::new(192, 168, 1, 101)
                },
            ]
        );
        let names: Vec<_> = c.servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["serveo", "vps"]);
        assert_eq!(c.servers[0].session, SessionMode::Shell);
        assert_eq!(c.servers[1].session, SessionMode::None);
        assert_eq!(c.servers[1].port, 2222);
        assert!(
            c.servers[1]
                .host_key
                .as_deref()
                .unwrap()
                .starts_with("SHA256:")
        );
        let names: Vec<_> = c.tunnels.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["ui", "api", "ssh-worker"]);
        assert_eq!(
            c.tunnels[0].via,
            [Via {
                server: "serveo".into(),
                remote: Remote {
                    bind: "ui_julio".into(),
                    port: 80,
                    unix: None
                }
            }]
        );
        let api = &c.tunnels[1];
        assert_eq!(api.via.len(), 2);
        assert_eq!(api.via[0].server, "vps");
        assert_eq!(api.via[1].remote.to_string(), "api_julio:443");
        assert_eq!(api.service.as_deref(), Some("kubernetes:443"));
        assert_eq!(api.failover_s, 20);
        assert_eq!(
            c.tunnels[2].target,
            Target {
                host: TargetHost::Addr(Ipv4Addr::new(192, 168, 1, 101)),
                port: 22
            }
        );
    }

    /// The OpenWrt package's /etc/roadie/roadie.toml: valid as shipped, and
    /// still valid with its commented-out examples (hosts, [openwrt],
    /// server, tunnel) switched on.
    #[test]
    fn packaged_default_config_is_valid() {
        const SHIPPED: &str = include_str!("../openwrt-package/files/roadie.toml");
        let path = Path::new("/etc/roadie/roadie.toml");
        let c = parse(SHIPPED, path).unwrap_or_else(|e| panic!("shipped config:\n{e}"));
        assert_eq!(c.lan.apply, ApplyMode::Uci);
        // Right on a stock OpenWrt without edits: netifd's names, the home
        // address from UCI.
        assert_eq!(c.wan.interfaces, ["@wan", "@wwan"]);
        assert_eq!(c.lan.interface, "@lan");
        assert_eq!(c.lan.address, None);
        assert!(c.tunnels.is_empty() && c.servers.is_empty());
        assert_eq!(c.openwrt, OpenWrt::default());
        // `# key = value` and `# [table]` lines are examples; prose is not.
        let example = |l: &str| {
            let Some(rest) = l.strip_prefix("# ") else {
                return false;
            };
            rest.starts_with('[')
                || rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
        };
        let uncommented: String = SHIPPED
            .lines()
            .map(|l| if example(l) { &l[2..] } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse(&uncommented, path)
            .unwrap_or_else(|e| panic!("shipped config with its examples on:\n{e}\n{uncommented}"));
        assert_eq!(c.lan.hosts.len(), 1);
        assert_eq!(c.lan.address, Some(net("192.168.1.1/24")));
        assert_eq!(c.lan.hook, Some(PathBuf::from("/etc/roadie/readdress.sh")));
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.tunnels.len(), 1);
        assert_eq!(c.openwrt.network_section, "lan");
    }

    #[test]
    fn every_key_set() {
        let c = ok("\
[daemon]
state = \"/tmp/s.toml\"
socket = \"/tmp/r.sock\"
log_level = \"debug\"
url_hook = \"/bin/url\"
[wan]
interfaces = [\"eth1\", \"phy0-sta0\"]
probe_url = \"http://example.org:8080/check?x\"
probe_expect = \"ok\"
probe_interval_s = 60
captive_poll_ms = 250
[lan]
interface = \"br-lan\"
address = \"10.1.2.3/16\"
pools = [\"10.0.0.0/8\"]
avoid = []
apply = \"uci\"
hook = \"/bin/hook\"
settle_ms = 0
return_home = true
follow = false
follow_s = 120
flap_ports = false
flap_ms = 3000
on_collision = \"absorb\"
[[server]]
name = \"s\"
host = \"h\"
port = 2022
user = \"u\"
identity = \"/id\"
known_hosts = \"/kh\"
host_key = \"SHA256:abc\"
session = \"exec:tcp 80\"
keepalive_s = 1
keepalive_max = 2
[[tunnel]]
name = \"t\"
target = \"10.1.0.9:8080\"
server = \"s\"
remote = \"0\"
max_connections = 1
service = \"web:http\"
public_host = \"t.example.org\"
failover_s = 5
failback_s = 7
");
        assert_eq!(c.daemon.log_level, log::LevelFilter::Debug);
        assert_eq!(c.daemon.socket, PathBuf::from("/tmp/r.sock"));
        assert_eq!(c.lan.address.map(|a| a.trunc()), Some(net("10.1.0.0/16")));
        assert!(c.lan.avoid.is_empty());
        assert_eq!(c.lan.settle_ms, 0);
        assert_eq!((c.lan.follow, c.lan.follow_s), (false, 120));
        assert_eq!((c.lan.flap_ports, c.lan.flap_ms), (false, 3000));
        assert_eq!(c.lan.on_collision, OnCollision::Absorb);
        // apply = "uci": OpenWrt's dnsmasq conf-dir unless given.
        assert_eq!(
            c.lan.dns_alias_file.as_deref(),
            Some(Path::new(DEFAULT_UCI_DNS_ALIAS_FILE))
        );
        assert_eq!(
            c.wan.probe_url.as_deref(),
            Some("http://example.org:8080/check?x")
        );
        assert_eq!((c.wan.probe_interval_s, c.wan.captive_poll_ms), (60, 250));
        assert!(c.lan.return_home);
        assert_eq!(c.servers[0].session, SessionMode::Exec("tcp 80".into()));
        assert_eq!(c.servers[0].keepalive_s, 1);
        assert_eq!(c.servers[0].keepalive_max, 2);
        assert_eq!(c.tunnels[0].via[0].remote.port, 0);
        assert_eq!(c.tunnels[0].public_host.as_deref(), Some("t.example.org"));
        // A named port of the service is fine, as in a Kubernetes Ingress.
        assert_eq!(c.tunnels[0].service.as_deref(), Some("web:http"));
        assert_eq!(c.tunnels[0].max_connections, 1);
        assert_eq!(c.tunnels[0].failover_s, 5);
        assert_eq!(c.tunnels[0].failback_s, 7);
    }

    /// (name, text, "line:col", substring of the message)
    #[test]
    fn single_errors() {
        let wan = |line: &str| {
            format!(
                "[wan]\ninterfaces = [\"eth1\"]\n{line}\n\n[lan]\ninterface = \"br-lan\"\naddress = \"192.168.1.1/24\"\n"
            )
        };
        let cases: Vec<(&str, String, &str, &str)> = vec![
            // Syntax and type errors, from the TOML parser.
            ("unknown top-level key", format!("foo = 1\n{MIN}"), "1:1", "unknown field `foo`"),
            (
                "unknown key in [lan]",
                format!("{MIN}colour = \"red\"\n"),
                "7:1",
                "unknown field `colour`",
            ),
            (
                "unknown key in [[server]]",
                format!("{MIN}\n[[server]]\nname = \"a\"\nhost = \"b\"\n  prot = 22\n"),
                "11:3",
                "unknown field `prot`",
            ),
            (
                "unknown key in [daemon]",
                format!("[daemon]\nsocket = \"/s\"\nlevel = \"x\"\n{MIN}"),
                "3:1",
                "unknown field `level`",
            ),
            (
                "wrong type",
                format!("{MIN}settle_ms = \"250\"\n"),
                "7:13",
                "invalid type: string \"250\"",
            ),
            (
                "wrong type in list",
                "[wan]\ninterfaces = [\"eth1\", 2]\n[lan]\ninterface = \"x\"\naddress = \"192.168.1.1/24\"\n".into(),
                "2:23",
                "invalid type: integer `2`",
            ),
            (
                "single table instead of array",
                format!("{MIN}[server]\nname = \"a\"\n"),
                "7:1",
                "double brackets",
            ),
            ("syntax error", format!("{MIN}hook = \n"), "7:8", "quoted"),
            // Missing tables and keys.
            (
                "missing [wan]",
                "[lan]\ninterface = \"br-lan\"\naddress = \"192.168.1.1/24\"\n".into(),
                "1:1",
                "missing [wan]",
            ),
            (
                "missing [lan]",
                "[wan]\ninterfaces = [\"eth1\"]\n".into(),
                "1:1",
                "missing [lan]",
            ),
            (
                "missing lan address",
                "[wan]\ninterfaces = [\"eth1\"]\n\n[lan]\ninterface = \"br-lan\"\n".into(),
                "4:1",
                "[lan] is missing `address`",
            ),
            (
                "empty wan interfaces",
                MIN.replace("[\"eth1\"]", "[]"),
                "2:14",
                "at least one",
            ),
            (
                "long link name",
                MIN.replace("\"eth1\"", "\"eth1234567890123\""),
                "2:15",
                "at most 15",
            ),
            (
                "duplicate wan interface",
                MIN.replace("[\"eth1\"]", "[\"eth1\", \"eth1\"]"),
                "2:23",
                "listed twice",
            ),
            (
                "lan interface also a wan",
                MIN.replace("\"br-lan\"", "\"eth1\""),
                "5:13",
                "also listed in [wan]",
            ),
            (
                "bad log level",
                format!("[daemon]\nlog_level = \"loud\"\n{MIN}"),
                "2:13",
                "expected one of \"error\"",
            ),
            // The LAN address.
            (
                "address is the network address",
                MIN.replace("192.168.1.1/24", "192.168.1.0/24"),
                "6:11",
                "network address of 192.168.1.0/24, not a host address",
            ),
            (
                "address is the broadcast address",
                MIN.replace("192.168.1.1/24", "192.168.1.255/24"),
                "6:11",
                "broadcast address",
            ),
            (
                "address without prefix length",
                MIN.replace("192.168.1.1/24", "192.168.1.1"),
                "6:11",
                "no prefix length",
            ),
            (
                "address not an address",
                MIN.replace("192.168.1.1/24", "router/24"),
                "6:11",
                "not an IPv4 address",
            ),
            (
                "address prefix too long",
                MIN.replace("192.168.1.1/24", "192.168.1.1/31"),
                "6:11",
                "/8 to /30",
            ),
            (
                "address prefix too short",
                MIN.replace("192.168.1.1/24", "10.0.0.1/7"),
                "6:11",
                "/8 to /30",
            ),
            // Pools and avoid.
            (
                "pool with host bits",
                format!("{MIN}pools = [\"10.0.0.0/8\", \"172.16.0.1/12\"]\n"),
                "7:24",
                "pool 172.16.0.1/12 has host bits set; did you mean 172.16.0.0/12?",
            ),
            (
                "pool too small",
                format!("{MIN}pools = [\"10.0.0.0/25\"]\n"),
                "7:10",
                "pool 10.0.0.0/25 cannot hold a /24 LAN prefix",
            ),
            (
                "pool not a prefix",
                format!("{MIN}pools = [\"ten\"]\n"),
                "7:10",
                "not an IPv4 prefix",
            ),
            (
                "empty pools",
                format!("{MIN}pools = []\n"),
                "7:9",
                "at least one prefix",
            ),
            (
                "avoid not a prefix",
                format!("{MIN}avoid = [\"10.42.0.0\"]\n"),
                "7:10",
                "avoid entry \"10.42.0.0\" is not an IPv4 prefix",
            ),
            (
                "bad apply",
                format!("{MIN}apply = \"ifconfig\"\n"),
                "7:9",
                "expected \"netlink\" or \"uci\"",
            ),
            (
                "on_collision misspelt",
                format!("{MIN}on_collision = \"absorbe\"\n"),
                "7:16",
                "expected \"move\" or \"absorb\"",
            ),
            (
                "flap_ms too short to be seen",
                format!("{MIN}flap_ms = 10\n"),
                "7:11",
                "between 100 and 30000",
            ),
            (
                "follow as a string",
                format!("{MIN}follow = \"yes\"\n"),
                "7:10",
                "invalid type",
            ),
            (
                "settle_ms too large",
                format!("{MIN}settle_ms = 60001\n"),
                "7:13",
                "between 0 and 60000",
            ),
            // Probe settings in [wan].
            (
                "https probe_url",
                wan("probe_url = \"https://example.org/\""),
                "3:13",
                "must be plain http://: a captive portal can only answer",
            ),
            (
                "probe_url not a URL",
                wan("probe_url = \"example.org\""),
                "3:13",
                "probe_url \"example.org\" is not an http:// URL; expected e.g. \"http://connectivitycheck.gstatic.com/generate_204\"",
            ),
            (
                "probe_url bad port",
                wan("probe_url = \"http://h:99999/\""),
                "3:13",
                "bad port",
            ),
            (
                "empty probe_expect",
                wan("probe_expect = \" \""),
                "3:16",
                "`probe_expect` must not be empty",
            ),
            (
                "probe_interval_s too small",
                wan("probe_interval_s = 5"),
                "3:20",
                "`probe_interval_s` must be between 10 and 86400, got 5",
            ),
            (
                "captive_poll_ms too small",
                wan("captive_poll_ms = 50"),
                "3:19",
                "`captive_poll_ms` must be between 100 and 60000, got 50",
            ),
            (
                "captive_poll_ms not a number",
                wan("captive_poll_ms = \"fast\""),
                "3:19",
                "invalid type: string \"fast\", expected i64",
            ),
            // Hosts.
            (
                "host outside home prefix",
                format!("{MIN}{HOSTS}\n[[lan.host]]\nname = \"w\"\naddress = \"192.168.2.100\"\n"),
                "14:11",
                "outside the home prefix 192.168.1.0/24",
            ),
            (
                "host is the router",
                format!("{MIN}\n[[lan.host]]\nname = \"r\"\naddress = \"192.168.1.1\"\n"),
                "10:11",
                "router's own address",
            ),
            (
                "host is the network address",
                format!("{MIN}\n[[lan.host]]\nname = \"r\"\naddress = \"192.168.1.0\"\n"),
                "10:11",
                "network address",
            ),
            (
                "host is the broadcast address",
                format!("{MIN}\n[[lan.host]]\nname = \"r\"\naddress = \"192.168.1.255\"\n"),
                "10:11",
                "broadcast address",
            ),
            (
                "duplicate host name",
                format!("{MIN}{HOSTS}{HOSTS}"),
                "13:8",
                "duplicate host name \"master\" (first defined on line 9)",
            ),
            (
                "bad host name",
                format!("{MIN}\n[[lan.host]]\nname = \"Master PC\"\naddress = \"192.168.1.5\"\n"),
                "9:8",
                "a-z, 0-9",
            ),
            (
                "host without address",
                format!("{MIN}\n[[lan.host]]\nname = \"m\"\n"),
                "8:1",
                "[[lan.host]] is missing `address`",
            ),
            // Servers.
            (
                "duplicate server name",
                format!("{MIN}{SERVERS}\n[[server]]\nname = \"vps\"\nhost = \"x\"\n"),
                "17:8",
                "duplicate server name \"vps\" (first defined on line 13)",
            ),
            (
                "bad session value",
                format!("{MIN}{SERVERS}session = \"interactive\"\n"),
                "15:11",
                "expected \"none\", \"shell\" or \"exec:<command>\"",
            ),
            (
                "exec without a command",
                format!("{MIN}{SERVERS}session = \"exec:\"\n"),
                "15:11",
                "exec:<command>",
            ),
            (
                "host_key without SHA256",
                format!("{MIN}{SERVERS}host_key = \"MD5:ab:cd\"\n"),
                "15:12",
                "\"SHA256:...\"",
            ),
            (
                "port out of range",
                format!("{MIN}{SERVERS}port = 65536\n"),
                "15:8",
                "`port` must be between 1 and 65535, got 65536",
            ),
            (
                "keepalive zero",
                format!("{MIN}{SERVERS}keepalive_s = 0\n"),
                "15:15",
                "at least 1",
            ),
            (
                "keepalive_max zero",
                format!("{MIN}{SERVERS}keepalive_max = 0\n"),
                "15:17",
                "`keepalive_max` must be between 1 and 100, got 0",
            ),
            (
                "server without host",
                format!("{MIN}\n[[server]]\nname = \"a\"\n"),
                "8:1",
                "[[server]] is missing `host`",
            ),
            // Tunnels.
            (
                "duplicate tunnel name",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\n\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"81\"\ntarget = \"master:81\"\n"
                ),
                "27:8",
                "duplicate tunnel name \"ui\" (first defined on line 21)",
            ),
            (
                "tunnel with unknown server",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"servo\"\nremote = \"80\"\ntarget = \"master:80\"\n"
                ),
                "22:10",
                "unknown server \"servo\"; known servers: \"serveo\", \"vps\"",
            ),
            (
                "via with unknown server",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\ntarget = \"master:80\"\n[[tunnel.via]]\nserver = \"vps\"\nremote = \"80\"\n[[tunnel.via]]\nserver = \"nope\"\nremote = \"80\"\n"
                ),
                "27:10",
                "unknown server \"nope\"",
            ),
            (
                "tunnel with both shorthand and via",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\n[[tunnel.via]]\nserver = \"serveo\"\nremote = \"80\"\n"
                ),
                "22:10",
                "both `server`/`remote` and [[tunnel.via]]",
            ),
            (
                "tunnel with neither shorthand nor via",
                format!("{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\ntarget = \"master:80\"\n"),
                "20:1",
                "no way out",
            ),
            (
                "tunnel with server but no remote",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\ntarget = \"master:80\"\n"
                ),
                "20:1",
                "[[tunnel]] is missing `remote`",
            ),
            (
                "unknown target host",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"mastr:80\"\n"
                ),
                "24:10",
                "unknown host \"mastr\"; known hosts: \"master\"",
            ),
            (
                "target without port",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master\"\n"
                ),
                "24:10",
                "has no port",
            ),
            (
                "target port zero",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:0\"\n"
                ),
                "24:10",
                "out of range 1-65535",
            ),
            (
                "remote port too large",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"ui:70000\"\ntarget = \"master:80\"\n"
                ),
                "23:10",
                "out of range 0-65535",
            ),
            (
                "remote not a number",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"ui\"\ntarget = \"master:80\"\n"
                ),
                "23:10",
                "not a number",
            ),
            (
                "unix remote not absolute",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"unix:run/ui.sock\"\ntarget = \"master:80\"\n"
                ),
                "23:10",
                "must be absolute",
            ),
            (
                "unix remote with a newline",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"unix:/run/a\\nb\"\ntarget = \"master:80\"\n"
                ),
                "23:10",
                "NUL or line breaks",
            ),
            (
                "unix remote too long, in a via",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\ntarget = \"master:80\"\n[[tunnel.via]]\nserver = \"vps\"\nremote = \"unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n"
                ),
                "25:10",
                "at most 100 fit",
            ),
            (
                "same unix remote twice",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"unix:/run/ui.sock\"\ntarget = \"master:80\"\n\n[[tunnel]]\nname = \"api\"\nserver = \"vps\"\nremote = \"unix:/run/ui.sock\"\ntarget = \"master:81\"\n"
                ),
                "29:10",
                "already requested by tunnel",
            ),
            (
                "bad service",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\nservice = \"web\"\n"
                ),
                "25:11",
                "not \"name:port\"",
            ),
            (
                "service name not a Kubernetes name",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\nservice = \"Web_ui:80\"\n"
                ),
                "25:11",
                "service \"Web_ui:80\": service name \"Web_ui\": upper case and \"_\" are not allowed",
            ),
            (
                "service port zero",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\nservice = \"web:0\"\n"
                ),
                "25:11",
                "port 0 is out of range 1-65535",
            ),
            (
                "max_connections zero",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\nmax_connections = 0\n"
                ),
                "25:19",
                "`max_connections` must be between 1 and 4294967295, got 0",
            ),
            (
                "same remote twice",
                format!(
                    "{MIN}{HOSTS}{SERVERS}\n[[tunnel]]\nname = \"a\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\n\n[[tunnel]]\nname = \"b\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:81\"\n"
                ),
                "29:10",
                "already requested by tunnel \"a\"",
            ),
        ];
        for (name, text, at, needle) in &cases {
            assert_one(name, text, at, needle);
        }
    }

    #[test]
    fn missing_lan_does_not_cascade_into_tunnels() {
        let e = errs(&format!(
            "[wan]\ninterfaces = [\"eth1\"]\n{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\n"
        ));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].starts_with("1:1: missing [lan]"), "{e:#?}");
    }

    #[test]
    fn target_without_any_hosts_suggests_an_address() {
        let e = errs(&format!(
            "{MIN}{SERVERS}\n[[tunnel]]\nname = \"ui\"\nserver = \"vps\"\nremote = \"80\"\ntarget = \"master:80\"\n"
        ));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].contains("no [[lan.host]] is defined"), "{e:#?}");
    }

    #[test]
    fn multiple_errors_are_reported_at_once_in_file_order() {
        let text = "\
[daemon]
log_level = \"chatty\"

[wan]
interfaces = [\"eth1\"]

[lan]
interface = \"br-lan\"
address = \"192.168.1.0/24\"
pools = [\"10.0.0.1/8\"]
settle_ms = -1

[[lan.host]]
name = \"master\"
address = \"10.0.0.5\"

[[server]]
name = \"serveo\"
host = \"serveo.net\"
session = \"bash\"

[[tunnel]]
name = \"ui\"
server = \"nowhere\"
remote = \"80\"
target = \"master:80\"
";
        let e = errs(text);
        let at: Vec<&str> = e.iter().map(|m| m.split(": ").next().unwrap()).collect();
        assert_eq!(
            at,
            ["2:13", "9:11", "10:10", "11:13", "20:11", "24:10"],
            "{e:#?}"
        );
        assert!(e[0].contains("unknown log_level \"chatty\""));
        assert!(e[1].contains("network address"));
        assert!(e[2].contains("did you mean 10.0.0.0/8?"));
        assert!(e[3].contains("`settle_ms` must be between 0 and 60000, got -1"));
        assert!(e[4].contains("unknown session \"bash\""));
        assert!(e[5].contains("unknown server \"nowhere\"; known servers: \"serveo\""));
        // The host address is not checked against an invalid LAN address, and
        // the target host is known even so: no cascades.
    }

    #[test]
    fn display_names_file_line_column() {
        let err = parse_str(&format!("{MIN}apply = \"ip\"\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/roadie/roadie.toml:7:9: unknown apply mode \"ip\"; expected \"netlink\" or \"uci\""
        );
        let err = parse_str("[wan]\ninterfaces = 1\n").unwrap_err();
        assert_eq!(err.diags.len(), 1);
        assert_eq!((err.diags[0].line, err.diags[0].column), (2, 14));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 3), (2, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
        // "é" is two bytes; `x` is the third character.
        assert_eq!(line_col("éax", 3), (1, 3));
        let e = errs(&format!("# Grüße\n{MIN}apply = \"ü\" # x\n"));
        assert!(e[0].starts_with("8:9: "), "{e:?}");
        let e = errs(&format!("{MIN}hook = \"/ü\"\nsettle_ms = \"x\"\n"));
        assert!(e[0].starts_with("8:13: "), "{e:?}");
    }

    #[test]
    fn wrong_string_values_are_named_even_without_debug_formatting() {
        // (message as serde wrote it, text at the span, message shown)
        let cases = [
            (
                "invalid type: string , expected i64",
                "\"250\"",
                "invalid type: string \"250\", expected i64",
            ),
            (
                "invalid value: string ,expected x",
                "'a'",
                "invalid value: string 'a', expected x",
            ),
            (
                "invalid type: string ",
                "\"x\"",
                "invalid type: string \"x\"",
            ),
            // Debug formatting works: unchanged.
            (
                "invalid type: string \"250\", expected i64",
                "\"250\"",
                "invalid type: string \"250\", expected i64",
            ),
            // Not a string at the span: unchanged.
            (
                "invalid type: integer `2`, expected a string",
                "2",
                "invalid type: integer `2`, expected a string",
            ),
            // A multi-line string is not pasted into a one-line message.
            (
                "invalid type: string , expected i64",
                "\"\"\"a\nb\"\"\"",
                "invalid type: string , expected i64",
            ),
        ];
        for (message, found, want) in cases {
            assert_eq!(restore_found_string(message, found), want, "{message}");
        }
    }

    #[test]
    fn crlf_line_endings() {
        let text = format!("{MIN}apply = \"x\"\n").replace('\n', "\r\n");
        let e = errs(&text);
        assert!(e[0].starts_with("7:9: "), "{e:?}");
    }

    #[test]
    fn inline_tables_work() {
        let c = ok(&format!(
            "{MIN}host = [{{ name = \"m\", address = \"192.168.1.7\" }}]\n{SERVERS}\n[[tunnel]]\nname = \"t\"\ntarget = \"m:1\"\nvia = [{{ server = \"vps\", remote = \"a:0\" }}, {{ server = \"serveo\", remote = \"a:0\" }}]\n"
        ));
        assert_eq!(c.lan.hosts[0].name, "m");
        assert_eq!(c.tunnels[0].via.len(), 2);
    }

    #[test]
    fn load_reads_the_file() {
        let dir = std::env::temp_dir().join(format!("roadie-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roadie.toml");
        std::fs::write(&path, MIN).unwrap();
        let c = load(&path).unwrap();
        assert_eq!(c.path, path);
        std::fs::write(&path, format!("{MIN}bogus = 1\n")).unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(
            e.to_string().split(": ").next().unwrap(),
            format!("{}:7:1", path.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e = load(&path).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn a_unix_remote_is_shown_as_written() {
        let r = Remote {
            bind: String::new(),
            port: 0,
            unix: Some("/run/roadie/ui.sock".into()),
        };
        assert_eq!(r.to_string(), "unix:/run/roadie/ui.sock");
        assert!(check_unix_path("/run/roadie/ui.sock").is_ok());
        assert!(check_unix_path(&format!("/{}", "a".repeat(99))).is_ok());
        assert!(check_unix_path(&format!("/{}", "a".repeat(100))).is_err());
        assert!(check_unix_path("/run/a\0b").is_err());
    }
}
