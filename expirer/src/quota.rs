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

/// Trims `mailbox_dir` to `target_mb` MiB (by `S=` sizes), oldest first, keeping the last
/// 24 hours; `maildirsize` goes when anything went.
pub fn trim(target_mb: u64, mailbox_dir: &Path, real_now: i64) -> Result<Trimmed, QuotaError> {
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
    let target = target_mb.saturating_mul(1024 * 1024);
    let plan = plan_quota(&listing, target, real_now - PROTECTED_SECS);
    let outcome = remove_files(fd.as_fd(), mailbox_dir, &listing, &plan);
    Ok(Trimmed {
        name,
        removed: outcome.files_removed,
    })
}
