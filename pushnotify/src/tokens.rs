//! The device token store: `<mailboxes_dir>/<addr>/metadata.json`, one per account.
//!
//! Every read-modify-write of one address runs under a lock, so concurrent SETMETADATAs of
//! one user never lose a token; files are replaced atomically. The methods block on disk: call
//! them from `spawn_blocking`.
//!
//! A corrupt file (not JSON of the expected shape) is logged and left alone: lookups find no
//! tokens and 410 removals do nothing. When the user sets a new token, the corrupt file is
//! moved aside to `metadata.json.corrupt` (replacing an older one there, so at most one copy
//! is kept for the operator) and a fresh file with just the new token takes its place.

use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chatmail_common::fsutil;
use chatmail_common::mailbox::{Address, Mailboxes};

use crate::clock::Clock;
use crate::token_file::{TokenError, TokenFile, check_token};

/// Lock stripes: addresses hash onto these.
const STRIPES: usize = 64;
/// Suffix of the copy a corrupt file is moved to.
const CORRUPT_SUFFIX: &str = "corrupt";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("no mailbox directory for {0}")]
    NoMailbox(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// What reading a token file found.
enum Read {
    Missing,
    Corrupt(String),
    Ok(TokenFile),
}

pub struct TokenStore {
    mailboxes: Mailboxes,
    clock: Arc<dyn Clock>,
    locks: Vec<Mutex<()>>,
    hasher: RandomState,
}

impl TokenStore {
    pub fn new(mailboxes: Mailboxes, clock: Arc<dyn Clock>) -> TokenStore {
        TokenStore {
            mailboxes,
            clock,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn lock(&self, addr: &Address) -> std::sync::MutexGuard<'_, ()> {
        let i = (self.hasher.hash_one(addr.as_str()) as usize) % STRIPES;
        // the guarded data is (), so a poisoned lock is still fine to use
        self.locks[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds (or refreshes) a device token of `addr`.
    pub fn add(&self, addr: &Address, token: &str) -> Result<(), StoreError> {
        check_token(token)?;
        let mailbox = self.mailboxes.mailbox(addr);
        if !mailbox.dir().is_dir() {
            return Err(StoreError::NoMailbox(addr.as_str().to_string()));
        }
        let path = mailbox.metadata_path();
        let _guard = self.lock(addr);
        let now = self.clock.unix_now();
        let mut file = match read(&path, now)? {
            Read::Missing => TokenFile::default(),
            Read::Ok(file) => file,
            Read::Corrupt(error) => {
                let aside = corrupt_copy_path(&path);
                tracing::error!(
                    file = %path.display(),
                    moved_to = %aside.display(),
                    %error,
                    "corrupt token file replaced by a new one holding the token just set"
                );
                fs::rename(&path, &aside).map_err(|source| StoreError::Io {
                    path: aside.clone(),
                    source,
                })?;
                TokenFile::default()
            }
        };
        file.add(token, now);
        write(&path, &file)
    }

    /// The valid tokens of `addr` in insertion order. Rewrites the file when it held expired
    /// tokens or the legacy form (best effort: a failure is logged, the tokens still returned).
    pub fn valid_tokens(&self, addr: &Address) -> Result<Vec<String>, StoreError> {
        let path = self.mailboxes.mailbox(addr).metadata_path();
        let _guard = self.lock(addr);
        let now = self.clock.unix_now();
        match read(&path, now)? {
            Read::Missing => Ok(Vec::new()),
            Read::Corrupt(error) => {
                tracing::error!(file = %path.display(), %error, "corrupt token file: no notifications for this user until a token is set");
                Ok(Vec::new())
            }
            Read::Ok(mut file) => {
                let valid = file.valid_tokens(now);
                let pruned = file.prune(now);
                if (pruned || file.legacy)
                    && let Err(e) = write(&path, &file)
                {
                    tracing::warn!(error = %e, "could not rewrite the token file");
                }
                Ok(valid)
            }
        }
    }

    /// Removes `token` from `addr` (the gateway said it is gone); true if it was there.
    pub fn remove(&self, addr: &Address, token: &str) -> Result<bool, StoreError> {
        let path = self.mailboxes.mailbox(addr).metadata_path();
        let _guard = self.lock(addr);
        let now = self.clock.unix_now();
        match read(&path, now)? {
            Read::Missing => Ok(false),
            Read::Corrupt(error) => {
                tracing::error!(file = %path.display(), %error, "corrupt token file left alone");
                Ok(false)
            }
            Read::Ok(mut file) => {
                let removed = file.remove(token);
                let pruned = file.prune(now);
                if removed || pruned || file.legacy {
                    write(&path, &file)?;
                }
                Ok(removed)
            }
        }
    }
}

fn read(path: &Path, now: i64) -> Result<Read, StoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Missing),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Ok(Read::Corrupt("not UTF-8".into()));
    };
    Ok(match TokenFile::parse(text, now) {
        Ok(file) => Read::Ok(file),
        Err(e) => Read::Corrupt(e.to_string()),
    })
}

fn write(path: &Path, file: &TokenFile) -> Result<(), StoreError> {
    fsutil::write_atomic(path, file.to_json().as_bytes(), 0o600).map_err(|source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Where a corrupt token file is moved: `metadata.json.corrupt`.
pub fn corrupt_copy_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(CORRUPT_SUFFIX);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::token_file::MAX_TOKEN_LEN;

    const NOW: i64 = 1_795_871_414;

    struct Setup {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        store: Arc<TokenStore>,
        addr: Address,
        path: PathBuf,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mailboxes = Mailboxes::new(dir.path());
        let addr = Address::parse("user1234@example.org").unwrap();
        let mailbox = mailboxes.mailbox(&addr);
        fs::create_dir_all(mailbox.dir()).unwrap();
        let clock = Arc::new(ManualClock::at_unix(NOW));
        let store = Arc::new(TokenStore::new(mailboxes, clock.clone()));
        Setup {
            path: mailbox.metadata_path(),
            _dir: dir,
            clock,
            store,
            addr,
        }
    }

    #[test]
    fn tokens_accumulate_in_order_and_persist() {
        let s = setup();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), Vec::<String>::new());
        s.store.add(&s.addr, "1111").unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["1111"]);
        s.store.add(&s.addr, "2222").unwrap();
        s.store.add(&s.addr, "1111").unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["1111", "2222"]);
        assert_eq!(
            fs::read_to_string(&s.path).unwrap(),
            format!(r#"{{"devicetoken": {{"1111": {NOW}, "2222": {NOW}}}}}"#)
        );
    }

    #[test]
    fn legacy_file_is_read_and_converted() {
        let s = setup();
        fs::write(&s.path, r#"{"devicetoken": ["old1", "old2"]}"#).unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["old1", "old2"]);
        // converted on read, so the 90 days start now
        assert_eq!(
            fs::read_to_string(&s.path).unwrap(),
            format!(r#"{{"devicetoken": {{"old1": {NOW}, "old2": {NOW}}}}}"#)
        );
        s.store.add(&s.addr, "new").unwrap();
        assert_eq!(
            s.store.valid_tokens(&s.addr).unwrap(),
            vec!["old1", "old2", "new"]
        );
    }

    #[test]
    fn expired_tokens_vanish_after_90_days() {
        let s = setup();
        s.store.add(&s.addr, "a").unwrap();
        s.clock.set_unix(NOW + 30 * 86_400);
        s.store.add(&s.addr, "b").unwrap();
        s.clock.set_unix(NOW + 90 * 86_400 - 1);
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["a", "b"]);
        s.clock.set_unix(NOW + 90 * 86_400);
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["b"]);
        // the expired token was pruned from the file
        assert!(!fs::read_to_string(&s.path).unwrap().contains("\"a\""));
    }

    #[test]
    fn future_tokens_are_invalid() {
        let s = setup();
        fs::write(
            &s.path,
            format!(
                r#"{{"devicetoken": {{"soon": {}, "later": {}}}}}"#,
                NOW + 59,
                NOW + 60
            ),
        )
        .unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["soon"]);
    }

    #[test]
    fn corrupt_file_is_kept_until_a_token_is_set() {
        let s = setup();
        fs::write(&s.path, b"{\"devicetoken\": {\"tok\":").unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), Vec::<String>::new());
        assert!(!s.store.remove(&s.addr, "tok").unwrap());
        // untouched by reads and removals
        assert_eq!(fs::read(&s.path).unwrap(), b"{\"devicetoken\": {\"tok\":");
        s.store.add(&s.addr, "fresh").unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["fresh"]);
        // the corrupt content was moved aside for the operator
        assert_eq!(
            fs::read(corrupt_copy_path(&s.path)).unwrap(),
            b"{\"devicetoken\": {\"tok\":"
        );
        fs::write(&s.path, b"\xff\xfe").unwrap();
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn remove_token() {
        let s = setup();
        assert!(!s.store.remove(&s.addr, "x").unwrap());
        s.store.add(&s.addr, "x").unwrap();
        s.store.add(&s.addr, "y").unwrap();
        assert!(s.store.remove(&s.addr, "x").unwrap());
        assert!(!s.store.remove(&s.addr, "x").unwrap());
        assert_eq!(s.store.valid_tokens(&s.addr).unwrap(), vec!["y"]);
    }

    #[test]
    fn bad_tokens_and_missing_mailboxes_are_refused() {
        let s = setup();
        let huge = "x".repeat(MAX_TOKEN_LEN + 1);
        for bad in ["", "a b", "a\nb", "a\u{1}", huge.as_str()] {
            let err = s.store.add(&s.addr, bad).unwrap_err();
            assert!(matches!(err, StoreError::Token(_)), "{bad:?}: {err}");
        }
        assert!(!s.path.exists());
        let other = Address::parse("nobody12@example.org").unwrap();
        assert!(matches!(
            s.store.add(&other, "tok"),
            Err(StoreError::NoMailbox(_))
        ));
        assert_eq!(s.store.valid_tokens(&other).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn concurrent_adds_lose_nothing() {
        let s = setup();
        std::thread::scope(|scope| {
            for t in 0..8 {
                let store = &s.store;
                let addr = &s.addr;
                scope.spawn(move || {
                    for i in 0..8 {
                        store.add(addr, &format!("t{t}-{i}")).unwrap();
                    }
                });
            }
        });
        let tokens = s.store.valid_tokens(&s.addr).unwrap();
        assert_eq!(tokens.len(), 64);
        // each thread's tokens are in the order it added them
        for t in 0..8 {
            let mine: Vec<_> = tokens
                .iter()
                .filter(|x| x.starts_with(&format!("t{t}-")))
                .cloned()
                .collect();
            let want: Vec<_> = (0..8).map(|i| format!("t{t}-{i}")).collect();
            assert_eq!(mine, want);
        }
    }
}
