//! `chatmail-relay invite`: a login link for a new account (created at its first login), and
//! the same as a QR code for Delta Chat to scan.
//!
//! The credentials and the link come from [`chatmail_common::invite`], which the web backend's
//! `/new` shares.

use std::path::Path;

use chatmail_common::config::Config;
use chatmail_common::invite::InviteError;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::Error;
use crate::cli::InviteArgs;
use crate::plan::on_disk;

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
    chatmail_common::invite::dclogin(config, host).map_err(invite_error)
}

fn invite_error(e: InviteError) -> Error {
    match e {
        InviteError::Random(e) => Error::System {
            what: "random numbers".into(),
            reason: e.to_string(),
        },
        other => Error::System {
            what: "invite link".into(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_for_the_relay() {
        let text = "[params]\nmail_domain = 203.0.113.5\n";
        let config = Config::from_str(text, Path::new("chatmail.ini")).unwrap().0;
        let link = dclogin(&config, "203.0.113.5").unwrap();
        assert!(link.starts_with("dclogin:"), "{link}");
        assert!(link.contains("@[203.0.113.5]?p="), "{link}");
        assert!(link.ends_with("&ic=3&sc=3"), "{link}");
    }
}
