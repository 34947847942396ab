//! Daemon plumbing: logging, listening sockets, readiness, shutdown.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

/// Sets up `tracing` to stderr. Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp
/// or colours, since journald adds its own. `RUST_LOG` overrides the default level `info`.
pub fn init_logging() {
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(
            !under_journald
                && std::io::IsTerminal::is_terminal(&io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        );
    let result = if under_journald {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
    let _ = result;
}

/// Prints a one-line error and exits with status 1 (for startup failures).
pub fn exit_with(message: impl std::fmt::Display) -> ! {
    eprintln!("{}: {message}", program_name());
    std::process::exit(1);
}

fn program_name() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "chatmail".into())
}

/// Where to listen: `unix:/path`, a bare absolute path, or `inet:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s
            .strip_prefix("unix:")
            .or_else(|| s.starts_with('/').then_some(s))
        {
            if !path.starts_with('/') {
                return Err(format!("{s}: a unix socket path must be absolute"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(hostport) = s.strip_prefix("inet:") {
            let (host, port) = hostport
                .rsplit_once(':')
                .ok_or_else(|| format!("{s}: expected inet:HOST:PORT"))?;
            let host = if host == "localhost" {
                "127.0.0.1"
            } else {
                host
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let addr = format!(
                "{}:{port}",
                if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.to_string()
                }
            );
            return addr
                .parse()
                .map(ListenAddr::Tcp)
                .map_err(|_| format!("{s}: expected inet:IP:PORT"));
        }
        Err(format!("{s}: expected unix:/path or inet:HOST:PORT"))
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "inet:{a}"),
        }
    }
}

/// A listening socket, bound by us or passed in by systemd.
#[derive(Debug)]
pub enum Listener {
    Unix(tokio::net::UnixListener),
    Tcp(tokio::net::TcpListener),
}

impl Listener {
    /// Binds `addr`. A unix socket gets `mode`, which must give other users no access, before
    /// it appears at its path, and replaces a stale socket file there.
    pub fn bind(addr: &ListenAddr, mode: u32) -> io::Result<Listener> {
        match addr {
            ListenAddr::Unix(path) => {
                let listener = bind_unix(path, mode)?;
                listener.set_nonblocking(true)?;
                Ok(Listener::Unix(tokio::net::UnixListener::from_std(
                    listener,
                )?))
            }
            ListenAddr::Tcp(addr) => {
                let listener = std::net::TcpListener::bind(addr)?;
                listener.set_nonblocking(true)?;
                Ok(Listener::Tcp(tokio::net::TcpListener::from_std(listener)?))
            }
        }
    }

    /// Wraps a listening socket passed by systemd.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Listener> {
        let addr = rustix::net::getsockname(&fd)?;
        if addr.address_family() == rustix::net::AddressFamily::UNIX {
            let l = std::os::unix::net::UnixListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Unix(tokio::net::UnixListener::from_std(l)?))
        } else {
            let l = std::net::TcpListener::from(fd);
            l.set_nonblocking(true)?;
            Ok(Listener::Tcp(tokio::net::TcpListener::from_std(l)?))
        }
    }

    pub fn into_unix(self) -> io::Result<tokio::net::UnixListener> {
        match self {
            Listener::Unix(l) => Ok(l),
            Listener::Tcp(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "expected a unix socket",
            )),
        }
    }
}

/// Mode bits that no socket of ours may have: any access for other users. Who may connect
/// is decided by the socket's owner and group (and the directory it is in).
const OTHERS: u32 = 0o007;

/// Connections waiting to be accepted on a socket we bind; the kernel caps it at
/// `net.core.somaxconn` (4096 by default).
const BACKLOG: i32 = 4096;

/// Binds a unix socket at `path` with permission bits `mode` (which must give other users no
/// access), in a directory that must exist, replacing a stale socket file.
///
/// The socket gets `mode` before it is bound: Linux creates the socket file with the socket's
/// own mode less the umask, so the file is never more open than `mode`, whatever the umask;
/// then the file gets exactly `mode`. Its group is the process's, or the directory's if that
/// is setgid (the milter's sockets get Postfix's group this way).
fn bind_unix(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

    if mode & OTHERS != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: refusing socket mode {mode:04o}, which gives other users access",
                path.display()
            ),
        ));
    }
    // The directory is not created here: whoever provides it (systemd's RuntimeDirectory=,
    // the packaging) gives it its owner, group and mode. One made by a daemon would carry
    // the daemon's user and umask (a root-owned /var/spool/postfix/chatmail that the milter
    // user can no longer bind in, say).
    remove_if_present(path)?;
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::fs::fchmod(&socket, rustix::fs::Mode::from_raw_mode(mode))?;
    rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    rustix::net::listen(&socket, BACKLOG)?;
    Ok(std::os::unix::net::UnixListener::from(socket))
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Listening sockets passed by systemd socket activation (`LISTEN_FDS`), with their
/// `FileDescriptorName=` (empty when unnamed). Empty when not socket-activated.
pub fn systemd_listeners() -> io::Result<Vec<(String, Listener)>> {
    let fds = sd_notify::listen_fds_with_names()?;
    fds.map(|(fd, name)| {
        // SAFETY: systemd passed us this descriptor and nobody else owns it.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Listener::from_fd(owned).map(|l| (name, l))
    })
    .collect()
}

/// Uses the systemd-passed socket if there is exactly one unnamed or matching `name`,
/// else binds `addr`.
/// The socket file stays when the daemon exits; see [`listen_with_cleanup`].
pub fn listen(name: &str, addr: &ListenAddr, mode: u32) -> io::Result<Listener> {
    listen_with_cleanup(name, addr, mode).map(|(listener, guard)| {
        if let Some(guard) = guard {
            guard.keep();
        }
        listener
    })
}

/// Like [`listen`], and also returns a guard that removes the socket file when dropped if
/// we bound it ourselves (sockets passed by systemd belong to systemd).
pub fn listen_with_cleanup(
    name: &str,
    addr: &ListenAddr,
    mode: u32,
) -> io::Result<(Listener, Option<SocketFile>)> {
    let mut inherited = systemd_listeners()?;
    if let Some(pos) = inherited.iter().position(|(n, _)| n == name) {
        return Ok((inherited.swap_remove(pos).1, None));
    }
    if inherited.len() == 1 {
        return Ok((inherited.remove(0).1, None));
    }
    let listener = Listener::bind(addr, mode)?;
    let guard = match addr {
        ListenAddr::Unix(path) => Some(SocketFile(Some(path.clone()))),
        ListenAddr::Tcp(_) => None,
    };
    Ok((listener, guard))
}

/// Removes a unix socket file we created when dropped.
#[derive(Debug)]
pub struct SocketFile(Option<PathBuf>);

impl SocketFile {
    /// Leaves the file in place.
    pub fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Tells systemd we are ready (no-op without `NOTIFY_SOCKET`) and starts watchdog pings
/// when `WatchdogSec=` is set.
pub fn notify_ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
    if let Some(interval) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}

/// Tells systemd we are stopping.
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Completes on SIGTERM or SIGINT.
///
/// The handlers are installed when this is called (inside the runtime), not when the future
/// is first polled: call it before [`notify_ready`], so a SIGTERM right after readiness is a
/// clean shutdown and not death by the default signal action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            "unix:/run/x.sock".parse(),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "/run/x.sock".parse(),
            Ok(ListenAddr::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "inet:127.0.0.1:8891".parse(),
            Ok(ListenAddr::Tcp("127.0.0.1:8891".parse().unwrap()))
        );
        assert_eq!(
            "inet:localhost:8891".parse(),
            Ok(ListenAddr::Tcp("127.0.0.1:8891".parse().unwrap()))
        );
        assert_eq!(
            "inet:[::1]:25".parse(),
            Ok(ListenAddr::Tcp("[::1]:25".parse().unwrap()))
        );
        assert!("unix:rel".parse::<ListenAddr>().is_err());
        assert!("inet:nohost".parse::<ListenAddr>().is_err());
        assert!("tcp:1".parse::<ListenAddr>().is_err());
    }

    #[tokio::test]
    async fn bind_replaces_stale_socket_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ListenAddr::Unix(dir.path().join("sub/x.sock"));
        let err = Listener::bind(&missing, 0o600).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::NotFound,
            "no directory is made: {err}"
        );
        assert!(!dir.path().join("sub").exists());

        let path = dir.path().join("x.sock");
        let addr = ListenAddr::Unix(path.clone());
        drop(Listener::bind(&addr, 0o600).unwrap());
        let l = Listener::bind(&addr, 0o660).unwrap();
        assert!(matches!(l, Listener::Unix(_)));

        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        std::os::unix::net::UnixStream::connect(&path).expect("the socket answers");

        drop(listen("x", &addr, 0o660).unwrap());
        assert!(path.exists(), "listen() keeps the socket file");
        let (_l, guard) = listen_with_cleanup("x", &addr, 0o660).unwrap();
        drop(guard);
        assert!(!path.exists(), "the guard removes it");
    }

    /// What `bind_unix` relies on: the socket file is made with the socket's mode (less the
    /// umask), not with 0777 less the umask.
    #[test]
    fn linux_makes_the_socket_file_with_the_sockets_mode() {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .map(|m| u32::from_str_radix(m.trim(), 8).unwrap())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sock");
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::fs::fchmod(&socket, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        rustix::net::bind(&socket, &SocketAddrUnix::new(&path).unwrap()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600 & !umask);
    }

    #[test]
    fn bind_refuses_modes_that_let_other_users_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sock");
        for mode in [0o666, 0o662, 0o604, 0o777] {
            let err = Listener::bind(&ListenAddr::Unix(path.clone()), mode).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{mode:o}");
            assert!(err.to_string().contains("other users"), "{err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
