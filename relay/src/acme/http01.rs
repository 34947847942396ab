//! HTTP-01 answers: `GET /.well-known/acme-challenge/TOKEN` must return the token's key
//! authorization on port 80 of every name.
//!
//! When nothing listens on port 80, `chatmail-relay` answers itself, for the seconds of the
//! order only. When another server holds it (the web server of the relay), the answers are
//! written as files to [`WEBROOT`], which that server must serve at
//! `/.well-known/acme-challenge/`; they are removed after the order.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{WEBROOT, local};

/// The port HTTP-01 validations connect to (RFC 8555 §8.3).
const PORT: u16 = 80;
const PREFIX: &str = "/.well-known/acme-challenge/";
/// The longest request head read, and the time a client gets to send it.
const MAX_REQUEST: usize = 8192;
const READ_TIMEOUT: Duration = Duration::from_secs(10);

type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Where the answers are.
pub(super) enum Http01 {
    /// Our own responder on port 80.
    Responder {
        tokens: Tokens,
        task: JoinHandle<()>,
    },
    /// Files in the web root of the server on port 80.
    Webroot { dir: PathBuf, written: Vec<PathBuf> },
}

impl Http01 {
    /// Listens on port 80 (every address), or falls back to the web root when the port is
    /// taken.
    pub(super) async fn start(root: &Path) -> Result<Http01, String> {
        let listener = match bind().await {
            Ok(listener) => listener,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Ok(Http01::Webroot {
                    dir: local(root, WEBROOT),
                    written: Vec::new(),
                });
            }
            Err(e) => return Err(format!("cannot listen on port {PORT} for HTTP-01: {e}")),
        };
        let tokens = Tokens::default();
        let task = tokio::spawn(serve(listener, tokens.clone()));
        Ok(Http01::Responder { tokens, task })
    }

    /// Makes `token` answer with `key_authorization`.
    pub(super) fn add(&mut self, token: &str, key_authorization: &str) -> Result<(), String> {
        // The token names a file: base64url only (RFC 8555 §8.3), never a path.
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("the server sent a malformed token {token:?}"));
        }
        match self {
            Http01::Responder { tokens, .. } => {
                tokens
                    .lock()
                    .map_err(|_| "HTTP-01 responder failed".to_string())?
                    .insert(token.to_string(), key_authorization.to_string());
            }
            Http01::Webroot { dir, written } => {
                // Readable by the web server, whatever the umask.
                let public = |path: &Path, mode| {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                };
                let failed = |path: &Path, e: std::io::Error| format!("{}: {e}", path.display());
                std::fs::create_dir_all(&*dir)
                    .and_then(|()| public(dir, 0o755))
                    .map_err(|e| failed(dir, e))?;
                let path = dir.join(token);
                std::fs::write(&path, key_authorization)
                    .and_then(|()| public(&path, 0o644))
                    .map_err(|e| failed(&path, e))?;
                written.push(path);
            }
        }
        Ok(())
    }

    /// Says where the answers are (for an error message).
    pub(super) fn describe(&self) -> String {
        match self {
            Http01::Responder { .. } => format!("answered on port {PORT} by chatmail-relay"),
            Http01::Webroot { dir, .. } => format!(
                "port {PORT} is taken: the answers were in {}, which the server on port {PORT} \
                 must serve at {PREFIX}",
                dir.display()
            ),
        }
    }

    /// Stops answering.
    pub(super) fn stop(self) {
        match self {
            Http01::Responder { task, .. } => task.abort(),
            Http01::Webroot { written, .. } => {
                for path in written {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}

/// Port 80 on every IPv6 and IPv4 address, or on every IPv4 address where there is no IPv6.
async fn bind() -> std::io::Result<TcpListener> {
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, PORT))).await {
        Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT))).await
        }
        result => result,
    }
}

async fn serve(listener: TcpListener, tokens: Tokens) {
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, tokens.clone()));
        }
    }
}

/// Answers one request and closes the connection.
async fn answer(mut stream: TcpStream, tokens: Tokens) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let body = requested_token(&head).and_then(|token| {
        tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(token).cloned())
    });
    let response = match body {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// The token of a `GET /.well-known/acme-challenge/TOKEN HTTP/1.x` request.
fn requested_token(head: &[u8]) -> Option<&str> {
    let line = head.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if method != "GET" || !version.starts_with("HTTP/1.") {
        return None;
    }
    target.strip_prefix(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_of_a_challenge_request() {
        let head = b"GET /.well-known/acme-challenge/abc-_9 HTTP/1.1\r\nHost: x.org\r\n\r\n";
        assert_eq!(requested_token(head), Some("abc-_9"));
        assert_eq!(requested_token(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(
            requested_token(b"POST /.well-known/acme-challenge/a HTTP/1.1\r\n\r\n"),
            None
        );
        assert_eq!(requested_token(b"\xff\r\n\r\n"), None);
    }

    #[test]
    fn webroot_answers_are_files_removed_afterwards() {
        let root = tempfile::tempdir().unwrap();
        let dir = local(root.path(), WEBROOT);
        let mut http01 = Http01::Webroot {
            dir: dir.clone(),
            written: Vec::new(),
        };
        http01.add("tok_1", "tok_1.thumb").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("tok_1")).unwrap(),
            "tok_1.thumb"
        );
        assert!(http01.add("../etc/passwd", "x").is_err());
        assert!(http01.add("", "x").is_err());
        http01.stop();
        assert!(!dir.join("tok_1").exists());
    }
}
