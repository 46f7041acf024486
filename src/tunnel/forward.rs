//! Forwarded connections: which forward a `forwarded-tcpip` channel belongs
//! to, where its target is now, and carrying the bytes.
//!
//! Head-of-line: russh acknowledges (WINDOW_ADJUST) data when it arrives, not
//! when it is consumed, and parks each channel's data in a bounded queue; a
//! full queue stops the whole session's read loop. So a target that stops
//! reading must not be allowed to stop us reading its channel for long: the
//! server-to-target direction writes with a no-progress deadline
//! ([`TARGET_STALL`]) and a connection that makes no progress for that long
//! is closed (the kernel's socket buffer absorbs ordinary hiccups). Both
//! directions run independently, so a public client that stops reading
//! (window exhausted) never blocks the other direction either.

use super::stats::Stats;
use crate::config::{Host, Target, TargetHost};
use crate::plan;
use futures_util::FutureExt;
use ipnet::Ipv4Net;
use russh::ChannelMsg;
use russh::client::Msg;
use std::net::SocketAddrV4;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long connecting to a target may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A target that accepts no byte for this long while data waits is dropped.
pub const TARGET_STALL: Duration = Duration::from_secs(1);
/// Read size towards the server once data flows: one full SSH packet.
const COPY_BUF: usize = 32 * 1024;
/// Read size towards the server at first. A buffer is allocated only when the
/// target first has data, at this size, and grows to [`COPY_BUF`] when a read
/// fills it: with a fixed 32 KiB per connection, 200 connections that send
/// little that way (uploads, acks) held over 6 MiB of a router's RAM.
const FIRST_BUF: usize = 4 * 1024;

/// A forward as this session requested it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requested {
    /// The bind address sent in `tcpip-forward`.
    pub bind: String,
    /// The port asked for (0: let the server choose).
    pub port: u32,
    /// What the server said it bound, when 0 was asked.
    pub assigned: Option<u32>,
    /// The server accepted the request (and it was not cancelled since).
    pub live: bool,
    /// Sent, answer not in yet. The server may forward a connection before
    /// its reply reaches us; a fixed port identifies it already.
    pub pending: bool,
    /// A `streamlocal-forward@openssh.com` socket path instead of bind:port.
    pub unix: Option<String>,
}

/// Bind addresses that all mean "every address".
fn wildcard(a: &str) -> bool {
    matches!(a, "" | "*" | "0.0.0.0" | "::")
}

fn same_bind(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || (wildcard(a) && wildcard(b))
}

/// The forward a `forwarded-tcpip` channel for `address`:`port` belongs to:
/// a live forward with that bind address whose requested (or, when 0 was
/// asked, assigned) port is `port`. `None`: nobody asked for it; refuse.
pub fn match_forward(forwards: &[Requested], address: &str, port: u32) -> Option<usize> {
    forwards.iter().position(|f| {
        if f.unix.is_some() {
            return false;
        }
        let port_ok = if f.port == 0 {
            f.assigned == Some(port) && port != 0
        } else {
            f.port == port
        };
        let accepted = f.live || (f.pending && f.port != 0);
        accepted && port_ok && same_bind(&f.bind, address)
    })
}

/// The forward a `forwarded-streamlocal@openssh.com` channel for socket
/// `path` belongs to: a live (or pending: the path identifies it already)
/// unix-socket forward for exactly that path. `None`: refuse.
pub fn match_streamlocal(forwards: &[Requested], path: &str) -> Option<usize> {
    forwards
        .iter()
        .position(|f| (f.live || f.pending) && f.unix.as_deref() == Some(path))
}

/// Where a target is right now. A `[[lan.host]]` name gives its home
/// address; a home address keeps its offset in the LAN's current prefix;
/// any other address is used as is.
pub fn resolve(
    target: &Target,
    hosts: &[Host],
    home: Ipv4Net,
    current: Ipv4Net,
) -> Result<SocketAddrV4, String> {
    let addr = match &target.host {
        TargetHost::Addr(a) => *a,
        TargetHost::Name(n) => hosts
            .iter()
            .find(|h| h.name == *n)
            .map(|h| h.address)
            .ok_or_else(|| format!("target host \"{n}\" is not a [[lan.host]]"))?,
    };
    let now = if home.contains(&addr) {
        plan::map_host(addr, home, current).unwrap_or(addr)
    } else {
        addr
    };
    Ok(SocketAddrV4::new(now, target.port))
}

/// Connect to the target within [`CONNECT_TIMEOUT`].
pub async fn connect(addr: SocketAddrV4) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Ok(Err(e)) => Err(format!("cannot connect to target {addr}: {e}")),
        Err(_) => Err(format!(
            "cannot connect to target {addr}: no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Most data messages written to a target in one syscall.
const WRITE_BATCH: usize = 8;

/// Drops the first `n` written bytes from `batch`: whole buffers, then the
/// front of the next one.
fn consume(batch: &mut Vec<bytes::Bytes>, mut n: usize) {
    let whole = batch
        .iter()
        .take_while(|b| {
            let take = b.len() <= n;
            if take {
                n -= b.len();
            }
            take
        })
        .count();
    batch.drain(..whole);
    if n > 0
        && let Some(first) = batch.first_mut()
    {
        *first = first.slice(n..);
    }
}

/// How a carried connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Both sides finished.
    Done,
    /// The target stopped taking data; closed to keep the session flowing.
    Stalled,
    /// The tunnel was stopped (restart, reload, shutdown).
    Cancelled,
    Error(String),
}

/// Copy both ways between the channel and the target until both sides are
/// done, either side closes, or `stop` fires. Counts bytes into `stats`
/// (`bytes_in`: server to target; `bytes_out`: target to server).
pub async fn carry(
    channel: russh::Channel<Msg>,
    tcp: TcpStream,
    stats: &Stats,
    stop: &CancellationToken,
) -> End {
    let (mut rd, wr) = channel.split();
    let (tr, mut tw) = tcp.into_split();
    let closed = CancellationToken::new();

    let down = async {
        // Created once: a fresh `cancelled()` per packet costs a lock each time.
        let gone = closed.cancelled();
        tokio::pin!(gone);
        // Data messages already queued go to the target in one write: one
        // syscall per batch instead of one per SSH packet.
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        // A message taken while filling a batch, handled next (None inside:
        // the channel is gone).
        let mut next: Option<Option<ChannelMsg>> = None;
        loop {
            let msg = match next.take() {
                Some(m) => m,
                None => tokio::select! {
                    m = rd.wait() => m,
                    _ = &mut gone => return End::Done,
                },
            };
            match msg {
                Some(ChannelMsg::Data { data }) => {
                    // Empty messages are skipped: a zero-byte write would
                    // read as a closed target.
                    if !data.is_empty() {
                        batch.push(data);
                    }
                    while batch.len() < WRITE_BATCH {
                        // A channel receive loses nothing when dropped unfinished.
                        match rd.wait().now_or_never() {
                            Some(Some(ChannelMsg::Data { data })) if data.is_empty() => {}
                            Some(Some(ChannelMsg::Data { data })) => batch.push(data),
                            Some(other) => {
                                next = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    while !batch.is_empty() {
                        let mut io = [std::io::IoSlice::new(&[]); WRITE_BATCH];
                        for (slot, b) in io.iter_mut().zip(&batch) {
                            *slot = std::io::IoSlice::new(b);
                        }
                        let io = &io[..batch.len()];
                        // Fast path: the socket has room (the usual case), so
                        // no timer is armed per write.
                        let w = match tw.as_ref().try_write_vectored(io) {
                            Ok(n) => Ok(Ok(n)),
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                                tokio::select! {
                                    w = tokio::time::timeout(TARGET_STALL, tw.write_vectored(io)) => w,
                                    _ = &mut gone => return End::Done,
                                }
                            }
                            Err(e) => Ok(Err(e)),
                        };
                        match w {
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                closed.cancel();
                                return End::Error("target closed the connection".into());
                            }
                            Ok(Ok(n)) => {
                                consume(&mut batch, n);
                                stats.add_in(n);
                            }
                            Err(_) => {
                                closed.cancel();
                                return End::Stalled;
                            }
                        }
                    }
                }
                Some(ChannelMsg::Eof) => {
                    let _ = tw.shutdown().await;
                    return End::Done;
                }
                Some(ChannelMsg::Close) | None => {
                    closed.cancel();
                    return End::Done;
                }
                Some(_) => {}
            }
        }
    };

    let up = async {
        let mut buf = Vec::new();
        let mut writer = wr.make_writer();
        let gone = closed.cancelled();
        tokio::pin!(gone);
        loop {
            // Wait for data before holding a buffer: idle connections keep none.
            let ready = tokio::select! {
                r = tr.readable() => r,
                _ = &mut gone => return,
            };
            if ready.is_err() {
                closed.cancel();
                return;
            }
            if buf.is_empty() {
                buf.resize(FIRST_BUF, 0);
            }
            match tr.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Ok(0) => {
                    // Boxed: russh's eof() future is over 1 KiB, and held
                    // inline it would be part of every connection's task for
                    // its whole life.
                    let _ = Box::pin(wr.eof()).await;
                    return;
                }
                Ok(n) => {
                    let w = tokio::select! {
                        w = writer.write_all(&buf[..n]) => w,
                        _ = &mut gone => return,
                    };
                    if w.is_err() {
                        closed.cancel();
                        return;
                    }
                    stats.add_out(n);
                    if n == buf.len() && n < COPY_BUF {
                        buf.resize(COPY_BUF, 0);
                    }
                }
                Err(_) => {
                    closed.cancel();
                    return;
                }
            }
        }
    };

    // Pinned here and joined by reference: moved into the join, each would
    // be stored twice in this future (what it was and what the join holds),
    // and a task's future is allocated per connection.
    let end = {
        tokio::pin!(down, up);
        tokio::select! {
            (d, ()) = async { tokio::join!(&mut down, &mut up) } => d,
            _ = stop.cancelled() => End::Cancelled,
        }
    };
    // Boxed, as eof() above.
    let _ = Box::pin(wr.close()).await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_drops_what_was_written() {
        let batch = || -> Vec<bytes::Bytes> {
            vec![b"abc"[..].into(), b"de"[..].into(), b"fgh"[..].into()]
        };
        // (bytes written, what is left)
        let table: &[(usize, &[&[u8]])] = &[
            (0, &[b"abc", b"de", b"fgh"]),
            (1, &[b"bc", b"de", b"fgh"]),
            (3, &[b"de", b"fgh"]),
            (4, &[b"e", b"fgh"]),
            (5, &[b"fgh"]),
            (7, &[b"h"]),
            (8, &[]),
        ];
        for &(n, left) in table {
            let mut b = batch();
            consume(&mut b, n);
            let got: Vec<&[u8]> = b.iter().map(|x| &x[..]).collect();
            assert_eq!(got, left, "after {n} bytes");
        }
    }

    fn req(bind: &str, port: u32, assigned: Option<u32>, live: bool) -> Requested {
        Requested {
            bind: bind.into(),
            port,
            assigned,
            live,
            pending: false,
            unix: None,
        }
    }

    fn sock(path: &str, live: bool, pending: bool) -> Requested {
        Requested {
            live,
            pending,
            unix: Some(path.into()),
            ..req("", 0, None, false)
        }
    }

    #[test]
    fn streamlocal_channels_go_to_the_forward_for_their_path() {
        let fwds = [
            req("0.0.0.0", 80, None, true),
            sock("/run/roadie/ui.sock", true, false),
            sock("/run/roadie/api.sock", false, true),
            sock("/run/roadie/old.sock", false, false),
        ];
        // (socket path on the channel, forward it belongs to)
        let table: &[(&str, Option<usize>)] = &[
            ("/run/roadie/ui.sock", Some(1)),
            ("/run/roadie/api.sock", Some(2)),
            // Cancelled or refused: nobody wants it.
            ("/run/roadie/old.sock", None),
            ("/run/roadie/ui.sock/", None),
            ("/run/roadie/UI.sock", None),
            ("", None),
        ];
        for &(path, want) in table {
            assert_eq!(match_streamlocal(&fwds, path), want, "{path:?}");
        }
        // A unix forward never takes a forwarded-tcpip channel.
        assert_eq!(match_forward(&fwds[1..], "", 0), None);
        assert_eq!(match_forward(&fwds, "0.0.0.0", 80), Some(0));
    }

    #[test]
    fn a_connection_racing_the_forward_reply_is_accepted_for_a_fixed_port() {
        let pending = |port| Requested {
            pending: true,
            ..req("0.0.0.0", port, None, false)
        };
        assert_eq!(match_forward(&[pending(8080)], "0.0.0.0", 8080), Some(0));
        assert_eq!(match_forward(&[pending(8080)], "0.0.0.0", 8081), None);
        // Port 0: which port is ours is only known from the reply.
        assert_eq!(match_forward(&[pending(0)], "0.0.0.0", 40000), None);
    }

    #[test]
    fn channels_match_only_requested_forwards() {
        let fwds = vec![
            req("ui_julio", 80, None, true),
            req("localhost", 8080, None, true),
            req("", 0, Some(41234), true),
            req("api", 443, None, false),
            req("0.0.0.0", 2201, None, true),
        ];
        let table: &[(&str, u32, Option<usize>)] = &[
            ("ui_julio", 80, Some(0)),
            ("UI_JULIO", 80, Some(0)),
            ("ui_julio", 81, None),
            ("other", 80, None),
            ("localhost", 8080, Some(1)),
            ("127.0.0.1", 8080, None),
            // Port 0 was asked: the assigned port matches, 0 itself never does.
            ("", 41234, Some(2)),
            ("0.0.0.0", 41234, Some(2)),
            ("", 0, None),
            // Not (or no longer) accepted by the server.
            ("api", 443, None),
            // Wildcard spellings are the same bind.
            ("", 2201, Some(4)),
            ("::", 2201, Some(4)),
            ("*", 2201, Some(4)),
            // Never requested at all.
            ("localhost", 22, None),
            ("", 9999, None),
        ];
        for &(addr, port, want) in table {
            assert_eq!(match_forward(&fwds, addr, port), want, "{addr}:{port}");
        }
        assert_eq!(match_forward(&[], "x", 1), None);
        // Port 0 asked, nothing assigned yet: nothing matches.
        assert_eq!(match_forward(&[req("", 0, None, true)], "", 0), None);
    }

    #[test]
    fn targets_follow_the_lan() {
        let hosts = vec![Host {
            name: "master".into(),
            address: "192.168.1.100".parse().unwrap(),
        }];
        let home: Ipv4Net = "192.168.1.0/24".parse().unwrap();
        let moved: Ipv4Net = "10.77.1.0/24".parse().unwrap();
        let t = |h: TargetHost, port| Target { host: h, port };
        let name = |n: &str| TargetHost::Name(n.into());
        let addr = |a: &str| TargetHost::Addr(a.parse().unwrap());
        let table: Vec<(Target, Ipv4Net, Result<&str, &str>)> = vec![
            (t(name("master"), 80), home, Ok("192.168.1.100:80")),
            (t(name("master"), 80), moved, Ok("10.77.1.100:80")),
            (t(addr("192.168.1.101"), 22), moved, Ok("10.77.1.101:22")),
            (t(addr("192.168.1.101"), 22), home, Ok("192.168.1.101:22")),
            // Outside the home prefix: used as is.
            (t(addr("172.16.0.5"), 443), moved, Ok("172.16.0.5:443")),
            (t(addr("127.0.0.1"), 8080), moved, Ok("127.0.0.1:8080")),
            (
                t(name("worker"), 80),
                home,
                Err("\"worker\" is not a [[lan.host]]"),
            ),
        ];
        for (target, current, want) in table {
            let got = resolve(&target, &hosts, home, current);
            match want {
                Ok(w) => assert_eq!(got.map(|a| a.to_string()).as_deref(), Ok(w), "{target}"),
                Err(e) => assert!(got.unwrap_err().contains(e), "{target}"),
            }
        }
        // A /16 LAN keeps two-octet offsets.
        let home16: Ipv4Net = "172.20.0.0/16".parse().unwrap();
        let cur16: Ipv4Net = "172.31.0.0/16".parse().unwrap();
        let got = resolve(&t(addr("172.20.3.4"), 80), &[], home16, cur16).unwrap();
        assert_eq!(got.to_string(), "172.31.3.4:80");
    }
}
