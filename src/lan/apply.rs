//! Moving the router's LAN address with rtnetlink. Safe to repeat: an address
//! already in place is replaced in place, one already gone counts as removed.

use futures_util::stream::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::Handle;
use rtnetlink::packet_route::address::AddressMessage;
use std::net::IpAddr;

/// What an apply did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: bool,
    pub removed: Vec<Ipv4Net>,
}

/// Put `address` (router address with length) on `interface` and remove every
/// other IPv4 address of that interface that lies in one of `old` prefixes.
pub async fn apply(
    handle: &Handle,
    interface: &str,
    address: Ipv4Net,
    old: &[Ipv4Net],
) -> Result<Applied, String> {
    let index = link_index(handle, interface).await?;
    let current = addresses(handle, index)
        .await
        .map_err(|e| format!("cannot read addresses of {interface}: {e}"))?;
    let mut applied = Applied::default();
    if !current.iter().any(|(net, _)| *net == address) {
        handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(|e| format!("cannot add {address} to {interface}: {e}"))?;
        applied.added = true;
    }
    for (net, msg) in current {
        if net.addr() == address.addr() || !old.iter().any(|o| o.contains(&net.addr())) {
            continue;
        }
        match handle.address().del(msg).execute().await {
            Ok(()) => applied.removed.push(net),
            // Already gone (someone else removed it): that is what we wanted.
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -libc::EADDRNOTAVAIL || e.raw_code() == -libc::ENOENT => {}
            Err(e) => return Err(format!("cannot remove {net} from {interface}: {e}")),
        }
    }
    Ok(applied)
}

/// IPv4 addresses currently on `interface`.
pub async fn interface_addresses(handle: &Handle, interface: &str) -> Result<Vec<Ipv4Net>, String> {
    let index = link_index(handle, interface).await?;
    let list = addresses(handle, index)
        .await
        .map_err(|e| format!("cannot read addresses of {interface}: {e}"))?;
    Ok(list.into_iter().map(|(n, _)| n).collect())
}

async fn link_index(handle: &Handle, interface: &str) -> Result<u32, String> {
    let mut links = handle
        .link()
        .get()
        .match_name(interface.to_string())
        .execute();
    match links.try_next().await {
        Ok(Some(link)) => Ok(link.header.index),
        Ok(None) => Err(format!("interface {interface} not found")),
        Err(e) => Err(format!("interface {interface} not found ({e})")),
    }
}

async fn addresses(
    handle: &Handle,
    index: u32,
) -> Result<Vec<(Ipv4Net, AddressMessage)>, rtnetlink::Error> {
    let mut out = Vec::new();
    let mut stream = handle
        .address()
        .get()
        .set_link_index_filter(index)
        .execute();
    while let Some(msg) = stream.try_next().await? {
        if msg.header.index != index {
            continue;
        }
        let addr = crate::netwatch::ipv4_of(&msg);
        if let Some(net) = addr.and_then(|a| Ipv4Net::new(a, msg.header.prefix_len).ok()) {
            out.push((net, msg));
        }
    }
    Ok(out)
}
