//! A small rtnetlink client with exactly what roadie needs: dump links, IPv4
//! addresses and IPv4 routes, add and remove an IPv4 address, look a link up
//! by name, and wait for multicast change events; and, on a netfilter
//! socket, whether an nftables table exists and when any table changed
//! (crate::absorb watches its own table so, without running `nft`).
//!
//! It replaces the rtnetlink crate family, whose message types cover every
//! link kind, tc, neighbours and more (about 350 KB of a MIPS binary; see
//! docs/openwrt.md). Building and parsing messages is pure and table-tested
//! below; [`Socket`] is the thin layer around the netlink socket.
//!
//! Netlink headers are in host byte order (big-endian on mips), addresses in
//! network order.

use ipnet::Ipv4Net;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

// linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
pub const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const FRA_DST: u16 = 1;
const FRA_IIFNAME: u16 = 3;
const FRA_PRIORITY: u16 = 6;
/// fib_rule_hdr.action: drop, as `ip rule add ... blackhole` does.
const FR_ACT_BLACKHOLE: u8 = 6;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const RTN_UNICAST: u8 = 1;
pub const RT_TABLE_MAIN: u32 = 254;
const AF_INET: u8 = libc::AF_INET as u8;
const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
/// Multicast groups (the legacy bitmask form): links, IPv4 addresses, IPv4 routes.
pub const GROUPS_LINK_IPV4: u32 = 0x1 | 0x10 | 0x40;
// linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWTABLE: u16 = NFNL_SUBSYS_NFTABLES << 8;
const NFT_MSG_GETTABLE: u16 = NFNL_SUBSYS_NFTABLES << 8 | 1;
const NFTA_TABLE_NAME: u16 = 1;
/// nftables' address family of netdev tables.
pub const NFPROTO_NETDEV: u8 = 5;
/// Multicast group NFNLGRP_NFTABLES (7), as a legacy bitmask: every change
/// to any nftables table, chain or rule of the namespace.
pub const GROUPS_NFTABLES: u32 = 1 << (7 - 1);
/// Largest datagram read at once. The kernel fills a dump's datagrams to at
/// most the size the reader asks for (and at least about 8 KiB), and a
/// notification too big is still a notification (`event`). Not 64 KiB:
/// under qemu-mipsel each socket's buffer was resident in full (4 sockets,
/// 256 KiB of the idle daemon's 0.57 MiB of anonymous memory).
const RECV_BUF: usize = 16 * 1024;
/// A dump the kernel reports as interrupted (it changed meanwhile) is redone.
const DUMP_TRIES: u32 = 5;

/// A link: index, name, and whether it is up with carrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_UP and IFF_RUNNING (administratively up, carrier present).
    pub up: bool,
    /// The bridge (or bond) this link is a port of.
    pub master: Option<u32>,
    /// The link's Ethernet address (none for links without one, like lo's zeros or a tun).
    pub mac: Option<[u8; 6]>,
}

/// An IPv4 policy rule that drops what matches: traffic arriving on
/// `iif` for `dst` (see [`Socket::add_blackhole_rule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub priority: u32,
    pub iif: Option<String>,
    pub dst: Option<Ipv4Net>,
    pub blackhole: bool,
}

/// An IPv4 address on a link (the interface's own address, with its length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub net: Ipv4Net,
}

/// An IPv4 route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub table: u32,
    /// RTN_UNICAST and friends.
    pub kind: u8,
}

impl Route {
    /// A unicast route of the main table.
    pub fn is_main_unicast(&self) -> bool {
        self.table == RT_TABLE_MAIN && self.kind == RTN_UNICAST
    }
}

#[derive(Debug)]
pub enum Error {
    Io(io::Error),
    /// The kernel refused: a negative errno from NLMSG_ERROR.
    Kernel(i32),
    /// A reply that does not parse.
    Malformed(String),
}

impl Error {
    /// The errno of a kernel refusal (positive), if this is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel(e) => Some(-e),
            Error::Io(e) => e.raw_os_error(),
            Error::Malformed(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "{e}"),
            Error::Kernel(e) => write!(f, "{}", io::Error::from_raw_os_error(-e)),
            Error::Malformed(m) => write!(f, "malformed netlink reply: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

// ---------------------------------------------------------------------------
// Building messages (pure)

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// One request: header, fixed body, attributes. `len` is patched on `finish`.
struct Builder(Vec<u8>);

impl Builder {
    fn new(kind: u16, flags: u16, seq: u32) -> Builder {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        Builder(b)
    }

    fn bytes(mut self, data: &[u8]) -> Builder {
        self.0.extend_from_slice(data);
        self.0.resize(align(self.0.len()), 0);
        self
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Builder {
        let len = (4 + data.len()) as u16;
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.bytes(data)
    }

    fn finish(mut self) -> Vec<u8> {
        let len = (self.0.len() as u32).to_ne_bytes();
        self.0[..4].copy_from_slice(&len);
        self.0
    }
}

/// nft's `list table FAMILY NAME` as a request: struct nfgenmsg (family,
/// version 0, resource id 0) and the table's name.
pub fn nft_get_table_request(seq: u32, family: u8, name: &str) -> Vec<u8> {
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    Builder::new(NFT_MSG_GETTABLE, NLM_F_REQUEST, seq)
        .bytes(&[family, 0, 0, 0])
        .attr(NFTA_TABLE_NAME, &z)
        .finish()
}

/// struct ifinfomsg
fn ifinfomsg(index: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[0] = AF_UNSPEC;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// struct ifaddrmsg
fn ifaddrmsg(prefix_len: u8, index: u32) -> [u8; 8] {
    let mut m = [0u8; 8];
    m[0] = AF_INET;
    m[1] = prefix_len;
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m
}

/// struct rtmsg for an IPv4 dump.
fn rtmsg() -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0] = AF_INET;
    m
}

pub fn dump_links_request(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&ifinfomsg(0))
        .finish()
}

pub fn link_by_name_request(seq: u32, name: &str) -> Vec<u8> {
    let mut z = name.as_bytes().to_vec();
    z.push(0);
    Builder::new(RTM_GETLINK, NLM_F_REQUEST, seq)
        .bytes(&ifinfomsg(0))
        .attr(IFLA_IFNAME, &z)
        .finish()
}

pub fn dump_addrs_request(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&ifaddrmsg(0, 0))
        .finish()
}

pub fn dump_routes_request(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&rtmsg())
        .finish()
}

/// RTM_NEWADDR with create + replace: safe to repeat.
pub fn add_addr_request(seq: u32, index: u32, net: Ipv4Net) -> Vec<u8> {
    let mut b = Builder::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
    )
    .bytes(&ifaddrmsg(net.prefix_len(), index))
    .attr(IFA_LOCAL, &net.addr().octets())
    .attr(IFA_ADDRESS, &net.addr().octets());
    if net.prefix_len() < 31 {
        b = b.attr(IFA_BROADCAST, &net.broadcast().octets());
    }
    b.finish()
}

pub fn del_addr_request(seq: u32, index: u32, net: Ipv4Net) -> Vec<u8> {
    Builder::new(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq)
        .bytes(&ifaddrmsg(net.prefix_len(), index))
        .attr(IFA_LOCAL, &net.addr().octets())
        .attr(IFA_ADDRESS, &net.addr().octets())
        .finish()
}

// ---------------------------------------------------------------------------
// Parsing replies (pure)

/// One netlink message of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub body: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Split a datagram into messages.
pub fn messages(buf: &[u8]) -> Result<Vec<Msg<'_>>, Error> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let bad = |what: &str| Error::Malformed(format!("{what} at byte {at}"));
        let len = u32_at(buf, at).ok_or_else(|| bad("header"))? as usize;
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return Err(bad("bad message length"));
        }
        out.push(Msg {
            kind: u16_at(buf, at + 4).ok_or_else(|| bad("header"))?,
            flags: u16_at(buf, at + 6).ok_or_else(|| bad("header"))?,
            seq: u32_at(buf, at + 8).ok_or_else(|| bad("header"))?,
            body: &buf[at + NLMSG_HDRLEN..at + len],
        });
        at += align(len);
    }
    Ok(out)
}

/// Attributes after a fixed-size body: (type, data).
fn attrs(body: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = fixed;
    while at + 4 <= body.len() {
        let (Some(len), Some(kind)) = (u16_at(body, at), u16_at(body, at + 2)) else {
            break;
        };
        let len = len as usize;
        if len < 4 || at + len > body.len() {
            break;
        }
        // The top bits are NLA_F_NESTED / NLA_F_NET_BYTEORDER.
        out.push((kind & 0x3fff, &body[at + 4..at + len]));
        at += align(len);
    }
    out
}

fn ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    let o: [u8; 4] = data.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

/// The errno of an NLMSG_ERROR (0 is an acknowledgement).
fn error_code(body: &[u8]) -> Result<i32, Error> {
    let e = u32_at(body, 0).ok_or_else(|| Error::Malformed("short NLMSG_ERROR".into()))?;
    Ok(e as i32)
}

pub fn parse_link(body: &[u8]) -> Option<Link> {
    let index = u32_at(body, 4)?;
    let flags = u32_at(body, 8)?;
    let name = attrs(body, 16).into_iter().find_map(|(k, d)| {
        (k == IFLA_IFNAME).then(|| {
            let d = d.split(|b| *b == 0).next().unwrap_or(d);
            String::from_utf8_lossy(d).into_owned()
        })
    });
    let attrs = attrs(body, 16);
    let master = attrs
        .iter()
        .find(|(k, d)| *k == IFLA_MASTER && d.len() == 4)
        .and_then(|(_, d)| u32_at(d, 0));
    let mac = attrs
        .iter()
        .find(|(k, _)| *k == IFLA_ADDRESS)
        .and_then(|(_, d)| <[u8; 6]>::try_from(*d).ok())
        .filter(|m| *m != [0; 6]);
    Some(Link {
        index,
        name: name.unwrap_or_else(|| format!("if{index}")),
        up: flags & IFF_UP != 0 && flags & IFF_RUNNING != 0,
        master,
        mac,
    })
}

/// struct fib_rule_hdr for IPv4 with `dst_len` and `action`.
fn fib_rule_hdr(dst_len: u8, action: u8) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[0] = AF_INET;
    m[1] = dst_len;
    m[7] = action;
    m
}

fn rule_request(kind: u16, flags: u16, seq: u32, rule: &Rule) -> Vec<u8> {
    let dst_len = rule.dst.map_or(0, |d| d.prefix_len());
    let action = if rule.blackhole { FR_ACT_BLACKHOLE } else { 0 };
    let mut b = Builder::new(kind, flags, seq)
        .bytes(&fib_rule_hdr(dst_len, action))
        .attr(FRA_PRIORITY, &rule.priority.to_ne_bytes());
    if let Some(d) = rule.dst {
        b = b.attr(FRA_DST, &d.network().octets());
    }
    if let Some(i) = &rule.iif {
        let mut z = i.as_bytes().to_vec();
        z.push(0);
        b = b.attr(FRA_IIFNAME, &z);
    }
    b.finish()
}

/// RTM_NEWRULE that fails with EEXIST for an identical rule (so that
/// repeating it adds no duplicate).
pub fn add_rule_request(seq: u32, rule: &Rule) -> Vec<u8> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    rule_request(RTM_NEWRULE, flags, seq, rule)
}

pub fn del_rule_request(seq: u32, rule: &Rule) -> Vec<u8> {
    rule_request(RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, seq, rule)
}

pub fn dump_rules_request(seq: u32) -> Vec<u8> {
    Builder::new(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&fib_rule_hdr(0, 0))
        .finish()
}

pub fn parse_rule(body: &[u8]) -> Option<Rule> {
    if *body.first()? != AF_INET {
        return None;
    }
    let dst_len = *body.get(1)?;
    let action = *body.get(7)?;
    let mut rule = Rule {
        priority: 0,
        iif: None,
        dst: None,
        blackhole: action == FR_ACT_BLACKHOLE,
    };
    for (k, d) in attrs(body, 12) {
        match k {
            FRA_PRIORITY => rule.priority = u32_at(d, 0)?,
            FRA_DST => rule.dst = Some(Ipv4Net::new(ipv4(d)?, dst_len).ok()?),
            FRA_IIFNAME => {
                let d = d.split(|b| *b == 0).next().unwrap_or(d);
                rule.iif = Some(String::from_utf8_lossy(d).into_owned());
            }
            _ => {}
        }
    }
    Some(rule)
}

/// RTM_NEWLINK that sets or clears IFF_UP only (`ip link set X up|down`).
pub fn set_link_up_request(seq: u32, index: u32, up: bool) -> Vec<u8> {
    let mut m = ifinfomsg(index);
    m[8..12].copy_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes());
    m[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    Builder::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq)
        .bytes(&m)
        .finish()
}

/// An IPv4 address message: IFA_LOCAL (which differs from IFA_ADDRESS on
/// point-to-point links), else IFA_ADDRESS.
pub fn parse_addr(body: &[u8]) -> Option<Addr> {
    if *body.first()? != AF_INET {
        return None;
    }
    let prefix_len = *body.get(1)?;
    let index = u32_at(body, 4)?;
    let attrs = attrs(body, 8);
    let find = |kind| {
        attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .and_then(|(_, d)| ipv4(d))
    };
    let addr = find(IFA_LOCAL).or_else(|| find(IFA_ADDRESS))?;
    Some(Addr {
        index,
        net: Ipv4Net::new(addr, prefix_len).ok()?,
    })
}

pub fn parse_route(body: &[u8]) -> Option<Route> {
    if *body.first()? != AF_INET {
        return None;
    }
    let dst_len = *body.get(1)?;
    let mut route = Route {
        dst: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, dst_len).ok()?,
        gateway: None,
        oif: None,
        table: u32::from(*body.get(4)?),
        kind: *body.get(7)?,
    };
    for (kind, data) in attrs(body, 12) {
        match kind {
            RTA_DST => route.dst = Ipv4Net::new(ipv4(data)?, dst_len).ok()?,
            RTA_GATEWAY => route.gateway = ipv4(data),
            RTA_OIF => route.oif = u32_at(data, 0),
            RTA_TABLE => route.table = u32_at(data, 0)?,
            _ => {}
        }
    }
    Some(route)
}

/// Where a reply stands after one datagram.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    More,
    Done,
    /// The dump is complete but the kernel's state changed while it ran.
    Interrupted,
}

/// Collect the bodies of messages answering `seq` (of type `want`) from one
/// datagram; Done at NLMSG_DONE or the acknowledgement.
fn collect(
    buf: &[u8],
    seq: u32,
    want: u16,
    out: &mut Vec<Vec<u8>>,
    interrupted: &mut bool,
) -> Result<Progress, Error> {
    for m in messages(buf)? {
        if m.seq != seq {
            continue; // a late answer to an earlier request
        }
        if m.flags & NLM_F_DUMP_INTR != 0 {
            *interrupted = true;
        }
        match m.kind {
            NLMSG_ERROR => {
                let code = error_code(m.body)?;
                return if code == 0 {
                    Ok(Progress::Done)
                } else {
                    Err(Error::Kernel(code))
                };
            }
            NLMSG_DONE => {
                return Ok(if *interrupted {
                    Progress::Interrupted
                } else {
                    Progress::Done
                });
            }
            k if k == want => {
                out.push(m.body.to_vec());
                if m.flags & NLM_F_MULTI == 0 {
                    return Ok(Progress::Done);
                }
            }
            _ => {}
        }
    }
    Ok(Progress::More)
}

// ---------------------------------------------------------------------------
// The socket

/// A NETLINK_ROUTE (or NETLINK_NETFILTER) socket. One request at a time
/// (`&mut self`).
pub struct Socket {
    fd: AsyncFd<OwnedFd>,
    seq: u32,
    buf: Vec<u8>,
}

/// What the event socket saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// One or more change notifications (their content does not matter:
    /// events are hints, the dump is the truth).
    Changed,
    /// The kernel dropped notifications (receive buffer full).
    Overrun,
}

impl Socket {
    /// A socket for requests.
    pub fn open() -> io::Result<Socket> {
        Socket::bind(libc::NETLINK_ROUTE, 0)
    }

    /// A socket that receives the change notifications of `groups`.
    pub fn open_events(groups: u32) -> io::Result<Socket> {
        Socket::bind(libc::NETLINK_ROUTE, groups)
    }

    /// A netfilter socket: requests, or with [`GROUPS_NFTABLES`] the
    /// nftables change notifications (both need CAP_NET_ADMIN).
    pub fn open_netfilter(groups: u32) -> io::Result<Socket> {
        Socket::bind(libc::NETLINK_NETFILTER, groups)
    }

    fn bind(protocol: libc::c_int, groups: u32) -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                protocol,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all-zero is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: sa is a valid sockaddr_nl of the given length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the OwnedFd keeps the descriptor open, and its as_raw_fd
        // returns the same one, for as long as the AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Socket {
            fd,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    async fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; all-zero (pid 0) is the kernel.
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                // SAFETY: msg and to are valid for the lengths given.
                let rc = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        msg.as_ptr().cast(),
                        msg.len(),
                        0,
                        (&to as *const libc::sockaddr_nl).cast(),
                        std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                    )
                };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            })
            .await
    }

    /// One datagram into `self.buf`; returns its length, which is more than
    /// the buffer's when the datagram did not fit.
    async fn recv_raw(&mut self) -> io::Result<usize> {
        let buf = &mut self.buf;
        let n = self
            .fd
            .async_io(Interest::READABLE, |fd| {
                // SAFETY: buf is valid for its length; MSG_TRUNC reports the
                // datagram's real length.
                let rc = unsafe {
                    libc::recv(
                        fd.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_TRUNC,
                    )
                };
                if rc < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(rc as usize)
                }
            })
            .await?;
        Ok(n)
    }

    /// One whole datagram into `self.buf`; returns its length.
    async fn recv(&mut self) -> io::Result<usize> {
        let n = self.recv_raw().await?;
        if n > self.buf.len() {
            return Err(io::Error::other(format!(
                "netlink datagram of {n} bytes truncated"
            )));
        }
        Ok(n)
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send a request made by `build(seq)` and collect the answer's bodies
    /// of type `want`; dumps interrupted by a change are redone.
    async fn request(
        &mut self,
        want: u16,
        build: impl Fn(u32) -> Vec<u8>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        for _ in 0..DUMP_TRIES {
            let seq = self.next_seq();
            self.send(&build(seq)).await?;
            let mut out = Vec::new();
            let mut interrupted = false;
            loop {
                let n = self.recv().await?;
                match collect(&self.buf[..n], seq, want, &mut out, &mut interrupted)? {
                    Progress::More => continue,
                    Progress::Done => return Ok(out),
                    Progress::Interrupted => break,
                }
            }
        }
        Err(Error::Malformed(format!(
            "dump interrupted {DUMP_TRIES} times in a row"
        )))
    }

    pub async fn links(&mut self) -> Result<Vec<Link>, Error> {
        let bodies = self.request(RTM_NEWLINK, dump_links_request).await?;
        Ok(bodies.iter().filter_map(|b| parse_link(b)).collect())
    }

    /// The link called `name`, or None when there is none.
    pub async fn link(&mut self, name: &str) -> Result<Option<Link>, Error> {
        match self
            .request(RTM_NEWLINK, |seq| link_by_name_request(seq, name))
            .await
        {
            Ok(bodies) => Ok(bodies.first().and_then(|b| parse_link(b))),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every IPv4 address of every link.
    pub async fn addresses(&mut self) -> Result<Vec<Addr>, Error> {
        let bodies = self.request(RTM_NEWADDR, dump_addrs_request).await?;
        Ok(bodies.iter().filter_map(|b| parse_addr(b)).collect())
    }

    /// Every IPv4 route of every table.
    pub async fn routes(&mut self) -> Result<Vec<Route>, Error> {
        let bodies = self.request(RTM_NEWROUTE, dump_routes_request).await?;
        Ok(bodies.iter().filter_map(|b| parse_route(b)).collect())
    }

    /// Add (or replace) an IPv4 address; safe to repeat.
    pub async fn add_address(&mut self, index: u32, net: Ipv4Net) -> Result<(), Error> {
        self.request(0, |seq| add_addr_request(seq, index, net))
            .await
            .map(drop)
    }

    pub async fn del_address(&mut self, index: u32, net: Ipv4Net) -> Result<(), Error> {
        self.request(0, |seq| del_addr_request(seq, index, net))
            .await
            .map(drop)
    }

    /// Set a link administratively up or down.
    pub async fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), Error> {
        self.request(0, |seq| set_link_up_request(seq, index, up))
            .await
            .map(drop)
    }

    /// Every IPv4 policy rule.
    pub async fn rules(&mut self) -> Result<Vec<Rule>, Error> {
        let bodies = self.request(RTM_NEWRULE, dump_rules_request).await?;
        Ok(bodies.iter().filter_map(|b| parse_rule(b)).collect())
    }

    /// Add `rule`; one already there counts as added (safe to repeat).
    pub async fn add_rule(&mut self, rule: &Rule) -> Result<(), Error> {
        match self.request(0, |seq| add_rule_request(seq, rule)).await {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Remove `rule`; one already gone counts as removed.
    pub async fn del_rule(&mut self, rule: &Rule) -> Result<(), Error> {
        match self.request(0, |seq| del_rule_request(seq, rule)).await {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Whether the nftables table `family` `name` exists (on a socket from
    /// [`Socket::open_netfilter`]).
    pub async fn nft_table_exists(&mut self, family: u8, name: &str) -> Result<bool, Error> {
        match self
            .request(NFT_MSG_NEWTABLE, |seq| {
                nft_get_table_request(seq, family, name)
            })
            .await
        {
            Ok(bodies) => Ok(!bodies.is_empty()),
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Wait for notifications (on a socket from [`Socket::open_events`]).
    pub async fn event(&mut self) -> Result<Event, Error> {
        match self.recv_raw().await {
            // Cut short, it still says that something changed.
            Ok(n) if n > self.buf.len() => Ok(Event::Changed),
            Ok(n) => {
                let overrun = messages(&self.buf[..n])?
                    .iter()
                    .any(|m| m.kind == NLMSG_OVERRUN);
                Ok(if overrun {
                    Event::Overrun
                } else {
                    Event::Changed
                })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Event::Overrun),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether another datagram is already queued (to drain a burst).
    pub fn pending(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: peeking one byte into a valid buffer, without blocking.
        let rc = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                b.as_mut_ptr().cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        rc >= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    /// A message as the kernel would send it.
    fn msg(kind: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut b = Builder::new(kind, flags, seq).bytes(body).finish();
        // Builder pads the body; the header length covers it, as the kernel's does.
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_ne_bytes());
        b
    }

    fn with_attrs(fixed: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = Builder(Vec::new()).bytes(fixed);
        for (k, d) in attrs {
            b = b.attr(*k, d);
        }
        b.0
    }

    fn header(b: &[u8]) -> (u32, u16, u16, u32) {
        (
            u32_at(b, 0).unwrap(),
            u16_at(b, 4).unwrap(),
            u16_at(b, 6).unwrap(),
            u32_at(b, 8).unwrap(),
        )
    }

    #[test]
    fn requests_are_laid_out_like_iproute2s() {
        let r = dump_links_request(7);
        assert_eq!(header(&r), (32, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 7));
        let r = dump_routes_request(8);
        assert_eq!(header(&r), (28, RTM_GETROUTE, 0x301, 8));
        assert_eq!(r[16], AF_INET);
        let r = add_addr_request(9, 3, net("10.9.8.1/24"));
        assert_eq!(header(&r), (48, RTM_NEWADDR, 0x505, 9));
        assert_eq!(&r[16..24], &ifaddrmsg(24, 3));
        let a = attrs(&r[16..], 8);
        assert_eq!(
            a,
            [
                (IFA_LOCAL, &[10, 9, 8, 1][..]),
                (IFA_ADDRESS, &[10, 9, 8, 1][..]),
                (IFA_BROADCAST, &[10, 9, 8, 255][..]),
            ]
        );
        // No broadcast on /31 and /32.
        let r = add_addr_request(1, 3, net("10.9.8.1/31"));
        assert_eq!(attrs(&r[16..], 8).len(), 2);
        let r = del_addr_request(10, 3, net("192.168.1.1/24"));
        assert_eq!(header(&r), (40, RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, 10));
        let r = link_by_name_request(11, "br-lan");
        assert_eq!(header(&r), (44, RTM_GETLINK, NLM_F_REQUEST, 11));
        assert_eq!(attrs(&r[16..], 16), [(IFLA_IFNAME, &b"br-lan\0"[..])]);
        // What `nft list table netdev roadie_wan` sends (strace of nft 1.0.6).
        let r = nft_get_table_request(12, NFPROTO_NETDEV, "roadie_wan");
        assert_eq!(header(&r), (36, 0x0a01, NLM_F_REQUEST, 12));
        assert_eq!(&r[16..20], &[5, 0, 0, 0]);
        assert_eq!(
            attrs(&r[16..], 4),
            [(NFTA_TABLE_NAME, &b"roadie_wan\0"[..])]
        );
    }

    #[test]
    fn rules_round_trip_and_link_flags() {
        let rule = Rule {
            priority: 97,
            iif: Some("br-lan".into()),
            dst: Some(net("192.168.1.1/32")),
            blackhole: true,
        };
        let add = add_rule_request(3, &rule);
        let (_, kind, flags, seq) = header(&add);
        assert_eq!((kind, seq), (RTM_NEWRULE, 3));
        assert_eq!(
            flags & NLM_F_EXCL,
            NLM_F_EXCL,
            "a repeat must not add a duplicate"
        );
        // The kernel echoes the same body in a dump.
        assert_eq!(parse_rule(&add[16..]), Some(rule.clone()));
        assert_eq!(parse_rule(&del_rule_request(4, &rule)[16..]), Some(rule));
        let any = Rule {
            priority: 0,
            iif: None,
            dst: None,
            blackhole: false,
        };
        assert_eq!(parse_rule(&add_rule_request(5, &any)[16..]), Some(any));

        let down = set_link_up_request(6, 9, false);
        assert_eq!(u32_at(&down[16..], 4), Some(9));
        assert_eq!(u32_at(&down[16..], 8), Some(0), "flags: IFF_UP cleared");
        assert_eq!(
            u32_at(&down[16..], 12),
            Some(IFF_UP),
            "change mask: IFF_UP only"
        );
        let up = set_link_up_request(7, 9, true);
        assert_eq!(u32_at(&up[16..], 8), Some(IFF_UP));
    }

    #[test]
    fn parses_links_addresses_routes() {
        let mut info = ifinfomsg(4);
        info[8..12].copy_from_slice(&(IFF_UP | IFF_RUNNING | 0x1000).to_ne_bytes());
        let body = with_attrs(&info, &[(IFLA_IFNAME, b"wan0\0"), (99, b"xyz")]);
        assert_eq!(
            parse_link(&body),
            Some(Link {
                index: 4,
                name: "wan0".into(),
                up: true,
                master: None,
                mac: None,
            })
        );
        // A bridge port: its master's index and its MAC; lo's zero MAC is none.
        let mac = [2, 0, 0, 0, 0, 7];
        let port = with_attrs(
            &ifinfomsg(8),
            &[
                (IFLA_IFNAME, b"lan1\0"),
                (IFLA_MASTER, &3u32.to_ne_bytes()),
                (IFLA_ADDRESS, &mac),
            ],
        );
        let l = parse_link(&port).unwrap();
        assert_eq!((l.master, l.mac), (Some(3), Some(mac)));
        let lo = with_attrs(&ifinfomsg(1), &[(IFLA_ADDRESS, &[0; 6])]);
        assert_eq!(parse_link(&lo).unwrap().mac, None);
        let mut down = ifinfomsg(5);
        down[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
        assert_eq!(
            parse_link(&down).map(|l| (l.name, l.up)),
            Some(("if5".into(), false))
        );

        // Point-to-point: IFA_LOCAL is ours, IFA_ADDRESS the peer.
        let body = with_attrs(
            &ifaddrmsg(32, 6),
            &[(IFA_ADDRESS, &[10, 0, 0, 2]), (IFA_LOCAL, &[10, 0, 0, 1])],
        );
        assert_eq!(
            parse_addr(&body),
            Some(Addr {
                index: 6,
                net: net("10.0.0.1/32")
            })
        );
        let body = with_attrs(&ifaddrmsg(24, 2), &[(IFA_ADDRESS, &[192, 168, 1, 1])]);
        assert_eq!(
            parse_addr(&body).map(|a| a.net),
            Some(net("192.168.1.1/24"))
        );
        let mut v6 = ifaddrmsg(64, 2);
        v6[0] = libc::AF_INET6 as u8;
        assert_eq!(parse_addr(&v6), None);

        // Default route via a gateway; RTA_TABLE wins over the header's table.
        let mut rt = rtmsg();
        rt[4] = 252;
        rt[7] = RTN_UNICAST;
        let body = with_attrs(
            &rt,
            &[
                (RTA_TABLE, &RT_TABLE_MAIN.to_ne_bytes()),
                (RTA_GATEWAY, &[10, 66, 0, 254]),
                (RTA_OIF, &3u32.to_ne_bytes()),
            ],
        );
        let r = parse_route(&body).unwrap();
        assert_eq!(r.dst, net("0.0.0.0/0"));
        assert_eq!(r.gateway, Some(Ipv4Addr::new(10, 66, 0, 254)));
        assert_eq!(r.oif, Some(3));
        assert!(r.is_main_unicast());
        let mut rt = rtmsg();
        rt[1] = 24;
        rt[4] = 255; // local table
        rt[7] = 2; // RTN_LOCAL
        let body = with_attrs(&rt, &[(RTA_DST, &[10, 66, 0, 0])]);
        let r = parse_route(&body).unwrap();
        assert_eq!(r.dst, net("10.66.0.0/24"));
        assert!(!r.is_main_unicast());
    }

    #[test]
    fn collects_multipart_dumps_acks_and_errors() {
        let link = |i| with_attrs(&ifinfomsg(i), &[(IFLA_IFNAME, b"lo\0")]);
        let mut dgram = msg(RTM_NEWLINK, NLM_F_MULTI, 5, &link(1));
        dgram.extend(msg(RTM_NEWLINK, NLM_F_MULTI, 4, &link(9))); // stale seq
        dgram.extend(msg(RTM_NEWLINK, NLM_F_MULTI, 5, &link(2)));
        let mut out = Vec::new();
        let mut intr = false;
        let p = collect(&dgram, 5, RTM_NEWLINK, &mut out, &mut intr).unwrap();
        assert_eq!(p, Progress::More);
        assert_eq!(out.len(), 2);
        let done = msg(NLMSG_DONE, NLM_F_MULTI, 5, &0u32.to_ne_bytes());
        let p = collect(&done, 5, RTM_NEWLINK, &mut out, &mut intr).unwrap();
        assert_eq!(p, Progress::Done);

        // Interrupted dump.
        let mut out = Vec::new();
        let mut intr = false;
        let mut dgram = msg(RTM_NEWLINK, NLM_F_MULTI | NLM_F_DUMP_INTR, 6, &link(1));
        dgram.extend(msg(NLMSG_DONE, NLM_F_MULTI, 6, &0u32.to_ne_bytes()));
        let p = collect(&dgram, 6, RTM_NEWLINK, &mut out, &mut intr).unwrap();
        assert_eq!(p, Progress::Interrupted);

        // ACK and refusal.
        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&[0; 16]);
        let p = collect(&msg(NLMSG_ERROR, 0, 7, &ack), 7, 0, &mut out, &mut intr).unwrap();
        assert_eq!(p, Progress::Done);
        let mut nack = (-libc::ENODEV).to_ne_bytes().to_vec();
        nack.extend_from_slice(&[0; 16]);
        let e = collect(&msg(NLMSG_ERROR, 0, 7, &nack), 7, 0, &mut out, &mut intr).unwrap_err();
        assert_eq!(e.errno(), Some(libc::ENODEV));
        assert!(e.to_string().contains("No such device"), "{e}");
        // A single (non-multipart) answer completes the request.
        let mut out = Vec::new();
        let p = collect(
            &msg(RTM_NEWLINK, 0, 8, &link(3)),
            8,
            RTM_NEWLINK,
            &mut out,
            &mut intr,
        );
        assert_eq!(p.unwrap(), Progress::Done);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn malformed_input_is_an_error_or_ignored_not_a_panic() {
        let mut bad = msg(RTM_NEWLINK, 0, 1, &ifinfomsg(1));
        bad[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(messages(&bad).is_err());
        assert!(messages(&[1, 2, 3]).unwrap().is_empty());
        assert_eq!(parse_link(&[0; 3]), None);
        assert_eq!(parse_addr(&[]), None);
        assert_eq!(parse_route(&[AF_INET]), None);
        // An attribute claiming more than there is ends the list.
        let mut body = with_attrs(&ifinfomsg(1), &[(IFLA_IFNAME, b"eth0\0")]);
        body[16..18].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_link(&body).map(|l| l.name), Some("if1".into()));
        // Route destination of the wrong size: the route is skipped.
        let mut rt = rtmsg();
        rt[1] = 24;
        assert_eq!(parse_route(&with_attrs(&rt, &[(RTA_DST, &[10, 0])])), None);
    }
}
