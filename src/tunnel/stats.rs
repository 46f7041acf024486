//! Per-tunnel counters and state, shared between the session that carries the
//! tunnel and the status reply. Counters are atomics; the rest sits behind a
//! short-lived std mutex (never held across an await).

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering, Ordering::Relaxed};

/// A 64-bit counter: an `AtomicU64` where the target has one; MIPS32 (the
/// mips/mipsel routers) has no 64-bit atomics, and there it is a u64 behind
/// a mutex with the same methods. Byte counters must not wrap at 4 GiB.
#[cfg(target_has_atomic = "64")]
pub type Counter = std::sync::atomic::AtomicU64;
#[cfg(not(target_has_atomic = "64"))]
pub type Counter = LockedU64;

/// A u64 behind a mutex, with the `AtomicU64` methods the counters use.
#[derive(Debug, Default)]
pub struct LockedU64(Mutex<u64>);

impl LockedU64 {
    pub const fn new(v: u64) -> Self {
        LockedU64(Mutex::new(v))
    }

    fn with<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    /// Adds `v` (wrapping, like the atomic); returns the previous value.
    pub fn fetch_add(&self, v: u64, _: Ordering) -> u64 {
        self.with(|n| {
            let old = *n;
            *n = old.wrapping_add(v);
            old
        })
    }

    pub fn load(&self, _: Ordering) -> u64 {
        self.with(|n| *n)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Connecting,
    Up,
    Backoff,
    Failed,
    /// Held back: a captive portal stands between the router and the Internet.
    Blocked,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Connecting => "connecting",
            State::Up => "up",
            State::Backoff => "backoff",
            State::Failed => "failed",
            State::Blocked => "blocked",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Info {
    pub state: State,
    pub last_error: Option<String>,
    pub public_urls: Vec<String>,
    pub assigned_port: Option<u32>,
    /// Unix time the forward last came up.
    pub up_since: Option<u64>,
    /// The public URL the tunnel answers on now (what `url_hook` reported last).
    pub url: Option<String>,
}

#[derive(Debug)]
pub struct Stats {
    pub active: AtomicU32,
    pub connections: Counter,
    pub refused: Counter,
    pub stalled: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub reconnects: Counter,
    info: Mutex<Info>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            active: AtomicU32::new(0),
            connections: Counter::new(0),
            refused: Counter::new(0),
            stalled: Counter::new(0),
            bytes_in: Counter::new(0),
            bytes_out: Counter::new(0),
            reconnects: Counter::new(0),
            info: Mutex::new(Info {
                state: State::Connecting,
                last_error: None,
                public_urls: Vec::new(),
                assigned_port: None,
                up_since: None,
                url: None,
            }),
        }
    }
}

impl Stats {
    /// A copy of the non-counter part.
    pub fn info(&self) -> Info {
        match self.info.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The state alone (no copy of the URLs and errors).
    pub fn state(&self) -> State {
        match self.info.lock() {
            Ok(g) => g.state,
            Err(p) => p.into_inner().state,
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut Info)) {
        match self.info.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn set_state(&self, state: State, error: Option<String>) {
        self.update(|i| {
            if state == State::Up && i.state != State::Up {
                i.up_since = Some(crate::lan::now_unix());
            }
            if state != State::Up {
                i.up_since = None;
            }
            i.state = state;
            if error.is_some() || state == State::Up {
                i.last_error = error.or(i.last_error.take());
            }
        });
    }

    pub fn set_error(&self, error: String) {
        self.update(|i| i.last_error = Some(error));
    }

    pub fn add_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Relaxed);
    }

    pub fn add_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Relaxed);
    }

    /// Take a connection slot unless `max` are in use.
    pub fn try_acquire(self: &std::sync::Arc<Self>, max: u32) -> Option<Slot> {
        let mut cur = self.active.load(Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match self
                .active
                .compare_exchange_weak(cur, cur + 1, Relaxed, Relaxed)
            {
                Ok(_) => return Some(Slot(self.clone())),
                Err(now) => cur = now,
            }
        }
    }
}

/// Whether a session is logged in, for failover: a way out is healthy while
/// its server's session is.
#[derive(Debug, Default)]
pub struct Health(Mutex<HealthInfo>);

#[derive(Debug, Clone, Default)]
pub struct HealthInfo {
    /// When the session logged in (monotonic, and as Unix time for status).
    pub up_since: Option<(std::time::Instant, u64)>,
    pub last_error: Option<String>,
}

impl Health {
    pub fn info(&self) -> HealthInfo {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn with(&self, f: impl FnOnce(&mut HealthInfo)) {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }

    pub fn up(&self) {
        self.with(|h| {
            h.up_since
                .get_or_insert((std::time::Instant::now(), crate::lan::now_unix()));
        });
    }

    pub fn down(&self, why: &str) {
        self.with(|h| {
            h.up_since = None;
            h.last_error = Some(why.to_string());
        });
    }
}

/// A connection slot; gives itself back when dropped.
#[derive(Debug)]
pub struct Slot(std::sync::Arc<Stats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The counter MIPS32 builds use (no 64-bit atomics there).
    #[test]
    fn locked_counter_counts_past_4_gib() {
        let c = LockedU64::new(u64::from(u32::MAX));
        assert_eq!(c.fetch_add(10, Relaxed), u64::from(u32::MAX));
        assert_eq!(c.load(Relaxed), u64::from(u32::MAX) + 10);
        let c = LockedU64::new(u64::MAX);
        assert_eq!(c.fetch_add(2, Relaxed), u64::MAX);
        assert_eq!(c.load(Relaxed), 1);
    }

    #[test]
    fn slots_cap_and_return() {
        let s = Arc::new(Stats::default());
        let a = s.try_acquire(2).unwrap();
        let b = s.try_acquire(2).unwrap();
        assert!(s.try_acquire(2).is_none());
        assert_eq!(s.active.load(Relaxed), 2);
        drop(a);
        let _c = s.try_acquire(2).unwrap();
        drop(b);
        assert_eq!(s.active.load(Relaxed), 1);
    }

    #[test]
    fn state_keeps_the_last_error_and_up_since() {
        let s = Stats::default();
        s.set_state(State::Backoff, Some("connection refused".into()));
        assert_eq!(s.info().last_error.as_deref(), Some("connection refused"));
        assert!(s.info().up_since.is_none());
        s.set_state(State::Connecting, None);
        assert_eq!(s.info().last_error.as_deref(), Some("connection refused"));
        s.set_state(State::Up, None);
        let i = s.info();
        assert_eq!(i.state, State::Up);
        assert!(i.up_since.is_some());
        // The last error stays visible after recovery (it says what happened).
        assert_eq!(i.last_error.as_deref(), Some("connection refused"));
        assert_eq!(State::Backoff.to_string(), "backoff");
    }
}
