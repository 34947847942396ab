//! What `setup` would write: files with content, mode and owner, compared with the disk.

use std::path::{Path, PathBuf};

/// One file of the relay's configuration.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Absolute path on the target system.
    pub path: PathBuf,
    pub content: Vec<u8>,
    pub mode: u32,
    /// (uid, gid); `None` keeps the writer's (root).
    pub owner: Option<(u32, u32)>,
    /// A key: never shown in a diff.
    pub secret: bool,
}

impl FileSpec {
    pub fn new(path: impl Into<PathBuf>, content: impl Into<Vec<u8>>, mode: u32) -> FileSpec {
        FileSpec {
            path: path.into(),
            content: content.into(),
            mode,
            owner: None,
            secret: false,
        }
    }
}

/// How a file on disk differs from its spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create,
    /// Other content; the old content.
    Update(Vec<u8>),
    /// Same content, other mode or owner.
    Metadata,
    Unchanged,
}

/// `path` below `root` (`/` on a real system).
pub fn on_disk(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Compares a spec with the file under `root`.
pub fn compare(root: &Path, spec: &FileSpec) -> std::io::Result<Change> {
    use std::os::unix::fs::MetadataExt;
    let path = on_disk(root, &spec.path);
    let old = match std::fs::read(&path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Change::Create),
        Err(e) => return Err(e),
    };
    if old != spec.content {
        return Ok(Change::Update(old));
    }
    let meta = std::fs::metadata(&path)?;
    let owner_differs = spec
        .owner
        .is_some_and(|(uid, gid)| meta.uid() != uid || meta.gid() != gid);
    if meta.mode() & 0o7777 != spec.mode || owner_differs {
        return Ok(Change::Metadata);
    }
    Ok(Change::Unchanged)
}

/// A unified diff of a change, for `--dry-run` (keys only by name).
pub fn describe(spec: &FileSpec, change: &Change) -> Option<String> {
    let path = spec.path.display().to_string();
    match change {
        Change::Unchanged => None,
        Change::Metadata => Some(format!(
            "{path}: mode {:o}{}\n",
            spec.mode,
            spec.owner
                .map(|(u, g)| format!(", owner {u}:{g}"))
                .unwrap_or_default()
        )),
        Change::Create if spec.secret => Some(format!("{path}: would be created\n")),
        Change::Update(_) if spec.secret => Some(format!("{path}: would be replaced\n")),
        Change::Create => Some(unified(&path, b"", &spec.content, "/dev/null")),
        Change::Update(old) => Some(unified(&path, old, &spec.content, &path)),
    }
}

fn unified(path: &str, old: &[u8], new: &[u8], old_name: &str) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(old_name, path)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_with_the_disk() {
        let root = tempfile::tempdir().unwrap();
        let spec = FileSpec::new("/etc/x/a.conf", "a = 1\nb = 2\n", 0o644);
        assert_eq!(compare(root.path(), &spec).unwrap(), Change::Create);
        let d = describe(&spec, &Change::Create).unwrap();
        assert!(
            d.contains("+++ /etc/x/a.conf") && d.contains("+b = 2"),
            "{d}"
        );
        let path = on_disk(root.path(), &spec.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "a = 1\nb = 3\n").unwrap();
        let change = compare(root.path(), &spec).unwrap();
        assert_eq!(change, Change::Update(b"a = 1\nb = 3\n".to_vec()));
        let d = describe(&spec, &change).unwrap();
        assert!(d.contains("-b = 3\n+b = 2"), "{d}");
        std::fs::write(&path, "a = 1\nb = 2\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(compare(root.path(), &spec).unwrap(), Change::Metadata);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(compare(root.path(), &spec).unwrap(), Change::Unchanged);
        let secret = FileSpec {
            secret: true,
            ..spec
        };
        let d = describe(&secret, &Change::Update(b"old".to_vec())).unwrap();
        assert!(!d.contains("b = 2") && !d.contains("old"), "{d}");
    }
}
