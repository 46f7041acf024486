//! One SSH session per `[[server]]`: connect, check the host key,
//! authenticate, open the session channel (when asked), request a forward
//! per tunnel, carry forwarded connections, and come back after any fault.

use super::backoff;
use super::diff::Plan;
use super::forward::{self, End, Requested};
use super::hostkeys::{self, Refusal, Verdict};
use super::parting::{self, Anchor};
use super::stats::{Health, State, Stats};
use super::urls;
use super::{Ctx, UplinkWatch};
use crate::config::{Server, SessionMode};
use russh::client::{self, ChannelOpenHandle, Handle, Msg};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, ChannelOpenFailure, Disconnect};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Reaching the server's TCP port.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Key exchange, authentication and the session channel.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(20);
/// A `tcpip-forward` or `cancel-tcpip-forward` request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Cancelling forwards and saying goodbye when stopping.
const GOODBYE: Duration = Duration::from_millis(500);
/// The same before reconnecting, when the old session's address is still
/// usable (crate::tunnel::parting): the server frees our ports at once and
/// the new session's forwards do not collide.
const QUICK_GOODBYE: Duration = Duration::from_millis(300);
/// A session that cannot log in for a reason retrying will not fix (host key,
/// key file, authentication) retries at the slowest pace.
const PERMANENT_ATTEMPT: u32 = 6;

/// A tunnel as a session carries it.
#[derive(Debug, Clone)]
pub struct TunnelSpec {
    pub plan: Plan,
    pub stats: Arc<Stats>,
}

/// What the manager asks a running session to do.
#[derive(Debug)]
pub enum Cmd {
    /// Drop the connection and connect again right away.
    Reconnect,
    Add(TunnelSpec),
    Remove(String),
    /// The tunnel's settings changed: cancel its forward and request the new one.
    Replace(TunnelSpec),
    /// The tunnel moved to another way out: cancel its forward here, but let
    /// the connections it carries finish.
    Release(String),
    /// `tunnel.restart`: re-request this forward (or reconnect when down).
    RestartTunnel(String),
    /// After a reload: a session waiting to retry (say, for a fixed key
    /// file or known_hosts) tries now; a running one is left alone.
    RetryNow,
}

/// The bind address sent in `tcpip-forward`, as OpenSSH's `ssh -R` sends it:
/// none given means "localhost", `*` means every address ("").
pub fn wire_bind(bind: &str) -> &str {
    match bind {
        "" => "localhost",
        "*" => "",
        b => b,
    }
}

struct Fwd {
    spec: TunnelSpec,
    req: Requested,
    /// The connection generation the forward is live on.
    generation: u64,
    /// Cancels this forward's carried connections.
    conns: CancellationToken,
    attempt: u32,
    retry_at: Option<Instant>,
}

impl Fwd {
    fn new(spec: TunnelSpec) -> Fwd {
        let req = Requested {
            bind: wire_bind(&spec.plan.remote.bind).to_string(),
            port: u32::from(spec.plan.remote.port),
            assigned: None,
            live: false,
            pending: false,
            unix: spec.plan.remote.unix.clone(),
        };
        Fwd {
            spec,
            req,
            generation: 0,
            conns: CancellationToken::new(),
            attempt: 0,
            retry_at: None,
        }
    }

    fn name(&self) -> &str {
        &self.spec.plan.name
    }

    /// The port to name in cancel-tcpip-forward.
    fn bound_port(&self) -> u32 {
        self.req.assigned.unwrap_or(self.req.port)
    }

    /// What to cancel for this forward.
    fn wire(&self) -> Wire {
        match &self.req.unix {
            Some(p) => Wire::Unix(p.clone()),
            None => Wire::Tcp(self.req.bind.clone(), self.bound_port()),
        }
    }
}

/// A forward as named on the wire: `tcpip-forward` bind and port, or a
/// `streamlocal-forward@openssh.com` socket path.
#[derive(Debug, Clone)]
enum Wire {
    Tcp(String, u32),
    Unix(String),
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wire::Tcp(bind, port) => write!(f, "{bind}:{port}"),
            Wire::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

impl Wire {
    async fn cancel(&self, handle: &Handle<Client>) -> Result<(), russh::Error> {
        match self {
            Wire::Tcp(bind, port) => handle.cancel_tcpip_forward(bind.clone(), *port).await,
            Wire::Unix(p) => handle.cancel_streamlocal_forward(p.clone()).await,
        }
    }
}

/// Why a forward request was refused, for `last_error`. After a reconnect
/// the usual cause is the server still holding the forward for our previous
/// session; saying what ends that tells the user when it comes back.
/// The only place this wording lives.
fn refused_why(tag: &str, what: &str, after_reconnect: bool) -> String {
    if after_reconnect {
        format!(
            "{tag} refused to listen on {what}: the server probably still holds the forward for the previous session; \
             sshd drops the old session after its ClientAlive timeout when idle, or its TCP retransmission timeout \
             when traffic keeps it busy; a unix-socket remote with StreamLocalBindUnlink avoids it"
        )
    } else {
        format!(
            "{tag} refused to listen on {what} (in use, not allowed, or an old session still holds it)"
        )
    }
}

impl Fwd {
    fn close_connections(&mut self) {
        self.conns.cancel();
        self.conns = CancellationToken::new();
    }
}

/// State shared with the russh handler for the life of the session task.
struct Shared {
    server: Server,
    ctx: Ctx,
    fwds: Mutex<Vec<Fwd>>,
    /// Name of the tunnel whose forward was requested last (URL ownership).
    last_requested: Mutex<Option<String>>,
    /// Logged in or not, for failover.
    health: Arc<Health>,
}

/// One TCP connection's worth of state.
struct Conn {
    generation: u64,
    ended: CancellationToken,
    end_reason: Mutex<Option<String>>,
    refusal: Mutex<Option<Refusal>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn with_fwds<R>(&self, f: impl FnOnce(&mut Vec<Fwd>) -> R) -> R {
        f(&mut lock(&self.fwds))
    }

    fn set_all(&self, state: State, error: Option<String>) {
        self.with_fwds(|fwds| {
            for f in fwds.iter() {
                f.spec.stats.set_state(state, error.clone());
            }
        });
    }

    fn tag(&self) -> String {
        format!("server {}", self.server.name)
    }
}

struct Client {
    shared: Arc<Shared>,
    conn: Arc<Conn>,
}

impl Client {
    /// The forward of this session (this connection's generation) that
    /// `pick` finds among the requested ones: its tunnel and connections.
    fn find_forward(
        &self,
        pick: impl FnOnce(&[Requested]) -> Option<usize>,
    ) -> Option<(TunnelSpec, CancellationToken)> {
        let generation = self.conn.generation;
        self.shared.with_fwds(|fwds| {
            let reqs: Vec<Requested> = fwds
                .iter()
                .map(|f| {
                    let mut r = f.req.clone();
                    r.live = r.live && f.generation == generation;
                    r.pending = r.pending && f.generation == generation;
                    r
                })
                .collect();
            pick(&reqs).map(|i| (fwds[i].spec.clone(), fwds[i].conns.clone()))
        })
    }

    /// Carry a forwarded channel `found` for, or refuse it (none found).
    async fn accept_or_refuse(
        &self,
        found: Option<(TunnelSpec, CancellationToken)>,
        what: &str,
        from: String,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
    ) {
        let Some(found) = found else {
            log::warn!(
                "{}: refused a forwarded connection for {what} (from {from}): \
                 no forward was requested for it on this session",
                self.shared.tag()
            );
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        };
        self.open_forwarded(found, from, channel, reply).await;
    }

    /// Accept a forwarded channel for `spec`'s tunnel: connect its target
    /// and carry the bytes; refuse when over max_connections or unreachable.
    async fn open_forwarded(
        &self,
        (spec, conns): (TunnelSpec, CancellationToken),
        from: String,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
    ) {
        let name = spec.plan.name.clone();
        let stats = spec.stats.clone();
        let Some(slot) = stats.try_acquire(spec.plan.max_connections) else {
            stats.refused.fetch_add(1, Relaxed);
            log::warn!(
                "tunnel {name}: refused a connection from {from}: {} connections already open (max_connections)",
                spec.plan.max_connections
            );
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return;
        };
        let dest = match self.shared.ctx.resolve(&spec.plan.target) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("tunnel {name}: {e}");
                stats.set_error(e);
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return;
            }
        };
        tokio::spawn(async move {
            let _slot = slot;
            let tcp = tokio::select! {
                r = forward::connect(dest) => r,
                _ = conns.cancelled() => return,
            };
            let tcp = match tcp {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("tunnel {name}: connection from {from}: {e}");
                    stats.set_error(e);
                    reply.reject(ChannelOpenFailure::ConnectFailed).await;
                    return;
                }
            };
            reply.accept().await;
            stats.connections.fetch_add(1, Relaxed);
            log::debug!("tunnel {name}: connection from {from} to {dest}");
            match forward::carry(channel, tcp, &stats, &conns).await {
                End::Done | End::Cancelled => {}
                End::Stalled => {
                    stats.stalled.fetch_add(1, Relaxed);
                    log::warn!(
                        "tunnel {name}: closed the connection from {from}: target {dest} took no data for {} s \
                         (keeps the other connections on this server flowing)",
                        forward::TARGET_STALL.as_secs()
                    );
                }
                End::Error(e) => log::debug!("tunnel {name}: connection from {from}: {e}"),
            }
        });
    }
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn auth_banner(
        &mut self,
        banner: &str,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        for line in banner.lines().filter(|l| !l.trim().is_empty()).take(20) {
            log::info!("{}: banner: {}", self.shared.tag(), urls::strip_ansi(line));
        }
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let s = &self.shared.server;
        let host = hostkeys::host_pattern(&s.host, s.port);
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                *lock(&self.conn.refusal) = Some(Refusal::Certificate { host });
                return Ok(false);
            }
        };
        let offered = hostkeys::fingerprint(key);
        if let Some(pin) = &s.host_key {
            if hostkeys::pin_matches(pin, key) {
                return Ok(true);
            }
            *lock(&self.conn.refusal) = Some(Refusal::PinMismatch {
                host,
                offered,
                pinned: pin.clone(),
            });
            return Ok(false);
        }
        let path = &s.known_hosts;
        let entries = match hostkeys::load(path) {
            Ok(e) => e,
            Err(e) => {
                // Unreadable is not "unknown": learning would overwrite it.
                log::error!("{}: {e}", self.shared.tag());
                return Ok(false);
            }
        };
        match hostkeys::check(&entries, &s.host, s.port, key) {
            Verdict::Known(_) => Ok(true),
            Verdict::Unknown => {
                match hostkeys::learn(path, &s.host, s.port, key) {
                    Ok(()) => log::info!(
                        "{}: learned host key {offered} for {host} into {}",
                        self.shared.tag(),
                        path.display()
                    ),
                    Err(e) => log::warn!("{}: {e}; accepting {offered} for now", self.shared.tag()),
                }
                Ok(true)
            }
            Verdict::Changed { lines, known } => {
                *lock(&self.conn.refusal) = Some(Refusal::Changed {
                    host,
                    offered,
                    known,
                    lines,
                    path: path.display().to_string(),
                });
                Ok(false)
            }
            Verdict::Revoked(line) => {
                *lock(&self.conn.refusal) = Some(Refusal::Revoked {
                    host,
                    offered,
                    line,
                    path: path.display().to_string(),
                });
                Ok(false)
            }
        }
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let found = self
            .find_forward(|reqs| forward::match_forward(reqs, connected_address, connected_port));
        let from = format!("{originator_address}:{originator_port}");
        let what = format!("{connected_address}:{connected_port}");
        self.accept_or_refuse(found, &what, from, channel, reply)
            .await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let found = self.find_forward(|reqs| forward::match_streamlocal(reqs, socket_path));
        // The server names no peer for a socket connection.
        let what = format!("unix:{socket_path}");
        self.accept_or_refuse(found, &what, what.clone(), channel, reply)
            .await;
        Ok(())
    }

    async fn disconnected(
        &mut self,
        reason: client::DisconnectReason<Self::Error>,
    ) -> Result<(), Self::Error> {
        let why = match reason {
            client::DisconnectReason::ReceivedDisconnect(info) => {
                if info.message.is_empty() {
                    format!(
                        "server closed the session (reason code {})",
                        info.reason_code as u32
                    )
                } else {
                    format!("server closed the session: {}", info.message)
                }
            }
            client::DisconnectReason::Error(e) => match e {
                russh::Error::KeepaliveTimeout => format!(
                    "server stopped answering keepalives ({} missed, {} s apart)",
                    self.shared.server.keepalive_max, self.shared.server.keepalive_s
                ),
                other => format!("session lost: {other}"),
            },
        };
        lock(&self.conn.end_reason).get_or_insert(why);
        self.conn.ended.cancel();
        Ok(())
    }
}

/// Why logging in failed, and whether retrying soon can help.
struct Failure {
    message: String,
    permanent: bool,
}

impl Failure {
    fn retry(message: String) -> Failure {
        Failure {
            message,
            permanent: false,
        }
    }
    fn fatal(message: String) -> Failure {
        Failure {
            message,
            permanent: true,
        }
    }
}

/// Ciphers offered, most preferred first (the server takes the first it
/// also allows). ChaCha20-Poly1305 is the cheapest without AES instructions
/// (mipsel under qemu: 27 G instructions per GiB against 102 for
/// aes128-gcm) and has no key-dependent tables; where the CPU has AES and
/// carry-less multiply instructions AES-GCM is the cheaper one (arm64
/// cortex-a53: 3.7 against 24.5 G per GiB; x86_64: 1.25 against 1.83
/// CPU-seconds per GiB), so it goes first there.
fn cipher_order(aes_instructions: bool) -> &'static [russh::cipher::Name] {
    use russh::cipher::{
        AES_128_CTR, AES_128_GCM, AES_192_CTR, AES_256_CTR, AES_256_GCM, CHACHA20_POLY1305,
    };
    const CHACHA_FIRST: &[russh::cipher::Name] = &[
        CHACHA20_POLY1305,
        AES_128_GCM,
        AES_256_GCM,
        AES_128_CTR,
        AES_192_CTR,
        AES_256_CTR,
    ];
    const GCM_FIRST: &[russh::cipher::Name] = &[
        AES_128_GCM,
        AES_256_GCM,
        CHACHA20_POLY1305,
        AES_128_CTR,
        AES_192_CTR,
        AES_256_CTR,
    ];
    if aes_instructions {
        GCM_FIRST
    } else {
        CHACHA_FIRST
    }
}

/// Whether this CPU has what AES-GCM's fast path needs: AES rounds and a
/// carry-less multiply (for GHASH) in hardware.
fn has_aes_instructions() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    false
}

/// A logged-in session: its handle, its session channel (when asked for),
/// and its TCP socket's addresses and a second descriptor for it (to steer
/// the goodbye through the right link).
struct LoggedIn {
    handle: Handle<Client>,
    channel: Option<Channel<Msg>>,
    local: SocketAddr,
    peer: SocketAddr,
    socket: Option<OwnedFd>,
}

/// Connect to `a`, from `source` when given (and still bindable).
async fn tcp_connect(
    a: SocketAddr,
    source: Option<Ipv4Addr>,
) -> std::io::Result<tokio::net::TcpStream> {
    if let (Some(src), SocketAddr::V4(_)) = (source, a) {
        let sock = tokio::net::TcpSocket::new_v4()?;
        // Gone meanwhile: the kernel's choice is the next best.
        if sock.bind(SocketAddr::new(IpAddr::V4(src), 0)).is_ok() {
            return sock.connect(a).await;
        }
    }
    tokio::net::TcpStream::connect(a).await
}

/// Connect (from `source`, when given), check the host key, authenticate,
/// open the session channel.
async fn login(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    source: Option<Ipv4Addr>,
) -> Result<LoggedIn, Failure> {
    let s = &shared.server;
    let endpoint = hostkeys::host_pattern(&s.host, s.port);
    let identity = match &s.identity {
        Some(p) => Some(super::keys::load(p).map_err(Failure::fatal)?),
        None => None,
    };
    let mut config = client::Config {
        keepalive_interval: Some(Duration::from_secs(s.keepalive_s)),
        keepalive_max: s.keepalive_max as usize,
        // Messages queued per channel (each up to one data packet): the
        // default 100 lets one busy connection hold 3 MiB; 16 costs no
        // throughput (measured) and keeps 200 connections within a router's RAM.
        channel_buffer_size: 16,
        // maximum_packet_size stays at russh's 32 KiB: 16 KiB saved 0.7 MiB
        // at 200 busy connections but cost a third of the decrypt-direction
        // throughput and 28 % more CPU per GiB (README, "Benchmarks and soak").
        ..client::Config::default()
    };
    // russh's default list lacks aes128-gcm; cipher_order says which goes first.
    config.preferred.cipher = cipher_order(has_aes_instructions()).into();
    if s.host_key.is_none() {
        let entries = hostkeys::load(&s.known_hosts).map_err(Failure::fatal)?;
        let known = hostkeys::known_algorithms(&entries, &s.host, s.port);
        if !known.is_empty() {
            let order: Vec<Algorithm> = hostkeys::prefer_known(&config.preferred.key, &known);
            config.preferred.key = order.into();
        }
    }

    let tcp = tokio::time::timeout(TCP_TIMEOUT, async {
        let addrs = tokio::net::lookup_host((s.host.as_str(), s.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", s.host))?;
        let mut last = format!("{} has no address", s.host);
        for a in addrs {
            match tcp_connect(a, source).await {
                Ok(t) => return Ok(t),
                Err(e) => last = format!("cannot reach {endpoint} ({a}): {e}"),
            }
        }
        Err(last)
    })
    .await
    .map_err(|_| {
        Failure::retry(format!(
            "cannot reach {endpoint}: no answer within {} s",
            TCP_TIMEOUT.as_secs()
        ))
    })?
    .map_err(Failure::retry)?;
    let addrs = tcp.local_addr().and_then(|l| Ok((l, tcp.peer_addr()?)));
    let (local, peer) = addrs
        .map_err(|e| Failure::retry(format!("{endpoint}: the connection closed at once: {e}")))?;
    // A failed dup only costs the choice of link for the goodbye.
    let socket = tcp.as_fd().try_clone_to_owned().ok();
    let tcp = super::socket::SshSocket::new(tcp);

    let handler = Client {
        shared: shared.clone(),
        conn: conn.clone(),
    };
    let login = async {
        let mut handle = client::connect_stream(Arc::new(config), tcp, handler)
            .await
            .map_err(|e| match lock(&conn.refusal).take() {
                Some(r) => Failure::fatal(r.to_string()),
                None => Failure::retry(format!("SSH handshake with {endpoint} failed: {e}")),
            })?;
        let user = s.user.as_str();
        let result = match identity {
            Some(key) => {
                let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                    match handle.best_supported_rsa_hash().await {
                        Ok(Some(h)) => h,
                        _ => Some(russh::keys::HashAlg::Sha512),
                    }
                } else {
                    None
                };
                handle
                    .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
                    .await
            }
            None => handle.authenticate_none(user).await,
        }
        .map_err(|e| Failure::retry(format!("authentication with {endpoint} failed: {e}")))?;
        if !result.success() {
            let how = match &s.identity {
                Some(p) => format!("the key {}", p.display()),
                None => "\"none\" authentication (no identity set)".to_string(),
            };
            return Err(Failure::fatal(format!(
                "{endpoint} refused {how} for user \"{user}\""
            )));
        }
        let channel = match &s.session {
            SessionMode::None => None,
            mode => {
                let ch = handle.channel_open_session().await.map_err(|e| {
                    Failure::retry(format!("{endpoint}: cannot open the session channel: {e}"))
                })?;
                let r = match mode {
                    SessionMode::Exec(cmd) => ch.exec(true, cmd.as_bytes()).await,
                    _ => ch.request_shell(true).await,
                };
                if let Err(e) = r {
                    log::warn!("{}: session request failed: {e}", shared.tag());
                }
                Some(ch)
            }
        };
        Ok(LoggedIn {
            handle,
            channel,
            local,
            peer,
            socket,
        })
    };
    tokio::time::timeout(LOGIN_TIMEOUT, login)
        .await
        .unwrap_or_else(|_| {
            Err(match lock(&conn.refusal).take() {
                Some(r) => Failure::fatal(r.to_string()),
                None => Failure::retry(format!(
                    "{endpoint}: no login within {} s",
                    LOGIN_TIMEOUT.as_secs()
                )),
            })
        })
}

/// Read the session channel: log it, and collect announced URLs.
async fn read_session_output(
    shared: Arc<Shared>,
    mut channel: Channel<Msg>,
    ended: CancellationToken,
) {
    let mut lines = urls::Lines::default();
    loop {
        let msg = tokio::select! {
            m = channel.wait() => m,
            _ = ended.cancelled() => None,
        };
        let data = match msg {
            Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => data,
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                log::info!(
                    "{}: session command exited with status {exit_status}",
                    shared.tag()
                );
                continue;
            }
            Some(ChannelMsg::Eof) | Some(ChannelMsg::Close) | None => break,
            Some(_) => continue,
        };
        for line in lines.push(&data) {
            session_line(&shared, &line);
        }
    }
    if let Some(line) = lines.finish() {
        session_line(&shared, &line);
    }
    log::debug!("{}: session channel closed", shared.tag());
}

fn session_line(shared: &Shared, line: &str) {
    let clean = urls::strip_ansi(line);
    if clean.trim().is_empty() {
        return;
    }
    log::info!("{}: {}", shared.tag(), clean.trim_end());
    let last = lock(&shared.last_requested).clone();
    for url in urls::scrape(&clean) {
        if !urls::is_public_url(&url, &shared.server.host) {
            continue;
        }
        shared.with_fwds(|fwds| {
            let binds: Vec<&str> = fwds
                .iter()
                .map(|f| f.spec.plan.remote.bind.as_str())
                .collect();
            let last_idx = last
                .as_deref()
                .and_then(|n| fwds.iter().position(|f| f.name() == n));
            if let Some(i) = urls::owner(&url, &binds, last_idx) {
                let f = &fwds[i];
                let mut added = false;
                let mut changed = None;
                f.spec.stats.update(|info| {
                    added = urls::remember(&mut info.public_urls, &url);
                    match urls::update(info.url.as_deref(), &url) {
                        urls::Update::Same => {}
                        urls::Update::Better => info.url = Some(url.clone()),
                        urls::Update::Changed => {
                            changed = Some(info.url.replace(url.clone()).unwrap_or_default());
                        }
                    }
                });
                if added {
                    log::info!("tunnel {}: public URL {url}", f.name());
                }
                if let Some(old) = changed {
                    url_changed(shared, f.name(), &old, &url);
                }
            }
        });
    }
}

/// Runs `[daemon] url_hook` for a tunnel whose public URL appeared or
/// changed; in the background, and its failure is only logged.
fn url_changed(shared: &Shared, tunnel: &str, old: &str, new: &str) {
    let Some(hook) = shared.ctx.lan_view.borrow().url_hook.clone() else {
        return;
    };
    let (tunnel, new, old) = (tunnel.to_string(), new.to_string(), old.to_string());
    tokio::spawn(async move {
        let env = [
            ("ROADIE_TUNNEL", tunnel.as_str()),
            ("ROADIE_URL", new.as_str()),
            ("ROADIE_OLD_URL", old.as_str()),
        ];
        match crate::hook::run(&hook, &env).await {
            Ok(m) => log::info!("tunnel {tunnel}: url_hook: {m}"),
            Err(e) => log::warn!("tunnel {tunnel}: url_hook: {e}"),
        }
    });
}

/// The session task's own state.
struct Supervisor {
    shared: Arc<Shared>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    stop: CancellationToken,
    uplinks: UplinkWatch,
    seed: u64,
    attempt: u32,
    generation: u64,
    captive: crate::captive::View,
    /// Where the last session was connected from and how (parting).
    anchor: Option<Anchor>,
    /// The live session's TCP socket (a second descriptor; dropped with it).
    socket: Option<OwnedFd>,
}

/// What woke a waiting session.
enum Wake {
    Go,
    Stop,
}

/// What a session starts with.
pub struct Start {
    pub server: Server,
    pub tunnels: Vec<TunnelSpec>,
    /// A previous session for the same server that is still saying goodbye
    /// (its forwards would collide with ours).
    pub after: Option<CancellationToken>,
    /// Jitter for the backoff schedule.
    pub seed: u64,
    /// Where the session reports whether it is logged in.
    pub health: Arc<Health>,
}

/// Run one server's session until `stop` fires.
pub async fn run(
    start: Start,
    ctx: Ctx,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    stop: CancellationToken,
) {
    let Start {
        server,
        tunnels,
        after,
        seed,
        health,
    } = start;
    let uplinks = UplinkWatch::new(&ctx);
    let captive = ctx.captive.clone();
    let shared = Arc::new(Shared {
        server,
        ctx,
        fwds: Mutex::new(tunnels.into_iter().map(Fwd::new).collect()),
        last_requested: Mutex::new(None),
        health,
    });
    if let Some(prev) = after {
        tokio::select! {
            _ = prev.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.cancelled() => return,
        }
    }
    let mut sup = Supervisor {
        shared,
        cmds,
        stop,
        uplinks,
        seed,
        attempt: 0,
        generation: 0,
        captive,
        anchor: None,
        socket: None,
    };
    sup.run().await;
    sup.shared.health.down("session stopped");
    sup.shared
        .with_fwds(|fwds| fwds.iter_mut().for_each(Fwd::close_connections));
}

impl Supervisor {
    async fn run(&mut self) {
        loop {
            if let Wake::Stop = self.hold_for_portal().await {
                return;
            }
            self.generation += 1;
            let conn = Arc::new(Conn {
                generation: self.generation,
                ended: CancellationToken::new(),
                end_reason: Mutex::new(None),
                refusal: Mutex::new(None),
            });
            self.shared.with_fwds(|fwds| {
                for f in fwds.iter_mut() {
                    f.req.live = false;
                    f.req.pending = false;
                    f.req.assigned = None;
                    f.attempt = 0;
                    f.retry_at = None;
                    f.spec.stats.set_state(State::Connecting, None);
                }
            });
            log::debug!(
                "{}: connecting (attempt {})",
                self.shared.tag(),
                self.attempt
            );

            // Log in, still answering commands and watching the uplink.
            let shared = self.shared.clone();
            let login_conn = conn.clone();
            let source = parting::source(self.anchor.as_ref(), &self.uplinks.state());
            if let Some(src) = source {
                log::debug!("{}: connecting from {src}", self.shared.tag());
            }
            let login = login(&shared, &login_conn, source);
            tokio::pin!(login);
            let result = loop {
                tokio::select! {
                    r = &mut login => break Some(r),
                    _ = self.stop.cancelled() => return,
                    changed = self.uplinks.changed() => if changed {
                        // Connecting from the address that just came, which
                        // is still the one to use (the old one went): go on.
                        let still = parting::source(self.anchor.as_ref(), &self.uplinks.state());
                        if source.is_some() && still == source {
                            log::info!(
                                "{}: uplink changed while connecting; still the way out from {}",
                                self.shared.tag(),
                                source.map(|s| s.to_string()).unwrap_or_default()
                            );
                            continue;
                        }
                        log::info!("{}: uplink changed while connecting; starting over", self.shared.tag());
                        self.attempt = 0;
                        break None;
                    },
                    _ = self.captive.changed() => if self.captive.portal().is_some() {
                        log::info!("{}: captive portal found while connecting; holding", self.shared.tag());
                        break None;
                    },
                    cmd = self.cmds.recv() => match cmd {
                        None => return,
                        // Already trying.
                        Some(Cmd::RetryNow) => {}
                        Some(c) => if self.apply_offline(c) {
                            break None;
                        },
                    },
                }
            };
            let Some(result) = result else { continue };
            let (handle, session) = match result {
                Ok(x) => {
                    self.anchor = match (x.local.ip(), x.peer.ip()) {
                        (IpAddr::V4(l), IpAddr::V4(p)) => {
                            parting::anchor(&self.uplinks.state(), l, p)
                        }
                        _ => None,
                    };
                    self.socket = x.socket;
                    (x.handle, x.channel)
                }
                Err(f) => {
                    let (state, attempt) = if f.permanent {
                        (State::Failed, PERMANENT_ATTEMPT.max(self.attempt))
                    } else {
                        (State::Backoff, self.attempt)
                    };
                    let delay = backoff::delay(attempt, self.seed);
                    log::warn!(
                        "{}: {} (retrying in {:.1} s)",
                        self.shared.tag(),
                        f.message,
                        delay.as_secs_f32()
                    );
                    self.shared.health.down(&f.message);
                    self.shared.set_all(state, Some(f.message));
                    self.shared.ctx.captive.connect_failed();
                    self.attempt = self.attempt.saturating_add(1);
                    match self.wait(delay).await {
                        Wake::Go => continue,
                        Wake::Stop => return,
                    }
                }
            };
            log::info!(
                "{}: logged in to {} as {}{}",
                self.shared.tag(),
                hostkeys::host_pattern(&self.shared.server.host, self.shared.server.port),
                self.shared.server.user,
                self.anchor
                    .as_ref()
                    .map(|a| format!(" from {}", a.local))
                    .unwrap_or_default()
            );
            self.shared.health.up();
            if let Some(ch) = session {
                tokio::spawn(read_session_output(
                    self.shared.clone(),
                    ch,
                    conn.ended.clone(),
                ));
            }
            let up_since = Instant::now();
            let served = self.serve(&handle, &conn, up_since).await;
            let socket = self.socket.take();
            match served {
                Served::Stop => {
                    let live = self.live_forwards();
                    self.goodbye(&handle, &conn, live, GOODBYE).await;
                    return;
                }
                Served::Again { why, goodbye } => {
                    let live = self.live_forwards();
                    self.lost(&why);
                    match goodbye {
                        Goodbye::Say { link } => {
                            log::info!(
                                "{}: {why}; closing the old session, then reconnecting",
                                self.shared.tag()
                            );
                            if let (Some(fd), Some(link)) = (&socket, &link) {
                                self.pin(fd, link);
                            }
                            tokio::select! {
                                _ = self.goodbye(&handle, &conn, live, QUICK_GOODBYE) => {}
                                _ = self.stop.cancelled() => return,
                            }
                        }
                        Goodbye::Skip => log::info!(
                            "{}: {why}; the old session's address is gone (the server keeps its forwards until it drops that session); reconnecting now",
                            self.shared.tag()
                        ),
                    }
                    drop(socket);
                    self.attempt = 0;
                    continue;
                }
                Served::Lost => {
                    // Closed now, not after the backoff below.
                    drop(socket);
                    let why = lock(&conn.end_reason)
                        .clone()
                        .unwrap_or_else(|| "session lost".to_string());
                    self.lost(&why);
                    self.shared.ctx.captive.connect_failed();
                    self.attempt = backoff::after_session(self.attempt, up_since.elapsed());
                    let delay = backoff::after_loss(self.attempt, self.seed);
                    self.attempt = self.attempt.saturating_add(1);
                    log::warn!(
                        "{}: {why} (reconnecting in {:.1} s)",
                        self.shared.tag(),
                        delay.as_secs_f32()
                    );
                    match self.wait(delay).await {
                        Wake::Go => continue,
                        Wake::Stop => return,
                    }
                }
            }
        }
    }

    /// Mark every tunnel as having lost its session.
    fn lost(&self, why: &str) {
        self.shared.health.down(why);
        self.shared.with_fwds(|fwds| {
            for f in fwds.iter_mut() {
                if f.req.live {
                    f.spec.stats.reconnects.fetch_add(1, Relaxed);
                }
                f.req.live = false;
                f.req.pending = false;
                f.close_connections();
                f.spec
                    .stats
                    .set_state(State::Backoff, Some(why.to_string()));
            }
        });
    }

    /// Sleep before the next attempt; an uplink change or a restart cuts it short.
    async fn wait(&mut self, delay: Duration) -> Wake {
        let until = Instant::now() + delay;
        loop {
            // A portal: stop backing off; `hold_for_portal` takes over.
            if self.captive.portal().is_some() {
                return Wake::Go;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return Wake::Go,
                _ = self.stop.cancelled() => return Wake::Stop,
                _ = self.captive.changed() => {}
                changed = self.uplinks.changed() => if changed {
                    log::info!("{}: uplink changed; reconnecting now", self.shared.tag());
                    self.attempt = 0;
                    return Wake::Go;
                },
                cmd = self.cmds.recv() => match cmd {
                    None => return Wake::Stop,
                    Some(c) => if self.apply_offline(c) {
                        self.attempt = 0;
                        return Wake::Go;
                    },
                },
            }
        }
    }

    /// While a captive portal holds the uplink: show `blocked`, do not dial
    /// (it would only burn backoff), and go at once when it lets us through.
    /// A probe under way (start, uplink change) is waited for, briefly.
    async fn hold_for_portal(&mut self) -> Wake {
        let mut held = false;
        let verdict_by = Instant::now() + crate::captive::VERDICT_WAIT;
        loop {
            let finding = self.captive.seen();
            let until = match finding.portal {
                Some(portal) => {
                    if !held {
                        log::info!("{}: held: {}", self.shared.tag(), portal.reason());
                        held = true;
                    }
                    self.shared.set_all(State::Blocked, Some(portal.reason()));
                    None
                }
                None if finding.checking && Instant::now() < verdict_by => Some(verdict_by),
                None => break,
            };
            tokio::select! {
                _ = sleep_until(until) => {}
                _ = self.stop.cancelled() => return Wake::Stop,
                _ = self.captive.changed() => {}
                // Keeps the uplink key current; the prober follows changes.
                _ = self.uplinks.changed() => {}
                cmd = self.cmds.recv() => match cmd {
                    None => return Wake::Stop,
                    // Reconnect, restart, retry: nothing to do until the portal lets go.
                    Some(c) => { self.apply_offline(c); }
                },
            }
        }
        if held {
            log::info!("{}: captive portal gone; connecting now", self.shared.tag());
            self.attempt = 0;
        }
        Wake::Go
    }

    /// Apply a command while not connected; true: reconnect right away.
    fn apply_offline(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Reconnect | Cmd::RestartTunnel(_) | Cmd::RetryNow => true,
            Cmd::Add(spec) => {
                self.shared.with_fwds(|fwds| fwds.push(Fwd::new(spec)));
                false
            }
            Cmd::Remove(name) | Cmd::Release(name) => {
                self.shared.with_fwds(|fwds| {
                    fwds.retain_mut(|f| {
                        if f.name() == name {
                            f.close_connections();
                        }
                        f.name() != name
                    })
                });
                false
            }
            Cmd::Replace(spec) => {
                self.shared.with_fwds(|fwds| {
                    if let Some(f) = fwds.iter_mut().find(|f| f.name() == spec.plan.name) {
                        f.close_connections();
                        *f = Fwd::new(spec);
                    }
                });
                false
            }
        }
    }

    /// Keep the session: request forwards, retry refused ones, follow commands.
    async fn serve(
        &mut self,
        handle: &Handle<Client>,
        conn: &Arc<Conn>,
        up_since: Instant,
    ) -> Served {
        let names: Vec<String> = self
            .shared
            .with_fwds(|fwds| fwds.iter().map(|f| f.name().to_string()).collect());
        for name in names {
            tokio::select! {
                _ = self.request(handle, conn, &name) => {}
                _ = self.stop.cancelled() => return Served::Stop,
                _ = conn.ended.cancelled() => return Served::Lost,
            }
        }
        let mut stable_reset = self.attempt > 0;
        loop {
            let next_retry = self
                .shared
                .with_fwds(|fwds| fwds.iter().filter_map(|f| f.retry_at).min());
            tokio::select! {
                _ = self.stop.cancelled() => return Served::Stop,
                _ = conn.ended.cancelled() => return Served::Lost,
                changed = self.uplinks.changed() => if changed
                    && let Some(goodbye) = self.after_uplink_change()
                {
                    return Served::Again { why: "uplink changed".to_string(), goodbye };
                },
                cmd = self.cmds.recv() => match cmd {
                    None => return Served::Stop,
                    Some(Cmd::Reconnect) => return Served::Again {
                        why: "restart requested".to_string(),
                        goodbye: Goodbye::Say { link: None },
                    },
                    Some(c) => self.apply_online(handle, conn, c).await,
                },
                _ = sleep_until(next_retry) => {
                    let now = Instant::now();
                    let due: Vec<String> = self.shared.with_fwds(|fwds| {
                        fwds.iter()
                            .filter(|f| f.retry_at.is_some_and(|t| t <= now))
                            .map(|f| f.name().to_string())
                            .collect()
                    });
                    for name in due {
                        self.request(handle, conn, &name).await;
                    }
                }
                _ = tokio::time::sleep_until(up_since + backoff::STABLE), if stable_reset => {
                    stable_reset = false;
                    self.attempt = 0;
                }
            }
        }
    }

    async fn apply_online(&mut self, handle: &Handle<Client>, conn: &Arc<Conn>, cmd: Cmd) {
        match cmd {
            Cmd::Reconnect | Cmd::RetryNow => {}
            Cmd::Add(spec) => {
                let name = spec.plan.name.clone();
                self.shared.with_fwds(|fwds| fwds.push(Fwd::new(spec)));
                self.request(handle, conn, &name).await;
            }
            Cmd::Remove(name) => {
                self.cancel(handle, &name).await;
                self.shared
                    .with_fwds(|fwds| fwds.retain(|f| f.name() != name));
                log::info!("tunnel {name}: removed");
            }
            Cmd::Release(name) => {
                self.release(handle, &name).await;
                self.shared
                    .with_fwds(|fwds| fwds.retain(|f| f.name() != name));
                log::info!("tunnel {name}: left this way out; its open connections finish here");
            }
            Cmd::Replace(spec) => {
                let name = spec.plan.name.clone();
                self.cancel(handle, &name).await;
                self.shared.with_fwds(|fwds| {
                    if let Some(f) = fwds.iter_mut().find(|f| f.name() == name) {
                        *f = Fwd::new(spec);
                    }
                });
                log::info!("tunnel {name}: settings changed; requesting its forward again");
                self.request(handle, conn, &name).await;
            }
            Cmd::RestartTunnel(name) => {
                self.cancel(handle, &name).await;
                self.shared.with_fwds(|fwds| {
                    if let Some(f) = fwds.iter_mut().find(|f| f.name() == name) {
                        f.attempt = 0;
                        f.spec.stats.reconnects.fetch_add(1, Relaxed);
                    }
                });
                log::info!("tunnel {name}: restarting");
                self.request(handle, conn, &name).await;
            }
        }
    }

    /// Cancel a live forward and close its connections.
    async fn cancel(&self, handle: &Handle<Client>, name: &str) {
        self.shared.with_fwds(|fwds| {
            if let Some(f) = fwds.iter_mut().find(|f| f.name() == name) {
                f.close_connections();
                f.spec.stats.set_state(State::Connecting, None);
            }
        });
        self.release(handle, name).await;
    }

    /// Cancel a live forward; the connections it carries go on (new ones
    /// arrive through the tunnel's new way out).
    async fn release(&self, handle: &Handle<Client>, name: &str) {
        let live = self.shared.with_fwds(|fwds| {
            let f = fwds.iter_mut().find(|f| f.name() == name)?;
            let was = f.req.live.then(|| f.wire());
            f.req.live = false;
            f.req.pending = false;
            was
        });
        if let Some(w) = live {
            match tokio::time::timeout(REQUEST_TIMEOUT, w.cancel(handle)).await {
                Ok(Ok(())) => log::debug!("tunnel {name}: cancelled forward {w}"),
                Ok(Err(e)) => log::warn!("tunnel {name}: cancelling forward {w}: {e}"),
                Err(_) => log::warn!("tunnel {name}: cancelling forward {w}: no answer"),
            }
        }
    }

    /// Send `tcpip-forward` for one tunnel and record the outcome.
    async fn request(&self, handle: &Handle<Client>, conn: &Arc<Conn>, name: &str) {
        let Some((bind, port, unix)) = self.shared.with_fwds(|fwds| {
            let f = fwds.iter_mut().find(|f| f.name() == name)?;
            f.retry_at = None;
            // A connection may arrive before the reply: accept it on this session.
            f.req.pending = true;
            f.generation = conn.generation;
            Some((f.req.bind.clone(), f.req.port, f.req.unix.clone()))
        }) else {
            return;
        };
        *lock(&self.shared.last_requested) = Some(name.to_string());
        let what = match &unix {
            Some(p) => format!("unix:{p}"),
            None => format!("{bind}:{port}"),
        };
        let r = tokio::time::timeout(REQUEST_TIMEOUT, async {
            match &unix {
                // The server assigns nothing for a socket; 0 stands in.
                Some(p) => handle.streamlocal_forward(p.clone()).await.map(|()| 0),
                None => handle.tcpip_forward(bind.clone(), port).await,
            }
        })
        .await;
        // Generation 1 is the first login; a refusal later follows a reconnect.
        let after_reconnect = conn.generation > 1;
        let seed = self.seed;
        let generation = conn.generation;
        let tag = self.shared.tag();
        self.shared.with_fwds(|fwds| {
            let Some(f) = fwds.iter_mut().find(|f| f.name() == name) else {
                return;
            };
            let target = f.spec.plan.target.to_string();
            f.req.pending = false;
            match r {
                Ok(Ok(got)) => {
                    f.req.live = true;
                    f.generation = generation;
                    f.attempt = 0;
                    if port == 0 && unix.is_none() {
                        f.req.assigned = Some(got);
                        f.spec.stats.update(|i| i.assigned_port = Some(got));
                    }
                    f.spec.stats.set_state(State::Up, None);
                    log::info!(
                        "tunnel {name}: up; {tag} listens on {} for {target}",
                        f.wire()
                    );
                }
                Ok(Err(e)) => {
                    let why = match e {
                        russh::Error::RequestDenied => refused_why(&tag, &what, after_reconnect),
                        other => format!("forward request for {what} failed: {other}"),
                    };
                    let delay = backoff::forward_delay(f.attempt, seed);
                    f.attempt = f.attempt.saturating_add(1);
                    f.retry_at = Some(Instant::now() + delay);
                    log::warn!(
                        "tunnel {name}: {why}; retrying in {:.1} s",
                        delay.as_secs_f32()
                    );
                    f.spec.stats.set_state(State::Backoff, Some(why));
                }
                Err(_) => {
                    let why = format!("{tag} did not answer the forward request for {what}");
                    let delay = backoff::forward_delay(f.attempt, seed);
                    f.attempt = f.attempt.saturating_add(1);
                    f.retry_at = Some(Instant::now() + delay);
                    log::warn!("tunnel {name}: {why}");
                    f.spec.stats.set_state(State::Backoff, Some(why));
                }
            }
        });
    }

    /// The uplinks changed under a live session: None keeps it (its address
    /// and route are as they were), else how to part with it.
    fn after_uplink_change(&mut self) -> Option<Goodbye> {
        let state = self.uplinks.state();
        let Some(anchor) = self.anchor.as_mut() else {
            // Where it came from is unknown: try a goodbye, as before.
            return Some(Goodbye::Say { link: None });
        };
        match parting::decide(anchor, &state) {
            parting::Verdict::Keep => {
                parting::refresh(anchor, &state);
                log::info!(
                    "{}: uplink changed; the session's address {} and its route are as they were: keeping it",
                    self.shared.tag(),
                    anchor.local
                );
                None
            }
            parting::Verdict::Move {
                goodbye: Some(link),
            } => Some(Goodbye::Say {
                link: state
                    .links
                    .iter()
                    .find(|l| l.index == link)
                    .map(|l| l.name.clone()),
            }),
            parting::Verdict::Move { goodbye: None } => Some(Goodbye::Skip),
        }
    }

    /// Send the rest of the old session through `link`, the one that holds
    /// its address (another uplink may have the default route by now).
    /// Needs CAP_NET_RAW; without it the goodbye takes the kernel's route.
    fn pin(&self, fd: &OwnedFd, link: &str) {
        let name = link.as_bytes();
        // SAFETY: setsockopt on a descriptor this task owns, with a pointer
        // and length that describe `name`.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if r != 0 {
            log::debug!(
                "{}: cannot send the goodbye through {link}: {}",
                self.shared.tag(),
                std::io::Error::last_os_error()
            );
        }
    }

    /// The live forwards, as named in their cancel requests.
    fn live_forwards(&self) -> Vec<Wire> {
        self.shared
            .with_fwds(|fwds| fwds.iter().filter(|f| f.req.live).map(Fwd::wire).collect())
    }

    /// Cancel the forwards `live` (so the server frees the names and ports
    /// at once), close connections, disconnect; bounded by `limit`.
    async fn goodbye(
        &self,
        handle: &Handle<Client>,
        conn: &Arc<Conn>,
        live: Vec<Wire>,
        limit: Duration,
    ) {
        self.shared
            .with_fwds(|fwds| fwds.iter_mut().for_each(Fwd::close_connections));
        let _ = tokio::time::timeout(limit, async {
            // Sent back to back, without waiting for the replies: the old
            // address may be about to go; sshd handles them in order.
            let cancels = futures_util::future::join_all(live.iter().map(|w| w.cancel(handle)));
            tokio::pin!(cancels);
            // One poll queues the cancels' requests; their replies are not
            // awaited (after the disconnect none comes, and russh would log
            // each missing one as an error).
            tokio::select! {
                biased;
                _ = &mut cancels => {}
                _ = std::future::ready(()) => {}
            }
            let _ = handle
                .disconnect(Disconnect::ByApplication, "roadie is stopping", "en")
                .await;
            conn.ended.cancelled().await;
        })
        .await;
        log::info!("{}: disconnected", self.shared.tag());
    }
}

enum Served {
    Stop,
    Lost,
    /// Reconnect now, parting with the old session as `goodbye` says.
    Again {
        why: String,
        goodbye: Goodbye,
    },
}

enum Goodbye {
    /// Cancel the forwards and disconnect (through `link`, when known).
    Say { link: Option<String> },
    /// The old session's address is gone: nothing would arrive.
    Skip,
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_gcm_goes_first_only_with_aes_instructions() {
        // (AES instructions, the first two offered); all six always.
        for (aes, first) in [
            (
                false,
                ["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com"],
            ),
            (true, ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]),
        ] {
            let order = cipher_order(aes);
            let names: Vec<&str> = order.iter().map(|n| n.as_ref()).collect();
            assert_eq!(names[..2], first, "aes instructions: {aes}");
            let mut all = names.clone();
            all.sort_unstable();
            all.dedup();
            assert_eq!(all.len(), 6, "{names:?}");
        }
    }

    #[test]
    fn binds_on_the_wire_are_what_ssh_sends() {
        assert_eq!(wire_bind(""), "localhost");
        assert_eq!(wire_bind("*"), "");
        assert_eq!(wire_bind("ui_julio"), "ui_julio");
        assert_eq!(wire_bind("0.0.0.0"), "0.0.0.0");
    }

    #[test]
    fn a_refusal_after_a_reconnect_names_the_old_session_and_what_ends_it() {
        let why = refused_why("server vps", "0.0.0.0:8080", true);
        for part in [
            "server vps refused to listen on 0.0.0.0:8080",
            "still holds the forward for the previous session",
            "ClientAlive timeout when idle",
            "TCP retransmission timeout when traffic keeps it busy",
            "unix-socket remote with StreamLocalBindUnlink avoids it",
        ] {
            assert!(why.contains(part), "{why:?} lacks {part:?}");
        }
        let first = refused_why("server vps", "0.0.0.0:8080", false);
        assert!(!first.contains("previous session"), "{first}");
        assert!(first.contains("in use, not allowed"), "{first}");
    }
}
