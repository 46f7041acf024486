//! Captive-portal awareness: a plain HTTP probe over the uplink tells "the
//! Internet" from "a hotel's login page" and from "nothing at all".
//!
//! The probe runs when an uplink gets an address or changes, now and then
//! while tunnels cannot connect (they say so through [`View::connect_failed`]),
//! and every `captive_poll_ms` while a portal holds the router, so the
//! tunnels go the moment it lets the router through. The finding is
//! published on a `watch` channel that every tunnel session reads.

pub mod probe;

use crate::config::Config;
use crate::netwatch::NetState;
use crate::tunnel::{UplinkKey, uplink_key};
use probe::{Expect, Outcome, ProbeUrl};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The whole probe: name lookup, connect, request, answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// An uplink change comes as a burst of netlink events (address, then
/// route); probe once it is over.
const SETTLE: Duration = Duration::from_millis(100);
/// While a portal is known, this many probes in a row without an answer
/// let the tunnels try on their own (the portal may be gone, or only its
/// check site); one lost probe does not.
const NO_ANSWER_LIMIT: u32 = 3;
/// How long a session about to dial waits for the verdict of a probe under
/// way (after start or an uplink change): dialling through a portal only
/// fails or, where the portal lets SSH through, comes up behind its back.
/// A healthy probe takes one round trip; a slow one is not waited out.
pub const VERDICT_WAIT: Duration = Duration::from_secs(2);

/// A portal between the router and the Internet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Captive {
    /// Where the portal sends people (its Location), else the probe URL.
    pub url: String,
    /// Unix time it was first seen.
    pub since: u64,
    pub probe_url: String,
}

impl Captive {
    /// Why tunnels are held, for their `last_error`.
    pub fn reason(&self) -> String {
        format!(
            "captive portal at {}: open it from a device on the LAN",
            self.url
        )
    }
}

/// What the sessions read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finding {
    pub portal: Option<Captive>,
    /// A probe is due or under way after start or an uplink change.
    pub checking: bool,
}

/// The last probe, for status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Unix time it finished.
    pub at: u64,
    pub url: String,
    /// `open`, `portal` or `no answer`.
    pub result: &'static str,
    /// The portal's URL or why nothing answered; null when open.
    pub detail: Option<String>,
    pub took_ms: u64,
    /// Probes since start.
    pub count: u64,
}

/// How to probe; from `[wan]`, replaced on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `probe_url = "off"`: no probing, never captive.
    pub enabled: bool,
    pub url: ProbeUrl,
    pub expect: Expect,
    /// While tunnels cannot connect, probe at most this often.
    pub interval: Duration,
    /// While a portal is known, probe this often.
    pub poll: Duration,
    pub wan: Vec<String>,
    pub lan: String,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        let enabled = c.wan.probe_url.as_deref() != Some(probe::OFF);
        let configured = match c.wan.probe_url.as_deref() {
            Some(u) if enabled => u,
            _ => probe::DEFAULT_URL,
        };
        // check-config accepted it; the fallback only guards a broken invariant.
        let url = probe::parse_url(configured).unwrap_or_else(|e| {
            log::error!(
                "[wan] probe_url {configured} {e}; probing {} instead",
                probe::DEFAULT_URL
            );
            ProbeUrl {
                host: "connectivitycheck.gstatic.com".into(),
                port: 80,
                path: "/generate_204".into(),
            }
        });
        Settings {
            enabled,
            url,
            expect: Expect::from_config(c.wan.probe_expect.as_deref()),
            interval: Duration::from_secs(c.wan.probe_interval_s),
            poll: Duration::from_millis(c.wan.captive_poll_ms),
            wan: c.wan.interfaces.clone(),
            lan: c.lan.interface.clone(),
        }
    }
}

/// What a tunnel session sees of the prober.
#[derive(Clone)]
pub struct View {
    rx: watch::Receiver<Finding>,
    failed: Arc<Notify>,
}

impl View {
    /// A view with no prober behind it: never captive.
    pub fn detached() -> View {
        let (_, rx) = watch::channel(Finding::default());
        View {
            rx,
            failed: Arc::new(Notify::new()),
        }
    }

    /// The portal, if one holds the uplink now.
    pub fn portal(&self) -> Option<Captive> {
        self.rx.borrow().portal.clone()
    }

    /// The whole finding, marking it seen for [`View::changed`].
    pub fn seen(&mut self) -> Finding {
        self.rx.borrow_and_update().clone()
    }

    /// Waits until the finding changes (forever once the prober is gone).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// A session could not connect: worth a probe, if none ran lately.
    pub fn connect_failed(&self) {
        self.failed.notify_one();
    }
}

/// The daemon's end: the sessions' view, reload, and status.
pub struct Prober {
    pub view: View,
    settings: watch::Sender<Settings>,
    report: watch::Receiver<Option<Report>>,
}

impl Prober {
    /// The prober and its task (spawn it).
    pub fn start(
        config: &Config,
        net: watch::Receiver<NetState>,
        cancel: CancellationToken,
    ) -> (Prober, impl Future<Output = ()> + Send + 'static) {
        // Checking until the first probe (or the first netlink dump shows
        // no uplink with an address).
        let (captive_tx, captive_rx) = watch::channel(Finding {
            portal: None,
            checking: true,
        });
        let (report_tx, report_rx) = watch::channel(None);
        let (settings_tx, settings_rx) = watch::channel(Settings::from_config(config));
        let failed = Arc::new(Notify::new());
        let task = Task {
            settings: settings_rx,
            net,
            failed: failed.clone(),
            captive: captive_tx,
            report: report_tx,
            count: 0,
            no_answers: 0,
        };
        let prober = Prober {
            view: View {
                rx: captive_rx,
                failed,
            },
            settings: settings_tx,
            report: report_rx,
        };
        (prober, task.run(cancel))
    }

    /// After a reload; a changed probe runs at once.
    pub fn reconfigure(&self, config: &Config) {
        let new = Settings::from_config(config);
        self.settings.send_if_modified(|s| {
            if *s != new {
                *s = new;
                true
            } else {
                false
            }
        });
    }

    /// Status: `"captive"` and `"probe"`.
    pub fn status(&self) -> (Option<Captive>, Option<Report>) {
        (self.view.portal(), self.report.borrow().clone())
    }
}

/// What the portal state becomes after a probe.
///
/// `fresh`: the first probe since the uplink changed (or the settings did):
/// then an unanswered probe says the old portal is no longer known.
pub fn decide(
    prev: Option<&Captive>,
    outcome: &Outcome,
    fresh: bool,
    no_answers: u32,
    now: u64,
    probe_url: &str,
) -> Option<Captive> {
    match outcome {
        Outcome::Open => None,
        Outcome::Portal { url } => Some(Captive {
            url: url.clone(),
            since: prev.map_or(now, |p| p.since),
            probe_url: probe_url.to_string(),
        }),
        Outcome::NoAnswer(_) if fresh || no_answers >= NO_ANSWER_LIMIT => None,
        Outcome::NoAnswer(_) => prev.cloned(),
    }
}

/// Whether any uplink is up with an address (else there is nothing to probe).
fn has_address(key: &UplinkKey) -> bool {
    key.iter().any(|(_, up, addrs, _)| *up && !addrs.is_empty())
}

struct Task {
    settings: watch::Receiver<Settings>,
    net: watch::Receiver<NetState>,
    failed: Arc<Notify>,
    captive: watch::Sender<Finding>,
    report: watch::Sender<Option<Report>>,
    count: u64,
    no_answers: u32,
}

impl Task {
    async fn run(mut self, cancel: CancellationToken) {
        let mut settings = self.settings.borrow_and_update().clone();
        let mut key = self.uplinks(&settings);
        let mut due = has_address(&key).then(Instant::now);
        self.settled(&key);
        let mut fresh = true;
        let mut last: Option<Instant> = None;
        loop {
            if !settings.enabled {
                due = None;
                self.publish(|f| *f = Finding::default());
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = sleep_until(due) => {
                    let (outcome, took_ms) = tokio::select! {
                        o = probe(&settings) => o,
                        _ = cancel.cancelled() => return,
                    };
                    last = Some(Instant::now());
                    self.record(&settings, &outcome, took_ms, fresh);
                    fresh = false;
                    due = self
                        .captive
                        .borrow()
                        .portal
                        .is_some()
                        .then(|| Instant::now() + settings.poll);
                }
                r = self.net.changed() => {
                    if r.is_err() {
                        return;
                    }
                    let new = self.uplinks(&settings);
                    if new != key {
                        key = new;
                        fresh = true;
                        if has_address(&key) {
                            due = Some(Instant::now() + SETTLE);
                            self.publish(|f| f.checking = true);
                        } else {
                            due = None;
                            self.clear("no uplink has an address");
                        }
                    }
                    self.settled(&key);
                }
                r = self.settings.changed() => {
                    if r.is_err() {
                        return;
                    }
                    settings = self.settings.borrow_and_update().clone();
                    key = self.uplinks(&settings);
                    fresh = true;
                    due = has_address(&key).then(Instant::now);
                    if due.is_some() {
                        self.publish(|f| f.checking = true);
                    }
                }
                _ = self.failed.notified() => {
                    let quiet = last.is_none_or(|t| t.elapsed() >= settings.interval);
                    if due.is_none() && quiet && has_address(&key) {
                        log::debug!("probe: tunnels cannot connect; checking for a captive portal");
                        due = Some(Instant::now());
                    }
                }
            }
        }
    }

    fn uplinks(&self, s: &Settings) -> UplinkKey {
        uplink_key(&self.net.borrow(), &s.wan, &s.lan)
    }

    /// Change what sessions see; they wake only if it really changed.
    fn publish(&self, f: impl FnOnce(&mut Finding)) {
        self.captive.send_if_modified(|cur| {
            let mut next = cur.clone();
            f(&mut next);
            let changed = *cur != next;
            *cur = next;
            changed
        });
    }

    /// Nothing to check while no uplink has an address (once the netlink
    /// watcher has reported at all).
    fn settled(&self, key: &UplinkKey) {
        if !has_address(key) && !self.net.borrow().links.is_empty() {
            self.publish(|f| f.checking = false);
        }
    }

    fn clear(&mut self, why: &str) {
        self.no_answers = 0;
        if self.captive.borrow().portal.is_some() {
            log::info!("captive portal no longer known ({why}); tunnels connect now");
        }
        self.publish(|f| *f = Finding::default());
    }

    /// Publish a probe's outcome and what it means.
    fn record(&mut self, settings: &Settings, outcome: &Outcome, took_ms: u64, fresh: bool) {
        self.count += 1;
        let url = settings.url.to_string();
        let now = crate::lan::now_unix();
        self.no_answers = match outcome {
            Outcome::NoAnswer(_) => self.no_answers.saturating_add(1),
            _ => 0,
        };
        let prev = self.captive.borrow().portal.clone();
        let next = decide(prev.as_ref(), outcome, fresh, self.no_answers, now, &url);
        match (&prev, &next) {
            (None, Some(c)) => log::warn!(
                "captive portal: {url} was answered by a login page at {}; tunnels are held \
                 until it lets the router through (open it from a device on the LAN)",
                c.url
            ),
            (Some(p), Some(c)) if p.url != c.url => {
                log::info!("captive portal now sends people to {}", c.url)
            }
            (Some(_), None) => {
                log::info!("captive portal gone ({url}: {outcome}); tunnels connect now")
            }
            _ => log::debug!("probe {url}: {outcome}"),
        }
        if next.is_none() {
            self.no_answers = 0;
        }
        self.publish(|f| {
            f.portal = next;
            f.checking = false;
        });
        let detail = match outcome {
            Outcome::Open => None,
            Outcome::Portal { url } => Some(url.clone()),
            Outcome::NoAnswer(why) => Some(why.clone()),
        };
        self.report.send_replace(Some(Report {
            at: now,
            url,
            result: outcome.word(),
            detail,
            took_ms,
            count: self.count,
        }));
    }
}

/// Probe once; the outcome and how long it took (ms).
async fn probe(s: &Settings) -> (Outcome, u64) {
    let t0 = Instant::now();
    let outcome = match tokio::time::timeout(PROBE_TIMEOUT, fetch(&s.url)).await {
        Err(_) => Outcome::NoAnswer(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Ok(Err(e)) => Outcome::NoAnswer(e),
        Ok(Ok(buf)) => probe::classify(&s.url, &s.expect, &buf),
    };
    (outcome, t0.elapsed().as_millis() as u64)
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One GET, read up to [`probe::MAX_ANSWER`] bytes or a whole answer.
async fn fetch(url: &ProbeUrl) -> Result<Vec<u8>, String> {
    let addrs = tokio::net::lookup_host((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
    let mut last = format!("{} has no address", url.host);
    let mut stream = None;
    for a in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("cannot reach {a}: {e}"),
            Err(_) => {
                last = format!(
                    "cannot reach {a}: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )
            }
        }
    }
    let mut s = stream.ok_or(last)?;
    s.write_all(&probe::request(url))
        .await
        .map_err(|e| format!("sending the request to {url}: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    while buf.len() < probe::MAX_ANSWER && !probe::complete(&buf) {
        match s.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => {
                let room = probe::MAX_ANSWER - buf.len();
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            // A reset after the answer still leaves the answer.
            Err(_) if !buf.is_empty() => break,
            Err(e) => return Err(format!("reading the answer from {url}: {e}")),
        }
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_config() {
        let base = "[wan]\ninterfaces = [\"wan0\"]\n{extra}\n[lan]\ninterface = \"lan0\"\naddress = \"192.168.1.1/24\"\n";
        let settings = |extra: &str| {
            let text = base.replace("{extra}", extra);
            let c = crate::config::parse(&text, std::path::Path::new("t.toml")).unwrap();
            Settings::from_config(&c)
        };
        let d = settings("");
        assert!(d.enabled);
        assert_eq!(d.url.to_string(), probe::DEFAULT_URL);
        assert_eq!(d.expect, Expect::NoContent);
        let off = settings("probe_url = \"off\"");
        assert!(!off.enabled);
        let own = settings("probe_url = \"http://10.0.0.1:8080/ok\"\nprobe_expect = \"fine\"");
        assert!(own.enabled);
        assert_eq!(own.url.to_string(), "http://10.0.0.1:8080/ok");
        assert_eq!(own.expect, Expect::Body("fine".into()));
    }

    #[test]
    fn what_a_probe_means() {
        let old = Captive {
            url: "http://portal/a".into(),
            since: 100,
            probe_url: "http://p/".into(),
        };
        let portal = |u: &str| Outcome::Portal { url: u.into() };
        let none = Outcome::NoAnswer("timeout".into());
        let at = |url: &str, since: u64| {
            Some(Captive {
                url: url.into(),
                since,
                probe_url: "http://p/".into(),
            })
        };
        // (name, prev, outcome, fresh, no_answers, want)
        type Case<'a> = (
            &'a str,
            Option<&'a Captive>,
            Outcome,
            bool,
            u32,
            Option<Captive>,
        );
        let cases: Vec<Case> = vec![
            ("open", None, Outcome::Open, false, 0, None),
            ("open releases", Some(&old), Outcome::Open, false, 0, None),
            (
                "new portal",
                None,
                portal("http://portal/a"),
                true,
                0,
                at("http://portal/a", 500),
            ),
            (
                "same portal keeps since",
                Some(&old),
                portal("http://portal/a"),
                false,
                0,
                at("http://portal/a", 100),
            ),
            (
                "portal moved keeps since",
                Some(&old),
                portal("http://portal/b"),
                false,
                0,
                at("http://portal/b", 100),
            ),
            ("no answer is no portal", None, none.clone(), false, 1, None),
            (
                "one lost probe keeps the portal",
                Some(&old),
                none.clone(),
                false,
                1,
                at("http://portal/a", 100),
            ),
            (
                "lost probes in a row let go",
                Some(&old),
                none.clone(),
                false,
                NO_ANSWER_LIMIT,
                None,
            ),
            (
                "new uplink, no answer: let go",
                Some(&old),
                none.clone(),
                true,
                1,
                None,
            ),
        ];
        for (name, prev, outcome, fresh, n, want) in cases {
            assert_eq!(
                decide(prev, &outcome, fresh, n, 500, "http://p/"),
                want,
                "{name}"
            );
        }
        assert_eq!(
            old.reason(),
            "captive portal at http://portal/a: open it from a device on the LAN"
        );
    }

    #[test]
    fn detached_view_is_never_captive() {
        let mut v = View::detached();
        assert!(v.portal().is_none());
        assert_eq!(v.seen(), Finding::default());
        v.connect_failed();
    }

    /// The real client against a one-shot server on loopback.
    #[test]
    fn fetch_reads_an_answer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut req = vec![0u8; 1024];
                let n = s.read(&mut req).await.unwrap();
                s.write_all(b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n")
                    .await
                    .unwrap();
                // Keep the connection open: a whole answer must end the read.
                tokio::time::sleep(Duration::from_secs(30)).await;
                String::from_utf8_lossy(&req[..n]).into_owned()
            });
            let url = probe::parse_url(&format!("http://127.0.0.1:{port}/gen")).unwrap();
            let buf = tokio::time::timeout(Duration::from_secs(5), fetch(&url))
                .await
                .expect("fetch returned once the answer was whole")
                .unwrap();
            assert_eq!(
                probe::classify(&url, &Expect::NoContent, &buf),
                Outcome::Portal {
                    url: format!("http://127.0.0.1:{port}/login")
                }
            );
            server.abort();
            // Nobody listening: no answer, not a portal.
            let e = fetch(&url).await.unwrap_err();
            assert!(e.contains("cannot reach 127.0.0.1"), "{e}");
        });
    }
}
