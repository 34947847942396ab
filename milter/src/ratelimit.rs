//! Per-sender send rate limit: GCRA (a smooth token bucket) keyed by the lowercased envelope
//! sender, `max_user_send_per_minute` with a burst of `max_user_send_burst_size`.
//!
//! With the defaults (60/min, burst 10) ten back-to-back messages pass, the eleventh is
//! refused, and then one per second is allowed again. State is in memory only.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// The per-sender limiter, shared by all connections.
pub struct SendLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<String, DashMapStateStore<String>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl SendLimiter<DefaultClock> {
    pub fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self::with_clock(per_minute, burst, DefaultClock::default())
    }
}

impl<C: Clock + Clone> SendLimiter<C> {
    /// A limiter on an explicit clock (tests use a fake one).
    pub fn with_clock(per_minute: NonZeroU32, burst: NonZeroU32, clock: C) -> Self {
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        SendLimiter {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Counts one message from `sender`; `Err(wait)` when over the limit.
    pub fn check(&self, sender: &str) -> Result<(), Duration> {
        let key = sender.to_lowercase();
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets senders whose bucket is full again (run periodically).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Number of senders currently tracked.
    pub fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[test]
    fn burst_then_one_per_interval() {
        let clock = FakeRelativeClock::default();
        let l = SendLimiter::with_clock(nz(60), nz(10), clock.clone());
        for i in 0..10 {
            assert!(l.check("a@x.org").is_ok(), "message {i}");
        }
        let wait = l.check("a@x.org").unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        // Other senders are not affected; the key is case-insensitive.
        assert!(l.check("b@x.org").is_ok());
        assert!(l.check("A@X.ORG").is_err());
        clock.advance(Duration::from_secs(1));
        assert!(l.check("a@x.org").is_ok());
        assert!(l.check("a@x.org").is_err());
    }

    #[test]
    fn idle_senders_are_forgotten() {
        let clock = FakeRelativeClock::default();
        let l = SendLimiter::with_clock(nz(60), nz(10), clock.clone());
        l.check("a@x.org").unwrap();
        assert_eq!(l.tracked(), 1);
        clock.advance(Duration::from_secs(60));
        l.forget_idle();
        assert_eq!(l.tracked(), 0);
    }
}
