//! Carrying out a [`Plan`]: deleting, or in a dry run only counting.
//!
//! Files are unlinked relative to directory descriptors opened with `O_NOFOLLOW`, one path
//! component at a time, starting from the mailbox directory; a path component that is (or
//! became) a symlink makes the open fail instead of leading elsewhere. Whole mailboxes go with
//! `std::fs::remove_dir_all`, which does not follow symlinks either (it removes a symlink
//! itself and walks directories by descriptor).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::AtFlags;
use rustix::io::Errno;

use crate::date::ymd;
use crate::plan::{FilePlan, Plan};
use crate::scan::{self, Listing};

/// Dovecot's quota cache, recalculated by Dovecot when missing.
pub const MAILDIRSIZE: &str = "maildirsize";
/// The password file, whose mtime is the last login.
const PASSWORD: &str = "password";

/// What happened to one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The mailbox directory is gone (or would be, in a dry run).
    pub mailbox_removed: bool,
    /// Message files removed (or that would be).
    pub files_removed: u64,
    /// Message files that had vanished before we got to them.
    pub vanished: u64,
    /// Deletions that failed (logged).
    pub errors: u64,
    /// The plan said to remove the mailbox, but its owner logged in since the scan: kept.
    pub kept_after_login: bool,
}

/// Carries out `plan` for the mailbox `listing.name` under `root` (the descriptor of
/// `root_path`, the mailboxes directory). With `dry_run` nothing on disk changes.
pub fn execute(
    root: BorrowedFd<'_>,
    root_path: &Path,
    listing: &Listing,
    plan: &Plan,
    dry_run: bool,
) -> Outcome {
    let mut out = Outcome::default();
    let name = listing.name.as_str();
    match plan {
        Plan::KeepWithoutPassword => {}
        Plan::RemoveMailbox {
            inactive_before, ..
        } => {
            if dry_run {
                out.mailbox_removed = true;
                return out;
            }
            let path = root_path.join(name);
            match last_login_now(root, name) {
                Ok(Some(login)) if login < *inactive_before => {}
                Ok(Some(login)) => {
                    tracing::info!(
                        "keeping mailbox {}: logged in since the scan (last login {})",
                        path.display(),
                        ymd(login)
                    );
                    out.kept_after_login = true;
                    return out;
                }
                Ok(None) => {
                    tracing::info!(
                        "keeping {}: its password file is gone since the scan",
                        path.display()
                    );
                    return out;
                }
                Err(e) => {
                    tracing::warn!("cannot check the last login of {}: {e}", path.display());
                    out.errors += 1;
                    return out;
                }
            }
            out.mailbox_removed = match remove_mailbox(root_path, name) {
                Ok(removed) => removed,
                Err(e) => {
                    tracing::warn!("cannot remove {}: {e}", path.display());
                    out.errors += 1;
                    false
                }
            };
        }
        Plan::RemoveEmptyDir => {
            out.mailbox_removed = dry_run
                || match rustix::fs::unlinkat(root, name, AtFlags::REMOVEDIR) {
                    Ok(()) => true,
                    // something appeared meanwhile (or it is gone already): leave it
                    Err(Errno::NOTEMPTY | Errno::EXIST | Errno::NOENT) => false,
                    Err(e) => {
                        tracing::warn!("cannot remove {}/{name}: {e}", root_path.display());
                        out.errors += 1;
                        false
                    }
                };
        }
        Plan::Expire(files) => {
            if files.remove.is_empty() {
                return out;
            }
            if dry_run {
                out.files_removed = files.remove.len() as u64;
                return out;
            }
            let path = root_path.join(name);
            match scan::open_dir_at(root, &cstring(name)) {
                Ok(Some(fd)) => out = remove_files(fd.as_fd(), &path, listing, files),
                Ok(None) => out.vanished += files.remove.len() as u64,
                Err(e) => {
                    tracing::warn!("cannot open {}: {e}", path.display());
                    out.errors += files.remove.len() as u64;
                }
            }
        }
    }
    out
}

/// The last login of mailbox `name` (its password file's mtime) as it is now; `None` without a
/// password file or mailbox. Symlinks are not followed.
fn last_login_now(root: BorrowedFd<'_>, name: &str) -> io::Result<Option<i64>> {
    let Some(mailbox) = scan::open_dir_at(root, &cstring(name))? else {
        return Ok(None);
    };
    match rustix::fs::statat(&mailbox, PASSWORD, AtFlags::SYMLINK_NOFOLLOW) {
        // `st_mtime` is not i64 on every target
        #[allow(clippy::unnecessary_cast)]
        Ok(stat) => Ok(Some(stat.st_mtime as i64)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn cstring(name: &str) -> std::ffi::CString {
    // names come from readdir and never contain NUL; an empty name would only fail the open
    std::ffi::CString::new(name).unwrap_or_default()
}

/// Removes a whole mailbox. `Ok(false)`: it was already gone. Retries when Dovecot delivers
/// into it while it is being removed.
pub fn remove_mailbox(root_path: &Path, name: &str) -> io::Result<bool> {
    let mut components = Path::new(name).components();
    if !matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(_)), None)
    ) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single path component",
        ));
    }
    let path = root_path.join(name);
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty && attempts < 3 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Unlinks the planned messages of a mailbox opened as `mailbox`, then `maildirsize`.
pub fn remove_files(
    mailbox: BorrowedFd<'_>,
    mailbox_path: &Path,
    listing: &Listing,
    plan: &FilePlan,
) -> Outcome {
    let mut out = Outcome::default();
    // message directories, opened on first use: None = not yet, Some(None) = unusable
    let mut dirs: Vec<Option<Option<OwnedFd>>> = Vec::new();
    dirs.resize_with(listing.dirs.len(), || None);
    for (index, _reason) in &plan.remove {
        let Some(msg) = listing.messages.get(*index) else {
            continue;
        };
        let rel = listing.dir(msg);
        let Some(slot) = dirs.get_mut(msg.dir as usize) else {
            continue;
        };
        let slot = slot.get_or_insert_with(|| match open_relative(mailbox, rel) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("cannot open {}: {e}", mailbox_path.join(rel).display());
                None
            }
        });
        let Some(dir) = slot else {
            out.vanished += 1;
            continue;
        };
        match rustix::fs::unlinkat(
            &*dir,
            OsStr::from_bytes(listing.name(msg)),
            AtFlags::empty(),
        ) {
            Ok(()) => out.files_removed += 1,
            Err(Errno::NOENT) => out.vanished += 1,
            Err(e) => {
                tracing::warn!(
                    "cannot remove {}: {e}",
                    mailbox_path.join(listing.message_path(msg)).display()
                );
                out.errors += 1;
            }
        }
    }
    if plan.remove_maildirsize {
        match rustix::fs::unlinkat(mailbox, MAILDIRSIZE, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => tracing::warn!(
                "cannot remove {}: {e}",
                mailbox_path.join(MAILDIRSIZE).display()
            ),
        }
    }
    out
}

/// Opens `rel` (plain components only) below `base`, never following a symlink.
/// `Ok(None)`: some component does not exist (any more).
fn open_relative(base: BorrowedFd<'_>, rel: &Path) -> io::Result<Option<OwnedFd>> {
    let mut current: Option<OwnedFd> = None;
    for component in rel.components() {
        let Component::Normal(part) = component else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "refusing a path that is not relative and plain",
            ));
        };
        let part = std::ffi::CString::new(part.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        let parent = current.as_ref().map_or(base, |fd| fd.as_fd());
        match scan::open_dir_at(parent, &part)? {
            Some(fd) => current = Some(fd),
            None => return Ok(None),
        }
    }
    match current {
        Some(fd) => Ok(Some(fd)),
        // the mailbox directory itself
        None => Ok(Some(rustix::io::dup(base)?)),
    }
}
