//! Synthetic Maildir trees with controlled mtimes and Dovecot-style names.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File, FileTimes};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use chatmail_common::unix_time;

pub const DAY: i64 = 86_400;
pub const DOMAIN: &str = "example.org";

static COUNTER: AtomicU64 = AtomicU64::new(1);

pub fn now() -> i64 {
    unix_time::now()
}

pub fn at(ts: i64) -> SystemTime {
    unix_time::to_system(ts)
}

pub fn set_mtime(path: &Path, ts: i64) {
    let f = File::options().write(true).open(path).unwrap();
    f.set_times(FileTimes::new().set_modified(at(ts)).set_accessed(at(ts)))
        .unwrap();
}

/// A relay's directory: `<tmp>/mail/example.org` and a chatmail.ini pointing at it.
pub struct Tree {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::with_params("")
    }

    /// Extra `key = value` lines for `[params]`.
    pub fn with_params(extra: &str) -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("mail").join(DOMAIN);
        fs::create_dir_all(&root).unwrap();
        let config = tmp.path().join("chatmail.ini");
        fs::write(
            &config,
            format!(
                "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\n{extra}",
                root.display()
            ),
        )
        .unwrap();
        Tree { tmp, root, config }
    }

    pub fn outside(&self) -> PathBuf {
        let p = self.tmp.path().join("outside");
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A mailbox with a password file whose mtime is `last_login` (None: no password file).
    pub fn mailbox(&self, local: &str, last_login: Option<i64>) -> PathBuf {
        let dir = self.root.join(format!("{local}@{DOMAIN}"));
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        if let Some(ts) = last_login {
            let p = dir.join("password");
            fs::write(&p, "{SHA512-CRYPT}$6$abcdefghijklmnop$xyz").unwrap();
            set_mtime(&p, ts);
            fs::write(dir.join("enforceE2EEincoming"), "").unwrap();
            fs::write(dir.join("dovecot.index.log"), "x").unwrap();
            fs::write(dir.join("maildirsize"), "1000S\n").unwrap();
        }
        dir
    }

    /// A message file in `<mailbox>/<folder>` delivered at `time` (also its mtime), with
    /// `S=<quota_size>` in the name and `disk` bytes of content.
    pub fn msg(
        &self,
        mailbox: &Path,
        folder: &str,
        time: i64,
        quota_size: u64,
        disk: usize,
    ) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let flags = if folder.ends_with("cur") { ":2,S" } else { "" };
        let name = format!(
            "{time}.M{n}P3029757.host,S={quota_size},W={}{flags}",
            quota_size + 20
        );
        self.raw(mailbox, folder, &name, time, disk)
    }

    /// A file with an arbitrary name.
    pub fn raw(
        &self,
        mailbox: &Path,
        folder: &str,
        name: &str,
        mtime: i64,
        disk: usize,
    ) -> PathBuf {
        let dir = mailbox.join(folder);
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        fs::write(&p, vec![b'x'; disk]).unwrap();
        set_mtime(&p, mtime);
        p
    }
}

/// Everything under `root` without following symlinks: relative path → description with
/// type, size, mtime (and link target).
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let kind = if md.file_type().is_symlink() {
                format!("link->{}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                "dir".to_string()
            } else {
                "file".to_string()
            };
            out.insert(
                rel,
                format!(
                    "{kind} size={} mtime={}.{}",
                    md.len(),
                    md.mtime(),
                    md.mtime_nsec()
                ),
            );
            if md.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// Names of the files under `dir` (recursively, relative), sorted.
pub fn files(dir: &Path) -> Vec<String> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, d)| !d.starts_with("dir"))
        .map(|(p, _)| p.display().to_string())
        .collect()
}
