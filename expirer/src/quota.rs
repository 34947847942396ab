//! `chatmail-expire quota TARGET_MB MAILBOX_DIR`: trim one mailbox now (Dovecot's
//! `quota_warning` service calls it at 75 % of the quota with 70 % of it as the target).
//!
//! It acts (no dry run), like the reference `chatmail-quota-expire`. It does not read
//! `chatmail.ini`; as a guard against a mistyped path, the directory's name must be an
//! address, and it must not be a symlink.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use chatmail_common::mailbox::Address;

use crate::execute::remove_files;
use crate::plan::{PROTECTED_SECS, plan_quota};
use crate::scan::{self, ScanError, ScanOptions, scan_open_mailbox};

#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("{}: the directory name is not a mailbox address", path.display())]
    NotAMailbox { path: PathBuf },
    #[error("{}: no such mailbox", path.display())]
    Missing { path: PathBuf },
    #[error(transparent)]
    Open(#[from] ScanError),
}

/// What the trim did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub name: String,
    pub removed: u64,
}

/// Parses TARGET_MB: MiB, whole or with a fraction (`350`, `0.7`), into bytes (rounded down).
pub fn parse_target_mb(s: &str) -> Result<u64, String> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(format!("expected a size in MiB like 350 or 0.7, not {s:?}"));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("{s:?} is too large"))?;
    let mut bytes = whole
        .checked_mul(MIB)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    // the fraction, digit by digit, exactly: sum of d_i * MiB / 10^i
    let mut scale: u128 = 1;
    let mut num: u128 = 0;
    for d in frac.bytes().take(18) {
        scale *= 10;
        num = num * 10 + u128::from(d - b'0');
    }
    bytes += u64::try_from(num * u128::from(MIB) / scale).unwrap_or(0);
    Ok(bytes)
}

const MIB: u64 = 1024 * 1024;

/// Trims `mailbox_dir` to `target` bytes (by `S=` sizes), oldest first, keeping the last
/// 24 hours; `maildirsize` goes when anything went.
pub fn trim(target: u64, mailbox_dir: &Path, real_now: i64) -> Result<Trimmed, QuotaError> {
    let name = mailbox_dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| Address::parse(n).is_ok())
        .ok_or_else(|| QuotaError::NotAMailbox {
            path: mailbox_dir.to_path_buf(),
        })?
        .to_string();
    let fd = scan::open_dir_nofollow(mailbox_dir)?.ok_or_else(|| QuotaError::Missing {
        path: mailbox_dir.to_path_buf(),
    })?;
    let walk_fd = rustix::io::dup(&fd).map_err(|e| ScanError::Open {
        path: mailbox_dir.to_path_buf(),
        source: e.into(),
    })?;
    let listing = scan_open_mailbox(
        walk_fd,
        mailbox_dir,
        &name,
        ScanOptions { stat_extra: false },
    );
    let plan = plan_quota(&listing, target, real_now - PROTECTED_SECS);
    let outcome = remove_files(fd.as_fd(), mailbox_dir, &listing, &plan);
    Ok(Trimmed {
        name,
        removed: outcome.files_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sizes() {
        assert_eq!(parse_target_mb("350"), Ok(350 * MIB));
        assert_eq!(parse_target_mb("0"), Ok(0));
        assert_eq!(parse_target_mb("0.7"), Ok(734_003));
        assert_eq!(parse_target_mb("1.5"), Ok(MIB + MIB / 2));
        assert_eq!(parse_target_mb("350.0"), Ok(350 * MIB));
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "1e3",
            "abc",
            "1.2.3",
            " 1",
            "99999999999999999999",
        ] {
            assert!(parse_target_mb(bad).is_err(), "{bad:?}");
        }
    }
}
