//! TURN credentials by the TURN REST scheme that coturn checks with `use-auth-secret`: the
//! user name is the Unix time the credentials expire at, the password the base64 of
//! HMAC-SHA1 over the user name, keyed with the secret `chatmail-relay setup` shares with
//! coturn (`turn_secret_file`). No daemon and no socket: each lookup computes fresh ones.
//!
//! The user name carries no account: coturn logs user names, and the relay keeps no record
//! of who calls. It has no `:` either, so the `turn` answer `host:port:user:password` splits
//! as the reference's does.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use chatmail_common::turn_secret;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio::io::AsyncReadExt;

/// How long credentials stay valid: the reference's chatmail-turn gives five days (a client
/// may keep what it fetched at login for a while before it places a call).
pub const LIFETIME: Duration = Duration::from_secs(5 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: not a secret (one line of at least {} printable characters)",
        turn_secret::MIN_LEN
    )]
    Malformed { path: String },
}

impl SecretError {
    /// The file is not there: the relay does not run coturn's TURN.
    pub fn is_missing(&self) -> bool {
        matches!(self, SecretError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The secret in `path` ([`turn_secret::parse`]).
pub async fn read_secret(path: &Path) -> Result<String, SecretError> {
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut bytes = Vec::new();
    file.take(turn_secret::MAX_FILE_LEN as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    turn_secret::parse(&bytes).ok_or_else(|| SecretError::Malformed {
        path: path.display().to_string(),
    })
}

/// `(user name, password)` valid until `now + lifetime` (Unix seconds).
pub fn credentials(secret: &str, now: u64, lifetime: Duration) -> (String, String) {
    let username = now.saturating_add(lifetime.as_secs()).to_string();
    let password = password(secret, &username);
    (username, password)
}

/// base64(HMAC-SHA1(secret, username)), as coturn computes it for `use-auth-secret`.
pub fn password(secret: &str, username: &str) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_is_rfc_2202() {
        // RFC 2202, test case 2 (HMAC-SHA1, key "Jefe")
        let mut mac = Hmac::<Sha1>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }

    #[test]
    fn credentials_are_coturns_rest_scheme() {
        // Computed independently: base64(hmac.new(b"north", b"1700000000", sha1).digest())
        // in Python, the reference chatmail-turn's secret and a user name of its form.
        assert_eq!(
            password("north", "1700000000"),
            "CWyHi3zCeWqXBir9thl4m+iZPRY="
        );
        let (user, pass) = credentials(
            "0123456789abcdef",
            1_734_567_890 - 3600,
            Duration::from_secs(3600),
        );
        assert_eq!(user, "1734567890");
        assert_eq!(pass, "CJ6P7GRqjh++UhhdyxPhUPhItBA=");
        let (user, _) = credentials("0123456789abcdef", 1_000, LIFETIME);
        assert_eq!(user, (1_000 + 5 * 24 * 3600).to_string());
    }

    #[tokio::test]
    async fn a_missing_file_is_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_secret(&dir.path().join("none")).await.unwrap_err();
        assert!(missing.is_missing());
        let path = dir.path().join("turn.secret");
        std::fs::write(&path, "x\n").unwrap();
        let bad = read_secret(&path).await.unwrap_err();
        assert!(
            !bad.is_missing() && bad.to_string().contains("not a secret"),
            "{bad}"
        );
        std::fs::write(&path, "0123456789abcdefXYZ\n").unwrap();
        assert_eq!(read_secret(&path).await.unwrap(), "0123456789abcdefXYZ");
    }
}
