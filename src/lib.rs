//! roadie: keeps a travelling cluster's LAN out of the way of whatever network
//! the router is plugged into. `run` wires the long-lived tasks together.

pub mod absorb;
pub mod captive;
pub mod cli;
pub mod command;
pub mod config;
pub mod control;
pub mod follow;
pub mod hook;
pub mod ingress;
pub mod lan;
pub mod lastgood;
pub mod logging;
pub mod netifd;
pub mod netlink;
pub mod netwatch;
pub mod packet_alloc;
pub mod plan;
pub mod quote;
pub mod road;
pub mod tunnel;

use config::Config;
use control::protocol::Call;
use control::server::Request;
use serde_json::{Value, json};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Run the daemon until `cancel` fires. Returns an error only for what makes
/// running impossible (socket taken, netlink unavailable).
///
/// `problem`: why the file on disk is not the configuration running (a start
/// with the last good copy), for status.
pub async fn run(
    config: Config,
    problem: Option<String>,
    cancel: CancellationToken,
) -> Result<(), String> {
    let started = Instant::now();
    let listener = control::server::bind(&config.daemon.socket)?;
    let (home, loaded) = start_home(&config).await?;
    // The netifd names are resolved once before anything reads the
    // snapshot, so that the first one already has their devices.
    let resolving = netifd_settings(&config);
    let first = netifd::resolve_all(&resolving.ubus, &resolving.names, &[]).await;
    netifd::task::log_changes(&[], &first);
    let (net_tx, net_rx) = watch::channel(netwatch::NetState {
        netifd: first,
        ..Default::default()
    });
    let (lan_status_tx, lan_status_rx) = watch::channel(lan::Status::default());
    let (lan_cmd_tx, lan_cmd_rx) = mpsc::channel(8);
    let (moves_tx, moves_rx) = mpsc::channel(8);
    let (follow_tx, follow_rx) = watch::channel(follow_settings(&config, home));
    let (follow_status_tx, follow_status_rx) = watch::channel(follow::Status::default());
    let (absorb_tx, absorb_rx) = watch::channel(absorb_settings(&config, home));
    let (absorb_status_tx, absorb_status_rx) = watch::channel(absorb::Status::default());
    let (absorb_req_tx, absorb_req_rx) = mpsc::channel(8);
    let (req_tx, mut req_rx) = mpsc::channel::<Request>(32);

    let mut tasks = tokio::task::JoinSet::new();
    let (resolver, resolver_task) =
        netifd::Resolver::start(resolving, net_tx.clone(), cancel.clone());
    tasks.spawn(resolver_task);
    tasks.spawn(netwatch::run(net_tx, cancel.clone()));
    let settings = lan_settings(&config, home);
    {
        let cancel = cancel.clone();
        let net_rx = net_rx.clone();
        tasks.spawn(async move {
            let run = lan::run(
                settings,
                loaded,
                net_rx,
                lan_cmd_rx,
                lan_status_tx,
                moves_tx,
                cancel.clone(),
            );
            if let Err(e) = run.await {
                log::error!("LAN task stopped: {e}");
                cancel.cancel();
            }
        });
    }
    tasks.spawn(follow::run(
        follow_rx,
        lan_status_rx.clone(),
        moves_rx,
        follow_status_tx,
        cancel.clone(),
    ));
    tasks.spawn(absorb::run(
        absorb_rx,
        lan_status_rx.clone(),
        net_rx.clone(),
        absorb_req_rx,
        absorb_status_tx,
        cancel.clone(),
    ));
    let helpers = Helpers {
        follow: follow_tx,
        absorb: absorb_tx,
    };
    let views = LanViews {
        lan: lan_status_rx.clone(),
        follow: follow_status_rx,
        absorb: absorb_status_rx,
    };
    let (prober, probe_task) = captive::Prober::start(&config, net_rx.clone(), cancel.clone());
    tasks.spawn(probe_task);
    let mut tunnels = tunnel::Manager::start(
        &config,
        home.trunc(),
        net_rx.clone(),
        lan_status_rx.clone(),
        prober.view.clone(),
        cancel.clone(),
    );
    tasks.spawn(control::server::serve(
        listener,
        config.daemon.socket.clone(),
        req_tx,
        cancel.clone(),
    ));
    log::info!(
        "roadie {VERSION} started: wan {}, lan {} home {}, control socket {}",
        config.wan.interfaces.join(","),
        config.lan.interface,
        home.trunc(),
        config.daemon.socket.display()
    );

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let mut config = config;
    let mut home = home;
    let mut reloads = Reloads {
        problem,
        ..Default::default()
    };
    // Failover decisions are cheap and need no precision finer than this.
    let mut failover = tokio::time::interval(std::time::Duration::from_millis(500));
    failover.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = failover.tick(), if tunnels.has_failover() => tunnels.tick(),
            _ = hup.recv() => {
                log::info!("SIGHUP: reloading {}", config.path.display());
                let r = reload(&mut config, &mut home, &lan_cmd_tx, &mut tunnels, &prober, &resolver, &helpers).await;
                reloads.record(&r);
            }
            req = req_rx.recv() => {
                let Some((call, reply)) = req else { break };
                let result = match call {
                    Call::Status | Call::List => Ok(status(&config, started, &reloads, &net_rx, &views, &tunnels, &prober)),
                    Call::Reload => {
                        let r = reload(&mut config, &mut home, &lan_cmd_tx, &mut tunnels, &prober, &resolver, &helpers).await;
                        reloads.record(&r);
                        r.map(|d| json!({
                            "reloaded": config.path.display().to_string(),
                            "tunnels": {"started_sessions": d.start, "stopped_sessions": d.stop,
                                        "added": d.add.iter().map(|(_, t)| t).collect::<Vec<_>>(),
                                        "removed": d.remove.iter().map(|(_, t)| t).collect::<Vec<_>>(),
                                        "restarted": d.restart.iter().map(|(_, t)| t).collect::<Vec<_>>(),
                                        "unchanged": d.unchanged},
                        }))
                    }
                    Call::TunnelRestart { name } => tunnels.restart(&name),
                    Call::AbsorbLease { interface, address, router, dns } => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let lease = absorb::Lease { interface, address, router, dns };
                        match absorb_req_tx.send(absorb::Request::Lease(lease, tx)).await {
                            Ok(()) => rx.await.unwrap_or_else(|_| Err("absorb task stopped".into())),
                            Err(_) => Err("absorb task stopped".into()),
                        }
                    }
                    Call::AbsorbRelease { interface } => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        match absorb_req_tx.send(absorb::Request::Release(interface, tx)).await {
                            Ok(()) => rx.await.unwrap_or_else(|_| Err("absorb task stopped".into())),
                            Err(_) => Err("absorb task stopped".into()),
                        }
                    }
                    Call::Readdress { prefix } => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        match lan_cmd_tx.send(lan::Command::Readdress { prefix, reply: tx }).await {
                            Ok(()) => rx.await.unwrap_or_else(|_| Err("LAN task stopped".into())),
                            Err(_) => Err("LAN task stopped".into()),
                        }
                    }
                };
                let _ = reply.send(result);
            }
        }
    }
    cancel.cancel();
    // Every task selects on `cancel`; give them a moment, then drop the rest
    // (SIGTERM must end the process within 2 s, connections open or not).
    let _ = tokio::time::timeout(std::time::Duration::from_millis(1500), async {
        tunnels.join().await;
        while tasks.join_next().await.is_some() {}
    })
    .await;
    log::info!("roadie stopped");
    Ok(())
}

/// The home address for this start and the state file it is recorded in
/// (see lan::home); the hosts and pools are checked against a home that
/// did not come from the config file.
async fn start_home(config: &Config) -> Result<(ipnet::Ipv4Net, lan::state::Loaded), String> {
    let mut loaded = lan::state::load(&config.daemon.state, lan::state::random_seed);
    if let Some(w) = &loaded.warning {
        log::warn!("{w}");
    }
    let (home, changed) = lan::home::learn(&config.lan, &config.openwrt, &mut loaded.state).await?;
    if config.lan.address.is_none() {
        let from = format!("from UCI network.{}", config.openwrt.network_section);
        config::check_home(&config.lan, home, &from)?;
        log::info!("home address {home} ({from})");
    }
    if changed && let Err(e) = lan::state::save(&config.daemon.state, &loaded.state) {
        log::error!("{e}");
    }
    Ok((home, loaded))
}

/// The netifd names the config uses, and the ubus to ask.
fn netifd_settings(config: &Config) -> netifd::task::Settings {
    let configured = config.wan.interfaces.iter().map(String::as_str);
    netifd::task::Settings {
        ubus: config.openwrt.ubus.clone(),
        names: netifd::names(configured.chain([config.lan.interface.as_str()])),
    }
}

/// `home`: the router's home address in effect.
fn lan_settings(config: &Config, home: ipnet::Ipv4Net) -> lan::Settings {
    lan::Settings {
        lan: config.lan.clone(),
        address: home,
        wan: config.wan.interfaces.clone(),
        state_path: config.daemon.state.clone(),
        openwrt: config.openwrt.clone(),
    }
}

/// The settings of the LAN's helper tasks (follow, absorb), renewed on reload.
struct Helpers {
    follow: watch::Sender<follow::Settings>,
    absorb: watch::Sender<absorb::Settings>,
}

/// What the `lan` status object is made of.
struct LanViews {
    lan: watch::Receiver<lan::Status>,
    follow: watch::Receiver<follow::Status>,
    absorb: watch::Receiver<absorb::Status>,
}

fn absorb_settings(config: &Config, home: ipnet::Ipv4Net) -> absorb::Settings {
    let (nft, run_dir, sysctl_dir) = absorb::default_paths(&config.daemon.socket);
    absorb::Settings {
        on_collision: config.lan.on_collision,
        pools: config.lan.pools.clone(),
        avoid: config.lan.avoid.clone(),
        home: home.trunc(),
        nft,
        run_dir,
        sysctl_dir,
        dns_alias_file: config.lan.dns_alias_file.clone(),
        init_d: config.openwrt.init_d.clone(),
        proc_dir: std::path::PathBuf::from("/proc"),
    }
}

fn follow_settings(config: &Config, home: ipnet::Ipv4Net) -> follow::Settings {
    let lan = &config.lan;
    follow::Settings {
        follow: lan.follow,
        follow_s: lan.follow_s,
        flap_ports: lan.flap_ports,
        flap_ms: lan.flap_ms,
        hosts: lan.hosts.clone(),
        address: home,
        apply: lan.apply,
        openwrt: config.openwrt.clone(),
    }
}

/// Re-read the config file; an invalid one changes nothing. `home`: the
/// home address in effect, which a file without `[lan] address` keeps (the
/// LAN task records a new one in the state file).
async fn reload(
    config: &mut Config,
    home: &mut ipnet::Ipv4Net,
    lan_cmd: &mpsc::Sender<lan::Command>,
    tunnels: &mut tunnel::Manager,
    prober: &captive::Prober,
    resolver: &netifd::Resolver,
    helpers: &Helpers,
) -> Result<tunnel::diff::Diff, String> {
    let (follow, absorb) = (&helpers.follow, &helpers.absorb);
    let new = lastgood::load(&config.path).map_err(|e| e.to_string())?;
    let new_home = match new.lan.address {
        Some(a) => a,
        None => {
            config::check_home(&new.lan, *home, "the one in use")?;
            *home
        }
    };
    if new.daemon.socket != config.daemon.socket || new.daemon.state != config.daemon.state {
        log::warn!("[daemon] socket and state paths take effect at the next start");
    }
    log::set_max_level(new.daemon.log_level);
    let mut settings = lan_settings(&new, new_home);
    settings.state_path = config.daemon.state.clone();
    if settings != lan_settings(config, *home) {
        lan_cmd
            .send(lan::Command::Reconfigure(Box::new(settings)))
            .await
            .map_err(|_| "LAN task stopped".to_string())?;
    }
    resolver.reconfigure(netifd_settings(&new));
    absorb.send_if_modified(|s| {
        let mut new = absorb_settings(&new, new_home);
        // Paths of the running daemon stay (as the socket does).
        new.run_dir = s.run_dir.clone();
        let changed = *s != new;
        *s = new;
        changed
    });
    follow.send_if_modified(|s| {
        let new = follow_settings(&new, new_home);
        let changed = *s != new;
        *s = new;
        changed
    });
    prober.reconfigure(&new);
    let diff = tunnels.apply(&new, new_home.trunc());
    *home = new_home;
    let (socket, state) = (config.daemon.socket.clone(), config.daemon.state.clone());
    *config = new;
    config.daemon.socket = socket;
    config.daemon.state = state;
    log::info!("config reloaded");
    Ok(diff)
}

/// Reload outcomes, for status: scripts can tell that a SIGHUP was handled.
#[derive(Default)]
struct Reloads {
    count: u64,
    error: Option<String>,
    /// Why the file on disk is not what runs (null when it is).
    problem: Option<String>,
}

impl Reloads {
    fn record<T>(&mut self, r: &Result<T, String>) {
        self.count += 1;
        self.error = r.as_ref().err().cloned();
        match &self.error {
            Some(e) => {
                log::error!("reload refused, keeping the running config:\n{e}");
                self.problem = Some(format!(
                    "reload refused, the configuration loaded before still runs:\n{e}"
                ));
            }
            None => self.problem = None,
        }
    }
}

fn status(
    config: &Config,
    started: Instant,
    reloads: &Reloads,
    net: &watch::Receiver<netwatch::NetState>,
    views: &LanViews,
    tunnels: &tunnel::Manager,
    prober: &captive::Prober,
) -> Value {
    let (lan, follow, absorb) = (&views.lan, &views.follow, &views.absorb);
    let (uplinks, _) = netwatch::view(&net.borrow(), &config.wan.interfaces, &config.lan.interface);
    let (captive, probe) = prober.status();
    let mut lan = serde_json::to_value(&*lan.borrow()).unwrap_or(Value::Null);
    {
        let f = follow.borrow();
        lan["hosts"] = serde_json::to_value(&f.hosts).unwrap_or(Value::Null);
        lan["follow"] = serde_json::to_value(&f.follow).unwrap_or(Value::Null);
        lan["hosts_problem"] = json!(f.problem);
        lan["dhcp_warning"] = json!(f.dhcp_warning);
        let a = absorb.borrow();
        lan["absorbed"] = serde_json::to_value(&a.absorbed).unwrap_or(Value::Null);
        lan["absorb_problem"] = json!(a.problem);
        // The collision is there, absorbed: the LAN itself does not see it.
        if lan["collision"].is_null()
            && let Some(first) = a.absorbed.first()
        {
            lan["collision"] = json!({
                "prefix": first.prefix,
                "what": format!("{} lease {} (absorbed as {})", first.interface, first.lease, first.alias),
                "absorbed": true,
            });
        }
    }
    json!({
        "version": VERSION,
        "uptime_s": started.elapsed().as_secs(),
        "config": {
            "path": config.path.display().to_string(),
            "reloads": reloads.count,
            "reload_error": reloads.error,
            "problem": reloads.problem,
        },
        "wan": uplinks,
        "lan": lan,
        "captive": captive,
        "probe": probe,
        "tunnels": tunnels.status(),
    })
}
