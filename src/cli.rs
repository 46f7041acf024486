//! The command line: argument parsing (pure, tested) and the client commands.

use crate::config;
use crate::control::client::{self, CallError};
use crate::ingress;
use crate::quote::Q;
use serde_json::Value;
use std::path::PathBuf;

pub const USAGE: &str = "usage: roadie [-c CONFIG] [-s SOCKET] [--log-level LEVEL] COMMAND
commands:
  daemon [--syslog[=PATH]]
                         run in the foreground (procd runs this); --syslog logs to
                         /dev/log (or PATH) with each line's priority, not to stderr
  status [--json]        human summary; --json prints the same object as `call status`
  list                   methods and their parameters
  call METHOD [JSON]     call a method, print its JSON reply
  check-config           validate the config; errors name file:line:column
  ingress [--namespace NS] [--class NAME]
                         print a Kubernetes Ingress (YAML) routing each tunnel's public
                         host to its `service`; hosts from the daemon, else `public_host`
  suggest-prefix         a rarely used home prefix for the cluster (from the pools,
                         away from the prefixes hotels and hotspots use)
  absorb-lease INTERFACE ADDRESS/LEN [ROUTER [DNS...]]
                         for a DHCP client's script ([lan] on_collision = \"absorb\"):
                         prints ip=, mask=, router=, dns= to install (the alias
                         ones when roadie absorbs the lease)
  absorb-release INTERFACE
                         the lease on INTERFACE ended (deconfig)
  rpcd list | rpcd call METHOD
                         the rpcd exec plugin (/usr/libexec/rpcd/roadie): the methods
                         as rpcd lists them; a call with its JSON parameters on stdin
  --version              print the version
options:
  -c, --config PATH      config file (default /etc/roadie/roadie.toml)
  -s, --socket PATH      control socket (default: [daemon].socket, else /var/run/roadie.sock)
      --log-level LEVEL  error|warn|info|debug|trace (daemon; overrides the config)
exit codes: 0 ok, 1 runtime failure (e.g. daemon not running), 2 usage or config error";

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `syslog`: log to this syslog socket instead of stderr.
    Daemon {
        syslog: Option<PathBuf>,
    },
    Status {
        json: bool,
    },
    List,
    Call {
        method: String,
        params: Value,
    },
    CheckConfig,
    Ingress(ingress::Options),
    SuggestPrefix,
    /// `absorb-lease IFACE ADDRESS/LEN [ROUTER [DNS...]]`: for a DHCP
    /// client's event script (crate::absorb).
    AbsorbLease {
        interface: String,
        address: String,
        router: Option<String>,
        dns: Vec<String>,
    },
    AbsorbRelease {
        interface: String,
    },
    /// `rpcd list` (None) or `rpcd call METHOD`.
    Rpcd {
        call: Option<String>,
    },
    Version,
    Help,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub log_level: Option<log::LevelFilter>,
    pub command: Command,
}

impl Cli {
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG))
    }
}

/// Parse arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Cli, String> {
    let mut cli = Cli {
        config: None,
        socket: None,
        log_level: None,
        command: Command::Help,
    };
    let mut it = args.iter();
    let mut rest: Vec<&String> = Vec::new();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "-c" | "--config" if rest.is_empty() => cli.config = Some(value(a)?.into()),
            "-s" | "--socket" if rest.is_empty() => cli.socket = Some(value(a)?.into()),
            "--log-level" if rest.is_empty() => {
                let v = value(a)?;
                cli.log_level = Some(v.parse().map_err(|_| {
                    format!(
                        "--log-level {v_q}: expected error, warn, info, debug or trace",
                        v_q = Q(&v)
                    )
                })?);
            }
            _ => rest.push(a),
        }
    }
    let Some((cmd, args)) = rest.split_first() else {
        return Err("no command given".into());
    };
    let no_more = |c: Command| -> Result<Command, String> {
        match args.first() {
            Some(extra) => Err(format!(
                "{cmd}: unexpected argument {extra_q}",
                extra_q = Q(extra)
            )),
            None => Ok(c),
        }
    };
    cli.command = match cmd.as_str() {
        "daemon" => match args {
            [] => Command::Daemon { syslog: None },
            [s] if s.as_str() == "--syslog" => Command::Daemon {
                syslog: Some(crate::logging::DEV_LOG.into()),
            },
            [s] if s.starts_with("--syslog=") && s.len() > "--syslog=".len() => Command::Daemon {
                syslog: Some(s["--syslog=".len()..].into()),
            },
            [other, ..] => {
                return Err(format!(
                    "daemon: unexpected argument {other_q}",
                    other_q = Q(other)
                ));
            }
        },
        "list" => no_more(Command::List)?,
        "check-config" => no_more(Command::CheckConfig)?,
        "suggest-prefix" => no_more(Command::SuggestPrefix)?,
        "--version" | "version" | "-V" => no_more(Command::Version)?,
        "-h" | "--help" | "help" => Command::Help,
        "status" => match args {
            [] => Command::Status { json: false },
            [j] if j.as_str() == "--json" => Command::Status { json: true },
            [other, ..] => {
                return Err(format!(
                    "status: unexpected argument {other_q}",
                    other_q = Q(other)
                ));
            }
        },
        "ingress" => parse_ingress(args)?,
        "absorb-lease" => match args {
            [i, a, rest @ ..] => Command::AbsorbLease {
                interface: i.to_string(),
                address: a.to_string(),
                router: rest
                    .first()
                    .map(|r| r.to_string())
                    .filter(|r| !r.is_empty()),
                dns: rest.iter().skip(1).map(|d| d.to_string()).collect(),
            },
            _ => {
                return Err(
                    "absorb-lease: expected INTERFACE ADDRESS/LENGTH [ROUTER [DNS...]], e.g. wan 192.168.1.57/24 192.168.1.1 192.168.1.1".into(),
                );
            }
        },
        "absorb-release" => match args {
            [i] => Command::AbsorbRelease {
                interface: i.to_string(),
            },
            _ => return Err("absorb-release: expected INTERFACE".into()),
        },
        "rpcd" => match args {
            [l] if l.as_str() == "list" => Command::Rpcd { call: None },
            [c, m] if c.as_str() == "call" => Command::Rpcd {
                call: Some(m.to_string()),
            },
            _ => return Err("rpcd: expected `rpcd list` or `rpcd call METHOD`".into()),
        },
        "call" => match args {
            [] => return Err("call: which method? (see `roadie list`)".into()),
            [m] => Command::Call {
                method: m.to_string(),
                params: Value::Object(Default::default()),
            },
            [m, p] => {
                let params: Value = serde_json::from_str(p)
                    .map_err(|e| format!("call {m}: parameters are not valid JSON: {e}"))?;
                if !params.is_object() {
                    return Err(format!(
                        "call {m}: parameters must be a JSON object like '{{\"prefix\":\"10.9.8.0/24\"}}'"
                    ));
                }
                Command::Call {
                    method: m.to_string(),
                    params,
                }
            }
            [_, _, extra, ..] => {
                return Err(format!(
                    "call: unexpected argument {extra_q}",
                    extra_q = Q(extra)
                ));
            }
        },
        other => return Err(format!("unknown command {other_q}", other_q = Q(other))),
    };
    Ok(cli)
}

/// `ingress [--namespace NS] [--class NAME]`, the names checked as Kubernetes would.
fn parse_ingress(args: &[&String]) -> Result<Command, String> {
    let mut opts = ingress::Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--namespace" => &mut opts.namespace,
            "--class" => &mut opts.class,
            other => {
                return Err(format!(
                    "ingress: unexpected argument {other_q}",
                    other_q = Q(other)
                ));
            }
        };
        let Some(v) = it.next() else {
            return Err(format!("ingress: {a} needs a value"));
        };
        if slot.is_some() {
            return Err(format!("ingress: {a} is given twice"));
        }
        *slot = Some(v.to_string());
    }
    if let Some(p) = opts.problems().first() {
        return Err(format!("ingress: {p}"));
    }
    Ok(Command::Ingress(opts))
}

/// The socket a client talks to: -s, else the config's, else the default.
fn socket_path(cli: &Cli) -> PathBuf {
    if let Some(s) = &cli.socket {
        return s.clone();
    }
    match config::load(&cli.config_path()) {
        Ok(c) => c.daemon.socket,
        Err(_) => PathBuf::from(config::DEFAULT_SOCKET),
    }
}

/// `roadie suggest-prefix`: a rarely used home prefix of the home's length
/// from the pools (outside `avoid` and every prefix networks on the road use
/// by default), drawn with this router's seed from the state file, and the
/// router's address in it at the home's offset.
pub fn suggest_prefix(cli: &Cli) -> i32 {
    let config = match config::load(&cli.config_path()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let state = crate::lan::state::load(&config.daemon.state, crate::lan::state::random_seed).state;
    let lan = &config.lan;
    // Left out of the file (apply = "uci"): the home the daemon recorded
    // from UCI.
    let Some(address) = lan.address.or(state.home()) else {
        eprintln!(
            "{}: [lan] address is left out and {} records no home yet: set it, or start the daemon once (it reads network.{} from UCI)",
            config.path.display(),
            config.daemon.state.display(),
            config.openwrt.network_section
        );
        return 1;
    };
    let home = address.trunc();
    match crate::road::suggest(state.seed, home.prefix_len(), &lan.pools, &lan.avoid) {
        Some(p) => {
            let router = crate::plan::map_host(address.addr(), home, p)
                .map(|a| format!("{a}/{}", p.prefix_len()))
                .unwrap_or_default();
            println!("{p}");
            if lan.address.is_some() {
                eprintln!(
                    "router address {router}; set [lan] address = \"{router}\" (and network.lan in UCI) before the cluster gets its addresses"
                );
            } else {
                eprintln!(
                    "router address {router}; set network.{} in UCI to it before the cluster gets its addresses (roadie takes it as home at its next start)",
                    config.openwrt.network_section
                );
            }
            0
        }
        None => {
            eprintln!(
                "no /{} in the pools ({}) is free of `avoid` and of the prefixes networks on the road use",
                home.prefix_len(),
                lan.pools
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            1
        }
    }
}

/// `roadie rpcd ...`: rpcd's exec plugin protocol. Always exit 0 with a JSON
/// object on stdout: rpcd reads only that.
pub fn rpcd(cli: &Cli) -> i32 {
    use crate::control::protocol::{MAX_REQUEST, rpcd_reply, rpcd_signatures};
    use std::io::Read;
    let Command::Rpcd { call } = &cli.command else {
        return 2;
    };
    let reply = match call {
        None => rpcd_signatures(),
        Some(method) => {
            let mut input = String::new();
            let read = std::io::stdin()
                .take(MAX_REQUEST as u64 + 1)
                .read_to_string(&mut input);
            let params = match read {
                Err(e) => Err(format!("cannot read the parameters: {e}")),
                Ok(_) if input.trim().is_empty() => Ok(Value::Object(Default::default())),
                Ok(_) => serde_json::from_str::<Value>(&input)
                    .map_err(|e| format!("parameters are not valid JSON: {e}")),
            };
            // uhttpd's /ubus adds the caller's session to every call's
            // parameters; roadie's methods take none of it.
            let params = params.map(|mut p| {
                if let Some(o) = p.as_object_mut() {
                    o.remove("ubus_rpc_session");
                }
                p
            });
            rpcd_reply(params.and_then(|p| {
                client::call(&socket_path(cli), method, &p).map_err(|e| match e {
                    CallError::NotRunning(m) | CallError::Unreachable(m) => m,
                    CallError::Daemon(m) => format!("{method}: {m}"),
                })
            }))
        }
    };
    println!("{reply}");
    0
}

/// Run a client command; returns the exit code.
pub fn run_client(cli: &Cli) -> i32 {
    let (method, params) = match &cli.command {
        Command::Status { .. } => ("status", Value::Object(Default::default())),
        Command::List => ("list", Value::Object(Default::default())),
        Command::Call { method, params } => (method.as_str(), params.clone()),
        _ => return 2,
    };
    match client::call(&socket_path(cli), method, &params) {
        Ok(v) => {
            match &cli.command {
                Command::Status { json: false } => print!("{}", human_status(&v)),
                Command::List => print!("{}", human_list(&v)),
                _ => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
            }
            0
        }
        Err(CallError::NotRunning(m) | CallError::Unreachable(m)) => {
            eprintln!("roadie: {m}");
            1
        }
        Err(CallError::Daemon(m)) => {
            eprintln!("roadie: {method}: {m}");
            1
        }
    }
}

/// `roadie absorb-lease`: prints the values a DHCP client's script should
/// install, as shell assignments (`ip=… mask=… router=… dns='…'`): the
/// alias ones when roadie absorbs the lease, the lease's own otherwise, also
/// when the daemon cannot be asked (then with a warning on stderr).
pub fn absorb_lease(cli: &Cli) -> i32 {
    let Command::AbsorbLease {
        interface,
        address,
        router,
        dns,
    } = &cli.command
    else {
        return 2;
    };
    let params = serde_json::json!({
        "interface": interface, "address": address,
        "router": router, "dns": dns.join(" "),
    });
    // Validated the daemon's way even when it is not running.
    let line = serde_json::json!({"method": "absorb.lease", "params": params}).to_string();
    if let Err(e) = crate::control::protocol::parse_request(line.as_bytes()) {
        eprintln!("roadie: {e}");
        return 2;
    }
    let (mut ip, mut mask) = match address.split_once('/') {
        Some((i, m)) => (i.to_string(), m.to_string()),
        None => (address.clone(), String::new()),
    };
    let (mut gw, mut servers) = (router.clone().unwrap_or_default(), dns.join(" "));
    // A DHCP client waits on this: a daemon that does not answer in time
    // (nft has 10 s) gets the lease in as it is.
    let within = std::time::Duration::from_secs(12);
    match client::call_within(&socket_path(cli), "absorb.lease", &params, within) {
        Ok(v) => {
            if let Some((i, m)) = v["address"].as_str().and_then(|a| a.split_once('/')) {
                (ip, mask) = (i.to_string(), m.to_string());
            }
            gw = v["router"].as_str().unwrap_or("").to_string();
            let list: Vec<&str> = v["dns"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            servers = list.join(" ");
            if let Some(why) = v["why"].as_str() {
                eprintln!("roadie: {why}");
            }
        }
        Err(e) => eprintln!(
            "roadie: the lease goes in as it is: {}",
            call_error_text(&e)
        ),
    }
    println!("ip={ip}\nmask={mask}\nrouter={gw}\ndns='{servers}'");
    0
}

pub fn absorb_release(cli: &Cli) -> i32 {
    let Command::AbsorbRelease { interface } = &cli.command else {
        return 2;
    };
    let params = serde_json::json!({"interface": interface});
    let within = std::time::Duration::from_secs(12);
    if let Err(e) = client::call_within(&socket_path(cli), "absorb.release", &params, within) {
        eprintln!("roadie: {}", call_error_text(&e));
    }
    0
}

fn call_error_text(e: &CallError) -> &str {
    match e {
        CallError::NotRunning(m) | CallError::Unreachable(m) | CallError::Daemon(m) => m,
    }
}

pub fn check_config(cli: &Cli) -> i32 {
    match config::load(&cli.config_path()) {
        Ok(c) => {
            // A warning, not an error: the file is valid. (A home from UCI
            // is known at start: status says it.)
            if let Some(a) = c.lan.address
                && let Some(w) = crate::road::warning(a)
            {
                eprintln!("warning: {}: [lan] address {a}: {w}", c.path.display());
            }
            println!("ok");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

/// `roadie ingress`: the config names the tunnels and services; the running
/// daemon, when there is one, the hosts the tunnel services gave out.
/// Exit 2 when the config has to change (no service, a host Kubernetes would
/// reject), 1 when only time or the daemon can help (no host known yet).
pub fn ingress(cli: &Cli) -> i32 {
    let Command::Ingress(opts) = &cli.command else {
        return 2;
    };
    let path = cli.config_path();
    let config = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // Checked before asking the daemon, so that the note below does not
    // precede an error that has nothing to do with it.
    if !config.tunnels.iter().any(|t| t.service.is_some()) {
        eprintln!("roadie: ingress: {}", ingress::Problem::NoService);
        return 2;
    }
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(|| config.daemon.socket.clone());
    let live = match client::call(&socket, "status", &Value::Object(Default::default())) {
        Ok(status) => Some(ingress::hosts_from_status(&status)),
        Err(CallError::NotRunning(_)) => {
            eprintln!(
                "roadie: daemon not running; using public_host from {}",
                path.display()
            );
            None
        }
        Err(CallError::Unreachable(m)) => {
            eprintln!("roadie: ingress: {m}");
            return 1;
        }
        Err(CallError::Daemon(m)) => {
            eprintln!("roadie: ingress: status: {m}");
            return 1;
        }
    };
    match ingress::render(&ingress::entries(&config.tunnels, live.as_ref()), opts) {
        Ok(yaml) => {
            print!("{yaml}");
            0
        }
        Err(e) => {
            for p in &e.problems {
                eprintln!("roadie: ingress: {p}");
            }
            e.exit_code()
        }
    }
}

fn human_list(v: &Value) -> String {
    let mut out = String::from("roadie\n");
    if let Value::Object(m) = v {
        for (name, params) in m {
            out.push_str(&format!("\t\"{name}\":{params}\n"));
        }
    }
    out
}

fn ago(at: u64, now: u64) -> String {
    let s = now.saturating_sub(at);
    match s {
        0..120 => format!("{s} s ago"),
        120..7200 => format!("{} min ago", s / 60),
        7200..172800 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

/// The human summary of a status object: what is up, what moved and why.
pub fn human_status(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let now = crate::lan::now_unix();
    let mut out = format!(
        "roadie {}, running for {} s\n",
        s(&v["version"]),
        v["uptime_s"].as_u64().unwrap_or(0)
    );
    // `problem` covers a refused reload and a start with the last good copy.
    if let Some(p) = v["config"]["problem"].as_str() {
        out.push_str(&format!("CONFIG: {}\n", p.replace('\n', "\n  ")));
    } else if let Some(e) = v["config"]["reload_error"].as_str() {
        out.push_str(&format!(
            "last reload REFUSED (the running config stays):\n  {}\n",
            e.replace('\n', "\n  ")
        ));
    }
    for w in v["wan"].as_array().into_iter().flatten() {
        let addrs: Vec<String> = w["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        let state = if w["up"].as_bool() == Some(true) {
            "up"
        } else {
            "down"
        };
        let addrs = if addrs.is_empty() {
            "no address".to_string()
        } else {
            addrs.join(", ")
        };
        let gw = w["gateway"]
            .as_str()
            .map(|g| format!(", gateway {g}"))
            .unwrap_or_default();
        out.push_str(&format!("uplink {}: {state}, {addrs}{gw}\n", link_label(w)));
        if let Some(p) = w["netifd_problem"].as_str() {
            out.push_str(&format!("  PROBLEM: {p}\n"));
        }
    }
    let lan = &v["lan"];
    let moved = if lan["prefix"] == lan["home"] {
        "at home".to_string()
    } else {
        format!("moved away from home {}", s(&lan["home"]))
    };
    out.push_str(&format!(
        "LAN {}: {} ({moved})\n",
        link_label(lan),
        s(&lan["address"])
    ));
    if lan["settling"].as_bool() == Some(true) {
        out.push_str("  waiting for the uplink to settle\n");
    }
    // An absorbed collision has its own lines (absorbed_lines).
    if let Some(c) = lan["collision"].as_object()
        && c.get("absorbed") != Some(&Value::Bool(true))
    {
        out.push_str(&format!(
            "  COLLISION: {} overlaps {}\n",
            s(&lan["prefix"]),
            c.get("what").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    if let Some(p) = lan["problem"].as_str() {
        out.push_str(&format!("  PROBLEM: {p}\n"));
    }
    if let Some(w) = lan["home_warning"].as_str() {
        out.push_str(&format!("  note: {w}\n"));
    }
    if let Some(h) = lan["history"].as_array().and_then(|h| h.last()) {
        out.push_str(&format!(
            "  last move {}: {} -> {}: {}\n",
            ago(h["at"].as_u64().unwrap_or(0), now),
            s(&h["from"]),
            s(&h["to"]),
            s(&h["reason"])
        ));
    }
    if let Some(h) = lan["hook"].as_object() {
        let ok = h.get("ok").and_then(Value::as_bool) == Some(true);
        out.push_str(&format!(
            "  hook {}: {}\n",
            if ok { "ok" } else { "FAILED" },
            h.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    out.push_str(&host_lines(lan));
    out.push_str(&absorbed_lines(v));
    out.push_str(&captive_lines(v, now));
    out.push_str(&tunnel_table(
        v["tunnels"].as_array().map(Vec::as_slice).unwrap_or(&[]),
    ));
    out
}

/// Absorbed uplinks: what the hotel's network is called here, and the
/// portal's address as the LAN reaches it.
fn absorbed_lines(v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    for a in v["lan"]["absorbed"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  uplink {} ABSORBED: its network {} (ours too) is {} here; the router is {} there \
             (from the cluster, reach its hosts at {}, e.g. its .1 at {})\n",
            s(&a["interface"]),
            s(&a["prefix"]),
            s(&a["alias"]),
            s(&a["lease"]),
            s(&a["alias"]),
            alias_of(a, &first_host(&a["prefix"])).unwrap_or_default()
        ));
        if a["dns"] == true {
            out.push_str(&format!(
                "  its DNS answers reach the cluster rewritten to {} (dnsmasq): its hosts by name work too\n",
                s(&a["alias"])
            ));
        }
        if let Some(url) = v["captive"]["url"].as_str()
            && let Some(mapped) = alias_url(url, a)
        {
            out.push_str(&format!("  its login page, from the cluster: {mapped}\n"));
        }
    }
    if let Some(p) = v["lan"]["absorb_problem"].as_str() {
        out.push_str(&format!("  note: {p}\n"));
    }
    out
}

fn first_host(prefix: &Value) -> String {
    prefix
        .as_str()
        .and_then(|p| p.parse::<ipnet::Ipv4Net>().ok())
        .map(|n| std::net::Ipv4Addr::from(u32::from(n.network()) + 1).to_string())
        .unwrap_or_default()
}

/// `addr` (in the absorbed `a`'s prefix) as the cluster sees it.
fn alias_of(a: &Value, addr: &str) -> Option<String> {
    let real: ipnet::Ipv4Net = a["prefix"].as_str()?.parse().ok()?;
    let alias: ipnet::Ipv4Net = a["alias"].as_str()?.parse().ok()?;
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    crate::plan::map_host(ip, real, alias).map(|m| m.to_string())
}

/// A URL whose host is an address in `a`'s prefix, with the alias address.
pub fn alias_url(url: &str, a: &Value) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', ':', '?']).unwrap_or(rest.len());
    let mapped = alias_of(a, &rest[..end])?;
    Some(format!("{scheme}://{mapped}{}", &rest[end..]))
}

/// The hosts after a move: how many followed, and loudly each one that did
/// not (a static host whose hook did not move it); then what keeps hosts
/// from being helped.
fn host_lines(lan: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    let mut out = String::new();
    let hosts = lan["hosts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let followed: Vec<&Value> = hosts.iter().filter(|h| h["followed_ms"].is_u64()).collect();
    if !followed.is_empty() {
        let slowest = followed
            .iter()
            .filter_map(|h| h["followed_ms"].as_u64())
            .max()
            .unwrap_or(0);
        out.push_str(&format!(
            "  hosts: {} of {} followed the last move (slowest {:.1} s)\n",
            followed.len(),
            hosts.len(),
            slowest as f64 / 1000.0
        ));
    }
    for h in hosts {
        if let Some(old) = h["still_at"].as_str() {
            out.push_str(&format!(
                "  HOST {} did not follow: still at {old}, expected at {} (a static address? move it, e.g. from the hook)\n",
                s(&h["name"]),
                s(&h["address"])
            ));
        } else if h["reachable"] == false {
            out.push_str(&format!(
                "  host {} does not answer at {}\n",
                s(&h["name"]),
                s(&h["address"])
            ));
        }
    }
    for key in ["hosts_problem", "dhcp_warning"] {
        if let Some(p) = lan[key].as_str() {
            out.push_str(&format!("  note: {p}\n"));
        }
    }
    out
}

/// `eth1`, or for a netifd name `@wan (eth1)` / `@wwan (no device)`.
fn link_label(v: &Value) -> String {
    let device = v["interface"].as_str();
    match v["netifd"].as_str() {
        None => device.unwrap_or("?").to_string(),
        Some(n) => format!("@{n} ({})", device.unwrap_or("no device")),
    }
}

/// The captive portal, loud; otherwise a quiet word when the probe found
/// no Internet (nothing when it is open).
fn captive_lines(v: &Value, now: u64) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("?").to_string();
    if let Some(c) = v["captive"].as_object() {
        let url = c.get("url").map(s).unwrap_or_default();
        let since = c.get("since").and_then(Value::as_u64).unwrap_or(now);
        return format!(
            "CAPTIVE PORTAL: the uplink wants a login at {url} \u{2014} open it from a device on \
             the LAN; tunnels are held until it lets the router through (seen {})\n",
            ago(since, now)
        );
    }
    let p = &v["probe"];
    if p["result"] == "no answer" {
        return format!(
            "internet check: no answer from {} ({}), {}\n",
            s(&p["url"]),
            s(&p["detail"]),
            ago(p["at"].as_u64().unwrap_or(now), now)
        );
    }
    String::new()
}

/// Bytes for people: 512 B, 1.5 kB, 12.0 MB.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// The tunnels as a table, with public URLs and the last error under each.
pub fn tunnel_table(tunnels: &[Value]) -> String {
    if tunnels.is_empty() {
        return "tunnels: none\n".to_string();
    }
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    };
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let header = [
        "TUNNEL", "STATE", "SERVER", "REMOTE", "TARGET", "ACTIVE", "CONNS", "IN", "OUT", "RECONN",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for t in tunnels {
        let mut remote = s(&t["remote"]);
        if let Some(p) = t.get("assigned_port").and_then(Value::as_u64) {
            remote = format!("{remote} (port {p})");
        }
        rows.push(vec![
            s(&t["name"]),
            s(&t["state"]),
            s(&t["server"]),
            remote,
            s(&t["target"]),
            n(&t["active"]).to_string(),
            n(&t["connections"]).to_string(),
            human_bytes(n(&t["bytes_in"])),
            human_bytes(n(&t["bytes_out"])),
            n(&t["reconnects"]).to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            continue;
        }
        let t = &tunnels[i - 1];
        for url in t["public_urls"].as_array().into_iter().flatten() {
            out.push_str(&format!("  public URL: {}\n", s(url)));
        }
        if let Some(e) = t["last_error"].as_str() {
            out.push_str(&format!("  last error: {e}\n"));
        }
        if let Some(line) = ways_line(t) {
            out.push_str(&line);
        }
    }
    out
}

/// `  ways out: a 18080 (down: refused) -> b 18081 (active, up); moved 1 time`
/// for a tunnel with more than one way out.
fn ways_line(t: &Value) -> Option<String> {
    let ways = t["via"].as_array().filter(|w| w.len() > 1)?;
    let parts: Vec<String> = ways
        .iter()
        .map(|w| {
            let health = if w["healthy"] == true {
                "up".to_string()
            } else {
                match w["last_error"].as_str() {
                    Some(e) => format!("down: {e}"),
                    None => "down".to_string(),
                }
            };
            let active = if w["active"] == true { "active, " } else { "" };
            format!(
                "{} {} ({active}{health})",
                w["server"].as_str().unwrap_or("?"),
                w["remote"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let moves = t["failovers"].as_u64().unwrap_or(0);
    let plural = if moves == 1 { "" } else { "s" };
    Some(format!(
        "  ways out: {}; moved {moves} time{plural}\n",
        parts.join(" -> ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn human_status_notes_a_crowded_home() {
        let v = json!({"version":"0.1.0","uptime_s":5,"wan":[],
            "lan":{"interface":"br-lan","address":"192.168.1.1/24","prefix":"192.168.1.0/24",
                   "home":"192.168.1.0/24","history":[],
                   "home_warning":"the home prefix 192.168.1.0/24 overlaps 192.168.1.0/24 (OpenWrt)"},
            "tunnels":[]});
        let text = human_status(&v);
        assert!(
            text.contains("  note: the home prefix 192.168.1.0/24"),
            "{text}"
        );
        assert_eq!(
            parse(&args("suggest-prefix")).unwrap().command,
            Command::SuggestPrefix
        );
    }

    #[test]
    fn parses_the_absorb_commands() {
        assert_eq!(
            parse(&args(
                "absorb-lease wan 192.168.1.57/24 192.168.1.1 192.168.1.1 9.9.9.9"
            ))
            .unwrap()
            .command,
            Command::AbsorbLease {
                interface: "wan".into(),
                address: "192.168.1.57/24".into(),
                router: Some("192.168.1.1".into()),
                dns: vec!["192.168.1.1".into(), "9.9.9.9".into()],
            }
        );
        assert_eq!(
            parse(&args("absorb-lease wan 192.168.1.57/24"))
                .unwrap()
                .command,
            Command::AbsorbLease {
                interface: "wan".into(),
                address: "192.168.1.57/24".into(),
                router: None,
                dns: vec![]
            }
        );
        assert_eq!(
            parse(&args("absorb-release wan")).unwrap().command,
            Command::AbsorbRelease {
                interface: "wan".into()
            }
        );
        for bad in [
            "absorb-lease",
            "absorb-lease wan",
            "absorb-release",
            "absorb-release a b",
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_rpcd_plugin_commands() {
        assert_eq!(
            parse(&args("rpcd list")).unwrap().command,
            Command::Rpcd { call: None }
        );
        assert_eq!(
            parse(&args("rpcd call tunnel.restart")).unwrap().command,
            Command::Rpcd {
                call: Some("tunnel.restart".into())
            }
        );
        for bad in ["rpcd", "rpcd call", "rpcd list x", "rpcd foo"] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_the_contract_commands() {
        let c = parse(&args("-c /tmp/r.toml -s /tmp/s.sock status --json")).unwrap();
        assert_eq!(c.config, Some("/tmp/r.toml".into()));
        assert_eq!(c.socket, Some("/tmp/s.sock".into()));
        assert_eq!(c.command, Command::Status { json: true });
        assert_eq!(
            parse(&args("daemon")).unwrap().command,
            Command::Daemon { syslog: None }
        );
        assert_eq!(
            parse(&args("daemon --syslog")).unwrap().command,
            Command::Daemon {
                syslog: Some("/dev/log".into())
            }
        );
        assert_eq!(
            parse(&args("daemon --syslog=/tmp/log")).unwrap().command,
            Command::Daemon {
                syslog: Some("/tmp/log".into())
            }
        );
        assert_eq!(
            parse(&args("--log-level debug daemon")).unwrap().log_level,
            Some(log::LevelFilter::Debug)
        );
        assert_eq!(parse(&args("list")).unwrap().command, Command::List);
        assert_eq!(
            parse(&args("check-config")).unwrap().command,
            Command::CheckConfig
        );
        assert_eq!(parse(&args("--version")).unwrap().command, Command::Version);
        assert_eq!(
            parse(&args("ingress")).unwrap().command,
            Command::Ingress(ingress::Options::default())
        );
        assert_eq!(
            parse(&args("-c /r.toml ingress --class traefik --namespace web"))
                .unwrap()
                .command,
            Command::Ingress(ingress::Options {
                namespace: Some("web".into()),
                class: Some("traefik".into()),
            })
        );
        let c = parse(&[
            "call".into(),
            "readdress".into(),
            r#"{"prefix":"10.9.8.0/24"}"#.into(),
        ])
        .unwrap();
        assert_eq!(
            c.command,
            Command::Call {
                method: "readdress".into(),
                params: json!({"prefix":"10.9.8.0/24"})
            }
        );
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (a, want) in [
            ("", "no command"),
            ("frobnicate", "unknown command"),
            ("status --yaml", "unexpected argument"),
            ("call", "which method"),
            ("call status [1]", "must be a JSON object"),
            ("call status {", "not valid JSON"),
            ("-c", "needs a value"),
            ("--log-level loud daemon", "--log-level"),
            ("daemon extra", "unexpected argument"),
            ("ingress --namespace", "--namespace needs a value"),
            ("ingress --namespace a --namespace b", "given twice"),
            ("ingress --name x", "unexpected argument \"--name\""),
            ("ingress --namespace Web", "--namespace \"Web\": upper case"),
            (
                "ingress --class a_b",
                "--class \"a_b\": \"_\" is not allowed",
            ),
        ] {
            let e = parse(&args(a)).unwrap_err();
            assert!(e.contains(want), "{a}: {e}");
        }
    }

    #[test]
    fn human_status_explains_an_absorbed_uplink() {
        let v = json!({"version":"x","uptime_s":1,"wan":[],"tunnels":[],
            "captive": {"url": "http://192.168.1.1:8002/login?x=1", "since": 0},
            "lan":{"interface":"br-lan","address":"192.168.1.1/24","prefix":"192.168.1.0/24",
                   "home":"192.168.1.0/24","history":[],
                   "absorbed":[{"interface":"wan","prefix":"192.168.1.0/24","alias":"10.168.183.0/24",
                                "lease":"192.168.1.57","address":"10.168.183.57/24","since":0,"restored":0,"dns":true}],
                   "collision":{"prefix":"192.168.1.0/24","what":"wan lease 192.168.1.57 (absorbed as 10.168.183.0/24)","absorbed":true}}});
        let text = human_status(&v);
        assert!(!text.contains("COLLISION"), "{text}");
        assert!(
            text.contains("its DNS answers reach the cluster rewritten to 10.168.183.0/24"),
            "{text}"
        );
        assert!(
            text.contains(
                "uplink wan ABSORBED: its network 192.168.1.0/24 (ours too) is 10.168.183.0/24 here"
            ),
            "{text}"
        );
        assert!(text.contains("its .1 at 10.168.183.1"), "{text}");
        assert!(
            text.contains("its login page, from the cluster: http://10.168.183.1:8002/login?x=1"),
            "{text}"
        );
        let a = &v["lan"]["absorbed"][0];
        assert_eq!(alias_url("https://portal.example/x", a), None);
        assert_eq!(
            alias_url("http://192.168.1.9/", a).as_deref(),
            Some("http://10.168.183.9/")
        );
    }

    #[test]
    fn human_status_names_hosts_that_did_not_follow() {
        let v = json!({"version":"x","uptime_s":1,"wan":[],"tunnels":[],
            "lan":{"interface":"br-lan","address":"10.97.79.1/24","prefix":"10.97.79.0/24",
                   "home":"192.168.1.0/24","history":[],
                   "hosts":[
                     {"name":"master","address":"10.97.79.100","reachable":true,"followed_ms":41200,"still_at":null},
                     {"name":"nas","address":"10.97.79.7","reachable":false,"followed_ms":null,"still_at":"192.168.1.7"},
                     {"name":"pi","address":"10.97.79.101","reachable":false,"followed_ms":null,"still_at":null}],
                   "dhcp_warning":"dhcp.lan.leasetime is 12h: ..."}});
        let text = human_status(&v);
        assert!(
            text.contains("hosts: 1 of 3 followed the last move (slowest 41.2 s)"),
            "{text}"
        );
        assert!(
            text.contains("HOST nas did not follow: still at 192.168.1.7, expected at 10.97.79.7"),
            "{text}"
        );
        assert!(
            text.contains("host pi does not answer at 10.97.79.101"),
            "{text}"
        );
        assert!(text.contains("note: dhcp.lan.leasetime is 12h"), "{text}");
        assert!(!text.contains("master does not"), "{text}");
    }

    #[test]
    fn human_status_tells_what_happened() {
        let v = json!({"version":"0.1.0","uptime_s":5,
            "wan":[{"interface":"eth1","up":true,"addresses":["192.168.1.57/24"],"gateway":"192.168.1.254"}],
            "lan":{"interface":"br-lan","address":"10.77.1.1/24","prefix":"10.77.1.0/24","home":"192.168.1.0/24",
                   "collision":null,"problem":null,"settling":false,"evaluations":1,
                   "history":[{"at":0,"from":"192.168.1.0/24","to":"10.77.1.0/24","reason":"collides with eth1"}],
                   "hook":{"at":0,"ok":false,"message":"hook failed: exit status: 3"}},
            "tunnels":[]});
        let h = human_status(&v);
        assert!(
            h.contains("uplink eth1: up, 192.168.1.57/24, gateway 192.168.1.254"),
            "{h}"
        );
        assert!(
            h.contains("LAN br-lan: 10.77.1.1/24 (moved away from home 192.168.1.0/24)"),
            "{h}"
        );
        assert!(
            h.contains("192.168.1.0/24 -> 10.77.1.0/24: collides with eth1"),
            "{h}"
        );
        assert!(h.contains("hook FAILED"), "{h}");
        let mut v = v;
        v["wan"] = json!([
            {"interface":"usb0","netifd":"wan","up":true,"addresses":["10.77.0.2/24"],"gateway":null},
            {"interface":null,"netifd":"wwan","netifd_problem":null,"up":false,"addresses":[]},
            {"interface":"eth1","netifd":"vpn","netifd_problem":"ubus timed out","up":false,"addresses":[]}
        ]);
        v["lan"]["interface"] = json!("br-lan");
        v["lan"]["netifd"] = json!("lan");
        let h = human_status(&v);
        assert!(h.contains("uplink @wan (usb0): up, 10.77.0.2/24\n"), "{h}");
        assert!(
            h.contains("uplink @wwan (no device): down, no address\n"),
            "{h}"
        );
        assert!(
            h.contains("uplink @vpn (eth1): down, no address\n  PROBLEM: ubus timed out\n"),
            "{h}"
        );
        assert!(h.contains("LAN @lan (br-lan): 10.77.1.1/24"), "{h}");
        assert!(h.contains("tunnels: none"), "{h}");
        assert!(
            !h.contains("CAPTIVE") && !h.contains("internet check"),
            "{h}"
        );
    }

    #[test]
    fn human_status_names_the_portal() {
        let now = crate::lan::now_unix();
        let mut v = json!({"version":"0.1.0","uptime_s":5,"wan":[],
            "lan":{"interface":"br-lan","address":"192.168.1.1/24","prefix":"192.168.1.0/24",
                   "home":"192.168.1.0/24","history":[]},
            "captive":{"url":"http://portal.example/login","since":now - 30,
                       "probe_url":"http://connectivitycheck.gstatic.com/generate_204"},
            "probe":{"at":now,"url":"http://connectivitycheck.gstatic.com/generate_204",
                     "result":"portal","detail":"http://portal.example/login","took_ms":3,"count":4},
            "tunnels":[{"name":"ui","state":"blocked",
                        "last_error":"captive portal at http://portal.example/login: open it from a device on the LAN"}]});
        let h = human_status(&v);
        assert!(
            h.contains(
                "CAPTIVE PORTAL: the uplink wants a login at http://portal.example/login \u{2014} \
                 open it from a device on the LAN; tunnels are held until it lets the router \
                 through (seen 30 s ago)\n"
            ),
            "{h}"
        );
        assert!(h.contains("ui      blocked"), "{h}");
        v["captive"] = Value::Null;
        v["probe"]["result"] = json!("no answer");
        v["probe"]["detail"] = json!("cannot resolve connectivitycheck.gstatic.com");
        let h = human_status(&v);
        assert!(!h.contains("CAPTIVE"), "{h}");
        assert!(
            h.contains(
                "internet check: no answer from http://connectivitycheck.gstatic.com/generate_204 \
                 (cannot resolve connectivitycheck.gstatic.com), 0 s ago"
            ),
            "{h}"
        );
        v["probe"]["result"] = json!("open");
        assert!(!human_status(&v).contains("internet check"));
    }

    #[test]
    fn tunnel_table_is_readable() {
        let t = json!([
            {"name":"ui","server":"serveo","remote":"ui_julio:80","target":"10.77.1.100:80","state":"up",
             "public_urls":["https://ui-julio.serveo.net"],"reconnects":2,"last_error":"session lost: early eof",
             "active":1,"connections":42,"bytes_in":1234,"bytes_out":5678901},
            {"name":"api","server":"vps","remote":"0","assigned_port":41234,"target":"10.77.1.100:6443",
             "state":"backoff","public_urls":[],"reconnects":0,"last_error":null,
             "active":0,"connections":0,"bytes_in":0,"bytes_out":0}
        ]);
        let out = tunnel_table(t.as_array().unwrap());
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("TUNNEL  STATE    SERVER  REMOTE"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("ui      up       serveo  ui_julio:80"),
            "{out}"
        );
        assert!(lines[1].contains("1.2 kB"), "{out}");
        assert!(lines[1].contains("5.7 MB"), "{out}");
        assert_eq!(lines[2], "  public URL: https://ui-julio.serveo.net");
        assert_eq!(lines[3], "  last error: session lost: early eof");
        assert!(lines[4].contains("0 (port 41234)"), "{out}");
        assert_eq!(lines.len(), 5, "{out}");
        let two = json!({"name":"ui","state":"up","failovers":1,"via":[
            {"server":"a","remote":"18080","active":false,"healthy":false,"last_error":"connection refused"},
            {"server":"b","remote":"18081","active":true,"healthy":true,"last_error":null}]});
        assert_eq!(
            ways_line(&two).as_deref(),
            Some(
                "  ways out: a 18080 (down: connection refused) -> b 18081 (active, up); moved 1 time\n"
            )
        );
        let one = json!({"via":[{"server":"a","remote":"80","active":true,"healthy":true}]});
        assert_eq!(ways_line(&one), None);
        // Columns line up.
        let col = lines[0].find("TARGET").unwrap();
        assert_eq!(&lines[1][col..col + 14], "10.77.1.100:80");
    }

    #[test]
    fn bytes_for_people() {
        for (n, want) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 kB"),
            (1_500_000, "1.5 MB"),
            (3_000_000_000, "3.0 GB"),
        ] {
            assert_eq!(human_bytes(n), want);
        }
    }
}
