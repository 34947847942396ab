//! Which versions of the mail servers are installed (from dpkg's database, below the root
//! setup works on): Dovecot 2.4 (Debian 13) takes another configuration than 2.3 (Debian 12).

use std::path::Path;

use crate::Error;
use crate::plan::on_disk;

/// dpkg's record of installed packages.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";

/// A Dovecot release series, as far as its configuration differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DovecotSeries {
    /// 2.3 (Debian 12): the configuration of `templates/dovecot/`.
    V2_3,
    /// 2.4 and later (Debian 13): new syntax, no dict passdb.
    V2_4,
}

/// The installed Dovecot's series; 2.3 when dpkg knows no installed `dovecot-core` (a test
/// root, or a package yet to be installed: Debian 12's is 2.3).
pub fn dovecot(root: &Path) -> Result<DovecotSeries, Error> {
    let path = on_disk(root, Path::new(DPKG_STATUS));
    let status = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DovecotSeries::V2_3),
        Err(e) => return Err(Error::io(DPKG_STATUS, e)),
    };
    Ok(match installed_version(&status, "dovecot-core") {
        Some(version) if upstream_at_least(&version, (2, 4)) => DovecotSeries::V2_4,
        _ => DovecotSeries::V2_3,
    })
}

/// The version of `package` if dpkg's status file says it is installed.
fn installed_version(status: &str, package: &str) -> Option<String> {
    status.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
                .map(str::trim)
        };
        (field("Package") == Some(package)
            && field("Status").is_some_and(|s| s.ends_with(" installed")))
        .then(|| field("Version").map(str::to_string))
        .flatten()
    })
}

/// Whether a Debian version (`[epoch:]upstream[-revision]`) has an upstream version of at least
/// `major.minor`.
fn upstream_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let upstream = version.split_once(':').map_or(version, |(_, rest)| rest);
    let mut numbers = upstream
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    found >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Package: dovecot-imapd\nStatus: install ok installed\n\
                          Version: 1:2.4.1+dfsg1-6+deb13u7\n\n\
                          Package: dovecot-core\nStatus: install ok installed\n\
                          Priority: optional\nVersion: 1:2.3.19.1+dfsg1-2.1+deb12u1\n\n\
                          Package: nginx\nStatus: deinstall ok config-files\nVersion: 1.22.1-9\n";

    #[test]
    fn reads_installed_versions_from_dpkg() {
        assert_eq!(
            installed_version(STATUS, "dovecot-core").as_deref(),
            Some("1:2.3.19.1+dfsg1-2.1+deb12u1")
        );
        // removed, configuration kept: not installed
        assert_eq!(installed_version(STATUS, "nginx"), None);
        assert_eq!(installed_version(STATUS, "postfix"), None);
    }

    #[test]
    fn compares_upstream_versions() {
        assert!(!upstream_at_least("1:2.3.19.1+dfsg1-2.1+deb12u1", (2, 4)));
        assert!(upstream_at_least("1:2.4.1+dfsg1-6+deb13u7", (2, 4)));
        assert!(upstream_at_least("2.5.0-1", (2, 4)));
        assert!(upstream_at_least("3.0", (2, 4)));
        assert!(!upstream_at_least("garbage", (2, 4)));
    }

    #[test]
    fn series_of_a_root() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(dovecot(root.path()).unwrap(), DovecotSeries::V2_3);
        let status = root.path().join("var/lib/dpkg/status");
        std::fs::create_dir_all(status.parent().unwrap()).unwrap();
        std::fs::write(&status, STATUS.replace("2.3.19.1", "2.4.1")).unwrap();
        assert_eq!(dovecot(root.path()).unwrap(), DovecotSeries::V2_4);
    }
}
