//! A hostile-ish SSH server built on russh's server side: lets anyone in
//! ("none" or any key), prints a URL banner on the session channel like
//! serveo/sish, and after each `tcpip-forward` opens one `forwarded-tcpip`
//! channel for a port nobody requested and one for the requested forward.
//! What happened is recorded as lines in `events`. `{n}` in the banner
//! becomes the connection's number (1, 2, ...): a different URL each time,
//! like a free tunnel service handing out random names.

use super::{Ns, Shared};
use russh::server::{Auth, Handler, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The port the fake server opens a channel for although nobody asked.
pub const UNREQUESTED_PORT: u32 = 9999;
/// What the fake server assigns when port 0 is requested.
pub const ASSIGNED_PORT: u32 = 40000;

pub struct Fake {
    pub addr: String,
    pub events: Shared<Vec<String>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct H {
    events: Shared<Vec<String>>,
    banner: String,
}

impl H {
    fn note(&self, e: String) {
        self.events.lock().unwrap().push(e);
    }
}

impl Handler for H {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.note(format!("auth none {user}"));
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        _key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.note(format!("auth publickey {user}"));
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.accept().await;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.note("shell".into());
        session.channel_success(channel)?;
        session.data(channel, self.banner.clone().into_bytes())?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.note(format!("exec {}", String::from_utf8_lossy(data)));
        session.channel_success(channel)?;
        session.data(channel, self.banner.clone().into_bytes())?;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if *port == 0 {
            *port = ASSIGNED_PORT;
        }
        let (address, port) = (address.to_string(), *port);
        self.note(format!("forward {address}:{port}"));
        let handle = session.handle();
        let me = self.clone();
        tokio::spawn(async move {
            // Let the client see the reply first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let r = handle
                .channel_open_forwarded_tcpip(
                    address.clone(),
                    UNREQUESTED_PORT,
                    "203.0.113.9",
                    4444,
                )
                .await;
            me.note(format!(
                "unrequested {address}:{UNREQUESTED_PORT}: {}",
                if r.is_ok() { "accepted" } else { "refused" }
            ));
            match handle
                .channel_open_forwarded_tcpip(address.clone(), port, "203.0.113.9", 4445)
                .await
            {
                Err(e) => me.note(format!("requested {address}:{port}: refused ({e})")),
                Ok(ch) => {
                    let got = fetch(ch).await;
                    me.note(format!("requested {address}:{port}: {got}"));
                }
            }
        });
        Ok(true)
    }
}

/// Send an HTTP request on the channel and return what came back.
async fn fetch(mut ch: Channel<Msg>) -> String {
    let _ = ch.data_bytes(&b"GET / HTTP/1.0\r\n\r\n"[..]).await;
    let _ = ch.eof().await;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline.into(), ch.wait()).await {
        match msg {
            ChannelMsg::Data { data } => got.extend_from_slice(&data),
            ChannelMsg::Eof | ChannelMsg::Close => break,
            _ => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

impl Fake {
    /// Serve on `addr` inside `ns` with the host key at `host_key`.
    pub fn start(ns: &Ns, addr: &str, host_key: &Path, banner: &str) -> Fake {
        let listener = ns.listen(addr);
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let key = russh::keys::load_secret_key(host_key, None).expect("fake server host key");
        let events: Shared<Vec<String>> = Arc::new(Mutex::new(Vec::new()));
        let h = H {
            events: events.clone(),
            banner: banner.to_string(),
        };
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let config = Arc::new(russh::server::Config {
                    keys: vec![key],
                    auth_rejection_time: Duration::from_millis(10),
                    auth_rejection_time_initial: Some(Duration::ZERO),
                    ..Default::default()
                });
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let mut n = 0u32;
                loop {
                    tokio::select! {
                        _ = &mut stop_rx => break,
                        a = listener.accept() => {
                            let Ok((stream, _)) = a else { continue };
                            n += 1;
                            let (config, mut h) = (config.clone(), h.clone());
                            h.banner = h.banner.replace("{n}", &n.to_string());
                            tokio::spawn(async move {
                                if let Ok(running) = russh::server::run_stream(config, stream, h).await {
                                    let _ = running.await;
                                }
                            });
                        }
                    }
                }
            });
        });
        Fake {
            addr,
            events,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
