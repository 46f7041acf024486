//! The LAN task: waits for the uplink to settle, asks the planner, applies its
//! answer (netlink, or OpenWrt's UCI), runs the hook, persists the choice, and
//! publishes status.

pub mod apply;
pub mod home;
pub mod state;
pub mod uci;

use crate::config::{ApplyMode, Lan, OpenWrt};
use crate::netwatch::{self, NetState};
use crate::plan::{self, Decision, Inputs, Other, Uplink};
use ipnet::Ipv4Net;
use serde::Serialize;
use serde_json::{Value, json};
use state::{HistoryEntry, State};
use std::path::PathBuf;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the LAN task needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub lan: Lan,
    /// The router's home address: `lan.address`, or what [`home::learn`]
    /// found when the file leaves it out.
    pub address: Ipv4Net,
    pub wan: Vec<String>,
    pub state_path: PathBuf,
    pub openwrt: OpenWrt,
}

pub enum Command {
    /// `None` re-evaluates; `Some` forces that prefix.
    Readdress {
        prefix: Option<Ipv4Net>,
        reply: oneshot::Sender<Result<Value, String>>,
    },
    Reconfigure(Box<Settings>),
}

/// A move, as the follow task hears of it (crate::follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveEvent {
    /// The router's address is in the new prefix (the hook has not run yet).
    Moved {
        from: Ipv4Net,
        to: Ipv4Net,
        at_ms: u64,
    },
    /// The hook is done (or there is none): the LAN's DHCP server serves
    /// the new prefix.
    Done,
}

impl Settings {
    /// The home prefix (network part of the home address).
    pub fn home(&self) -> Ipv4Net {
        self.address.trunc()
    }
}

/// The `lan` object of the status reply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// The kernel device (null while a netifd name has none).
    pub interface: Option<String>,
    /// The netifd interface it was configured as (`"@lan"` -> `lan`).
    pub netifd: Option<String>,
    pub address: String,
    pub prefix: String,
    pub home: String,
    pub collision: Option<CollisionStatus>,
    pub problem: Option<String>,
    pub history: Vec<HistoryEntry>,
    pub evaluations: u64,
    pub settling: bool,
    pub hook: Option<HookStatus>,
    /// The last UCI apply (apply = "uci"): what changed, or why it was reverted.
    pub apply: Option<ApplyStatus>,
    /// When home is a prefix networks on the road use by default (moves
    /// will be frequent), why and what to do.
    pub home_warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyStatus {
    pub at: u64,
    pub ok: bool,
    /// The UCI changes were undone (the new address never showed up).
    pub reverted: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CollisionStatus {
    pub prefix: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HookStatus {
    pub at: u64,
    pub ok: bool,
    pub message: String,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The router's address in `prefix`: same offset as in its home address `home`.
pub fn router_address(home: Ipv4Net, prefix: Ipv4Net) -> Ipv4Net {
    let addr = plan::map_host(home.addr(), home.trunc(), prefix).unwrap_or(home.addr());
    Ipv4Net::new(addr, prefix.prefix_len()).unwrap_or(home)
}

/// The inputs that matter to the planner; a change in anything else (our own
/// LAN address, for one) does not wake the planner. The LAN's device counts:
/// `"@lan"` may move, or have none yet.
fn relevant(net: &NetState, s: &Settings) -> (Vec<Uplink>, Vec<Other>, Option<String>, bool) {
    let (uplinks, others) = netwatch::view(net, &s.wan, &s.lan.interface);
    let device = net.device(&s.lan.interface).map(str::to_string);
    let exists = device.as_deref().is_some_and(|d| net.link(d).is_some());
    (uplinks, others, device, exists)
}

struct Task {
    settings: Settings,
    state: State,
    current: Ipv4Net,
    nl: crate::netlink::Socket,
    net: watch::Receiver<NetState>,
    status: watch::Sender<Status>,
    hook: Option<HookStatus>,
    apply: Option<ApplyStatus>,
    problem: Option<String>,
    collision: Option<CollisionStatus>,
    evaluations: u64,
    settling: bool,
    cancel: CancellationToken,
    /// The address a UCI ensure last failed to apply (not retried).
    uci_ensure_failed: Option<Ipv4Net>,
    moves: mpsc::Sender<MoveEvent>,
}

/// Run the LAN task until cancelled.
/// `loaded`: the state file as read at start ([`home::learn`] may have
/// recorded the home in it already).
pub async fn run(
    settings: Settings,
    loaded: state::Loaded,
    mut net: watch::Receiver<NetState>,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    moves: mpsc::Sender<MoveEvent>,
    cancel: CancellationToken,
) -> Result<(), String> {
    let nl =
        crate::netlink::Socket::open().map_err(|e| format!("cannot open netlink socket: {e}"))?;
    let home = settings.home();
    let current = loaded
        .state
        .prefix
        .as_deref()
        .and_then(|p| p.parse::<Ipv4Net>().ok())
        .filter(|p| p.prefix_len() == home.prefix_len())
        .unwrap_or(home);
    if current != home {
        log::info!("LAN prefix from state file: {current} (home {home})");
    }
    if settings.lan.apply == ApplyMode::Uci {
        // A roadie that died mid-move may have left users' changes aside.
        if let Err(e) = uci::restore_all(&settings.openwrt) {
            log::error!("{e}");
        }
    }
    net.mark_unchanged();
    let mut task = Task {
        settings,
        state: loaded.state,
        current,
        nl,
        net,
        status,
        hook: None,
        apply: None,
        problem: loaded.warning,
        collision: None,
        evaluations: 0,
        settling: true,
        cancel: cancel.clone(),
        uci_ensure_failed: None,
        moves,
    };
    task.publish();
    let mut last = relevant(&task.net.borrow(), &task.settings);
    // The first evaluation waits for the watcher's first dump, then settles.
    let mut deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = task.net.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = relevant(&task.net.borrow_and_update(), &task.settings);
                if now != last || task.evaluations == 0 {
                    last = now;
                    deadline = Some(Instant::now() + task.settle());
                    task.settling = true;
                    task.publish();
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                deadline = None;
                task.settling = false;
                task.evaluate().await;
            }
            cmd = commands.recv() => match cmd {
                None => break,
                Some(Command::Readdress { prefix, reply }) => {
                    let r = task.readdress(prefix).await;
                    let _ = reply.send(r);
                }
                Some(Command::Reconfigure(new)) => {
                    task.reconfigure(*new);
                    last = relevant(&task.net.borrow(), &task.settings);
                    deadline = Some(Instant::now() + task.settle());
                    task.settling = true;
                    task.publish();
                }
            },
        }
    }
    Ok(())
}

enum Wait {
    Appeared,
    TimedOut,
    Stopped,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

impl Task {
    fn settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.settings.lan.settle_ms)
    }

    fn publish(&self) {
        let lan = &self.settings.lan;
        let status = Status {
            interface: self.device(),
            netifd: crate::netifd::name(&lan.interface).map(str::to_string),
            address: router_address(self.settings.address, self.current).to_string(),
            prefix: self.current.to_string(),
            home: self.settings.home().to_string(),
            collision: self.collision.clone(),
            problem: self.problem.clone(),
            history: self.state.history.clone(),
            evaluations: self.evaluations,
            settling: self.settling,
            hook: self.hook.clone(),
            apply: self.apply.clone(),
            home_warning: crate::road::warning(self.settings.address),
        };
        self.status.send_replace(status);
    }

    /// The LAN's kernel device now (`None`: a netifd name without one).
    fn device(&self) -> Option<String> {
        self.net
            .borrow()
            .device(&self.settings.lan.interface)
            .map(str::to_string)
    }

    /// For messages: `br-lan`, or `@lan (br-lan)` for a netifd name.
    fn label(&self) -> String {
        let configured = &self.settings.lan.interface;
        match crate::netifd::name(configured) {
            None => configured.clone(),
            Some(_) => format!(
                "{configured} ({})",
                self.device().unwrap_or_else(|| "no device".to_string())
            ),
        }
    }

    /// The device, or why there is none (for netlink writes).
    fn device_or_problem(&self) -> Result<String, String> {
        let configured = &self.settings.lan.interface;
        if let Some(d) = self.device() {
            let net = self.net.borrow();
            // A link name that does not exist (after the first dump: lo is
            // always there): the LAN's own address would sit on some other
            // link and look like a collision, and roadie would move the LAN
            // off itself.
            if crate::netifd::name(configured).is_none()
                && !net.links.is_empty()
                && !net.links.iter().any(|l| l.name == d)
            {
                let router = router_address(self.settings.address, self.current);
                let hint = net
                    .links
                    .iter()
                    .find(|l| l.addrs.iter().any(|a| a.addr() == router.addr()))
                    .map(|l| format!("; {} has the LAN's address {router}: set [lan] interface = \"{}\" (or \"@lan\" on OpenWrt)", l.name, l.name))
                    .unwrap_or_default();
                return Err(format!("LAN interface {d} does not exist{hint}"));
            }
            return Ok(d);
        }
        let net = self.net.borrow();
        let problem = crate::netifd::name(configured)
            .and_then(|n| net.netifd_iface(n))
            .and_then(|i| i.problem.clone());
        Err(match problem {
            Some(p) => format!("LAN {configured} has no device: {p}"),
            None => format!(
                "LAN {configured} has no device now (netifd has the interface down or does not know it)"
            ),
        })
    }

    fn reconfigure(&mut self, new: Settings) {
        if new.address != self.settings.address {
            log::info!(
                "home address changed from {} to {}",
                self.settings.address,
                new.address
            );
            // A new home resets the current prefix: offsets are relative to home.
            if self.current.prefix_len() != new.home().prefix_len()
                || self.current == self.settings.home()
            {
                self.current = new.home();
            }
            self.state.home = Some(new.address.to_string());
            self.state.prefix = (self.current != new.home()).then(|| self.current.to_string());
            if let Err(e) = state::save(&new.state_path, &self.state) {
                log::error!("{e}");
                self.problem = Some(e);
            }
        }
        self.settings = new;
        self.uci_ensure_failed = None;
    }

    fn view(&self) -> (Vec<Uplink>, Vec<Other>) {
        netwatch::view(
            &self.net.borrow(),
            &self.settings.wan,
            &self.settings.lan.interface,
        )
    }

    fn inputs<'a>(&'a self, uplinks: &'a [Uplink], others: &'a [Other]) -> Inputs<'a> {
        let lan = &self.settings.lan;
        Inputs {
            home: self.settings.home(),
            current: self.current,
            uplinks,
            others,
            pools: &lan.pools,
            avoid: &lan.avoid,
            return_home: lan.return_home,
            seed: self.state.seed,
        }
    }

    /// Ask the planner and act on its answer.
    async fn evaluate(&mut self) {
        self.evaluations += 1;
        // Without its device, the LAN's own prefix would count as another
        // interface's: nothing can be decided.
        if let Err(e) = self.device_or_problem() {
            log::warn!("{e}; not deciding until it has one");
            self.problem = Some(e);
            self.collision = None;
            self.publish();
            return;
        }
        let (uplinks, others) = self.view();
        let decision = plan::decide(&self.inputs(&uplinks, &others));
        let said = match &decision {
            Decision::Keep => format!("keep {}", self.current),
            Decision::Move { to, .. } => format!("move to {to}"),
            Decision::NoFreePrefix { .. } => "no free prefix".to_string(),
        };
        log::debug!("evaluation {}: {said}", self.evaluations);
        match decision {
            Decision::Keep => {
                self.collision = None;
                self.problem = None;
                // Make sure the kernel agrees (after a restart, or if someone removed it).
                self.ensure().await;
            }
            Decision::Move { to, reason } => {
                self.collision = None;
                if let Err(e) = self.move_to(to, &reason).await {
                    self.problem = Some(e);
                }
            }
            Decision::NoFreePrefix { reason } => {
                log::error!("{reason}");
                self.collision = plan::collisions(self.current, &uplinks, &others)
                    .into_iter()
                    .next()
                    .map(|c| CollisionStatus {
                        prefix: c.prefix.to_string(),
                        what: c.what,
                    });
                self.problem = Some(format!("no free prefix: {reason}"));
            }
        }
        self.publish();
    }

    /// Put the router's address for the current prefix on the LAN interface.
    async fn ensure(&mut self) {
        if self.settings.lan.apply == ApplyMode::Uci {
            return self.ensure_uci().await;
        }
        let want = router_address(self.settings.address, self.current);
        let old: Vec<Ipv4Net> = [self.settings.home()]
            .into_iter()
            .filter(|h| *h != self.current)
            .collect();
        let result = match self.device_or_problem() {
            Ok(device) => apply::apply(&mut self.nl, &device, want, &old)
                .await
                .map(|a| (device, a)),
            Err(e) => Err(e),
        };
        match result {
            Ok((device, a)) if a.added || !a.removed.is_empty() => {
                log::info!("LAN address {want} restored on {device}")
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!("{e}");
                self.problem = Some(e);
            }
        }
    }

    async fn move_to(&mut self, to: Ipv4Net, reason: &str) -> Result<(), String> {
        let from = self.current;
        let lan = self.settings.lan.clone();
        let home = self.settings.home();
        let address = router_address(self.settings.address, to);
        log::info!("moving LAN {} from {from} to {to}: {reason}", self.label());
        match lan.apply {
            ApplyMode::Netlink => {
                let device = self.device_or_problem()?;
                let old: Vec<Ipv4Net> = [from, home].into_iter().filter(|p| *p != to).collect();
                apply::apply(&mut self.nl, &device, address, &old).await?;
            }
            ApplyMode::Uci => self.apply_uci(from, address).await?,
        }
        self.current = to;
        self.state.prefix = (to != home).then(|| to.to_string());
        self.state.push_history(HistoryEntry {
            at: now_unix(),
            from: from.to_string(),
            to: to.to_string(),
            reason: reason.to_string(),
        });
        // Never blocks the LAN task: the follow task is a helper.
        let _ = self.moves.try_send(MoveEvent::Moved {
            from,
            to,
            at_ms: now_ms(),
        });
        self.problem = None;
        if let Err(e) = state::save(&self.settings.state_path, &self.state) {
            log::error!("{e}");
            self.problem = Some(e);
        }
        self.publish();
        if let Some(path) = &lan.hook {
            let (from, to, address) = (from.to_string(), to.to_string(), address.to_string());
            let env = [
                ("ROADIE_OLD_PREFIX", from.as_str()),
                ("ROADIE_NEW_PREFIX", to.as_str()),
                ("ROADIE_LAN_ADDRESS", address.as_str()),
                ("ROADIE_REASON", reason),
            ];
            let result = crate::hook::run(path, &env).await;
            if let Err(e) = &result {
                log::error!("{e}");
            }
            self.hook = Some(HookStatus {
                at: now_unix(),
                ok: result.is_ok(),
                message: result.unwrap_or_else(|e| e),
            });
        }
        let _ = self.moves.try_send(MoveEvent::Done);
        Ok(())
    }

    /// UCI is what survives a reboot: when it disagrees with the prefix
    /// roadie is in (someone edited it, or an earlier apply was cut short),
    /// apply the current prefix again.
    ///
    /// When that fails for an address, it is not retried for the same
    /// address (each try reloads the network) until the settings change.
    async fn ensure_uci(&mut self) {
        let want = router_address(self.settings.address, self.current);
        if self.uci_ensure_failed == Some(want) {
            return;
        }
        let cfg = self.settings.openwrt.clone();
        let found = uci::Uci { cfg: &cfg }
            .network()
            .await
            .and_then(|n| uci::lan_addresses(&n, &cfg.network_section));
        match found {
            Ok(addrs) if addrs.iter().any(|a| a.addr() == want.addr()) => {}
            Ok(addrs) => {
                let have: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                log::warn!(
                    "UCI network.{} has {}, but the LAN is at {want}: applying it again",
                    cfg.network_section,
                    have.join(" ")
                );
                if let Err(e) = self.apply_uci(self.current, want).await {
                    log::error!("{e}; not retried until the config changes");
                    self.problem = Some(e);
                    self.uci_ensure_failed = Some(want);
                }
            }
            Err(e) => {
                log::warn!("{e}");
                self.problem = Some(e);
            }
        }
    }

    /// Move the LAN in UCI (network + dhcp), reload network and dnsmasq, and
    /// wait for the kernel to show `address` on the LAN interface. When it
    /// does not within `apply_timeout_ms`, undo the UCI changes (and reload
    /// again), and say so.
    async fn apply_uci(&mut self, from: Ipv4Net, address: Ipv4Net) -> Result<(), String> {
        let cfg = self.settings.openwrt.clone();
        let home = self.settings.home();
        let interface = self.settings.lan.interface.clone();
        let uci = uci::Uci { cfg: &cfg };
        let started = Instant::now();
        // Users' uncommitted network/dhcp changes stay out of roadie's reads,
        // commits and reloads (put back when `aside` is dropped).
        let aside = uci::Aside::take(&cfg, &["network", "dhcp"])
            .map_err(|e| self.apply_failed(format!("UCI: {e}; nothing changed"), false))?;
        let network = uci.network().await?;
        let dhcp = uci.dhcp().await?;
        let changes = uci::plan(&network, &cfg.network_section, &dhcp, from, home, address)?;
        let keys: Vec<&str> = changes.list.iter().map(|c| c.key.as_str()).collect();
        let what = if keys.is_empty() {
            "no UCI change needed".to_string()
        } else {
            format!("changed {}", keys.join(", "))
        };
        if !changes.is_empty() {
            if let Err(e) = uci.write(&changes, false).await {
                // A commit may have gone through before another failed: put
                // back what may have been written.
                let message = match uci.write(&changes, true).await {
                    Ok(()) => format!("UCI: {e}; nothing changed"),
                    Err(undo) => format!(
                        "UCI: {e}; undoing failed too ({undo}); check `uci show network.{}` and `uci show dhcp`",
                        cfg.network_section
                    ),
                };
                return Err(self.apply_failed(message, false));
            }
            log::info!("UCI: {what}");
        }
        let timeout = std::time::Duration::from_millis(cfg.apply_timeout_ms);
        let reloaded = uci.reload().await;
        drop(aside);
        let why = match reloaded {
            Err(e) => e,
            Ok(()) => match self.wait_address(&interface, address, timeout).await {
                Wait::Appeared => {
                    let message = format!(
                        "UCI: {what}; {address} up on {} after {} ms",
                        self.label(),
                        started.elapsed().as_millis()
                    );
                    log::info!("{message}");
                    self.apply = Some(ApplyStatus {
                        at: now_unix(),
                        ok: true,
                        reverted: false,
                        message,
                    });
                    return Ok(());
                }
                Wait::TimedOut => format!(
                    "{address} did not appear on {} within {} ms of the network reload",
                    self.label(),
                    cfg.apply_timeout_ms
                ),
                Wait::Stopped => "roadie is stopping".to_string(),
            },
        };
        let undo = if changes.is_empty() {
            Ok(())
        } else {
            match uci::Aside::take(&cfg, &["network", "dhcp"]) {
                Err(e) => Err(e),
                Ok(_aside) => match uci.write(&changes, true).await {
                    Ok(()) => uci.reload().await,
                    Err(e) => Err(e),
                },
            }
        };
        let message = match (&undo, changes.is_empty()) {
            (Ok(()), true) => format!("UCI: {why}"),
            (Ok(()), false) => {
                format!("UCI: {why}; reverted the UCI changes ({})", keys.join(", "))
            }
            (Err(e), _) => format!(
                "UCI: {why}; reverting the UCI changes failed too ({e}); check `uci show network.{}` and `uci show dhcp`",
                cfg.network_section
            ),
        };
        Err(self.apply_failed(message, undo.is_ok() && !changes.is_empty()))
    }

    /// Record a failed UCI apply (log, `lan.problem`, `lan.apply`); returns the message.
    fn apply_failed(&mut self, message: String, reverted: bool) -> String {
        log::error!("{message}");
        self.problem = Some(message.clone());
        self.apply = Some(ApplyStatus {
            at: now_unix(),
            ok: false,
            reverted,
            message: message.clone(),
        });
        message
    }

    /// Waits for the kernel (as netwatch sees it) to show `address` on
    /// `interface` (as configured: a netifd name is resolved in each
    /// snapshot). Uses its own receiver, so the main loop still sees every
    /// change.
    async fn wait_address(
        &self,
        interface: &str,
        address: Ipv4Net,
        timeout: std::time::Duration,
    ) -> Wait {
        let mut rx = self.net.clone();
        let has = |s: &NetState| {
            s.device(interface)
                .and_then(|d| s.link(d))
                .is_some_and(|l| l.addrs.contains(&address))
        };
        tokio::select! {
            r = tokio::time::timeout(timeout, rx.wait_for(has)) => match r {
                Ok(Ok(_)) => Wait::Appeared,
                // Netwatch gone (shutting down) or deadline passed.
                Ok(Err(_)) => Wait::Stopped,
                Err(_) => Wait::TimedOut,
            },
            _ = self.cancel.cancelled() => Wait::Stopped,
        }
    }

    async fn readdress(&mut self, prefix: Option<Ipv4Net>) -> Result<Value, String> {
        let from = self.current;
        match prefix {
            None => self.evaluate().await,
            Some(p) => {
                let (uplinks, others) = self.view();
                plan::check_forced(p, &self.inputs(&uplinks, &others))?;
                if p != self.current {
                    let r = self
                        .move_to(p, &format!("forced by readdress to {p}"))
                        .await;
                    self.publish();
                    r?;
                }
            }
        }
        Ok(json!({
            "changed": self.current != from,
            "from": from.to_string(),
            "to": self.current.to_string(),
            "address": router_address(self.settings.address, self.current).to_string(),
            "problem": self.problem,
        }))
    }
}
