//! Polling with a deadline: the only way the harness waits for something.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `f` (every 20 ms) until it yields a value; panics naming `what`
/// when `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns true; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    wait_for(what, timeout, || f().then_some(()))
}

/// Polls `fetch` for a status object until `pred` holds on one; panics
/// naming `what` and showing the last status seen after `timeout`.
pub fn wait_status(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut fetch: impl FnMut() -> Option<serde_json::Value>,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    let start = Instant::now();
    loop {
        if let Some(s) = fetch() {
            if pred(&s) {
                return s;
            }
            last = s;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last status:\n{}",
                serde_json::to_string_pretty(&last).unwrap_or_default()
            );
        }
        thread::sleep(every);
    }
}
