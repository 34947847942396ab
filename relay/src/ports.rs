//! Who listens on the relay's ports (from /proc: no connection is made).

use std::collections::BTreeMap;
use std::path::Path;

/// The TCP ports of a relay: SMTP, submission (465, 587), IMAP (143, 993), HTTP and HTTPS
/// (80, 443; also IMAP and SMTP by ALPN).
pub const RELAY_PORTS: &[u16] = &[25, 80, 143, 443, 465, 587, 993];

/// The programs whose ports these are: Postfix's master, Dovecot and nginx (their children,
/// such as smtpd, imap-login and nginx's workers, inherit the listening sockets).
const OURS: &[&str] = &[
    "/usr/lib/postfix/sbin/master",
    "/usr/sbin/dovecot",
    "/usr/sbin/nginx",
];

/// Listening TCP sockets: port → socket inodes.
fn listening(proc: &Path) -> BTreeMap<u16, Vec<u64>> {
    let mut out: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    for file in ["net/tcp", "net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(proc.join(file)) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is f[1] (ADDR:PORT in hex), st is f[3] (0A = LISTEN), inode f[9]
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some(port) = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            else {
                continue;
            };
            if let Ok(inode) = f[9].parse() {
                out.entry(port).or_default().push(inode);
            }
        }
    }
    out
}

/// The processes holding a socket inode: (name, PID, executable).
fn holders(proc: &Path, inodes: &[u64]) -> Vec<(String, u32, String)> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir(proc) else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                let t = target.to_string_lossy();
                t.strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|i| inodes.contains(&i))
            })
        });
        if holds {
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            let exe = std::fs::read_link(entry.path().join("exe"))
                .map(|p| {
                    p.to_string_lossy()
                        .trim_end_matches(" (deleted)")
                        .to_string()
                })
                .unwrap_or_default();
            found.push((comm.trim().to_string(), pid, exe));
        }
    }
    found
}

/// The relay's ports that another program listens on: "port 25: exim4 (pid 812)". Each
/// listening socket counts on its own (another program may listen on 127.0.0.2:587 beside
/// our Postfix on 0.0.0.0:587).
pub fn taken_by_others(proc: &Path) -> Vec<String> {
    let listening = listening(proc);
    let mut taken = Vec::new();
    for port in RELAY_PORTS {
        let Some(inodes) = listening.get(port) else {
            continue;
        };
        let mut names: Vec<String> = Vec::new();
        for inode in inodes {
            let holders = holders(proc, std::slice::from_ref(inode));
            if holders
                .iter()
                .any(|(_, _, exe)| OURS.contains(&exe.as_str()))
            {
                continue;
            }
            for (comm, pid, _) in holders {
                let name = format!("{comm} (pid {pid})");
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if !names.is_empty() {
            taken.push(format!("port {port}: {}", names.join(", ")));
        }
    }
    taken
}

/// Whether something listens on `port` (TCP, any address).
pub fn is_listening(proc: &Path, port: u16) -> bool {
    listening(proc).contains_key(&port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_holder_of_a_listening_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proc = Path::new("/proc");
        assert!(is_listening(proc, port));
        let inodes = listening(proc).remove(&port).unwrap();
        let me = std::process::id();
        assert!(holders(proc, &inodes).iter().any(|(_, pid, _)| *pid == me));
        drop(listener);
        assert!(!is_listening(proc, port));
    }
}
