//! A packet socket on the LAN device that sees only ARP and DHCP-to-server
//! frames (a classic BPF filter in the kernel drops the rest, so the router's
//! CPU copies nothing else), and sends whole Ethernet frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

const ETH_P_ALL: u16 = 0x0003;
const PACKET_OUTGOING: u8 = 4;

/// struct sock_filter
#[repr(C)]
#[derive(Clone, Copy)]
struct Insn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// ARP, or IPv4 UDP to port 67 that is not a fragment (what
/// `tcpdump -dd 'arp or (udp dst port 67 and not ip[6:2] & 0x1fff != 0)'`
/// compiles to, give or take).
const FILTER: [Insn; 12] = [
    insn(0x28, 0, 0, 12),     // ldh [12]: EtherType
    insn(0x15, 8, 0, 0x0806), // ARP: accept
    insn(0x15, 0, 8, 0x0800), // not IPv4: drop
    insn(0x30, 0, 0, 23),     // ldb [23]: protocol
    insn(0x15, 0, 6, 17),     // not UDP: drop
    insn(0x28, 0, 0, 20),     // ldh [20]: flags + fragment offset
    insn(0x45, 4, 0, 0x1fff), // a fragment: drop
    insn(0xb1, 0, 0, 14),     // ldxb 4*([14]&0xf): IP header length
    insn(0x48, 0, 0, 16),     // ldh [x+16]: UDP destination port
    insn(0x15, 0, 1, 67),     // not 67: drop
    insn(0x06, 0, 0, 0xffff), // accept (up to 64 KiB)
    insn(0x06, 0, 0, 0),      // drop
];

pub struct PacketSocket {
    fd: AsyncFd<OwnedFd>,
    ifindex: u32,
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacketSocket {
    /// Open on the link with index `ifindex` (needs CAP_NET_RAW).
    pub fn open(ifindex: u32) -> io::Result<PacketSocket> {
        // Protocol 0: nothing is received until the bind below, which comes
        // after the filter, so no unfiltered frame gets queued.
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        check(fd)?;
        // SAFETY: fd is a new, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let prog = libc::sock_fprog {
            len: FILTER.len() as u16,
            filter: FILTER.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at FILTER (static, repr(C) like sock_filter)
        // for the duration of the call; the kernel copies it.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&prog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        })?;
        let sa = sockaddr(ifindex, None);
        // SAFETY: sa is a valid sockaddr_ll of the given length.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        // SAFETY: the OwnedFd keeps the descriptor open for as long as the
        // AsyncFd owns it.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// The next frame that came in (frames the router sent are skipped).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let (n, pkttype) = self
                .fd
                .async_io(Interest::READABLE, |fd| {
                    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
                    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                    // SAFETY: buf and from are valid for the lengths given.
                    let rc = unsafe {
                        libc::recvfrom(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            0,
                            (&mut from as *mut libc::sockaddr_ll).cast(),
                            &mut len,
                        )
                    };
                    check_len(rc).map(|n| (n, from.sll_pkttype))
                })
                .await?;
            if pkttype != PACKET_OUTGOING {
                return Ok(n);
            }
        }
    }

    /// Send one whole Ethernet frame (its first 6 bytes are the destination).
    pub async fn send(&self, frame: &[u8]) -> io::Result<()> {
        let dst: [u8; 6] = frame
            .get(..6)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| io::Error::other("frame shorter than an Ethernet header"))?;
        let sa = sockaddr(self.ifindex, Some(dst));
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                // SAFETY: frame and sa are valid for the lengths given.
                let rc = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&sa as *const libc::sockaddr_ll).cast(),
                        std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                    )
                };
                check_len(rc).map(drop)
            })
            .await
    }
}

/// A byte count from recvfrom/sendto, or the errno (WouldBlock included,
/// which `async_io` waits out).
fn check_len(rc: isize) -> io::Result<usize> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

fn sockaddr(ifindex: u32, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all-zero is valid.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = ETH_P_ALL.to_be();
    sa.sll_ifindex = ifindex as i32;
    if let Some(d) = dst {
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&d);
    }
    sa
}
