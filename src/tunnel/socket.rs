//! The SSH connection's TCP socket. Besides `TCP_NODELAY`, it re-arms
//! `TCP_QUICKACK` after each small read: request/response traffic through a
//! tunnel is small segments both ways, and OpenSSH's sshd leaves Nagle on
//! for forwarded channels, so its next small packet waits for our ACK, which
//! the kernel would delay by up to 40 ms. Linux clears QUICKACK by itself,
//! so it is set again per read; bulk reads (large) do not need it.
//!
//! russh reads a packet's first block (4 or 16 bytes) on its own whenever
//! it did not come along with the previous packet (vendor patch 04), so one
//! small read happens in bulk transfers too and says nothing; two in a row
//! (a small packet, or data trickling in) do. Re-arming after every first
//! block cost a syscall and an immediate ACK per packet in bulk transfers.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Reads shorter than this are "interactive" and get an immediate ACK.
const SMALL_READ: usize = 4096;

pub struct SshSocket {
    tcp: TcpStream,
    /// Whether the last read that returned data was small.
    small_before: bool,
}

impl SshSocket {
    pub fn new(tcp: TcpStream) -> SshSocket {
        let _ = tcp.set_nodelay(true);
        SshSocket {
            tcp,
            small_before: false,
        }
    }

    fn quickack(&self) {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt on a socket this struct owns, with a valid
        // pointer and length for an int option. A failure changes nothing.
        unsafe {
            libc::setsockopt(
                self.tcp.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

impl AsyncRead for SshSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len() - before;
            if n > 0 {
                let small = n < SMALL_READ;
                if quickack_now(self.small_before, small) {
                    self.quickack();
                }
                self.small_before = small;
            }
        }
        r
    }
}

/// Two small reads in a row mean small packets (or a trickle): ACK now.
fn quickack_now(small_before: bool, small: bool) -> bool {
    small_before && small
}

impl AsyncWrite for SshSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_at_once_only_after_two_small_reads() {
        // (last read small, this read small) -> re-arm QUICKACK now
        let table = [
            ((false, false), false), // large reads: bulk
            ((false, true), false),  // a first block after a large rest: bulk
            ((true, false), false),  // the large rest of a packet
            ((true, true), true),    // a small packet's rest, or a trickle
        ];
        for ((before, now), want) in table {
            assert_eq!(quickack_now(before, now), want, "before {before} now {now}");
        }
    }
}
