//! Warnings that a client can set off at will (unsupported keys, malformed requests), limited
//! per kind so that a client hammering the relay cannot flood the journal.
//!
//! [`warn_limited!`](crate::warn_limited) logs at most one line per kind and
//! [`INTERVAL`]; each line carries `suppressed`, the number of warnings of its kind left out
//! since the previous one. The kind is the message, a string literal, so the set of kinds is
//! fixed at compile time and the table of them cannot grow with input.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use tracing as __tracing;

/// One warning of a kind per this.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// The limit behind [`warn_limited!`](crate::warn_limited), shared by the whole process.
pub static WARNINGS: LazyLock<LogLimit> = LazyLock::new(|| LogLimit::new(INTERVAL));

/// Admits one log line per kind and interval.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    kinds: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    /// When the last line of this kind was admitted.
    admitted: Instant,
    /// Lines left out since then.
    suppressed: u64,
}

impl LogLimit {
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(n)`: log this one; `n` lines of this kind were left out since the last. `None`:
    /// leave it out.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    /// [`admit`](Self::admit) at time `now`.
    pub fn admit_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(window) = kinds.get_mut(kind) else {
            kinds.insert(
                kind,
                Window {
                    admitted: now,
                    suppressed: 0,
                },
            );
            return Some(0);
        };
        if now.saturating_duration_since(window.admitted) < self.interval {
            window.suppressed += 1;
            return None;
        }
        window.admitted = now;
        Some(std::mem::take(&mut window.suppressed))
    }
}

/// `warn_limited!("message", field = value, ...)`: a `tracing` warning with the fields, a
/// `suppressed` count and the message, at most once a minute per message (see
/// [`log_limit`](crate::log_limit)). Never put secrets or message content in the fields.
#[macro_export]
macro_rules! warn_limited {
    ($kind:literal $(, $($field:tt)+)?) => {
        if let Some(suppressed) = $crate::log_limit::WARNINGS.admit($kind) {
            $crate::log_limit::__tracing::warn!($($($field)+,)? suppressed, $kind);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn one_line_per_kind_and_interval_with_the_count_left_out() {
        let limit = LogLimit::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(limit.admit_at("a", at(0)), Some(0));
        for s in 1..60 {
            assert_eq!(limit.admit_at("a", at(s)), None);
        }
        // another kind has its own window
        assert_eq!(limit.admit_at("b", at(30)), Some(0));
        assert_eq!(limit.admit_at("a", at(60)), Some(59));
        assert_eq!(limit.admit_at("a", at(61)), None);
        assert_eq!(limit.admit_at("a", at(200)), Some(1));
        assert_eq!(limit.admit_at("b", at(200)), Some(0));
        // a clock that seems to go back does not reopen the window
        assert_eq!(limit.admit_at("a", at(100)), None);
    }

    /// Collects what a `tracing` subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_hammering_client_gets_one_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1000 {
                crate::warn_limited!("test: hammered kind", attempt = i);
            }
            crate::warn_limited!("test: other kind");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("test: hammered kind"), "{text}");
        assert!(lines[0].contains("attempt=0 suppressed=0"), "{text}");
        assert!(lines[1].contains("test: other kind"), "{text}");
    }
}
