//! Which way out a tunnel uses, as a pure function.
//!
//! A tunnel lists its ways out (`[[tunnel.via]]`) in order of preference.
//! Every server on the list keeps a session (a logged-in session with no
//! forward is how roadie "probes" a way out in the background); the forward
//! itself lives on one of them, the active one. The manager calls
//! [`decide`] on a timer with how long each way has been healthy and how long
//! the active one has been failing.

use std::time::Duration;

/// Why the tunnel moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The active way out failed for `failover_s`.
    Failed,
    /// A way out preferred over the active one has been healthy for `failback_s`.
    Back,
}

/// What the manager knows, at one moment, about one tunnel.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub active: usize,
    /// How long the active way out has been failing (its forward not up, and
    /// not held back by a captive portal); None while it works.
    pub failing_for: Option<Duration>,
    /// Per way out: how long it has been healthy (its session logged in,
    /// counted from when the tunnel last left it); None when it is not.
    /// The entry of the active way is not used.
    pub healthy_for: &'a [Option<Duration>],
    pub failover: Duration,
    pub failback: Duration,
}

/// The way out to move to, if the tunnel should move.
pub fn decide(i: &Input) -> Option<(usize, Why)> {
    // Back to the most preferred way that has proved itself for a while.
    if let Some(j) = (0..i.active.min(i.healthy_for.len()))
        .find(|&j| i.healthy_for[j].is_some_and(|d| d >= i.failback))
    {
        return Some((j, Why::Back));
    }
    // Away from a way that has failed long enough, to the most preferred
    // one that is healthy now. With none healthy, moving would not help.
    if i.failing_for.is_some_and(|d| d >= i.failover) {
        return (0..i.healthy_for.len())
            .filter(|&j| j != i.active)
            .find(|&j| i.healthy_for[j].is_some())
            .map(|j| (j, Why::Failed));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let s = Duration::from_secs;
        let up = |n: u64| Some(s(n));
        // (name, active, failing_for, healthy_for, want)
        type Case = (
            &'static str,
            usize,
            Option<Duration>,
            Vec<Option<Duration>>,
            Option<(usize, Why)>,
        );
        let table: Vec<Case> = vec![
            ("one way: nowhere to go", 0, up(100), vec![None], None),
            ("working: stay", 0, None, vec![None, up(100)], None),
            (
                "failing, not yet for failover_s",
                0,
                up(29),
                vec![None, up(100)],
                None,
            ),
            (
                "failed: to the next healthy",
                0,
                up(30),
                vec![None, up(1)],
                Some((1, Why::Failed)),
            ),
            (
                "failed, nothing healthy: stay",
                0,
                up(300),
                vec![None, None, None],
                None,
            ),
            (
                "failed: skip an unhealthy way",
                0,
                up(30),
                vec![None, None, up(0)],
                Some((2, Why::Failed)),
            ),
            (
                "failed: the preferred one is healthy again, even if only just",
                1,
                up(30),
                vec![up(2), None],
                Some((0, Why::Failed)),
            ),
            (
                "failed on the last: wrap to the first healthy",
                2,
                up(30),
                vec![None, up(5), None],
                Some((1, Why::Failed)),
            ),
            (
                "preferred healthy, not long enough: stay",
                1,
                None,
                vec![up(59), None],
                None,
            ),
            (
                "preferred healthy for failback_s: back",
                1,
                None,
                vec![up(60), None],
                Some((0, Why::Back)),
            ),
            (
                "back to the most preferred that qualifies",
                2,
                None,
                vec![up(10), up(61), None],
                Some((1, Why::Back)),
            ),
            (
                "back wins over failing further",
                2,
                up(100),
                vec![up(70), up(70), None],
                Some((0, Why::Back)),
            ),
            (
                "a less preferred way never pulls",
                0,
                None,
                vec![None, up(1000)],
                None,
            ),
            (
                "active out of range is harmless",
                5,
                up(100),
                vec![None, None],
                None,
            ),
        ];
        for (name, active, failing_for, healthy_for, want) in table {
            let got = decide(&Input {
                active,
                failing_for,
                healthy_for: &healthy_for,
                failover: s(30),
                failback: s(60),
            });
            assert_eq!(got, want, "{name}");
        }
    }
}
