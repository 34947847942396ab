//! One account's directory and files.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use super::Address;
use crate::{fsutil, unix_time};

const PASSWORD: &str = "password";
const ENFORCE_E2EE_INCOMING: &str = "enforceE2EEincoming";
const METADATA: &str = "metadata.json";
/// Seconds in a day: last-login times are kept at day granularity (UTC midnight).
pub const DAY: i64 = 86_400;

/// The directory holding every mailbox.
#[derive(Debug, Clone)]
pub struct Mailboxes {
    root: PathBuf,
}

impl Mailboxes {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Mailboxes { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn mailbox(&self, addr: &Address) -> Mailbox {
        Mailbox {
            dir: self.root.join(addr.as_str()),
            addr: addr.clone(),
        }
    }

    /// The push notification retry queue.
    pub fn pending_notifications_dir(&self) -> PathBuf {
        self.root.join("pending_notifications")
    }

    /// Every directory entry that is a valid address, in directory order. Entries that are not
    /// addresses (the queue directory, stray files) are skipped.
    pub fn addresses(&self) -> io::Result<impl Iterator<Item = Address> + use<>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => Some(entries),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(entries.into_iter().flatten().filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            Address::parse(&name).ok()
        }))
    }
}

/// Outcome of [`Mailbox::create_password`].
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The account was created with the given hash.
    New,
    /// Another login created it first; its stored hash is returned unchanged.
    Existing(String),
}

/// What an account says about incoming mail ([`Mailbox::incoming`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// No account of this name (no password file, or an empty one).
    NoAccount,
    /// The account has no `enforceE2EEincoming` flag.
    AcceptsCleartext,
    /// The account refuses incoming cleartext.
    EnforcesE2ee,
}

/// Outcome of [`Mailbox::set_last_login`].
#[derive(Debug, PartialEq, Eq)]
pub enum LastLogin {
    Updated,
    Unchanged,
    NoAccount,
}

/// One account: `<mailboxes_dir>/<addr>/`.
#[derive(Debug, Clone)]
pub struct Mailbox {
    addr: Address,
    dir: PathBuf,
}

impl Mailbox {
    pub fn address(&self) -> &Address {
        &self.addr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn password_path(&self) -> PathBuf {
        self.dir.join(PASSWORD)
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.dir.join(METADATA)
    }

    /// The stored password hash; `None` when the file is missing or empty (no account).
    pub fn read_password(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(self.password_path()) {
            Ok(text) => Ok(stored_hash(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the account with `hash` unless it already has a password, which is never
    /// overwritten; returns the stored hash then. Of concurrent callers, also in other
    /// processes, exactly one creates the account and the others get its hash (see
    /// [`install_password`]). The `enforceE2EEincoming` flag is created first, so no account
    /// is ever visible without it.
    ///
    /// A password file that is not empty is a password, even if it is no complete hash (a
    /// crash or a full disk while another program wrote it): nobody can log in then until an
    /// operator removes the file, but nobody takes over the account and its mail either. This
    /// writer never leaves such a file: the hash is written to a temporary file and fsynced
    /// before it becomes the password file, and the temporary file is removed in any case.
    ///
    /// Durability: the mailbox directory is fsynced after the password file appeared (which
    /// also makes the empty flag file's entry durable), and the parent when the mailbox
    /// directory is new.
    pub fn create_password(&self, hash: &str) -> io::Result<Created> {
        let new_dir = !self.dir.is_dir();
        fsutil::create_private_dir(&self.dir)?;
        let flag = self.dir.join(ENFORCE_E2EE_INCOMING);
        if let Err(e) = fsutil::create_empty(&flag, 0o600)
            && e.kind() != io::ErrorKind::AlreadyExists
        {
            return Err(e);
        }
        let dir = rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let tmp = fsutil::temp_path_for(&self.password_path());
        let tmp_name = tmp.file_name().unwrap_or_default();
        let result = write_new_at(&dir, tmp_name, hash.as_bytes())
            .and_then(|()| install_password(&dir, tmp_name));
        let _ = rustix::fs::unlinkat(&dir, tmp_name, AtFlags::empty());
        if matches!(result, Ok(Created::New)) {
            rustix::fs::fsync(&dir)?;
            if new_dir && let Some(parent) = self.dir.parent() {
                fsutil::sync_dir(parent)?;
            }
        }
        // closing `dir` releases the lock that install_password may have taken
        result
    }

    /// Whether the account exists and whether it takes incoming cleartext, as the disk says
    /// now. A password file that is missing or empty is no account; an error reading it is
    /// returned (the caller cannot tell, and must not guess). The flag follows
    /// [`Mailbox::enforces_e2ee_incoming`]: when in doubt, enforcing.
    pub fn incoming(&self) -> io::Result<Incoming> {
        match fs::metadata(self.password_path()) {
            Ok(m) if m.is_file() && m.len() > 0 => {}
            Ok(_) => return Ok(Incoming::NoAccount),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Incoming::NoAccount),
            Err(e) => return Err(e),
        }
        Ok(if self.enforces_e2ee_incoming() {
            Incoming::EnforcesE2ee
        } else {
            Incoming::AcceptsCleartext
        })
    }

    /// True if the account refuses incoming cleartext. An unreadable directory counts as
    /// enforcing: when in doubt, refuse cleartext.
    pub fn enforces_e2ee_incoming(&self) -> bool {
        match fs::symlink_metadata(self.dir.join(ENFORCE_E2EE_INCOMING)) {
            Ok(_) => true,
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }

    /// Last-login time (the password file's mtime), `None` without an account.
    pub fn last_login(&self) -> io::Result<Option<SystemTime>> {
        match fs::metadata(self.password_path()) {
            Ok(m) => m.modified().map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Records a login at unix time `ts`: the password file's mtime becomes that UTC day,
    /// and is left alone if it already is.
    pub fn set_last_login(&self, ts: i64) -> io::Result<LastLogin> {
        let day = login_day(ts);
        let path = self.password_path();
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LastLogin::NoAccount),
            Err(e) => return Err(e),
        };
        let current = file.metadata()?.modified()?;
        let target = unix_time::to_system(day);
        if current == target {
            return Ok(LastLogin::Unchanged);
        }
        file.set_times(FileTimes::new().set_modified(target).set_accessed(target))?;
        Ok(LastLogin::Updated)
    }
}

/// Makes the hash in the file `tmp` of the mailbox directory `dir` its password file, unless
/// the account has a password. Decides between concurrent callers:
///
/// * no password file: `link(2)`, which fails if the name exists, so exactly one link wins;
/// * a password file exists: under an exclusive `flock(2)` on the directory, look again. A
///   hash: the account exists. Empty: replace it by `rename(2)`. Only the first holder of the
///   lock finds it empty; the others then find its hash. Nothing else ever changes an existing
///   password file (the link above needs it missing), so what is read under the lock is still
///   there at the rename.
///
/// Every step is relative to `dir` (so is the writing of `tmp`): if the directory is removed
/// meanwhile (expiry), the steps fail instead of acting on a new directory of the same name.
fn install_password(dir: &OwnedFd, tmp: &OsStr) -> io::Result<Created> {
    match rustix::fs::linkat(dir, tmp, dir, PASSWORD, AtFlags::empty()) {
        Ok(()) => return Ok(Created::New),
        Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::flock(dir, FlockOperation::LockExclusive)?;
    match PasswordFile::read_at(dir)? {
        PasswordFile::Hash(existing) => Ok(Created::Existing(existing)),
        PasswordFile::Empty => {
            rustix::fs::renameat(dir, tmp, dir, PASSWORD)?;
            Ok(Created::New)
        }
        // removed since the link failed (by an operator): a new link decides again
        PasswordFile::Missing => {
            match rustix::fs::linkat(dir, tmp, dir, PASSWORD, AtFlags::empty()) {
                Ok(()) => Ok(Created::New),
                Err(Errno::EXIST) => match PasswordFile::read_at(dir)? {
                    PasswordFile::Hash(existing) => Ok(Created::Existing(existing)),
                    _ => Err(io::Error::other("the password file keeps changing")),
                },
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// Writes `data` to the new file `name` (mode 0600) in `dir` and fsyncs it.
fn write_new_at(dir: &OwnedFd, name: &OsStr, data: &[u8]) -> io::Result<()> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC;
    let mut file = File::from(rustix::fs::openat(
        dir,
        name,
        flags,
        Mode::RUSR | Mode::WUSR,
    )?);
    file.write_all(data)?;
    file.sync_all()
}

/// What a mailbox directory holds as its password file.
enum PasswordFile {
    Missing,
    Empty,
    Hash(String),
}

impl PasswordFile {
    /// Reads the password file of the mailbox directory `dir` (a symlink is an error).
    fn read_at(dir: &OwnedFd) -> io::Result<PasswordFile> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let fd = match rustix::fs::openat(dir, PASSWORD, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(PasswordFile::Missing),
            Err(e) => return Err(e.into()),
        };
        let mut text = String::new();
        File::from(fd).read_to_string(&mut text)?;
        Ok(stored_hash(text).map_or(PasswordFile::Empty, PasswordFile::Hash))
    }
}

/// The hash in a password file's text; `None` if there is none (empty file).
fn stored_hash(text: String) -> Option<String> {
    let hash = text.trim_end_matches(['\n', '\r']);
    (!hash.is_empty()).then(|| hash.to_string())
}

/// The start (UTC midnight) of the day containing unix time `ts`.
pub fn login_day(ts: i64) -> i64 {
    ts - ts.rem_euclid(DAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, Mailbox) {
        let dir = tempfile::tempdir().unwrap();
        let boxes = Mailboxes::new(dir.path().join("vmail"));
        let mb = boxes.mailbox(&Address::parse("abcdefghi@example.org").unwrap());
        (dir, mb)
    }

    #[test]
    fn login_days() {
        assert_eq!(login_day(100_000), 86_400);
        assert_eq!(login_day(200_000), 172_800);
        for i in 0..100 {
            assert_eq!(login_day(86_400 * 4 + i), 86_400 * 4);
        }
    }

    #[test]
    fn create_never_overwrites() {
        let (_d, mb) = setup();
        assert_eq!(mb.read_password().unwrap(), None);
        assert!(!mb.enforces_e2ee_incoming());
        assert_eq!(mb.create_password("{X}one").unwrap(), Created::New);
        assert_eq!(
            mb.create_password("{X}two").unwrap(),
            Created::Existing("{X}one".into())
        );
        assert_eq!(mb.read_password().unwrap().as_deref(), Some("{X}one"));
        assert!(mb.enforces_e2ee_incoming());
        let mode = fs::metadata(mb.password_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = fs::metadata(mb.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // no temporary files left behind
        let names: Vec<_> = fs::read_dir(mb.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn incoming_reads_account_and_flag() {
        let (_d, mb) = setup();
        assert_eq!(mb.incoming().unwrap(), Incoming::NoAccount);
        fsutil::create_private_dir(mb.dir()).unwrap();
        fs::write(mb.password_path(), "").unwrap();
        assert_eq!(mb.incoming().unwrap(), Incoming::NoAccount);
        fs::remove_file(mb.password_path()).unwrap();
        mb.create_password("{X}p").unwrap();
        assert_eq!(mb.incoming().unwrap(), Incoming::EnforcesE2ee);
        fs::remove_file(mb.dir().join(ENFORCE_E2EE_INCOMING)).unwrap();
        assert_eq!(mb.incoming().unwrap(), Incoming::AcceptsCleartext);
        // a directory where the password file should be is no account either
        let (_d2, other) = setup();
        fs::create_dir_all(other.password_path()).unwrap();
        assert_eq!(other.incoming().unwrap(), Incoming::NoAccount);
    }

    #[test]
    fn empty_password_file_is_no_account() {
        let (_d, mb) = setup();
        fsutil::create_private_dir(mb.dir()).unwrap();
        fs::write(mb.password_path(), "").unwrap();
        assert_eq!(mb.read_password().unwrap(), None);
        assert_eq!(mb.create_password("{X}new").unwrap(), Created::New);
        assert_eq!(mb.read_password().unwrap().as_deref(), Some("{X}new"));
    }

    #[test]
    fn concurrent_creation_creates_one_account() {
        let (_d, mb) = setup();
        let results = create_concurrently(&mb);
        assert_one_winner(&mb, &results);
    }

    /// Creates with 16 threads at once, each its own hash; returns what each got.
    fn create_concurrently(mb: &Mailbox) -> Vec<(String, Created)> {
        let start = std::sync::Barrier::new(16);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let start = &start;
                    s.spawn(move || {
                        let hash = format!("{{X}}{i}");
                        start.wait();
                        let created = mb.create_password(&hash).unwrap();
                        (hash, created)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Exactly one caller created the account, with its own hash; every other got that hash.
    fn assert_one_winner(mb: &Mailbox, results: &[(String, Created)]) {
        let winners: Vec<_> = results
            .iter()
            .filter(|(_, c)| *c == Created::New)
            .map(|(hash, _)| hash.clone())
            .collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        for (_, created) in results {
            if let Created::Existing(h) = created {
                assert_eq!(*h, winners[0]);
            }
        }
        assert_eq!(mb.read_password().unwrap().as_ref(), Some(&winners[0]));
        // no temporary files left behind
        let mut names: Vec<_> = fs::read_dir(mb.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["enforceE2EEincoming", "password"]);
    }

    #[test]
    fn concurrent_creation_over_an_empty_password_file_creates_one_account() {
        // the race is narrow: many rounds
        for empty in ["", "\n", "\r\n"].repeat(20) {
            let (_d, mb) = setup();
            fsutil::create_private_dir(mb.dir()).unwrap();
            fs::write(mb.password_path(), empty).unwrap();
            let results = create_concurrently(&mb);
            assert_one_winner(&mb, &results);
        }
    }

    #[test]
    fn a_partial_password_file_is_never_replaced() {
        let (_d, mb) = setup();
        fsutil::create_private_dir(mb.dir()).unwrap();
        let partial = "{SHA512-CRYPT}$6$abcdefgh";
        fs::write(mb.password_path(), partial).unwrap();
        for (_, created) in create_concurrently(&mb) {
            assert_eq!(created, Created::Existing(partial.into()));
        }
        assert_eq!(fs::read_to_string(mb.password_path()).unwrap(), partial);
    }

    #[test]
    fn last_login_moves_only_when_the_day_changes() {
        let (_d, mb) = setup();
        assert_eq!(
            mb.set_last_login(1_700_000_000).unwrap(),
            LastLogin::NoAccount
        );
        mb.create_password("{X}p").unwrap();
        assert_eq!(
            mb.set_last_login(1_700_000_000).unwrap(),
            LastLogin::Updated
        );
        let day = unix_time::to_system(login_day(1_700_000_000));
        assert_eq!(mb.last_login().unwrap(), Some(day));
        assert_eq!(
            mb.set_last_login(1_700_000_000 + 60).unwrap(),
            LastLogin::Unchanged
        );
        assert_eq!(
            mb.set_last_login(1_700_000_000 + DAY).unwrap(),
            LastLogin::Updated
        );
    }

    #[test]
    fn addresses_skips_non_addresses() {
        let (_d, mb) = setup();
        mb.create_password("{X}p").unwrap();
        let root = mb.dir().parent().unwrap();
        fs::create_dir(root.join("pending_notifications")).unwrap();
        let boxes = Mailboxes::new(root);
        let all: Vec<_> = boxes.addresses().unwrap().collect();
        assert_eq!(all, vec![mb.address().clone()]);
        assert_eq!(
            Mailboxes::new("/nonexistent/x")
                .addresses()
                .unwrap()
                .count(),
            0
        );
    }
}
