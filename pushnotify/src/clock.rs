//! Wall-clock time, injectable so that time-dependent decisions can be tested.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the epoch (as stored in files).
    fn unix_now(&self) -> i64 {
        unix_seconds(self.now())
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<SystemTime>);

impl ManualClock {
    pub fn at_unix(secs: i64) -> ManualClock {
        ManualClock(Mutex::new(from_unix_seconds(secs)))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    pub fn set_unix(&self, secs: i64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = from_unix_seconds(secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whole seconds since the epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The time `secs` seconds after the epoch.
pub fn from_unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip() {
        for s in [0, 1, 1_700_000_000, -5] {
            assert_eq!(unix_seconds(from_unix_seconds(s)), s);
        }
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let c = ManualClock::at_unix(100);
        assert_eq!(c.unix_now(), 100);
        c.advance(Duration::from_secs(8));
        assert_eq!(c.unix_now(), 108);
        c.set_unix(5);
        assert_eq!(c.unix_now(), 5);
    }
}
