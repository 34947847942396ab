//! Credentials for new accounts, and `dclogin:` links that carry them.
//!
//! An account comes into existence at its first login, so "making" one is only drawing a
//! random address and password that the login rules accept. `chatmail-relay invite` and the
//! web backend's `/new` both draw them here.

use crate::config::{Config, TlsCertMode};

/// Lower-case letters and digits: the local part of new addresses.
pub const USER_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// The password alphabet: letters, digits and punctuation.
pub const PASSWORD_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-.:;<=>?@[]^_{|}~";

/// What can go wrong while drawing credentials.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    /// The system's random number source failed.
    #[error("random numbers: {0}")]
    Random(getrandom::Error),
    /// An empty alphabet (a programming error).
    #[error("cannot draw characters from an empty alphabet")]
    EmptyAlphabet,
}

/// Fresh credentials `(email, password)`: `username_max_length` characters of [`USER_CHARS`]
/// at `mail_domain`, and `password_min_length + 3` characters of [`PASSWORD_CHARS`].
pub fn credentials(config: &Config) -> Result<(String, String), InviteError> {
    let user = random_string(USER_CHARS, config.username_max_length)?;
    let password = random_string(PASSWORD_CHARS, config.password_min_length + 3)?;
    Ok((format!("{user}@{}", config.mail_domain), password))
}

/// `dclogin:` with fresh credentials, IMAP on 993 and SMTP on 465 of `host` (with TLS;
/// certificate checks off for a self-signed certificate).
pub fn dclogin(config: &Config, host: &str) -> Result<String, InviteError> {
    let (email, password) = credentials(config)?;
    Ok(dclogin_for(config, &email, &password, host))
}

/// `dclogin:` for the given credentials, IMAP on 993 and SMTP on 465 of `host` (with TLS;
/// certificate checks off, `ic=3&sc=3`, for a self-signed certificate).
pub fn dclogin_for(config: &Config, email: &str, password: &str, host: &str) -> String {
    let mut link = format!(
        "dclogin:{}?p={}&v=1&ih={host}&ip=993&is=ssl&sh={host}&sp=465&ss=ssl",
        encode(email, b"@[]"),
        urlencode(password)
    );
    if config.deployment.tls_cert_mode == TlsCertMode::SelfSigned {
        link.push_str("&ic=3&sc=3");
    }
    link
}

/// `n` characters of `alphabet`, uniformly (bytes that would bias the choice are dropped).
pub fn random_string(alphabet: &[u8], n: usize) -> Result<String, InviteError> {
    if alphabet.is_empty() || alphabet.len() > 256 {
        return Err(InviteError::EmptyAlphabet);
    }
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(InviteError::Random)?;
        for b in buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
pub fn urlencode(s: &str) -> String {
    encode(s, b"")
}

/// Percent-encoding of everything but RFC 3986's unreserved characters and `safe`.
fn encode(s: &str, safe: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._~-".contains(&b) || safe.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(domain: &str) -> Config {
        let text = format!("[params]\nmail_domain = {domain}\n");
        Config::from_str(&text, Path::new("chatmail.ini"))
            .unwrap()
            .0
    }

    #[test]
    fn links_carry_fresh_credentials() {
        let c = config("chat.example.org");
        let a = dclogin(&c, "chat.example.org").unwrap();
        let b = dclogin(&c, "chat.example.org").unwrap();
        assert_ne!(a, b);
        let rest = a.strip_prefix("dclogin:").unwrap();
        let (addr, query) = rest.split_once('?').unwrap();
        let (user, domain) = addr.split_once('@').unwrap();
        assert_eq!(domain, "chat.example.org");
        assert_eq!(user.len(), 9);
        assert!(user.bytes().all(|b| USER_CHARS.contains(&b)));
        assert!(query.ends_with("&sp=465&ss=ssl"), "{query}");
        let ip = dclogin(&config("203.0.113.5"), "203.0.113.5").unwrap();
        assert!(
            ip.contains("@[203.0.113.5]?") && ip.ends_with("&ic=3&sc=3"),
            "{ip}"
        );
    }

    #[test]
    fn credentials_have_the_configured_lengths() {
        let text = "[params]\nmail_domain = chat.example.org\nusername_max_length = 12\n\
                    username_min_length = 10\npassword_min_length = 15\n";
        let c = Config::from_str(text, Path::new("chatmail.ini")).unwrap().0;
        let (email, password) = credentials(&c).unwrap();
        let (user, domain) = email.split_once('@').unwrap();
        assert_eq!(domain, "chat.example.org");
        assert_eq!(user.len(), 12);
        assert!(user.bytes().all(|b| USER_CHARS.contains(&b)));
        assert_eq!(password.len(), 18);
        assert!(password.bytes().all(|b| PASSWORD_CHARS.contains(&b)));
        assert_ne!(credentials(&c).unwrap(), (email, password));
    }

    #[test]
    fn link_for_given_credentials() {
        let c = config("203.0.113.5");
        let link = dclogin_for(&c, "abc@[203.0.113.5]", "p&ss w", "203.0.113.5");
        assert_eq!(
            link,
            "dclogin:abc@[203.0.113.5]?p=p%26ss%20w&v=1&ih=203.0.113.5&ip=993&is=ssl\
             &sh=203.0.113.5&sp=465&ss=ssl&ic=3&sc=3"
        );
    }

    #[test]
    fn encodes_and_draws() {
        assert_eq!(
            urlencode("a-b_c.~%&?=@[] "),
            "a-b_c.~%25%26%3F%3D%40%5B%5D%20"
        );
        assert_eq!(random_string(PASSWORD_CHARS, 12).unwrap().len(), 12);
        assert!(matches!(
            random_string(b"", 1),
            Err(InviteError::EmptyAlphabet)
        ));
    }
}
