//! The kernel side of the watcher: dumps, multicast events, re-dumps, over
//! roadie's own small netlink client (crate::netlink).

use super::{LinkState, NetState, RouteState};
use crate::netlink::{self, Event, Socket};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Periodic re-dump: events are hints, the dump is the truth.
const REDUMP_EVERY: Duration = Duration::from_secs(60);

/// Read links, IPv4 addresses and main-table unicast IPv4 routes.
pub async fn dump(nl: &mut Socket) -> Result<NetState, netlink::Error> {
    let mut links: Vec<LinkState> = nl
        .links()
        .await?
        .into_iter()
        .map(|l| LinkState {
            index: l.index,
            name: l.name,
            up: l.up,
            addrs: Vec::new(),
        })
        .collect();
    for a in nl.addresses().await? {
        if let Some(link) = links.iter_mut().find(|l| l.index == a.index) {
            link.addrs.push(a.net);
        }
    }
    let routes = nl
        .routes()
        .await?
        .into_iter()
        .filter(|r| r.is_main_unicast())
        .map(|r| RouteState {
            dst: r.dst,
            gateway: r.gateway,
            oif: r.oif,
        })
        .collect();
    Ok(NetState {
        links,
        routes,
        netifd: Vec::new(),
    })
}

/// Watch the kernel until cancelled, publishing every change of [`NetState`].
/// Any error (including a receive-buffer overrun, which closes the socket)
/// leads to a fresh connection and a full re-dump.
pub async fn run(tx: watch::Sender<NetState>, cancel: CancellationToken) {
    let mut failures = 0u32;
    while !cancel.is_cancelled() {
        match session(&tx, &cancel).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                log::warn!("netlink: {e}; re-reading the kernel state");
            }
        }
        // A short pause so a persistent failure does not spin.
        let pause = Duration::from_millis(100 * u64::from(failures.min(50)));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One netlink connection: dump, then re-dump on each burst of events and on a timer.
/// Returns Ok when cancelled; an error makes the caller reconnect.
async fn session(tx: &watch::Sender<NetState>, cancel: &CancellationToken) -> Result<(), String> {
    let mut events = Socket::open_events(netlink::GROUPS_LINK_IPV4)
        .map_err(|e| format!("cannot open netlink socket: {e}"))?;
    let mut nl = Socket::open().map_err(|e| format!("cannot open netlink socket: {e}"))?;
    let mut timer = tokio::time::interval(REDUMP_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let state = dump(&mut nl)
            .await
            .map_err(|e| format!("dump failed: {e}"))?;
        // Only the kernel's part: crate::netifd writes `netifd`.
        tx.send_if_modified(|old| {
            let changed = old.links != state.links || old.routes != state.routes;
            if changed {
                log::debug!("netlink: state changed");
                old.links = state.links;
                old.routes = state.routes;
            }
            changed
        });
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = timer.tick() => {}
            ev = events.event() => {
                match ev.map_err(|e| format!("event socket: {e}"))? {
                    // The kernel dropped events (receive buffer full): the
                    // re-dump below is exactly the resynchronisation needed.
                    Event::Overrun => {
                        log::warn!("netlink: receive buffer overrun; re-reading the kernel state");
                    }
                    Event::Changed => {}
                }
                // Drain what is already queued so a burst costs one dump.
                while events.pending() {
                    if events.event().await.map_err(|e| format!("event socket: {e}"))? == Event::Overrun {
                        log::warn!("netlink: receive buffer overrun; re-reading the kernel state");
                    }
                }
            }
        }
    }
}
