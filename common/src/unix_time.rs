//! Unix time in whole seconds (negative before 1970), as the relay keeps it in files: password
//! mtimes (last login), token and queue timestamps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current unix time.
pub fn now() -> i64 {
    from_system(SystemTime::now())
}

/// The unix time of `t`, rounded towards the epoch; saturates far outside `i64`.
pub fn from_system(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The time `secs` seconds after (or, if negative, before) the epoch.
pub fn to_system(secs: i64) -> SystemTime {
    let offset = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for s in [0, 1, 1_700_000_000, -5, -86_400] {
            assert_eq!(from_system(to_system(s)), s);
        }
        assert_eq!(to_system(-1) + Duration::from_secs(1), UNIX_EPOCH);
    }

    #[test]
    fn now_is_now() {
        let before = from_system(SystemTime::now());
        let n = now();
        assert!(n >= before && n - before < 60);
        assert!(n > 1_700_000_000);
    }
}
