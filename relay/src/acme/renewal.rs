//! When a certificate is due, and the record of the last renewal that failed (so that
//! `status` reports a failing renewal weeks before the certificate expires).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::tls::CertInfo;

use super::{RENEW_BEFORE_DAYS, STATE_DIR, local, state_dir};

const DAY: i64 = 24 * 60 * 60;

/// Whether a certificate must be (re)ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Good for `days_left` more days.
    No { days_left: i64 },
    /// No certificate (or one that cannot be read).
    Missing,
    /// It does not cover these names.
    Names(Vec<String>),
    /// It expires in `days_left` days (negative: expired).
    Expiring { days_left: i64 },
}

impl Due {
    pub fn is_due(&self) -> bool {
        !matches!(self, Due::No { .. })
    }
}

impl fmt::Display for Due {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Due::No { days_left } => write!(f, "valid for {days_left} more days"),
            Due::Missing => write!(f, "no certificate yet"),
            Due::Names(names) => write!(f, "it does not cover {}", names.join(", ")),
            Due::Expiring { days_left } if *days_left < 0 => {
                write!(f, "it expired {} days ago", -days_left)
            }
            Due::Expiring { days_left } => write!(f, "it expires in {days_left} days"),
        }
    }
}

/// Whether the certificate `info` (`None`: missing) is due at `now` (seconds since the
/// epoch) for a relay whose certificate must cover `names`.
pub fn due(info: Option<&CertInfo>, names: &[String], now: i64) -> Due {
    let Some(info) = info else {
        return Due::Missing;
    };
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !info.names.contains(n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Due::Names(missing);
    }
    let days_left = (info.not_after - now).div_euclid(DAY);
    if days_left < RENEW_BEFORE_DAYS {
        Due::Expiring { days_left }
    } else {
        Due::No { days_left }
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    chatmail_common::unix_time::now()
}

/// A renewal that failed: when, and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalError {
    /// Seconds since the epoch.
    pub at: i64,
    pub message: String,
}

/// The record of the last failed renewal: its time on the first line, the error on the
/// second. Removed by the next renewal that succeeds.
fn error_file(root: &Path) -> PathBuf {
    local(root, STATE_DIR).join("last-error")
}

/// The last renewal, if it failed.
pub fn last_error(root: &Path) -> Option<RenewalError> {
    let text = std::fs::read_to_string(error_file(root)).ok()?;
    let (at, message) = text.split_once('\n')?;
    Some(RenewalError {
        at: at.trim().parse().ok()?,
        message: message.trim().to_string(),
    })
}

pub(super) fn record_error(root: &Path, message: &str) -> Result<(), Error> {
    state_dir(root)?;
    let path = error_file(root);
    std::fs::write(&path, format!("{}\n{message}\n", now())).map_err(|e| Error::io(&path, e))
}

pub(super) fn clear_error(root: &Path) -> Result<(), Error> {
    let path = error_file(root);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str], not_after: i64) -> CertInfo {
        CertInfo {
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after,
        }
    }

    #[test]
    fn due_when_missing_short_of_a_name_or_expiring() {
        let names = vec!["x.org".to_string(), "mta-sts.x.org".to_string()];
        let now = 1_000_000_000;
        assert_eq!(due(None, &names, now), Due::Missing);
        let both = ["x.org", "mta-sts.x.org"];
        assert_eq!(
            due(Some(&cert(&both, now + 89 * DAY)), &names, now),
            Due::No { days_left: 89 }
        );
        assert_eq!(
            due(Some(&cert(&both, now + 30 * DAY)), &names, now),
            Due::No { days_left: 30 }
        );
        let soon = due(Some(&cert(&both, now + 30 * DAY - 1)), &names, now);
        assert_eq!(soon, Due::Expiring { days_left: 29 });
        assert!(soon.is_due());
        assert_eq!(soon.to_string(), "it expires in 29 days");
        let gone = due(Some(&cert(&both, now - 1)), &names, now);
        assert_eq!(gone.to_string(), "it expired 1 days ago");
        let short = due(Some(&cert(&["x.org"], now + 89 * DAY)), &names, now);
        assert_eq!(short, Due::Names(vec!["mta-sts.x.org".into()]));
        assert_eq!(short.to_string(), "it does not cover mta-sts.x.org");
    }

    #[test]
    fn a_failure_is_recorded_until_a_renewal_succeeds() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(last_error(root.path()), None);
        record_error(root.path(), "ACME server unreachable").unwrap();
        let e = last_error(root.path()).unwrap();
        assert_eq!(e.message, "ACME server unreachable");
        assert!((now() - e.at).abs() < 60);
        clear_error(root.path()).unwrap();
        assert_eq!(last_error(root.path()), None);
        clear_error(root.path()).unwrap();
    }
}
