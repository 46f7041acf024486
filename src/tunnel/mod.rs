//! The reverse tunnels: one russh session per `[[server]]` that a tunnel
//! uses, a `tcpip-forward` per tunnel on it, reconnection with backoff, and
//! an immediate reconnect when an uplink changes.
//!
//! The [`Manager`] lives in the daemon's main loop: it starts and stops
//! session tasks, applies reloads (a pure [`diff`]), and builds the status
//! objects. Each session task ([`session::run`]) owns its connection.

pub mod backoff;
pub mod diff;
pub mod failover;
pub mod forward;
pub mod hostkeys;
pub mod keys;
pub mod parting;
pub mod session;
pub mod socket;
pub mod stats;
pub mod urls;

use crate::config::{Config, Host, Server, Target, Via};
use crate::lan;
use crate::netwatch::{self, NetState};
use diff::Plan;
use ipnet::Ipv4Net;
use serde_json::{Value, json};
use session::{Cmd, TunnelSpec};
use stats::{Health, State, Stats};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What sessions need to know about the LAN, the uplinks and the hooks;
/// replaced on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct LanView {
    pub hosts: Vec<Host>,
    pub home: Ipv4Net,
    pub wan: Vec<String>,
    pub lan: String,
    pub url_hook: Option<PathBuf>,
}

impl LanView {
    /// `home`: the home prefix (the config's, or the one learnt at start).
    pub fn from_config(c: &Config, home: Ipv4Net) -> LanView {
        LanView {
            hosts: c.lan.hosts.clone(),
            home,
            wan: c.wan.interfaces.clone(),
            lan: c.lan.interface.clone(),
            url_hook: c.daemon.url_hook.clone(),
        }
    }
}

/// The daemon's shared views, cloned into every session.
#[derive(Clone)]
pub struct Ctx {
    pub net: watch::Receiver<NetState>,
    pub lan_status: watch::Receiver<lan::Status>,
    pub lan_view: watch::Receiver<Arc<LanView>>,
    /// A captive portal, if the prober found one; sessions hold while it is there.
    pub captive: crate::captive::View,
}

impl Ctx {
    /// The LAN's current prefix (home until the LAN task says otherwise).
    pub fn current_prefix(&self, home: Ipv4Net) -> Ipv4Net {
        self.lan_status
            .borrow()
            .prefix
            .parse::<Ipv4Net>()
            .ok()
            .filter(|p| p.prefix_len() == home.prefix_len())
            .unwrap_or(home)
    }

    /// Where `target` is right now.
    pub fn resolve(&self, target: &Target) -> Result<SocketAddrV4, String> {
        let view = self.lan_view.borrow().clone();
        let current = self.current_prefix(view.home);
        forward::resolve(target, &view.hosts, view.home, current)
    }
}

/// The parts of an uplink whose change means "the way out moved": link
/// state, addresses and gateway, per configured WAN interface.
pub type UplinkKey = Vec<(String, bool, Vec<Ipv4Net>, Option<Ipv4Addr>)>;

pub fn uplink_key(state: &NetState, wan: &[String], lan: &str) -> UplinkKey {
    let (uplinks, _) = netwatch::view(state, wan, lan);
    uplinks
        .into_iter()
        .map(|u| {
            let mut a = u.addresses;
            a.sort();
            (u.interface, u.up, a, u.gateway)
        })
        .collect()
}

/// Whether going from `old` to `new` is an uplink change worth reconnecting
/// for. The watcher's first dump (from a state with no links at all) is not.
pub fn uplink_changed(old_state_empty: bool, old: &UplinkKey, new: &UplinkKey) -> bool {
    !old_state_empty && old != new
}

/// An uplink key for the log: `wan0 up 10.66.0.2/24 via 10.66.0.254`.
pub fn show_key(key: &UplinkKey) -> String {
    let parts: Vec<String> = key
        .iter()
        .map(|(name, up, addrs, gw)| {
            let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            let gw = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            format!(
                "{name} {} {}{gw}",
                if *up { "up" } else { "down" },
                if addrs.is_empty() {
                    "-".to_string()
                } else {
                    addrs.join(",")
                }
            )
        })
        .collect();
    parts.join("; ")
}

/// Follows the uplink snapshot for one session.
pub struct UplinkWatch {
    net: watch::Receiver<NetState>,
    view: watch::Receiver<Arc<LanView>>,
    key: UplinkKey,
    empty: bool,
}

impl UplinkWatch {
    pub fn new(ctx: &Ctx) -> UplinkWatch {
        let mut net = ctx.net.clone();
        let view = ctx.lan_view.clone();
        let state = net.borrow_and_update().clone();
        let v = view.borrow().clone();
        UplinkWatch {
            key: uplink_key(&state, &v.wan, &v.lan),
            empty: state.links.is_empty(),
            net,
            view,
        }
    }

    /// The kernel's network state as last seen.
    pub fn state(&self) -> NetState {
        self.net.borrow().clone()
    }

    /// Waits for the next snapshot; true when an uplink changed.
    pub async fn changed(&mut self) -> bool {
        if self.net.changed().await.is_err() {
            // The watcher is gone (shutting down): nothing will change again.
            std::future::pending::<()>().await;
        }
        let state = self.net.borrow_and_update().clone();
        let v = self.view.borrow().clone();
        let key = uplink_key(&state, &v.wan, &v.lan);
        let changed = uplink_changed(self.empty, &self.key, &key);
        if changed {
            log::debug!(
                "uplinks changed: {} -> {}",
                show_key(&self.key),
                show_key(&key)
            );
        }
        self.key = key;
        self.empty = state.links.is_empty();
        changed
    }
}

struct Session {
    server: Server,
    cmd: mpsc::UnboundedSender<Cmd>,
    stop: CancellationToken,
    /// Cancelled when the task has finished.
    done: CancellationToken,
    health: Arc<Health>,
}

/// Failover bookkeeping for one tunnel.
struct Ways {
    vias: Vec<Via>,
    active: usize,
    /// Since when the active way's forward has not been up.
    failing_since: Option<Instant>,
    /// Per way: when the tunnel last left it (it must prove itself again).
    left_at: Vec<Option<Instant>>,
    failover: Duration,
    failback: Duration,
    moves: u64,
}

/// Owns the session tasks; lives in the daemon's main loop.
pub struct Manager {
    servers: Vec<Server>,
    plans: Vec<Plan>,
    stats: HashMap<String, Arc<Stats>>,
    sessions: HashMap<String, Session>,
    ways: HashMap<String, Ways>,
    lan_view: watch::Sender<Arc<LanView>>,
    ctx: Ctx,
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
    seed: u64,
}

impl Manager {
    /// Start a session for every server that a tunnel uses. `home`: the
    /// LAN's home prefix.
    pub fn start(
        config: &Config,
        home: Ipv4Net,
        net: watch::Receiver<NetState>,
        lan_status: watch::Receiver<lan::Status>,
        captive: crate::captive::View,
        cancel: CancellationToken,
    ) -> Manager {
        let (lan_view, view_rx) = watch::channel(Arc::new(LanView::from_config(config, home)));
        let mut m = Manager {
            servers: Vec::new(),
            plans: Vec::new(),
            stats: HashMap::new(),
            sessions: HashMap::new(),
            ways: HashMap::new(),
            lan_view,
            ctx: Ctx {
                net,
                lan_status,
                lan_view: view_rx,
                captive,
            },
            cancel,
            tasks: tokio::task::JoinSet::new(),
            seed: lan::state::random_seed(),
        };
        m.apply(config, home);
        m
    }

    /// Make the running set match `config` (start or reload).
    pub fn apply(&mut self, config: &Config, home: Ipv4Net) -> diff::Diff {
        while self.tasks.try_join_next().is_some() {}
        self.lan_view.send_if_modified(|v| {
            let new = LanView::from_config(config, home);
            if **v != new {
                *v = Arc::new(new);
                true
            } else {
                false
            }
        });
        // A tunnel keeps its active way out across a reload unless its list changed.
        let old_ways = std::mem::take(&mut self.ways);
        for t in &config.tunnels {
            let kept = old_ways.get(&t.name).filter(|w| w.vias == t.via);
            let (active, failing_since, left_at, moves) = match kept {
                Some(w) => (w.active, w.failing_since, w.left_at.clone(), w.moves),
                None => (0, None, vec![None; t.via.len()], 0),
            };
            self.ways.insert(
                t.name.clone(),
                Ways {
                    vias: t.via.clone(),
                    active,
                    failing_since,
                    left_at,
                    failover: Duration::from_secs(t.failover_s),
                    failback: Duration::from_secs(t.failback_s),
                    moves,
                },
            );
        }
        let ways = &self.ways;
        let new_plans = diff::plans(config, |t| ways.get(&t.name).map_or(0, |w| w.active));
        let d = diff::diff(&self.servers, &self.plans, &config.servers, &new_plans);
        for p in &new_plans {
            self.stats.entry(p.name.clone()).or_default();
        }
        self.stats
            .retain(|name, _| new_plans.iter().any(|p| p.name == *name));
        let spec = |name: &str| -> Option<TunnelSpec> {
            let plan = new_plans.iter().find(|p| p.name == name)?.clone();
            let stats = self.stats.get(name)?.clone();
            Some(TunnelSpec { plan, stats })
        };

        let mut stopped: HashMap<String, CancellationToken> = HashMap::new();
        for name in &d.stop {
            if let Some(s) = self.sessions.remove(name) {
                log::info!("server {name}: stopping its session");
                s.stop.cancel();
                stopped.insert(name.clone(), s.done);
            }
        }
        let mut starts = Vec::new();
        for name in &d.start {
            let Some(server) = config.server(name) else {
                continue;
            };
            let tunnels: Vec<TunnelSpec> = new_plans
                .iter()
                .filter(|p| p.server == *name)
                .filter_map(|p| spec(&p.name))
                .collect();
            starts.push((server.clone(), tunnels, stopped.get(name).cloned()));
        }
        let mut sends: Vec<(String, Cmd)> = Vec::new();
        for (server, tunnel) in &d.add {
            if let Some(s) = spec(tunnel) {
                sends.push((server.clone(), Cmd::Add(s)));
            }
        }
        for (server, tunnel) in &d.remove {
            sends.push((server.clone(), Cmd::Remove(tunnel.clone())));
        }
        for (server, tunnel) in &d.restart {
            if let Some(s) = spec(tunnel) {
                sends.push((server.clone(), Cmd::Replace(s)));
            }
        }
        for (name, s) in &self.sessions {
            if !d.start.contains(name) {
                let _ = s.cmd.send(Cmd::RetryNow);
            }
        }
        for (server, tunnels, after) in starts {
            self.spawn(server, tunnels, after);
        }
        for (server, cmd) in sends {
            if let Some(s) = self.sessions.get(&server) {
                let _ = s.cmd.send(cmd);
            }
        }
        // Servers whose settings did not change but whose record we keep fresh.
        for s in self.sessions.values_mut() {
            if let Some(new) = config.server(&s.server.name) {
                s.server = new.clone();
            }
        }
        self.servers = config.servers.clone();
        self.plans = new_plans;
        if !d.is_empty() {
            log::info!(
                "tunnels: {} session(s) stopped, {} started; tunnels added {}, removed {}, restarted {}, unchanged {}",
                d.stop.len(),
                d.start.len(),
                d.add.len(),
                d.remove.len(),
                d.restart.len(),
                d.unchanged.len()
            );
        }
        d
    }

    fn spawn(
        &mut self,
        server: Server,
        tunnels: Vec<TunnelSpec>,
        after: Option<CancellationToken>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = self.cancel.child_token();
        let done = CancellationToken::new();
        let name = server.name.clone();
        log::info!(
            "server {name}: starting a session for {} tunnel(s)",
            tunnels.len()
        );
        let seed = backoff::mix(self.seed ^ backoff::mix(name.len() as u64))
            ^ name
                .bytes()
                .fold(0u64, |h, b| backoff::mix(h ^ u64::from(b)));
        let health = Arc::new(Health::default());
        let start = session::Start {
            server: server.clone(),
            tunnels,
            after,
            seed,
            health: health.clone(),
        };
        let (ctx, until, finished) = (self.ctx.clone(), stop.clone(), done.clone());
        // The session's future made inside the task's, not moved into it: a
        // moved future is stored twice (20 KiB instead of 10 on x86_64).
        self.tasks.spawn(async move {
            session::run(start, ctx, rx, until).await;
            finished.cancel();
        });
        self.sessions.insert(
            name,
            Session {
                server,
                cmd: tx,
                stop,
                done,
                health,
            },
        );
    }

    /// Whether any tunnel has more than one way out (else [`Manager::tick`]
    /// has nothing to do and need not be called).
    pub fn has_failover(&self) -> bool {
        self.ways.values().any(|w| w.vias.len() > 1)
    }

    /// Failover: called on a timer; moves tunnels whose active way out has
    /// failed for `failover_s`, or back to a preferred way that has been
    /// healthy for `failback_s`.
    pub fn tick(&mut self) {
        let now = Instant::now();
        let mut moves = Vec::new();
        for (name, w) in self.ways.iter_mut().filter(|(_, w)| w.vias.len() > 1) {
            let Some(stats) = self.stats.get(name) else {
                continue;
            };
            match stats.state() {
                // A captive portal is nobody's fault: no way out is tried then.
                State::Up | State::Blocked => w.failing_since = None,
                _ => {
                    w.failing_since.get_or_insert(now);
                }
            }
            let healthy_for: Vec<Option<Duration>> = w
                .vias
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let (since, _) = self.sessions.get(&v.server)?.health.info().up_since?;
                    let since = w.left_at[j].map_or(since, |l| l.max(since));
                    (j != w.active).then(|| now.saturating_duration_since(since))
                })
                .collect();
            let input = failover::Input {
                active: w.active,
                failing_for: w.failing_since.map(|t| now.saturating_duration_since(t)),
                healthy_for: &healthy_for,
                failover: w.failover,
                failback: w.failback,
            };
            if let Some((to, why)) = failover::decide(&input) {
                moves.push((name.clone(), to, why));
            }
        }
        for (name, to, why) in moves {
            self.move_tunnel(&name, to, why, now);
        }
    }

    /// Move a tunnel's forward to way `to`: the old way's forward is
    /// cancelled but its open connections finish; new ones come the new way.
    fn move_tunnel(&mut self, name: &str, to: usize, why: failover::Why, now: Instant) {
        let (Some(w), Some(stats)) = (self.ways.get_mut(name), self.stats.get(name)) else {
            return;
        };
        let from = w.active;
        let (Some(old), Some(new)) = (w.vias.get(from).cloned(), w.vias.get(to).cloned()) else {
            return;
        };
        match why {
            failover::Why::Failed => log::warn!(
                "tunnel {name}: way out {} ({}) has failed for {} s ({}); moving to {} ({})",
                old.server,
                old.remote,
                w.failover.as_secs(),
                stats.info().last_error.unwrap_or_else(|| "not up".into()),
                new.server,
                new.remote
            ),
            failover::Why::Back => log::info!(
                "tunnel {name}: preferred way out {} has been healthy for {} s; moving back from {}",
                new.server,
                w.failback.as_secs(),
                old.server
            ),
        }
        w.left_at[from] = Some(now);
        w.active = to;
        w.failing_since = None;
        w.moves += 1;
        // The old server's URLs do not lead here any more.
        stats.update(|i| {
            i.public_urls.clear();
            i.assigned_port = None;
        });
        stats.set_state(State::Connecting, None);
        let Some(plan) = self.plans.iter_mut().find(|p| p.name == name) else {
            return;
        };
        plan.server = new.server.clone();
        plan.remote = new.remote.clone();
        let spec = TunnelSpec {
            plan: plan.clone(),
            stats: stats.clone(),
        };
        if let Some(s) = self.sessions.get(&old.server) {
            let _ = s.cmd.send(Cmd::Release(name.to_string()));
        }
        if let Some(s) = self.sessions.get(&new.server) {
            let _ = s.cmd.send(Cmd::Add(spec));
        }
    }

    /// `tunnel.restart`.
    pub fn restart(&mut self, name: &str) -> Result<Value, String> {
        let Some(plan) = self.plans.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = self.plans.iter().map(|p| p.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("no tunnel named \"{name}\"; no tunnels are configured")
            } else {
                format!("no tunnel named \"{name}\"; known: {}", known.join(", "))
            });
        };
        let session = self.sessions.get(&plan.server).ok_or_else(|| {
            format!(
                "tunnel \"{name}\": its server \"{}\" has no session",
                plan.server
            )
        })?;
        session
            .cmd
            .send(Cmd::RestartTunnel(name.to_string()))
            .map_err(|_| format!("tunnel \"{name}\": its session has stopped"))?;
        log::info!("tunnel {name}: restart requested");
        Ok(json!({ "restarted": name, "server": plan.server }))
    }

    /// The `tunnels` array of the status reply, in config order.
    pub fn status(&self) -> Vec<Value> {
        self.plans
            .iter()
            .map(|p| {
                let stats = self.stats.get(&p.name).cloned().unwrap_or_default();
                let info = stats.info();
                let target = match self.ctx.resolve(&p.target) {
                    Ok(a) => a.to_string(),
                    Err(_) => p.target.to_string(),
                };
                let mut v = json!({
                    "name": p.name,
                    "server": p.server,
                    "remote": p.remote.to_string(),
                    "target": target,
                    "state": info.state,
                    "public_urls": info.public_urls,
                    "reconnects": stats.reconnects.load(Relaxed),
                    "last_error": info.last_error,
                    "active": stats.active.load(Relaxed),
                    "connections": stats.connections.load(Relaxed),
                    "bytes_in": stats.bytes_in.load(Relaxed),
                    "bytes_out": stats.bytes_out.load(Relaxed),
                    "refused": stats.refused.load(Relaxed),
                    "stalled": stats.stalled.load(Relaxed),
                    "up_since": info.up_since,
                    "max_connections": p.max_connections,
                });
                if p.remote.port == 0 && p.remote.unix.is_none() {
                    v["assigned_port"] = json!(info.assigned_port);
                }
                if let Some(w) = self.ways.get(&p.name) {
                    v["via"] = self.ways_status(w);
                    v["failovers"] = json!(w.moves);
                }
                v
            })
            .collect()
    }

    /// Each way out of a tunnel: which is active and whether its server's
    /// session is logged in.
    fn ways_status(&self, w: &Ways) -> Value {
        let ways: Vec<Value> = w
            .vias
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let h = self
                    .sessions
                    .get(&v.server)
                    .map(|s| s.health.info())
                    .unwrap_or_default();
                json!({
                    "server": v.server,
                    "remote": v.remote.to_string(),
                    "active": j == w.active,
                    "healthy": h.up_since.is_some(),
                    "healthy_since": h.up_since.map(|(_, unix)| unix),
                    "last_error": h.last_error,
                })
            })
            .collect();
        Value::Array(ways)
    }

    /// Wait for every session task to finish (after `cancel` fired).
    pub async fn join(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netwatch::{LinkState, RouteState};

    fn state(addr: Option<&str>, gw: Option<&str>, up: bool) -> NetState {
        NetState {
            links: vec![
                LinkState {
                    index: 1,
                    name: "lo".into(),
                    up: true,
                    addrs: vec!["127.0.0.1/8".parse().unwrap()],
                },
                LinkState {
                    index: 2,
                    name: "wan0".into(),
                    up,
                    addrs: addr.iter().map(|a| a.parse().unwrap()).collect(),
                },
                LinkState {
                    index: 3,
                    name: "lan0".into(),
                    up: true,
                    addrs: vec!["192.168.1.1/24".parse().unwrap()],
                },
            ],
            routes: gw
                .iter()
                .map(|g| RouteState {
                    dst: "0.0.0.0/0".parse().unwrap(),
                    gateway: Some(g.parse().unwrap()),
                    oif: Some(2),
                })
                .collect(),
            netifd: Vec::new(),
        }
    }

    #[test]
    fn uplink_changes_that_mean_reconnect() {
        let wan = vec!["wan0".to_string()];
        let key = |s: &NetState| uplink_key(s, &wan, "lan0");
        let base = state(Some("10.66.0.5/24"), Some("10.66.0.254"), true);
        let mut lan_moved = base.clone();
        lan_moved.links[2].addrs = vec!["10.77.1.1/24".parse().unwrap()];
        let mut other_link = base.clone();
        other_link.links.push(LinkState {
            index: 9,
            name: "tun0".into(),
            up: true,
            addrs: vec!["10.8.0.2/24".parse().unwrap()],
        });
        let table: Vec<(&str, NetState, NetState, bool)> = vec![
            ("same", base.clone(), base.clone(), false),
            (
                "new lease",
                base.clone(),
                state(Some("10.77.0.9/24"), Some("10.77.0.254"), true),
                true,
            ),
            (
                "address lost",
                base.clone(),
                state(None, Some("10.66.0.254"), true),
                true,
            ),
            (
                "gateway changed",
                base.clone(),
                state(Some("10.66.0.5/24"), Some("10.66.0.1"), true),
                true,
            ),
            (
                "gateway lost",
                base.clone(),
                state(Some("10.66.0.5/24"), None, true),
                true,
            ),
            (
                "link down",
                base.clone(),
                state(Some("10.66.0.5/24"), Some("10.66.0.254"), false),
                true,
            ),
            (
                "the LAN moved: not an uplink",
                base.clone(),
                lan_moved,
                false,
            ),
            (
                "another interface: not an uplink",
                base.clone(),
                other_link,
                false,
            ),
        ];
        for (name, old, new, want) in table {
            assert_eq!(
                uplink_changed(old.links.is_empty(), &key(&old), &key(&new)),
                want,
                "{name}"
            );
        }
        // "@wan": where netifd has it is what counts.
        let at = |device: &str, problem: Option<&str>| {
            let mut s = base.clone();
            s.links.push(LinkState {
                index: 7,
                name: "usb0".into(),
                up: true,
                addrs: vec!["10.99.0.2/24".parse().unwrap()],
            });
            s.netifd = vec![crate::netifd::Iface {
                name: "wan".into(),
                device: Some(device.into()),
                up: true,
                problem: problem.map(str::to_string),
            }];
            s
        };
        let mut without_usb0 = at("wan0", None);
        without_usb0.links.pop();
        let wan_at = ["@wan".to_string()];
        let nkey = |s: &NetState| uplink_key(s, &wan_at, "lan0");
        let cases = [
            (
                "a tether: wan moved to usb0",
                at("wan0", None),
                at("usb0", None),
                true,
            ),
            (
                "ubus failed, device kept: no change",
                at("wan0", None),
                at("wan0", Some("ubus down")),
                false,
            ),
            (
                "usb0 appeared, wan still on wan0: no change",
                without_usb0,
                at("wan0", None),
                false,
            ),
            (
                "resolved for the first time",
                base.clone(),
                at("wan0", None),
                true,
            ),
        ];
        for (name, old, new, want) in cases {
            assert_eq!(
                uplink_changed(false, &nkey(&old), &nkey(&new)),
                want,
                "{name}"
            );
        }
        assert_eq!(show_key(&nkey(&at("usb0", None))), "usb0 up 10.99.0.2/24");
        // The watcher's first dump is not a change.
        let empty = NetState::default();
        assert!(!uplink_changed(true, &key(&empty), &key(&base)));
        // Address order does not matter.
        let mut two = base.clone();
        two.links[1].addrs = vec![
            "10.66.0.5/24".parse().unwrap(),
            "10.66.0.6/24".parse().unwrap(),
        ];
        let mut two_rev = two.clone();
        two_rev.links[1].addrs.reverse();
        assert!(!uplink_changed(false, &key(&two), &key(&two_rev)));
        assert_eq!(
            show_key(&key(&base)),
            "wan0 up 10.66.0.5/24 via 10.66.0.254"
        );
        assert_eq!(show_key(&key(&state(None, None, false))), "wan0 down -");
    }
}
