//! The rtnetlink side of the watcher: dumps, multicast events, re-dumps.

use super::{LinkState, NetState, RouteState};
use futures_util::FutureExt;
use futures_util::stream::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteType};
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Periodic re-dump: events are hints, the dump is the truth.
const REDUMP_EVERY: Duration = Duration::from_secs(60);
const RT_TABLE_MAIN: u32 = 254;

/// The interface's own IPv4 address in an address message: IFA_LOCAL, which
/// differs from IFA_ADDRESS on point-to-point links, else IFA_ADDRESS.
pub fn ipv4_of(msg: &AddressMessage) -> Option<Ipv4Addr> {
    let find = |local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(v4)) if local => Some(*v4),
            AddressAttribute::Address(IpAddr::V4(v4)) if !local => Some(*v4),
            _ => None,
        })
    };
    find(true).or_else(|| find(false))
}

/// Read links, IPv4 addresses and main-table unicast IPv4 routes.
pub async fn dump(handle: &Handle) -> Result<NetState, rtnetlink::Error> {
    let mut links = Vec::new();
    let mut stream = handle.link().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let name = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        let flags = msg.header.flags;
        links.push(LinkState {
            index: msg.header.index,
            name: name.unwrap_or_else(|| format!("if{}", msg.header.index)),
            up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
            addrs: Vec::new(),
        });
    }
    let mut stream = handle.address().get().execute();
    while let Some(msg) = stream.try_next().await? {
        let addr = ipv4_of(&msg);
        let (Some(addr), Some(link)) =
            (addr, links.iter_mut().find(|l| l.index == msg.header.index))
        else {
            continue;
        };
        if let Ok(net) = Ipv4Net::new(addr, msg.header.prefix_len) {
            link.addrs.push(net);
        }
    }
    let mut routes = Vec::new();
    let mut stream = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = stream.try_next().await? {
        let table = msg
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(msg.header.table));
        if table != RT_TABLE_MAIN || msg.header.kind != RouteType::Unicast {
            continue;
        }
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut gateway = None;
        let mut oif = None;
        for a in &msg.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        if let Ok(dst) = Ipv4Net::new(dst, msg.header.destination_prefix_length) {
            routes.push(RouteState { dst, gateway, oif });
        }
    }
    Ok(NetState { links, routes })
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
/// Returns Ok when the event stream ended (socket closed): the caller reconnects.
async fn session(tx: &watch::Sender<NetState>, cancel: &CancellationToken) -> Result<(), String> {
    let (conn, handle, mut events) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
    ])
    .map_err(|e| format!("cannot open netlink socket: {e}"))?;
    let conn_task = tokio::spawn(conn);
    let result = async {
        let mut timer = tokio::time::interval(REDUMP_EVERY);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let state = dump(&handle)
                .await
                .map_err(|e| format!("dump failed: {e}"))?;
            tx.send_if_modified(|old| {
                let changed = *old != state;
                if changed {
                    log::debug!("netlink: state changed");
                    *old = state;
                }
                changed
            });
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = timer.tick() => {}
                ev = events.next() => {
                    match ev {
                        None => return Err("event socket closed".to_string()),
                        // The kernel dropped events (receive buffer full): the
                        // re-dump below is exactly the resynchronisation needed.
                        Some((msg, _)) if matches!(msg.payload, NetlinkPayload::Overrun(_)) => {
                            log::warn!("netlink: receive buffer overrun; re-reading the kernel state");
                        }
                        Some(_) => {}
                    }
                    // Drain what is already queued so a burst costs one dump.
                    while let Some(Some(_)) = events.next().now_or_never() {}
                }
            }
        }
    }
    .await;
    conn_task.abort();
    result
}
