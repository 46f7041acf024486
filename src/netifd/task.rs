//! The OS side of netifd names: `ubus call network.interface.<name> status`,
//! and the task that keeps [`NetState::netifd`] current: it resolves again on
//! a slow timer and whenever netlink reports a link change.

use super::{Answer, Iface};
use crate::netwatch::NetState;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the names are resolved without a netlink hint: netifd can move
/// an interface to another device without any link change (a config edit
/// and `network reload`).
pub const RESOLVE_EVERY: Duration = Duration::from_secs(5);

/// One ubus call; a wedged ubusd must not stall following the others.
const UBUS_TIMEOUT: Duration = Duration::from_secs(3);

/// What the task follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub ubus: PathBuf,
    /// netifd names without the mark, sorted.
    pub names: Vec<String>,
}

/// `ubus call network.interface.<name> status`.
pub async fn status(ubus: &Path, name: &str) -> Answer {
    let object = format!("network.interface.{name}");
    let args = ["call", object.as_str(), "status"];
    match crate::command::output(ubus, &args, UBUS_TIMEOUT).await {
        Ok(out) => super::classify(
            out.status.code(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
            crate::command::failure(ubus, &args, &out),
        ),
        Err(e) => Answer::Failed(e),
    }
}

/// Resolves every name once; `prev` is what was known before (kept for a
/// name whose ubus call fails).
pub async fn resolve_all(ubus: &Path, names: &[String], prev: &[Iface]) -> Vec<Iface> {
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let answer = status(ubus, name).await;
        out.push(super::next(
            name,
            prev.iter().find(|p| &p.name == name),
            answer,
        ));
    }
    out
}

/// The daemon's handle: change what is followed (reload).
pub struct Resolver {
    settings: watch::Sender<Settings>,
}

impl Resolver {
    /// The resolver and its task (spawn it). `net` is the snapshot's sender,
    /// shared with netwatch; this task writes only `netifd`.
    pub fn start(
        settings: Settings,
        net: watch::Sender<NetState>,
        cancel: CancellationToken,
    ) -> (Resolver, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = watch::channel(settings);
        (Resolver { settings: tx }, run(rx, net, cancel))
    }

    pub fn reconfigure(&self, settings: Settings) {
        self.settings.send_if_modified(|s| {
            let changed = *s != settings;
            *s = settings;
            changed
        });
    }
}

/// Logs what changed from `old` to `new` (see [`super::changes`]).
pub fn log_changes(old: &[Iface], new: &[Iface]) {
    for n in super::changes(old, new) {
        if n.warn {
            log::warn!("{}", n.text);
        } else {
            log::info!("{}", n.text);
        }
    }
}

/// Publishes `new` as the snapshot's netifd part, logging what changed.
pub fn publish(net: &watch::Sender<NetState>, new: Vec<Iface>) {
    let old = net.borrow().netifd.clone();
    log_changes(&old, &new);
    net.send_if_modified(|s| {
        let changed = s.netifd != new;
        if changed {
            s.netifd = new;
        }
        changed
    });
}

async fn run(
    mut settings: watch::Receiver<Settings>,
    net: watch::Sender<NetState>,
    cancel: CancellationToken,
) {
    let mut seen = net.subscribe();
    let mut last = seen.borrow_and_update().clone();
    let mut timer = tokio::time::interval(RESOLVE_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The daemon resolved once before starting the tasks.
    timer.tick().await;
    let mut due = false;
    loop {
        if due {
            due = false;
            let s = settings.borrow_and_update().clone();
            let prev = net.borrow().netifd.clone();
            let new = tokio::select! {
                _ = cancel.cancelled() => return,
                new = resolve_all(&s.ubus, &s.names, &prev) => new,
            };
            publish(&net, new);
        }
        let following = !settings.borrow().names.is_empty();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = timer.tick(), if following => due = true,
            changed = seen.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = seen.borrow_and_update().clone();
                if following && super::links_changed(&last, &now) {
                    due = true;
                }
                last = now;
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                due = true;
            }
        }
    }
}
