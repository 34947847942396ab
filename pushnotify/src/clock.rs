//! Wall-clock time, injectable so that time-dependent decisions can be tested.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chatmail_common::unix_time;

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;

    /// The current time in whole seconds since the epoch (as stored in files).
    fn unix_now(&self) -> i64 {
        unix_time::from_system(self.now())
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
        ManualClock(Mutex::new(unix_time::to_system(secs)))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }

    pub fn set_unix(&self, secs: i64) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = unix_time::to_system(secs);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
