//! Moving the router's LAN address over netlink. Safe to repeat: an address
//! already in place is replaced in place, one already gone counts as removed.

use crate::netlink::Socket;
use ipnet::Ipv4Net;

/// What an apply did, for logs and tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: bool,
    pub removed: Vec<Ipv4Net>,
}

/// Put `address` (router address with length) on `interface` and remove every
/// other IPv4 address of that interface that lies in one of `old` prefixes.
pub async fn apply(
    nl: &mut Socket,
    interface: &str,
    address: Ipv4Net,
    old: &[Ipv4Net],
) -> Result<Applied, String> {
    let index = link_index(nl, interface).await?;
    let current = addresses(nl, index)
        .await
        .map_err(|e| format!("cannot read addresses of {interface}: {e}"))?;
    let mut applied = Applied::default();
    if !current.contains(&address) {
        nl.add_address(index, address)
            .await
            .map_err(|e| format!("cannot add {address} to {interface}: {e}"))?;
        applied.added = true;
    }
    for net in current {
        if net.addr() == address.addr() || !old.iter().any(|o| o.contains(&net.addr())) {
            continue;
        }
        match nl.del_address(index, net).await {
            Ok(()) => applied.removed.push(net),
            // Already gone (someone else removed it): that is what we wanted.
            Err(e) if matches!(e.errno(), Some(libc::EADDRNOTAVAIL | libc::ENOENT)) => {}
            Err(e) => return Err(format!("cannot remove {net} from {interface}: {e}")),
        }
    }
    Ok(applied)
}

/// IPv4 addresses currently on `interface`.
pub async fn interface_addresses(nl: &mut Socket, interface: &str) -> Result<Vec<Ipv4Net>, String> {
    let index = link_index(nl, interface).await?;
    addresses(nl, index)
        .await
        .map_err(|e| format!("cannot read addresses of {interface}: {e}"))
}

async fn link_index(nl: &mut Socket, interface: &str) -> Result<u32, String> {
    match nl.link(interface).await {
        Ok(Some(link)) => Ok(link.index),
        Ok(None) => Err(format!("interface {interface} not found")),
        Err(e) => Err(format!("interface {interface} not found ({e})")),
    }
}

async fn addresses(nl: &mut Socket, index: u32) -> Result<Vec<Ipv4Net>, crate::netlink::Error> {
    Ok(nl
        .addresses()
        .await?
        .into_iter()
        .filter(|a| a.index == index)
        .map(|a| a.net)
        .collect())
}
