//! Facts about this machine that the configuration needs: user and group ids.

use std::path::Path;

use crate::Error;

/// The numeric ids of a user, from `/etc/passwd` under `root` (system users, as `useradd
/// --system` and the package's postinst make them, live there).
pub fn user_ids(root: &Path, name: &str) -> Result<(u32, u32), Error> {
    let path = root.join("etc/passwd");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    find(&text, name, 2)
        .and_then(|f| Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?)))
        .ok_or_else(|| Error::System {
            what: format!("user {name}"),
            reason: format!(
                "not in {} (is the chatmail-relay package installed?)",
                path.display()
            ),
        })
}

/// The numeric id of a group, from `/etc/group` under `root`.
pub fn group_id(root: &Path, name: &str) -> Result<u32, Error> {
    let path = root.join("etc/group");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    find(&text, name, 2)
        .and_then(|f| f.first()?.parse().ok())
        .ok_or_else(|| Error::System {
            what: format!("group {name}"),
            reason: format!(
                "not in {} (is the chatmail-relay package installed?)",
                path.display()
            ),
        })
}

/// The fields after the `skip` first ones of the line for `name` in a passwd-style file.
fn find<'a>(text: &'a str, name: &str, skip: usize) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&name))
        .map(|f| f.into_iter().skip(skip).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nvmail:x:998:997::/home/vmail:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nchatmail-dkim:x:996:\n",
        )
        .unwrap();
        assert_eq!(user_ids(dir.path(), "vmail").unwrap(), (998, 997));
        assert!(user_ids(dir.path(), "vmai").is_err());
        assert_eq!(group_id(dir.path(), "chatmail-dkim").unwrap(), 996);
        assert!(group_id(dir.path(), "postfix").is_err());
    }
}
