//! Writing a plan: all files or none, each replaced atomically, the previous one kept as
//! `NAME.bak`.
//!
//! Every new content is first written to a temporary file next to its target and synced: a
//! full disk or a missing permission fails here, before any file is replaced. Then each
//! target is backed up and replaced by a rename. [`Applied::rollback`] puts the previous files
//! back (when the new configuration does not pass Postfix's or Dovecot's own check).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::plan::{FileSpec, on_disk};

/// The files a plan replaced or created.
#[derive(Debug, Default)]
pub struct Applied {
    /// (target, its backup if it existed)
    done: Vec<(PathBuf, Option<PathBuf>)>,
}

impl Applied {
    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// Restores what was there before: backups back in place, new files removed.
    pub fn rollback(self) -> Result<(), Error> {
        for (target, backup) in self.done.into_iter().rev() {
            match backup {
                Some(backup) => fs::rename(&backup, &target).map_err(|e| Error::io(&target, e))?,
                None => fs::remove_file(&target).map_err(|e| Error::io(&target, e))?,
            }
        }
        Ok(())
    }
}

/// The backup of `target`.
pub fn backup_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    target.with_file_name(name)
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(target.file_name().unwrap_or_default());
    name.push(".chatmail-relay.tmp");
    target.with_file_name(name)
}

/// Writes `specs` under `root`, all or nothing.
pub fn apply(root: &Path, specs: &[&FileSpec]) -> Result<Applied, Error> {
    let mut temps: Vec<(PathBuf, PathBuf)> = Vec::new();
    for spec in specs {
        let target = on_disk(root, &spec.path);
        let temp = temp_path(&target);
        if let Err(e) = write_temp(spec, &target, &temp) {
            let _ = fs::remove_file(&temp);
            for (_, t) in &temps {
                let _ = fs::remove_file(t);
            }
            return Err(e);
        }
        temps.push((target, temp));
    }
    let mut applied = Applied::default();
    for (i, (target, temp)) in temps.iter().enumerate() {
        if let Err(e) = replace(target, temp, &mut applied) {
            for (_, t) in &temps[i..] {
                let _ = fs::remove_file(t);
            }
            let _ = applied.rollback();
            return Err(e);
        }
    }
    Ok(applied)
}

fn write_temp(spec: &FileSpec, target: &Path, temp: &Path) -> Result<(), Error> {
    let dir = target.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let io = |e| Error::io(target, e);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)
        .map_err(io)?;
    f.write_all(&spec.content).map_err(io)?;
    if let Some((uid, gid)) = spec.owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).map_err(io)?;
    }
    f.set_permissions(fs::Permissions::from_mode(spec.mode))
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

fn replace(target: &Path, temp: &Path, applied: &mut Applied) -> Result<(), Error> {
    let io = |e| Error::io(target, e);
    let backup = if target.exists() {
        let backup = backup_path(target);
        // A hard link keeps the old file as it was (owner, mode) at no cost in space.
        let _ = fs::remove_file(&backup);
        fs::hard_link(target, &backup).map_err(io)?;
        Some(backup)
    } else {
        None
    };
    fs::rename(temp, target).map_err(io)?;
    applied.done.push((target.to_path_buf(), backup));
    if let Some(dir) = target.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_all_keeps_backups_and_rolls_back() {
        let root = tempfile::tempdir().unwrap();
        let a = FileSpec::new("/etc/a.conf", "new a\n", 0o640);
        let b = FileSpec::new("/etc/sub/b.conf", "new b\n", 0o644);
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/a.conf"), "old a\n").unwrap();
        let applied = apply(root.path(), &[&a, &b]).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/a.conf")).unwrap(),
            "new a\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/a.conf.bak")).unwrap(),
            "old a\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/sub/b.conf")).unwrap(),
            "new b\n"
        );
        let mode = std::fs::metadata(root.path().join("etc/a.conf"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        applied.rollback().unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/a.conf")).unwrap(),
            "old a\n"
        );
        assert!(!root.path().join("etc/sub/b.conf").exists());
        let leftovers: Vec<_> = std::fs::read_dir(root.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_file_that_cannot_be_written_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/a.conf"), "old a\n").unwrap();
        // /etc/blocked is a file, so /etc/blocked/b.conf cannot be written.
        std::fs::write(root.path().join("etc/blocked"), "").unwrap();
        let a = FileSpec::new("/etc/a.conf", "new a\n", 0o644);
        let b = FileSpec::new("/etc/blocked/b.conf", "b\n", 0o644);
        let e = apply(root.path(), &[&a, &b]).unwrap_err();
        assert!(e.to_string().contains("blocked"), "{e}");
        assert_eq!(
            std::fs::read_to_string(root.path().join("etc/a.conf")).unwrap(),
            "old a\n"
        );
        let names: Vec<_> = std::fs::read_dir(root.path().join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
