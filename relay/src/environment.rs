//! `TZ=:/etc/localtime` in `/etc/environment`, as the reference deployment sets it.
//!
//! Without `TZ`, glibc checks `/etc/localtime` again at every conversion to local time; with
//! `:/etc/localtime` it reads the file once. `/etc/environment` is what pam_env gives every
//! login (an operator's ssh session and what it starts by hand). The operator's other lines
//! stay as they are, and a `TZ` line of their own wins.

use std::path::Path;

use crate::error::Error;
use crate::plan::{FileSpec, on_disk};

pub const PATH: &str = "/etc/environment";
const LINE: &str = "TZ=:/etc/localtime";

/// The file with our line added, or `None` when it has a `TZ` line already.
pub fn plan(root: &Path) -> Result<Option<FileSpec>, Error> {
    let path = on_disk(root, Path::new(PATH));
    let old = match std::fs::read_to_string(&path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(path, e)),
    };
    Ok(with_tz(&old).map(|content| FileSpec::new(PATH, content, 0o644)))
}

fn with_tz(old: &str) -> Option<String> {
    let has_tz = old.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        line.starts_with("TZ=")
    });
    if has_tz {
        return None;
    }
    let mut content = old.to_owned();
    if !content.is_empty() && !content.ends_with('\n') {
        content.push('\n');
    }
    content.push_str(LINE);
    content.push('\n');
    Some(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_line_and_keeps_the_rest() {
        assert_eq!(with_tz("").as_deref(), Some("TZ=:/etc/localtime\n"));
        assert_eq!(
            with_tz("LANG=C.UTF-8").as_deref(),
            Some("LANG=C.UTF-8\nTZ=:/etc/localtime\n")
        );
    }

    #[test]
    fn a_tz_line_of_the_operator_wins() {
        assert_eq!(with_tz("TZ=Europe/Berlin\n"), None);
        assert_eq!(with_tz("  export TZ=UTC\n"), None);
        // ours, from an earlier setup: nothing to change
        assert_eq!(with_tz("TZ=:/etc/localtime\n"), None);
        // a name that only starts like it is not a TZ line
        assert!(with_tz("TZDIR=/usr/share/zoneinfo\n").is_some());
    }

    #[test]
    fn reads_the_file_under_root() {
        let dir = tempfile::tempdir().unwrap();
        let spec = plan(dir.path()).unwrap().unwrap();
        assert_eq!(spec.content, b"TZ=:/etc/localtime\n");
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/environment"), "TZ=UTC\n").unwrap();
        assert!(plan(dir.path()).unwrap().is_none());
    }
}
