//! Reconnect delays: exponential backoff with jitter, as pure functions.
//!
//! Attempt `n` (0 for the first retry) waits between half and all of
//! `min(1 s * 2^n, 60 s)` ("equal jitter"): never immediately hammering a
//! server, and never two routers in lockstep. The jitter comes from a seed so
//! the schedule is reproducible in tests.

use std::time::Duration;

/// The first delay before jitter.
pub const BASE: Duration = Duration::from_secs(1);
/// The longest delay before jitter.
pub const MAX: Duration = Duration::from_secs(60);
/// A session that stayed up this long resets the schedule.
pub const STABLE: Duration = Duration::from_secs(60);

/// SplitMix64: a small, good mixing function for deriving jitter from a seed.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The un-jittered delay for attempt `n`: 1 s, 2 s, 4 s ... capped at 60 s.
pub fn ceiling(attempt: u32) -> Duration {
    let shift = attempt.min(16);
    BASE.saturating_mul(1u32 << shift).min(MAX)
}

/// The delay before retry number `attempt` (0-based), in `[ceiling/2, ceiling]`.
pub fn delay(attempt: u32, seed: u64) -> Duration {
    let ceil = ceiling(attempt).as_millis() as u64;
    let half = ceil / 2;
    let r = mix(seed ^ mix(u64::from(attempt)));
    Duration::from_millis(half + r % (ceil - half + 1))
}

/// How many refused-forward retries stay at most [`FORWARD_EAGER_MAX`] apart.
pub const FORWARD_EAGER_ATTEMPTS: u32 = 40;
/// The longest wait between early refused-forward retries.
pub const FORWARD_EAGER_MAX: Duration = Duration::from_secs(2);

/// The delay before re-requesting a refused forward on a running session:
/// half the session schedule (0.25-0.5 s, 0.5-1 s, 1-2 s), then 1-2 s for
/// about a minute, then on up to 30 s. The usual cause is our own previous
/// session still holding the port until the server notices it is dead (a few
/// seconds to a minute, by its ClientAlive settings); retrying every 1-2 s
/// in that window costs one small request and serves again right after the
/// server lets go, where a doubling schedule could sit idle for 8 s or more.
pub fn forward_delay(attempt: u32, seed: u64) -> Duration {
    let d = delay(attempt, mix(seed ^ 0x0066_6f72_7761_7264)) / 2;
    if attempt < FORWARD_EAGER_ATTEMPTS && d > FORWARD_EAGER_MAX {
        // Same jitter, squeezed into [MAX/2, MAX].
        let ms = FORWARD_EAGER_MAX.as_millis() as u64;
        Duration::from_millis(ms / 2 + mix(seed ^ u64::from(attempt)) % (ms / 2 + 1))
    } else {
        d
    }
}

/// The attempt number to use after a session that was up for `uptime`
/// ended, given the attempt it was established at.
pub fn after_session(attempt: u32, uptime: Duration) -> u32 {
    if uptime >= STABLE { 0 } else { attempt }
}

/// The delay before reconnecting after a working session was lost, at
/// `attempt` (from [`after_session`]): the first retry comes after half the
/// usual wait (0.25-0.5 s), because a lost session most often means a
/// server restart or a blip that is already over; one early try costs the
/// server one connection. Later attempts follow [`delay`].
pub fn after_loss(attempt: u32, seed: u64) -> Duration {
    if attempt == 0 {
        delay(0, seed) / 2
    } else {
        delay(attempt, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_to_a_minute_with_jitter_in_the_upper_half() {
        let s = Duration::from_secs;
        let table: &[(u32, Duration)] = &[
            (0, s(1)),
            (1, s(2)),
            (2, s(4)),
            (3, s(8)),
            (4, s(16)),
            (5, s(32)),
            (6, s(60)),
            (7, s(60)),
            (40, s(60)),
            (u32::MAX, s(60)),
        ];
        for &(attempt, ceil) in table {
            assert_eq!(ceiling(attempt), ceil, "attempt {attempt}");
            for seed in 0..200u64 {
                let d = delay(attempt, seed);
                assert!(
                    d >= ceil / 2 && d <= ceil,
                    "attempt {attempt} seed {seed}: {d:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_is_reproducible_and_spread() {
        assert_eq!(delay(3, 42), delay(3, 42));
        let mut distinct: Vec<Duration> = (0..50u64).map(|seed| delay(3, seed)).collect();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() > 40,
            "only {} distinct delays",
            distinct.len()
        );
        // Different attempts with one seed are not simply scaled copies.
        let a = delay(4, 7).as_millis() as f64 / 16000.0;
        let b = delay(5, 7).as_millis() as f64 / 32000.0;
        assert!((a - b).abs() > 1e-6);
    }

    #[test]
    fn forward_retries_are_eager_while_a_server_may_still_hold_the_port() {
        let s = Duration::from_secs;
        for (attempt, ceil) in [
            (0, s(1) / 2),
            (1, s(1)),
            (2, s(2)),
            (3, s(2)),
            (39, s(2)),
            (40, s(30)),
        ] {
            for seed in 0..100u64 {
                let d = forward_delay(attempt, seed);
                assert!(d >= ceil / 2 && d <= ceil, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn a_minute_of_uptime_resets_the_schedule() {
        assert_eq!(after_session(5, Duration::from_secs(59)), 5);
        assert_eq!(after_session(5, Duration::from_secs(60)), 0);
        assert_eq!(after_session(0, Duration::from_secs(1)), 0);
    }

    #[test]
    fn the_first_retry_after_a_lost_session_comes_sooner() {
        // (attempt, shortest, longest)
        let table = [
            (0, 250, 500),
            (1, 1_000, 2_000),
            (2, 2_000, 4_000),
            (9, 30_000, 60_000),
        ];
        for (attempt, lo, hi) in table {
            for seed in 0..200 {
                let d = after_loss(attempt, seed).as_millis() as u64;
                assert!(
                    (lo..=hi).contains(&d),
                    "attempt {attempt} seed {seed}: {d} ms"
                );
            }
        }
    }
}
