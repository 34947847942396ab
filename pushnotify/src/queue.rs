//! The persistent notification queue: `<mailboxes_dir>/pending_notifications/`, one file per
//! pending notification, in the reference's format.
//!
//! A file is named by a random 32-digit hex id and holds `addr\nstart_ts\ntoken` (no trailing
//! newline). It is written as `<id>.tmp`, fsynced and renamed to `<id>`, and the directory is
//! fsynced, before the enqueue returns (so before Dovecot gets its reply). The file is deleted
//! once the notification is done or dropped. At start every file is loaded again; `.tmp`
//! leftovers and files that do not parse are logged and removed. Methods block on disk: call
//! them from `spawn_blocking`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chatmail_common::fsutil;
use chatmail_common::mailbox::Address;

use crate::token_file::check_token;

const TMP_SUFFIX: &str = ".tmp";
/// Queue files larger than this are not notifications (addr ≤ 254, token ≤ 4096 bytes).
const MAX_FILE_LEN: u64 = 8192;

/// One pending notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The file name.
    pub id: String,
    pub addr: Address,
    /// When the notification was first queued (unix seconds): the deadline counts from here.
    pub start_ts: i64,
    pub token: String,
}

/// Why a queue file was thrown away.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFile {
    #[error("temporary file of an interrupted write")]
    Temporary,
    #[error("not three lines")]
    Fields,
    #[error("bad address: {0}")]
    Address(String),
    #[error("bad start time")]
    StartTime,
    #[error("bad token: {0}")]
    Token(String),
    #[error("not UTF-8")]
    Utf8,
    #[error("too large")]
    TooLarge,
}

/// The content of a queue file.
pub fn encode(addr: &Address, start_ts: i64, token: &str) -> String {
    format!("{}\n{start_ts}\n{token}", addr.as_str())
}

/// Parses a queue file's content.
pub fn decode(id: &str, content: &[u8]) -> Result<QueueItem, BadFile> {
    let text = std::str::from_utf8(content).map_err(|_| BadFile::Utf8)?;
    let fields: Vec<&str> = text.split('\n').collect();
    let [addr, start_ts, token] = fields.as_slice() else {
        return Err(BadFile::Fields);
    };
    let addr = Address::parse(addr).map_err(|e| BadFile::Address(e.to_string()))?;
    let start_ts = start_ts.parse().map_err(|_| BadFile::StartTime)?;
    check_token(token).map_err(|e| BadFile::Token(e.to_string()))?;
    Ok(QueueItem {
        id: id.to_string(),
        addr,
        start_ts,
        token: token.to_string(),
    })
}

/// The queue directory.
#[derive(Debug, Clone)]
pub struct Queue {
    dir: PathBuf,
}

/// A failed enqueue: the files written before the error are still queued.
#[derive(Debug)]
pub struct EnqueueError {
    pub written: Vec<QueueItem>,
    pub error: io::Error,
}

impl Queue {
    /// Uses `dir`, creating it (mode 0700) if needed.
    pub fn open(dir: impl Into<PathBuf>) -> io::Result<Queue> {
        let dir = dir.into();
        fsutil::create_private_dir(&dir)?;
        Ok(Queue { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Persists one notification per token, all with `start_ts`.
    pub fn enqueue(
        &self,
        addr: &Address,
        start_ts: i64,
        tokens: &[String],
    ) -> Result<Vec<QueueItem>, EnqueueError> {
        let mut written = Vec::with_capacity(tokens.len());
        for token in tokens {
            let id = fsutil::random_hex(16);
            match self.write(&id, &encode(addr, start_ts, token)) {
                Ok(()) => written.push(QueueItem {
                    id,
                    addr: addr.clone(),
                    start_ts,
                    token: token.clone(),
                }),
                Err(error) => return Err(EnqueueError { written, error }),
            }
        }
        if let Err(error) = fsutil::sync_dir(&self.dir) {
            return Err(EnqueueError { written, error });
        }
        Ok(written)
    }

    fn write(&self, id: &str, content: &str) -> io::Result<()> {
        let tmp = self.dir.join(format!("{id}{TMP_SUFFIX}"));
        let result = fsutil::write_new(&tmp, content.as_bytes(), 0o600)
            .and_then(|()| fs::rename(&tmp, self.dir.join(id)));
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Deletes a done notification; a missing file is fine.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every pending notification on disk. Leftover `.tmp` files and files that do not parse
    /// are logged and removed; subdirectories are logged and skipped.
    pub fn load(&self) -> io::Result<Vec<QueueItem>> {
        let mut items = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() {
                tracing::warn!(path = %path.display(), "ignoring a directory in the notification queue");
                continue;
            }
            match self.load_one(&path, &name) {
                Ok(item) => items.push(item),
                Err(LoadError::Bad(reason)) => {
                    tracing::warn!(path = %path.display(), %reason, "removing spurious queue item");
                    if let Err(e) = fs::remove_file(&path) {
                        tracing::error!(path = %path.display(), error = %e, "could not remove a spurious queue item");
                    }
                }
                Err(LoadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
                Err(LoadError::Io(e)) => {
                    tracing::error!(path = %path.display(), error = %e, "could not read a queue item; leaving it");
                }
            }
        }
        Ok(items)
    }

    fn load_one(&self, path: &Path, name: &str) -> Result<QueueItem, LoadError> {
        if name.ends_with(TMP_SUFFIX) {
            return Err(LoadError::Bad(BadFile::Temporary));
        }
        let len = fs::metadata(path).map_err(LoadError::Io)?.len();
        if len > MAX_FILE_LEN {
            return Err(LoadError::Bad(BadFile::TooLarge));
        }
        let content = fs::read(path).map_err(LoadError::Io)?;
        decode(name, &content).map_err(LoadError::Bad)
    }
}

enum LoadError {
    Bad(BadFile),
    Io(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> Address {
        Address::parse("u@example.org").unwrap()
    }

    #[test]
    fn reference_format() {
        assert_eq!(
            encode(&addr(), 1_700_000_000, "tok1"),
            "u@example.org\n1700000000\ntok1"
        );
        let item = decode(
            "dfa1560162f64bcda2bca9ea27f178ac",
            b"u@example.org\n1700000000\ntok1",
        )
        .unwrap();
        assert_eq!(item.addr, addr());
        assert_eq!(item.start_ts, 1_700_000_000);
        assert_eq!(item.token, "tok1");
        assert_eq!(item.id, "dfa1560162f64bcda2bca9ea27f178ac");
    }

    #[test]
    fn bad_contents() {
        for (bad, want) in [
            (&b"u@example.org\n1700000000"[..], BadFile::Fields),
            (b"u@example.org\n1700000000\ntok\n", BadFile::Fields),
            (b"", BadFile::Fields),
            (b"u@example.org\nsoon\ntok", BadFile::StartTime),
            (b"u@example.org\n1.5\ntok", BadFile::StartTime),
            (
                b"../x\n1\ntok",
                BadFile::Address("address contains a forbidden character '/'".into()),
            ),
            (
                b"u@example.org\n1\n",
                BadFile::Token("empty device token".into()),
            ),
            (b"u@example.org\n1\n\xff", BadFile::Utf8),
        ] {
            assert_eq!(
                decode("x", bad),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn enqueue_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path().join("pending_notifications")).unwrap();
        let items = q
            .enqueue(&addr(), 1_700_000_000, &["t1".into(), "t2".into()])
            .unwrap();
        assert_eq!(items.len(), 2);
        for item in &items {
            assert_eq!(item.id.len(), 32);
            assert!(item.id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(
                fs::read_to_string(q.dir().join(&item.id)).unwrap(),
                encode(&item.addr, item.start_ts, &item.token)
            );
        }
        let mut loaded = q.load().unwrap();
        loaded.sort_by(|a, b| a.token.cmp(&b.token));
        assert_eq!(loaded, items);
        q.remove(&items[0].id).unwrap();
        q.remove(&items[0].id).unwrap();
        assert_eq!(q.load().unwrap(), vec![items[1].clone()]);
    }

    #[test]
    fn load_removes_spurious_files() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path()).unwrap();
        let good = q.enqueue(&addr(), 5, &["tok".into()]).unwrap();
        fs::write(q.dir().join("abc.tmp"), "u@example.org\n1\ntok").unwrap();
        fs::write(q.dir().join("garbage"), "not a notification").unwrap();
        fs::write(q.dir().join("big"), vec![b'x'; 10_000]).unwrap();
        fs::create_dir(q.dir().join("subdir")).unwrap();
        assert_eq!(q.load().unwrap(), good);
        let mut left: Vec<_> = fs::read_dir(q.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want = vec![good[0].id.clone(), "subdir".to_string()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn enqueue_into_a_missing_directory_fails() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(dir.path().join("q")).unwrap();
        fs::remove_dir(q.dir()).unwrap();
        let err = q.enqueue(&addr(), 5, &["tok".into()]).unwrap_err();
        assert!(err.written.is_empty());
        assert_eq!(err.error.kind(), io::ErrorKind::NotFound);
    }
}
