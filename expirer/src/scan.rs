//! Streaming walk of `mailboxes_dir`: one mailbox at a time, never the whole tree.
//!
//! Every directory is opened relative to its parent's file descriptor with `O_NOFOLLOW`, so a
//! symlink is never followed, also when the tree changes during the walk. Symlinks and other
//! non-regular files are listed as extra files and left alone. Files that vanish between
//! `readdir` and `stat` are skipped (Dovecot keeps delivering and expunging while we scan);
//! unreadable entries are logged and mark the listing as incomplete.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chatmail_common::mailbox::Address;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Which Maildir subdirectory a message lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// `cur/`: seen by a client.
    Cur,
    /// `new/`: delivered, not yet seen.
    New,
    /// `tmp/`: being delivered (not counted by Dovecot's quota).
    Tmp,
}

impl Folder {
    fn from_name(name: &[u8]) -> Option<Folder> {
        match name {
            b"cur" => Some(Folder::Cur),
            b"new" => Some(Folder::New),
            b"tmp" => Some(Folder::Tmp),
            _ => None,
        }
    }
}

/// One message file. Its name (Dovecot's `<time>.<unique>,S=<size>,...:2,<flags>`) is kept in
/// the listing's name arena: [`Listing::name`]. (One allocation per mailbox instead of one per
/// message keeps big mailboxes small in memory.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Index into [`Listing::dirs`]: the directory holding the file.
    pub dir: u32,
    name_at: u32,
    name_len: u16,
    pub folder: Folder,
    /// Modification time, unix seconds.
    pub mtime: i64,
    /// Size on disk in bytes.
    pub size: u64,
}

/// Everything the expiry rules and the report need to know about one mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The mailbox directory's name (an address).
    pub name: String,
    /// mtime of the top-level `password` file: the last-login day. `None`: no account.
    pub last_login: Option<i64>,
    /// Message directories relative to the mailbox (`cur`, `.DeltaChat/new`, ...).
    pub dirs: Vec<PathBuf>,
    pub messages: Vec<Message>,
    /// The messages' file names, back to back.
    names: Vec<u8>,
    /// Files that are not messages (`password`, `dovecot*`, `maildirsize`, symlinks, ...).
    pub extra_files: u64,
    /// Their total size; only filled in when [`ScanOptions::stat_extra`] is set.
    pub extra_bytes: u64,
    /// Number of entries directly inside the mailbox directory.
    pub top_entries: u64,
    /// Some part could not be read (logged); the listing may miss files.
    pub incomplete: bool,
}

impl Listing {
    /// An empty listing of the mailbox `name`.
    pub fn new(name: impl Into<String>) -> Listing {
        Listing {
            name: name.into(),
            ..Listing::default()
        }
    }

    /// The file name of a message.
    pub fn name(&self, m: &Message) -> &[u8] {
        let start = m.name_at as usize;
        self.names
            .get(start..start + usize::from(m.name_len))
            .unwrap_or_default()
    }

    /// The path of a message relative to the mailbox directory.
    pub fn message_path(&self, m: &Message) -> PathBuf {
        self.dir(m).join(OsStr::from_bytes(self.name(m)))
    }

    /// The directory of a message relative to the mailbox directory.
    pub fn dir(&self, m: &Message) -> &Path {
        self.dirs
            .get(m.dir as usize)
            .map_or(Path::new(""), |d| d.as_path())
    }

    /// Adds a message in `self.dirs[dir]`. `false` if it cannot be represented (a name longer
    /// than a file name can be, or more than 4 GiB of names): then it is left out.
    pub fn push_message(
        &mut self,
        dir: usize,
        name: &[u8],
        folder: Folder,
        mtime: i64,
        size: u64,
    ) -> bool {
        let (Ok(dir), Ok(name_at), Ok(name_len)) = (
            u32::try_from(dir),
            u32::try_from(self.names.len()),
            u16::try_from(name.len()),
        ) else {
            return false;
        };
        if u32::try_from(self.names.len() + name.len()).is_err() {
            return false;
        }
        self.names.extend_from_slice(name);
        self.messages.push(Message {
            dir,
            name_at,
            name_len,
            folder,
            mtime,
            size,
        });
        true
    }

    pub fn is_empty(&self) -> bool {
        self.top_entries == 0 && !self.incomplete
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ScanOptions {
    /// Stat extra files too (for their size); the expiry run does not need it.
    pub stat_extra: bool,
}

/// Deeper folder trees are not walked (a guard against file-descriptor exhaustion; Dovecot's
/// Maildir++ layout is two levels deep).
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("{} is a symlink, not followed", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotDirectory { path: PathBuf },
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens a directory below `parent` without following a symlink. `Ok(None)`: it vanished.
pub fn open_dir_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens a directory by path without following a symlink at its last component.
pub fn open_dir_nofollow(path: &Path) -> Result<Option<OwnedFd>, ScanError> {
    match rustix::fs::open(path, dir_flags(), Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::LOOP | Errno::NOTDIR) => {
            Err(not_a_dir(path.to_path_buf(), path_is_symlink(path)))
        }
        Err(e) => Err(ScanError::Open {
            path: path.into(),
            source: e.into(),
        }),
    }
}

/// `O_NOFOLLOW | O_DIRECTORY` fails with `ENOTDIR` (or `ELOOP`) on a symlink: name it right.
fn not_a_dir(path: PathBuf, symlink: bool) -> ScanError {
    if symlink {
        ScanError::Symlink { path }
    } else {
        ScanError::NotDirectory { path }
    }
}

fn path_is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The mailboxes directory, read one entry at a time; shared by the worker threads.
pub struct MailboxDirs {
    path: PathBuf,
    root: OwnedFd,
    entries: Mutex<Entries>,
}

struct Entries {
    dir: Dir,
    remaining: Option<usize>,
}

/// A candidate mailbox found by [`MailboxDirs::next_mailbox`]: a directory named by a valid
/// address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxName(pub String);

impl MailboxDirs {
    /// Opens `mailboxes_dir` (a symlink there is fine: the operator chose it). `Ok(None)` if
    /// it does not exist. `maxnum` limits how many entries are looked at (before filtering
    /// out names that are not addresses, as the reference does).
    pub fn open(path: &Path, maxnum: Option<usize>) -> io::Result<Option<MailboxDirs>> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let root = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let dir = Dir::read_from(&root)?;
        Ok(Some(MailboxDirs {
            path: path.to_path_buf(),
            root,
            entries: Mutex::new(Entries {
                dir,
                remaining: maxnum,
            }),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A descriptor of `mailboxes_dir`, for opening mailboxes relative to it.
    pub fn root_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// The next directory whose name is a valid address. Symlinks, files and other names are
    /// skipped (symlinks and invalid addresses with a warning). `None` at the end.
    pub fn next_mailbox(&self) -> Option<MailboxName> {
        let mut entries = match self.entries.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        loop {
            if entries.remaining == Some(0) {
                return None;
            }
            let entry = match entries.dir.read()? {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!("reading {}: {e}", self.path.display());
                    return None;
                }
            };
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            if let Some(n) = entries.remaining.as_mut() {
                *n -= 1;
            }
            if !raw.contains(&b'@') {
                continue;
            }
            let name = match std::str::from_utf8(raw).map(Address::parse) {
                Ok(Ok(_)) => String::from_utf8_lossy(raw).into_owned(),
                _ => {
                    tracing::warn!(
                        "skipping {}/{}: not a valid address",
                        self.path.display(),
                        String::from_utf8_lossy(raw)
                    );
                    continue;
                }
            };
            let file_type = match entry.file_type() {
                FileType::Unknown => match rustix::fs::statat(
                    &self.root,
                    entry.file_name(),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode as _),
                    Err(_) => continue, // vanished
                },
                t => t,
            };
            match file_type {
                FileType::Directory => return Some(MailboxName(name)),
                FileType::Symlink => {
                    tracing::warn!(
                        "skipping {}/{name}: a symlink, not followed",
                        self.path.display()
                    );
                }
                _ => {}
            }
        }
    }
}

/// Walks one mailbox directory below `root` (the descriptor of `mailboxes_dir`).
/// `Ok(None)`: the mailbox vanished.
pub fn scan_mailbox(
    root: BorrowedFd<'_>,
    root_path: &Path,
    name: &str,
    opts: ScanOptions,
) -> Result<Option<Listing>, ScanError> {
    let path = root_path.join(name);
    let fd = match rustix::fs::openat(root, name, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(None),
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let symlink = rustix::fs::statat(root, name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink);
            return Err(not_a_dir(path, symlink));
        }
        Err(e) => {
            return Err(ScanError::Open {
                path,
                source: e.into(),
            });
        }
    };
    Ok(Some(scan_open_mailbox(fd, &path, name, opts)))
}

/// Walks an already opened mailbox directory.
pub fn scan_open_mailbox(fd: OwnedFd, path: &Path, name: &str, opts: ScanOptions) -> Listing {
    let mut walker = Walker {
        listing: Listing {
            name: name.to_string(),
            ..Listing::default()
        },
        opts,
        base: path,
    };
    walker.walk(fd, PathBuf::new(), None, 0);
    walker.listing
}

struct Walker<'a> {
    listing: Listing,
    opts: ScanOptions,
    base: &'a Path,
}

impl Walker<'_> {
    fn warn(&mut self, rel: &Path, what: &str, err: impl std::fmt::Display) {
        tracing::warn!("{what} {}: {err}", self.base.join(rel).display());
        self.listing.incomplete = true;
    }

    fn walk(&mut self, fd: OwnedFd, rel: PathBuf, folder: Option<Folder>, depth: usize) {
        let dir_index = folder.map(|_| {
            self.listing.dirs.push(rel.clone());
            self.listing.dirs.len() - 1
        });
        let mut dir = match Dir::new(fd) {
            Ok(d) => d,
            Err(e) => return self.warn(&rel, "cannot read", e),
        };
        while let Some(entry) = dir.read() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => return self.warn(&rel, "cannot read", e),
            };
            let name = entry.file_name();
            let raw = name.to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            if depth == 0 {
                self.listing.top_entries += 1;
            }
            let Ok(dir_fd) = dir.fd() else { continue };
            let mut stat = None;
            let file_type = match entry.file_type() {
                FileType::Unknown => {
                    match rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) => {
                            stat = Some(st);
                            FileType::from_raw_mode(st.st_mode as _)
                        }
                        Err(Errno::NOENT) => continue,
                        Err(e) => {
                            self.warn(&rel.join(OsStr::from_bytes(raw)), "cannot stat", e);
                            continue;
                        }
                    }
                }
                t => t,
            };
            match file_type {
                FileType::Directory => {
                    let sub = rel.join(OsStr::from_bytes(raw));
                    if depth + 1 >= MAX_DEPTH {
                        self.warn(&sub, "not walking", "folders nested too deep");
                        continue;
                    }
                    match rustix::fs::openat(dir_fd, name, dir_flags(), Mode::empty()) {
                        Ok(fd) => self.walk(fd, sub, Folder::from_name(raw), depth + 1),
                        Err(Errno::NOENT) => {}
                        // replaced by a symlink or a file since readdir: not followed
                        Err(Errno::LOOP | Errno::NOTDIR) => {
                            self.listing.extra_files += 1;
                        }
                        Err(e) => self.warn(&sub, "cannot open", e),
                    }
                }
                FileType::RegularFile => {
                    let wanted = folder.is_some()
                        || self.opts.stat_extra
                        || (depth == 0 && raw == b"password");
                    if !wanted {
                        self.listing.extra_files += 1;
                        continue;
                    }
                    let st = match stat {
                        Some(st) => st,
                        None => match rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(st) => st,
                            Err(Errno::NOENT) => continue, // vanished (expunged or moved)
                            Err(e) => {
                                self.warn(&rel.join(OsStr::from_bytes(raw)), "cannot stat", e);
                                continue;
                            }
                        },
                    };
                    if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
                        // replaced since readdir
                        self.listing.extra_files += 1;
                        continue;
                    }
                    #[allow(clippy::unnecessary_cast)]
                    let (mtime, size) = (st.st_mtime as i64, st.st_size.max(0) as u64);
                    match (folder, dir_index) {
                        (Some(folder), Some(dir)) => {
                            if !self.listing.push_message(dir, raw, folder, mtime, size) {
                                self.warn(&rel, "too many messages in", "left out");
                            }
                        }
                        _ => {
                            self.listing.extra_files += 1;
                            self.listing.extra_bytes += size;
                            if depth == 0 && raw == b"password" {
                                self.listing.last_login = Some(mtime);
                            }
                        }
                    }
                }
                _ => {
                    // symlinks, sockets, fifos: counted, never followed or opened
                    self.listing.extra_files += 1;
                    if self.opts.stat_extra
                        && let Ok(st) = rustix::fs::statat(dir_fd, name, AtFlags::SYMLINK_NOFOLLOW)
                    {
                        #[allow(clippy::unnecessary_cast)]
                        let size = st.st_size.max(0) as u64;
                        self.listing.extra_bytes += size;
                    }
                }
            }
        }
    }
}
