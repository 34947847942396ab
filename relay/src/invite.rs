//! `chatmail-relay invite`: a login link for a new account (created at its first login), and
//! the same as a QR code for Delta Chat to scan.

use std::path::Path;

use chatmail_common::config::{Config, TlsCertMode};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::Error;
use crate::cli::InviteArgs;
use crate::plan::on_disk;

/// Letters and digits: the local part of new addresses.
const USER_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// The password alphabet: letters, digits and punctuation.
const PASSWORD_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-.:;<=>?@[]^_{|}~";

pub fn run(root: &Path, path: &Path, args: &InviteArgs) -> Result<(), Error> {
    let (config, _) = Config::read(&on_disk(root, path))?;
    let host = args
        .host
        .clone()
        .unwrap_or_else(|| config.mail_domain_bare.clone());
    let link = dclogin(&config, &host)?;
    println!("{link}");
    if !args.no_qr {
        let qr = QrCode::new(link.as_bytes()).map_err(|e| Error::System {
            what: "QR code".into(),
            reason: e.to_string(),
        })?;
        // Light modules as blocks: dark terminals show the code as phones expect it.
        let text = qr
            .render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .build();
        println!("{text}");
    }
    Ok(())
}

/// `dclogin:` with a new random address and password, IMAP on 993 and SMTP on 465 of `host`
/// (with TLS; certificate checks off for a self-signed certificate).
pub fn dclogin(config: &Config, host: &str) -> Result<String, Error> {
    let user = random_string(USER_CHARS, config.username_max_length)?;
    let password = random_string(PASSWORD_CHARS, config.password_min_length + 3)?;
    let mut link = format!(
        "dclogin:{user}@{}?p={}&v=1&ih={host}&ip=993&is=ssl&sh={host}&sp=465&ss=ssl",
        config.mail_domain,
        urlencode(&password)
    );
    if config.deployment.tls_cert_mode == TlsCertMode::SelfSigned {
        link.push_str("&ic=3&sc=3");
    }
    Ok(link)
}

/// `n` characters of `alphabet`, uniformly (bytes that would bias the choice are dropped).
fn random_string(alphabet: &[u8], n: usize) -> Result<String, Error> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| Error::System {
            what: "random numbers".into(),
            reason: e.to_string(),
        })?;
        for b in buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._~-".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
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
    fn encodes_and_draws() {
        assert_eq!(
            urlencode("a-b_c.~%&?=@[] "),
            "a-b_c.~%25%26%3F%3D%40%5B%5D%20"
        );
        assert_eq!(random_string(PASSWORD_CHARS, 12).unwrap().len(), 12);
    }
}
