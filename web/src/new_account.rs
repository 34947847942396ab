//! `/new`: credentials for a new account, as Delta Chat's `dcaccount:` links fetch them, and
//! the invite link of the invite page.
//!
//! Nothing is created here: the account comes into existence at its first login (doveauth).
//! While `nocreate_file` exists, no credentials are handed out.

use chatmail_common::config::{Config, TlsCertMode};
use chatmail_common::invite;
use hyper::header::{CACHE_CONTROL, LOCATION};
use hyper::{Method, StatusCode};

use crate::error::Error;
use crate::server::{Response, json};

/// What the relay says while it takes no new accounts (Delta Chat shows `reason`).
pub const CLOSED_REASON: &str = "This relay does not accept new accounts.";

/// Whether account creation is on (`nocreate_file` does not exist).
pub async fn accepting(config: &Config) -> Result<bool, Error> {
    tokio::fs::try_exists(&config.nocreate_file)
        .await
        .map(|exists| !exists)
        .map_err(|source| Error::Nocreate {
            path: config.nocreate_file.clone(),
            source,
        })
}

/// Whether new accounts get a `dclogin:` link with their credentials (a self-signed
/// certificate, which Delta Chat's `dcaccount:` fetch would refuse) rather than
/// `dcaccount:`.
fn self_signed(config: &Config) -> bool {
    config.deployment.tls_cert_mode == TlsCertMode::SelfSigned
}

/// `dcaccount:https://{mail_domain}/new`.
pub fn dcaccount(config: &Config) -> String {
    format!("dcaccount:https://{}/new", config.mail_domain)
}

/// The link the invite page shows: `dcaccount:` with a certificate clients trust, else a
/// `dclogin:` with fresh credentials (a new account for each visit).
pub fn invite_link(config: &Config) -> Result<String, Error> {
    if self_signed(config) {
        Ok(invite::dclogin(config, &config.mail_domain_bare)?)
    } else {
        Ok(dcaccount(config))
    }
}

/// Answers `/new` (GET, HEAD or POST; the router has checked the method).
pub async fn handle(config: &Config, method: &Method) -> Result<Response, Error> {
    if !accepting(config).await? {
        let mut response = json(
            StatusCode::FORBIDDEN,
            &serde_json::json!({ "reason": CLOSED_REASON }),
        );
        no_store(&mut response);
        return Ok(response);
    }
    let mut response = if method == Method::POST {
        let (email, password) = invite::credentials(config)?;
        let mut body = serde_json::json!({ "email": email, "password": password });
        if self_signed(config) {
            body["dclogin_url"] =
                invite::dclogin_for(config, &email, &password, &config.mail_domain_bare).into();
        }
        json(StatusCode::OK, &body)
    } else {
        // A browser (or a QR scanner that opened the URL): send it to Delta Chat.
        let (status, location) = if self_signed(config) {
            (
                StatusCode::FOUND,
                invite::dclogin(config, &config.mail_domain_bare)?,
            )
        } else {
            (StatusCode::MOVED_PERMANENTLY, dcaccount(config))
        };
        hyper::Response::builder()
            .status(status)
            .header(LOCATION, location)
            .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Default::default())?
    };
    no_store(&mut response);
    Ok(response)
}

fn no_store(response: &mut Response) {
    response.headers_mut().insert(
        CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
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
    fn invite_links() {
        assert_eq!(
            invite_link(&config("chat.example.org")).unwrap(),
            "dcaccount:https://chat.example.org/new"
        );
        let ip = invite_link(&config("203.0.113.5")).unwrap();
        assert!(ip.starts_with("dclogin:"), "{ip}");
        assert!(
            ip.contains("&ih=203.0.113.5&") && ip.contains("&ic=3"),
            "{ip}"
        );
        assert_ne!(ip, invite_link(&config("203.0.113.5")).unwrap());
    }
}
