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

/// `YYYY-MM-DD` (UTC) of unix time `secs`.
pub fn ymd(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD HH:MM UTC` of unix time `secs`.
pub fn ymd_hm(secs: i64) -> String {
    let rest = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        ymd(secs),
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_dates() {
        assert_eq!(ymd(0), "1970-01-01");
        assert_eq!(ymd(86_399), "1970-01-01");
        assert_eq!(ymd(951_782_400), "2000-02-29");
        assert_eq!(ymd(1_775_324_677), "2026-04-04");
        assert_eq!(ymd(-1), "1969-12-31");
        assert_eq!(ymd(4_102_444_800), "2100-01-01");
        assert_eq!(ymd_hm(951_825_600), "2000-02-29 12:00 UTC");
        assert_eq!(ymd_hm(4_102_444_799), "2099-12-31 23:59 UTC");
    }

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
