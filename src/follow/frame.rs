//! Ethernet frames the follow task reads and writes on the LAN (pure):
//! ARP requests and replies, and DHCP requests, parsed from what a packet
//! socket hands over; ARP replies and probes, and DHCPNAKs, built to send.
//! Parsing never panics on hostile input: anything short or odd is `None`.

use std::net::Ipv4Addr;

pub type Mac = [u8; 6];
pub const BROADCAST: Mac = [0xff; 6];
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_HLEN: usize = 14;
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const BOOTP_FIXED: usize = 236;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const OPT_REQUESTED_IP: u8 = 50;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_MESSAGE: u8 = 56;
const DHCPREQUEST: u8 = 3;
const DHCPNAK: u8 = 6;

/// What the follow task cares about in a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Arp(Arp),
    DhcpRequest(DhcpRequest),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpRequest {
    /// The frame's source address.
    pub src_mac: Mac,
    pub xid: [u8; 4],
    pub flags: [u8; 2],
    pub ciaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: [u8; 16],
    /// Option 50 (while selecting or rebooting).
    pub requested: Option<Ipv4Addr>,
    /// Option 54: the server the client is talking to, if it says.
    pub server_id: Option<Ipv4Addr>,
}

impl DhcpRequest {
    /// The address the client wants to keep or get.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.requested
            .or((!self.ciaddr.is_unspecified()).then_some(self.ciaddr))
    }

    /// The client's hardware address from chaddr (Ethernet only).
    pub fn client_mac(&self) -> Mac {
        let mut m = [0; 6];
        m.copy_from_slice(&self.chaddr[..6]);
        m
    }
}

/// `02:00:00:00:00:64`, for status and messages.
pub fn mac_text(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn ip_at(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let o: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}

fn mac_at(b: &[u8], at: usize) -> Option<Mac> {
    b.get(at..at + 6)?.try_into().ok()
}

/// An ARP or DHCP-request frame (Ethernet II, IPv4 over Ethernet only).
pub fn parse(frame: &[u8]) -> Option<Incoming> {
    match be16(frame, 12)? {
        ETH_P_ARP => parse_arp(frame.get(ETH_HLEN..)?).map(Incoming::Arp),
        ETH_P_IP => parse_dhcp(frame).map(Incoming::DhcpRequest),
        _ => None,
    }
}

fn parse_arp(a: &[u8]) -> Option<Arp> {
    // htype Ethernet, ptype IPv4, hlen 6, plen 4.
    if be16(a, 0)? != 1 || be16(a, 2)? != ETH_P_IP || a.get(4..6)? != [6, 4] {
        return None;
    }
    Some(Arp {
        op: be16(a, 6)?,
        sender_mac: mac_at(a, 8)?,
        sender_ip: ip_at(a, 14)?,
        target_ip: ip_at(a, 24)?,
    })
}

fn parse_dhcp(frame: &[u8]) -> Option<DhcpRequest> {
    let ip = frame.get(ETH_HLEN..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    // IPv4, a sane header, UDP, not a fragment.
    if ip[0] >> 4 != 4 || ihl < 20 || *ip.get(9)? != 17 || be16(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    let total = usize::from(be16(ip, 2)?).min(ip.len());
    let udp = ip.get(ihl..total)?;
    if be16(udp, 2)? != DHCP_SERVER_PORT {
        return None;
    }
    let bootp = udp.get(8..)?;
    // BOOTREQUEST over Ethernet.
    if *bootp.first()? != 1 || bootp.get(1..3)? != [1, 6] {
        return None;
    }
    if bootp.get(BOOTP_FIXED..BOOTP_FIXED + 4)? != MAGIC {
        return None;
    }
    let mut kind = None;
    let (mut requested, mut server_id) = (None, None);
    let opts = bootp.get(BOOTP_FIXED + 4..)?;
    let mut at = 0;
    while let Some(&code) = opts.get(at) {
        match code {
            0 => {
                at += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = usize::from(*opts.get(at + 1)?);
        let data = opts.get(at + 2..at + 2 + len)?;
        match (code, len) {
            (OPT_MESSAGE_TYPE, 1) => kind = Some(data[0]),
            (OPT_REQUESTED_IP, 4) => requested = ip_at(data, 0),
            (OPT_SERVER_ID, 4) => server_id = ip_at(data, 0),
            _ => {}
        }
        at += 2 + len;
    }
    if kind != Some(DHCPREQUEST) {
        return None;
    }
    Some(DhcpRequest {
        src_mac: mac_at(frame, 6)?,
        xid: bootp.get(4..8)?.try_into().ok()?,
        flags: bootp.get(10..12)?.try_into().ok()?,
        ciaddr: ip_at(bootp, 12)?,
        giaddr: ip_at(bootp, 24)?,
        chaddr: bootp.get(28..44)?.try_into().ok()?,
        requested,
        server_id,
    })
}

fn ethernet(dst: Mac, src: Mac, kind: u16, capacity: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(capacity);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&kind.to_be_bytes());
    f
}

fn arp_frame(dst: Mac, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = ethernet(dst, sha, ETH_P_ARP, 60);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0); // Ethernet's minimum frame (without FCS)
    f
}

/// "`ip` is at `mac`", to the host that asked.
pub fn arp_reply(mac: Mac, ip: Ipv4Addr, to: &Arp) -> Vec<u8> {
    arp_frame(to.sender_mac, 2, mac, ip, to.sender_mac, to.sender_ip)
}

/// "Who has `target`? Tell `ip`", broadcast.
pub fn arp_request(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(BROADCAST, 1, mac, ip, [0; 6], target)
}

/// The one's-complement sum of `data` as 16-bit words, added to `sum`.
fn sum16(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A DHCPNAK from server `server_id` (with our `mac`) for `req`, as an
/// Ethernet frame to `eth_dst` / IPv4 `ip_dst`. `message` goes in option 56.
pub fn dhcp_nak(
    mac: Mac,
    server_id: Ipv4Addr,
    req: &DhcpRequest,
    eth_dst: Mac,
    ip_dst: Ipv4Addr,
    message: &str,
) -> Vec<u8> {
    let mut bootp = vec![0u8; BOOTP_FIXED];
    bootp[..4].copy_from_slice(&[2, 1, 6, 0]);
    bootp[4..8].copy_from_slice(&req.xid);
    bootp[10..12].copy_from_slice(&req.flags);
    bootp[24..28].copy_from_slice(&req.giaddr.octets());
    bootp[28..44].copy_from_slice(&req.chaddr);
    bootp.extend_from_slice(&MAGIC);
    bootp.extend_from_slice(&[OPT_MESSAGE_TYPE, 1, DHCPNAK, OPT_SERVER_ID, 4]);
    bootp.extend_from_slice(&server_id.octets());
    let text = &message.as_bytes()[..message.len().min(255)];
    bootp.extend_from_slice(&[OPT_MESSAGE, text.len() as u8]);
    bootp.extend_from_slice(text);
    bootp.push(255);
    // The BOOTP minimum some clients insist on.
    if bootp.len() < 300 {
        bootp.resize(300, 0);
    }
    let udp_len = 8 + bootp.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&DHCP_SERVER_PORT.to_be_bytes());
    udp.extend_from_slice(&DHCP_CLIENT_PORT.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&bootp);
    // The pseudo-header: source, destination, protocol, UDP length.
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&server_id.octets());
    pseudo.extend_from_slice(&ip_dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let c = fold(sum16(sum16(0, &pseudo), &udp));
    // 0 means "no checksum" in UDP over IPv4; all ones says the same sum.
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());

    let mut ip = Vec::with_capacity(20);
    ip.extend_from_slice(&[0x45, 0xc0]); // DSCP CS6, as DHCP servers send
    ip.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&server_id.octets());
    ip.extend_from_slice(&ip_dst.octets());
    let c = fold(sum16(0, &ip));
    ip[10..12].copy_from_slice(&c.to_be_bytes());

    let mut f = ethernet(eth_dst, mac, ETH_P_IP, ETH_HLEN + 20 + udp_len);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&udp);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: Mac = [2, 0, 0, 0, 0, 1];
    const HOST: Mac = [2, 0, 0, 0, 0, 0x64];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// A DHCPREQUEST as a client sends it: `opts` after the magic cookie.
    fn request_frame(ciaddr: &str, dst: &str, opts: &[u8]) -> Vec<u8> {
        let mut bootp = vec![0u8; BOOTP_FIXED];
        bootp[..4].copy_from_slice(&[1, 1, 6, 0]);
        bootp[4..8].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        bootp[10] = 0x80;
        bootp[12..16].copy_from_slice(&ip(ciaddr).octets());
        bootp[28..34].copy_from_slice(&HOST);
        bootp.extend_from_slice(&MAGIC);
        bootp.extend_from_slice(opts);
        bootp.push(255);
        let mut udp = vec![0, 68, 0, 67];
        udp.extend_from_slice(&((8 + bootp.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&bootp);
        let mut f = ethernet(ROUTER, HOST, ETH_P_IP, 400);
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&ip(ciaddr).octets());
        f.extend_from_slice(&ip(dst).octets());
        let total = (20 + udp.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&udp);
        f
    }

    #[test]
    fn parses_dhcp_requests_and_nothing_else() {
        // A renew at T1: unicast to the old server, ciaddr set, no option 50.
        let renew = request_frame("192.168.1.100", "192.168.1.1", &[53, 1, 3]);
        let Some(Incoming::DhcpRequest(r)) = parse(&renew) else {
            panic!("not parsed")
        };
        assert_eq!(r.address(), Some(ip("192.168.1.100")));
        assert_eq!((r.src_mac, r.client_mac()), (HOST, HOST));
        assert_eq!((r.xid, r.flags), ([0xde, 0xad, 0xbe, 0xef], [0x80, 0]));
        // Selecting / rebooting: option 50 (and 54) say it, with pads between.
        let select = request_frame(
            "0.0.0.0",
            "255.255.255.255",
            &[53, 1, 3, 0, 0, 50, 4, 10, 0, 0, 7, 54, 4, 10, 0, 0, 1],
        );
        let Some(Incoming::DhcpRequest(r)) = parse(&select) else {
            panic!("not parsed")
        };
        assert_eq!(r.address(), Some(ip("10.0.0.7")));
        assert_eq!(r.server_id, Some(ip("10.0.0.1")));

        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "a DISCOVER",
                request_frame("0.0.0.0", "255.255.255.255", &[53, 1, 1]),
            ),
            (
                "no message type",
                request_frame("0.0.0.0", "255.255.255.255", &[]),
            ),
            ("an option running past the end", {
                let mut f = request_frame("0.0.0.0", "255.255.255.255", &[53, 1, 3]);
                let end = f.len();
                f[end - 1] = 50; // option 50, and no length byte
                f
            }),
            ("truncated", renew[..100].to_vec()),
            ("IPv6", {
                let mut f = renew.clone();
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                f
            }),
            ("a fragment", {
                let mut f = renew.clone();
                f[20] = 0x20; // more fragments
                f
            }),
            ("to the client port (a server's answer)", {
                let mut f = renew.clone();
                f[36..38].copy_from_slice(&68u16.to_be_bytes());
                f
            }),
            ("a BOOTREPLY", {
                let mut f = renew.clone();
                f[42] = 2;
                f
            }),
            ("empty", vec![]),
        ];
        for (what, f) in cases {
            assert_eq!(parse(&f), None, "{what}");
        }
    }

    #[test]
    fn arp_frames_round_trip() {
        let probe = arp_request(ROUTER, ip("10.1.2.1"), ip("10.1.2.100"));
        assert_eq!(probe.len(), 60);
        assert_eq!(&probe[..6], &BROADCAST);
        let Some(Incoming::Arp(a)) = parse(&probe) else {
            panic!("not parsed")
        };
        assert_eq!(
            a,
            Arp {
                op: 1,
                sender_mac: ROUTER,
                sender_ip: ip("10.1.2.1"),
                target_ip: ip("10.1.2.100")
            }
        );
        let asked = Arp {
            op: 1,
            sender_mac: HOST,
            sender_ip: ip("192.168.1.100"),
            target_ip: ip("192.168.1.1"),
        };
        let reply = arp_reply(ROUTER, ip("192.168.1.1"), &asked);
        assert_eq!(&reply[..6], &HOST, "unicast to the asker");
        let Some(Incoming::Arp(r)) = parse(&reply) else {
            panic!("not parsed")
        };
        assert_eq!(
            r,
            Arp {
                op: 2,
                sender_mac: ROUTER,
                sender_ip: ip("192.168.1.1"),
                target_ip: ip("192.168.1.100")
            }
        );
        // Not Ethernet/IPv4 ARP.
        let mut odd = probe.clone();
        odd[18] = 16;
        assert_eq!(parse(&odd), None);
    }

    #[test]
    fn nak_is_a_valid_dhcp_answer_from_the_old_server() {
        let renew = request_frame("192.168.1.100", "192.168.1.1", &[53, 1, 3]);
        let Some(Incoming::DhcpRequest(r)) = parse(&renew) else {
            panic!("not parsed")
        };
        let f = dhcp_nak(
            ROUTER,
            ip("192.168.1.1"),
            &r,
            HOST,
            ip("192.168.1.100"),
            "moved",
        );
        assert_eq!((&f[..6], &f[6..12]), (&HOST[..], &ROUTER[..]));
        let ipv4 = &f[14..34];
        assert_eq!(fold(sum16(0, ipv4)), 0, "IPv4 header checksum");
        assert_eq!(ip_at(ipv4, 12), Some(ip("192.168.1.1")));
        assert_eq!(ip_at(ipv4, 16), Some(ip("192.168.1.100")));
        let udp = &f[34..];
        assert_eq!((be16(udp, 0), be16(udp, 2)), (Some(67), Some(68)));
        assert_eq!(usize::from(be16(udp, 4).unwrap()), udp.len());
        let mut pseudo = ipv4[12..20].to_vec();
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        assert_eq!(fold(sum16(sum16(0, &pseudo), udp)), 0, "UDP checksum");
        let bootp = &udp[8..];
        assert!(bootp.len() >= 300);
        assert_eq!(bootp[0], 2, "BOOTREPLY");
        assert_eq!(&bootp[4..8], &r.xid);
        assert_eq!(&bootp[10..12], &r.flags);
        assert_eq!(&bootp[12..20], &[0; 8], "no ciaddr, no yiaddr");
        assert_eq!(&bootp[28..34], &HOST);
        assert_eq!(
            &bootp[BOOTP_FIXED..BOOTP_FIXED + 17],
            &[
                99, 130, 83, 99, 53, 1, 6, 54, 4, 192, 168, 1, 1, 56, 5, b'm', b'o'
            ]
        );
    }
}
