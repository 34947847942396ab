//! The three listening sockets and the milter servers on them.
//!
//! The listener a connection arrives on decides its policy: `outbound` for Postfix's
//! submission/smtps services, `inbound` for port 25, `internal` for the mail Postfix makes
//! itself (`non_smtpd_milters`: bounces). Sockets come from systemd
//! (`FileDescriptorName=outbound` / `inbound` / `internal`) or are bound here.
//!
//! Unix sockets bound here get mode 0660 and the group of their directory: Postfix's smtpd
//! and cleanup processes (user and group `postfix`) connect, nobody else. The directory is
//! made setgid, group `postfix`, by the packaging (`packaging/sidecars/30-milter.sh`, the
//! Debian postinst), so the milter itself (user `vmail`) needs no membership in Postfix's
//! group. With a directory of another group, Postfix cannot connect and mail is tempfailed
//! (`milter_default_action = tempfail`): never let through.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatmail_common::daemon::{ListenAddr, Listener, systemd_listeners};
use indymilter::EitherListener;
use tokio::net::{TcpListener, UnixListener};

use crate::callbacks::make_callbacks;
use crate::policy::Direction;
use crate::session::Shared;

/// Mode of unix sockets we bind ourselves: owner (the milter) and group (`postfix`, from
/// the setgid directory) only.
pub const SOCKET_MODE: u32 = 0o660;

pub type MilterListener = EitherListener<TcpListener, UnixListener>;

/// One listening socket with its policy.
pub struct Bound {
    pub direction: Direction,
    pub listener: MilterListener,
    /// Where it listens (for logs).
    pub description: String,
    /// A socket file we created and remove on exit.
    pub socket_file: Option<PathBuf>,
}

fn convert(listener: Listener) -> MilterListener {
    match listener {
        Listener::Tcp(l) => EitherListener::Tcp(l),
        Listener::Unix(l) => EitherListener::Unix(l),
    }
}

/// Binds one listener ourselves.
pub fn bind(direction: Direction, addr: &ListenAddr) -> io::Result<Bound> {
    let listener = Listener::bind(addr, SOCKET_MODE)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    Ok(Bound {
        direction,
        listener: convert(listener),
        description: addr.to_string(),
        socket_file: match addr {
            ListenAddr::Unix(p) => Some(p.clone()),
            ListenAddr::Tcp(_) => None,
        },
    })
}

/// The listeners, in the order of `wanted`: systemd-passed sockets named after their
/// direction where present, else bound at the given addresses.
pub fn open(wanted: &[(Direction, &ListenAddr)]) -> io::Result<Vec<Bound>> {
    let mut passed = systemd_listeners()?;
    let mut take = |direction: Direction, addr: &ListenAddr| -> io::Result<Bound> {
        match passed.iter().position(|(n, _)| n == direction.name()) {
            Some(i) => {
                let (name, l) = passed.swap_remove(i);
                Ok(Bound {
                    direction,
                    listener: convert(l),
                    description: format!("systemd socket '{name}'"),
                    socket_file: None,
                })
            }
            None => bind(direction, addr),
        }
    };
    let bound = wanted
        .iter()
        .map(|(direction, addr)| take(*direction, addr))
        .collect::<io::Result<Vec<_>>>()?;
    for (name, _) in passed {
        tracing::warn!(
            name,
            "ignoring a systemd socket not named 'outbound', 'inbound' or 'internal'"
        );
    }
    Ok(bound)
}

/// Serving limits.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Open milter connections per listener (each Postfix smtpd/cleanup process holds one).
    pub max_connections: usize,
    /// How long a connection may stay silent between milter commands.
    pub connection_timeout: Duration,
}

/// Open connections per listener at least, whatever `max_smtp_connections` says.
const MIN_CONNECTIONS: usize = 100;

impl ServeConfig {
    /// Limits for a relay whose Postfix runs at most `max_smtp_connections` smtpd processes
    /// per service (chatmail.ini): each of them, and each cleanup process, holds one milter
    /// connection. The milter thus has at most three times this many connections open, one
    /// file descriptor each (the systemd unit's `LimitNOFILE=` is sized for that).
    pub fn for_max_smtp_connections(max_smtp_connections: u32) -> Self {
        ServeConfig {
            max_connections: usize::try_from(max_smtp_connections)
                .unwrap_or(usize::MAX)
                .max(MIN_CONNECTIONS),
            ..Default::default()
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_connections: 1000,
            connection_timeout: Duration::from_secs(7210),
        }
    }
}

/// Runs the milters until `shutdown` completes, then removes the socket files we made.
pub async fn serve(
    shared: Arc<Shared>,
    listeners: Vec<Bound>,
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut files = Vec::new();
    for bound in listeners {
        let callbacks = make_callbacks(shared.clone(), bound.direction);
        let milter_config = indymilter::Config {
            max_connections: config.max_connections,
            connection_timeout: config.connection_timeout,
            ..Default::default()
        };
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        tracing::info!(
            listener = bound.direction.name(),
            at = %bound.description,
            "listening"
        );
        files.extend(bound.socket_file);
        tasks.spawn(indymilter::run(
            bound.listener,
            callbacks,
            milter_config,
            stop,
        ));
    }
    let result = tokio::select! {
        _ = shutdown => Ok(()),
        Some(r) = tasks.join_next() => {
            // A milter stopped by itself: it can no longer accept connections.
            match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(io::Error::other(e)),
            }
        }
    };
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "milter listener stopped with an error");
        }
    }
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    /// As the packaging makes it: a setgid directory of Postfix's group. As root the test
    /// uses group `nogroup` (65534) for Postfix's; otherwise its own group (mode only).
    #[tokio::test]
    async fn sockets_get_mode_0660_and_the_group_of_a_setgid_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sockets = dir.path().join("chatmail");
        std::fs::create_dir(&sockets).unwrap();
        let group = if std::fs::metadata(dir.path()).unwrap().uid() == 0 {
            65534
        } else {
            std::fs::metadata(dir.path()).unwrap().gid()
        };
        std::os::unix::fs::chown(&sockets, None, Some(group)).unwrap();
        std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o2750)).unwrap();

        let path = sockets.join("inbound.sock");
        let bound = bind(Direction::Inbound, &ListenAddr::Unix(path.clone())).unwrap();
        assert_eq!(bound.socket_file.as_deref(), Some(path.as_path()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o660, "owner and group only");
        assert_eq!(meta.gid(), group, "the setgid directory's group");
    }
}
