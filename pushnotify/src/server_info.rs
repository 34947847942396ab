//! Server metadata for Delta Chat clients (`GETMETADATA "" /shared/vendor/deltachat/<name>`):
//! `irohrelay`, `turn`, `maxsmtprecipients` and `appversions`. Anything else is not found.

use std::path::PathBuf;
use std::time::Duration;

use chatmail_common::config::Config;
use chatmail_common::dict::LookupReply;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;

use crate::appversions;
use crate::turn;

/// TURN credentials must arrive within this.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest credentials line read from the TURN socket.
const MAX_TURN_LINE: u64 = 4096;
/// The TURN port announced with the credentials.
const TURN_PORT: u16 = 3478;
/// Postfix's default `smtpd_recipient_limit`.
const MAX_SMTP_RECIPIENTS: &str = "1000";
/// Largest appversions file served.
const MAX_APPVERSIONS_LEN: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub iroh_relay: String,
    /// Host announced for TURN: the mail domain (without brackets for an IP-only relay).
    pub turn_host: String,
    /// coturn's TURN REST secret: while the file exists, credentials are computed from it.
    pub turn_secret: Option<PathBuf>,
    /// Otherwise the reference's chatmail-turn gives them on this socket.
    pub turn_socket: PathBuf,
    pub turn_timeout: Duration,
    pub appversions_file: PathBuf,
}

impl ServerInfo {
    pub fn from_config(config: &Config) -> ServerInfo {
        ServerInfo {
            iroh_relay: config.iroh_relay.clone(),
            turn_host: config.mail_domain_bare.clone(),
            turn_secret: config.turn_secret_file.clone(),
            turn_socket: config.turn_socket_path.clone(),
            turn_timeout: TURN_TIMEOUT,
            appversions_file: config.appversions_file.clone(),
        }
    }

    pub async fn lookup(&self, name: &str) -> LookupReply {
        match name {
            "irohrelay" if !self.iroh_relay.is_empty() => {
                LookupReply::Found(self.iroh_relay.clone())
            }
            "turn" => match self.turn_line().await {
                Ok(line) => LookupReply::Found(format!("{}:{TURN_PORT}:{line}", self.turn_host)),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to get TURN credentials");
                    LookupReply::NotFound
                }
            },
            "maxsmtprecipients" => LookupReply::Found(MAX_SMTP_RECIPIENTS.into()),
            "appversions" => match self.appversions().await {
                Ok(json) => LookupReply::Found(json),
                Err(e) => {
                    tracing::warn!(file = %self.appversions_file.display(), error = %e, "not serving appversions");
                    LookupReply::NotFound
                }
            },
            other => {
                tracing::debug!(name = other, "unknown server metadata lookup");
                LookupReply::NotFound
            }
        }
    }

    /// `user:password`: computed from coturn's secret when its file exists, else read from
    /// the reference's chatmail-turn socket. A secret file that is there but unusable fails
    /// (no fallback: the operator's coturn would refuse whatever the socket says).
    async fn turn_line(&self) -> Result<String, String> {
        if let Some(path) = &self.turn_secret {
            match turn::read_secret(path).await {
                Ok(secret) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_err(|_| "the clock is before 1970".to_string())?
                        .as_secs();
                    let (user, password) = turn::credentials(&secret, now, turn::LIFETIME);
                    return Ok(format!("{user}:{password}"));
                }
                Err(e) if e.is_missing() => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let socket = self.turn_socket.display();
        match tokio::time::timeout(self.turn_timeout, self.turn_socket_line()).await {
            Ok(Ok(line)) => Ok(line),
            Ok(Err(e)) => Err(format!("{socket}: {e}")),
            Err(_) => Err(format!("{socket}: timeout")),
        }
    }

    async fn turn_socket_line(&self) -> std::io::Result<String> {
        let stream = UnixStream::connect(&self.turn_socket).await?;
        let mut line = String::new();
        BufReader::new(stream.take(MAX_TURN_LINE))
            .read_line(&mut line)
            .await?;
        let line = line.trim();
        if line.is_empty() || line.chars().any(char::is_control) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "empty or malformed credentials line",
            ));
        }
        Ok(line.to_string())
    }

    async fn appversions(&self) -> Result<String, String> {
        let file = tokio::fs::File::open(&self.appversions_file)
            .await
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        file.take(MAX_APPVERSIONS_LEN + 1)
            .read_to_string(&mut text)
            .await
            .map_err(|e| e.to_string())?;
        if text.len() as u64 > MAX_APPVERSIONS_LEN {
            return Err("file too large".into());
        }
        appversions::prepare(&text).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::UnixListener;

    fn info(dir: &std::path::Path) -> ServerInfo {
        ServerInfo {
            iroh_relay: "https://iroh.example.org".into(),
            turn_host: "example.org".into(),
            turn_secret: Some(dir.join("turn.secret")),
            turn_socket: dir.join("turn.socket"),
            turn_timeout: Duration::from_millis(300),
            appversions_file: dir.join("appversions.json"),
        }
    }

    #[tokio::test]
    async fn simple_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = info(dir.path());
        assert_eq!(
            i.lookup("irohrelay").await,
            LookupReply::Found("https://iroh.example.org".into())
        );
        assert_eq!(
            i.lookup("maxsmtprecipients").await,
            LookupReply::Found("1000".into())
        );
        assert_eq!(i.lookup("unknown").await, LookupReply::NotFound);
        i.iroh_relay.clear();
        assert_eq!(i.lookup("irohrelay").await, LookupReply::NotFound);
    }

    #[tokio::test]
    async fn turn_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let i = info(dir.path());
        // no socket
        assert_eq!(i.lookup("turn").await, LookupReply::NotFound);

        let listener = UnixListener::bind(&i.turn_socket).unwrap();
        let server = tokio::spawn(async move {
            // first connection: answer; second: never answer
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"testuser:testpass\n").await.unwrap();
            let (_hold, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        assert_eq!(
            i.lookup("turn").await,
            LookupReply::Found("example.org:3478:testuser:testpass".into())
        );
        let started = std::time::Instant::now();
        assert_eq!(i.lookup("turn").await, LookupReply::NotFound);
        assert!(started.elapsed() < Duration::from_secs(3));
        server.abort();
    }

    #[tokio::test]
    async fn turn_credentials_from_the_secret_win_over_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = info(dir.path());
        let secret = "0123456789abcdef0123456789abcdef";
        std::fs::write(dir.path().join("turn.secret"), format!("{secret}\n")).unwrap();
        // no socket: the secret alone answers
        let LookupReply::Found(line) = i.lookup("turn").await else {
            panic!("no credentials");
        };
        let fields: Vec<&str> = line.split(':').collect();
        let [host, port, user, password] = fields[..] else {
            panic!("{line}");
        };
        assert_eq!((host, port), ("example.org", "3478"));
        let expiry: u64 = user.parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            expiry.abs_diff(now + turn::LIFETIME.as_secs()) < 5,
            "{line}"
        );
        assert_eq!(password, turn::password(secret, user));
        // an unusable secret fails closed, without falling back to the socket
        std::fs::write(dir.path().join("turn.secret"), "short\n").unwrap();
        assert_eq!(i.lookup("turn").await, LookupReply::NotFound);
        // no secret configured: the socket (which is missing here)
        i.turn_secret = None;
        assert_eq!(i.lookup("turn").await, LookupReply::NotFound);
    }

    #[tokio::test]
    async fn appversions() {
        let dir = tempfile::tempdir().unwrap();
        let i = info(dir.path());
        assert_eq!(i.lookup("appversions").await, LookupReply::NotFound);
        let shipped = include_str!("../appversions.json");
        let pretty = shipped.replace("\":", "\": ").replace(",\"", ",\n  \"");
        assert!(pretty.lines().count() > 3);
        std::fs::write(&i.appversions_file, &pretty).unwrap();
        assert_eq!(
            i.lookup("appversions").await,
            LookupReply::Found(shipped.trim_end().into())
        );
        std::fs::write(&i.appversions_file, "{\"clients\": [").unwrap();
        assert_eq!(i.lookup("appversions").await, LookupReply::NotFound);
        std::fs::write(&i.appversions_file, "{\"clients\": []}").unwrap();
        assert_eq!(i.lookup("appversions").await, LookupReply::NotFound);
    }
}
