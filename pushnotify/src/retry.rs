//! The retry schedule of a notification: a pure decision, given the time of the first try
//! and of the latest failure.
//!
//! The first try happens at once. After the n-th failed try the next one is due
//! `delays[n-1]` later (8, 64, 512, 4096 s by default). A notification is dropped once the
//! delays are used up or the next try would be later than `deadline` (5 h) after the first.

use std::time::{Duration, SystemTime};

/// When to retry failed notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The delay before retry n (counted from the previous failure).
    pub delays: Vec<Duration>,
    /// No try is made later than this after the notification was queued.
    pub deadline: Duration,
}

/// What to do after a failed try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after `delay` (at `at`).
    Retry { delay: Duration, at: SystemTime },
    /// Give up: the next try would be past the deadline, or no retries are left.
    Drop,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            delays: [8, 64, 512, 4096]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            deadline: Duration::from_secs(5 * 60 * 60),
        }
    }
}

impl Schedule {
    /// The default schedule with every duration multiplied by `unit / 1 s` (for tests:
    /// `Duration::from_millis(1)` turns 8 s into 8 ms).
    pub fn scaled(unit: Duration) -> Schedule {
        let d = Schedule::default();
        let scale = |x: Duration| unit.mul_f64(x.as_secs_f64());
        Schedule {
            delays: d.delays.into_iter().map(scale).collect(),
            deadline: scale(d.deadline),
        }
    }

    /// Decides the next try after `failed_tries` tries (at least one) have failed, the latest
    /// at `now`, of a notification first queued at `start`.
    pub fn after_failure(
        &self,
        start: SystemTime,
        failed_tries: usize,
        now: SystemTime,
    ) -> Decision {
        let Some(&delay) = failed_tries.checked_sub(1).and_then(|i| self.delays.get(i)) else {
            return Decision::Drop;
        };
        let at = now + delay;
        if at > start + self.deadline {
            return Decision::Drop;
        }
        Decision::Retry { delay, at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const T0: i64 = 1_700_000_000;

    /// Runs a notification that always fails and immediately reports each failure, returning
    /// the times (relative to T0) of every try.
    fn tries_of_always_failing(
        schedule: &Schedule,
        clock: &ManualClock,
        start: SystemTime,
    ) -> Vec<i64> {
        let mut tries = vec![clock.unix_now() - T0];
        loop {
            match schedule.after_failure(start, tries.len(), clock.now()) {
                Decision::Retry { delay, at } => {
                    clock.advance(delay);
                    assert_eq!(clock.now(), at);
                    tries.push(clock.unix_now() - T0);
                }
                Decision::Drop => return tries,
            }
        }
    }

    #[test]
    fn five_tries_at_the_reference_times() {
        let clock = ManualClock::at_unix(T0);
        let start = clock.now();
        let tries = tries_of_always_failing(&Schedule::default(), &clock, start);
        assert_eq!(tries, vec![0, 8, 72, 584, 4680]);
    }

    #[test]
    fn delays_count_from_the_previous_failure() {
        let s = Schedule::default();
        let clock = ManualClock::at_unix(T0);
        let start = clock.now();
        // the first try took 50 s to time out
        clock.advance(Duration::from_secs(50));
        assert_eq!(
            s.after_failure(start, 1, clock.now()),
            Decision::Retry {
                delay: Duration::from_secs(8),
                at: start + Duration::from_secs(58)
            }
        );
    }

    #[test]
    fn dropped_when_the_next_try_would_pass_the_deadline() {
        let s = Schedule::default();
        let clock = ManualClock::at_unix(T0);
        let start = clock.now();
        // a notification requeued after a long outage: 4 h 59 min after its start
        clock.set_unix(T0 + 5 * 3600 - 60);
        assert_eq!(
            s.after_failure(start, 1, clock.now()).clone(),
            Decision::Retry {
                delay: Duration::from_secs(8),
                at: start + Duration::from_secs(5 * 3600 - 52),
            }
        );
        assert_eq!(s.after_failure(start, 2, clock.now()), Decision::Drop);
        // exactly at the deadline is still allowed
        clock.set_unix(T0 + 5 * 3600 - 64);
        assert!(matches!(
            s.after_failure(start, 2, clock.now()),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn no_retry_left_after_five_tries() {
        let s = Schedule {
            deadline: Duration::from_secs(1_000_000),
            ..Schedule::default()
        };
        let clock = ManualClock::at_unix(T0);
        let start = clock.now();
        assert_eq!(tries_of_always_failing(&s, &clock, start).len(), 5);
        assert_eq!(s.after_failure(start, 0, clock.now()), Decision::Drop);
    }

    #[test]
    fn scaled_schedule() {
        let s = Schedule::scaled(Duration::from_millis(1));
        assert_eq!(s.delays[0], Duration::from_millis(8));
        assert_eq!(s.delays[3], Duration::from_millis(4096));
        assert_eq!(s.deadline, Duration::from_secs(18));
    }
}
