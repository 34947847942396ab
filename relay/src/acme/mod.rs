//! ACME certificates (Let's Encrypt by default) for a relay with a domain, obtained by
//! `chatmail-relay` itself: no client package, no daemon.
//!
//! - [`names`]: the host names the certificate covers;
//! - [`renewal`]: when a certificate is due (missing, a name not covered, fewer than
//!   [`RENEW_BEFORE_DAYS`] days left), and the record of the last failed renewal;
//! - [`account`]: the ACME account, its key kept in [`STATE_DIR`];
//! - [`http01`]: the HTTP-01 answers, from a responder on port 80 for the seconds of an order,
//!   or as token files in [`WEBROOT`] when another server holds port 80;
//! - [`order`]: one order, from the new order to the certificate chain;
//! - [`store`]: the certificate and key on disk, written together and atomically.
//!
//! The command is synchronous: [`ensure`] runs the order on a current-thread tokio runtime of
//! its own.

mod account;
mod http01;
mod order;
pub mod renewal;
mod store;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatmail_common::config::Config;

use crate::Error;
use crate::plan::on_disk;
use crate::tls::{self, CertInfo};

pub use renewal::{Due, RenewalError};

/// The ACME account and the lock of a renewal.
pub const STATE_DIR: &str = "/var/lib/chatmail-relay/acme";
/// Where HTTP-01 token files go when another server holds port 80 (which must serve this
/// directory at `/.well-known/acme-challenge/`).
pub const WEBROOT: &str = "/var/lib/chatmail-relay/acme-challenge";
/// A certificate is renewed when fewer days than this are left (Let's Encrypt's are valid
/// for 90).
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// The longest an order may take, from the directory to the certificate.
const ORDER_TIMEOUT: Duration = Duration::from_secs(180);

/// The host names the relay's certificate covers: the mail domain and the names of its web
/// services (MTA-STS).
pub fn names(config: &Config) -> Vec<String> {
    let domain = &config.mail_domain_bare;
    vec![domain.clone(), format!("mta-sts.{domain}")]
}

/// What `status` needs to know about the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertStatus {
    /// The certificate file Postfix and Dovecot use.
    pub cert: PathBuf,
    /// What it says (`None`: missing or unreadable).
    pub info: Option<CertInfo>,
    /// Whether it is due for renewal, and why.
    pub due: Due,
    /// The last renewal that failed, if the last attempt did.
    pub last_error: Option<RenewalError>,
}

/// The certificate's state, read from disk; changes nothing.
pub fn status(root: &Path, config: &Config) -> CertStatus {
    let (cert, _) = tls::paths(config);
    let info = store::read(root, config);
    let due = renewal::due(info.as_ref(), &names(config), renewal::now());
    CertStatus {
        cert,
        info,
        due,
        last_error: renewal::last_error(root),
    }
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The certificate on disk was good enough.
    Kept(CertInfo),
    /// A new certificate and key were written (Postfix and Dovecot must reload).
    Renewed(CertInfo),
}

/// Makes sure the relay has a certificate that is not due: orders one when it is (and
/// `force` orders one regardless). On failure nothing is written but the record of the
/// failure, which [`status`] reports.
pub fn ensure(root: &Path, config: &Config, force: bool) -> Result<Outcome, Error> {
    let _lock = store::lock(root)?;
    let info = store::read(root, config);
    let due = renewal::due(info.as_ref(), &names(config), renewal::now());
    if let (Some(info), false) = (info, force || due.is_due()) {
        return Ok(Outcome::Kept(info));
    }
    match obtain(root, config) {
        Ok(info) => {
            renewal::clear_error(root)?;
            Ok(Outcome::Renewed(info))
        }
        Err(e) => {
            // The failure is what the operator must see; a failure to record it is secondary.
            let _ = renewal::record_error(root, &e.to_string());
            Err(e)
        }
    }
}

/// The mark of a renewal whose certificate Postfix and Dovecot have not read yet.
fn reload_mark(root: &Path) -> PathBuf {
    local(root, STATE_DIR).join("reload-pending")
}

/// Marks that Postfix and Dovecot must reload (for a `cert --reload` outside a sandbox).
pub fn ask_reload(root: &Path) -> Result<(), Error> {
    let path = reload_mark(root);
    std::fs::write(&path, "").map_err(|e| Error::io(&path, e))
}

/// Whether a renewal asked for a reload not done yet.
pub fn reload_asked(root: &Path) -> bool {
    reload_mark(root).exists()
}

pub fn reload_done(root: &Path) -> Result<(), Error> {
    let path = reload_mark(root);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
        _ => Ok(()),
    }
}

/// Orders a certificate for [`names`] and writes it with its new key.
fn obtain(root: &Path, config: &Config) -> Result<CertInfo, Error> {
    let server = config.deployment.acme_directory.clone();
    let failed = |reason: String| Error::Acme {
        server: server.clone(),
        reason,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the async runtime: {e}")))?;
    let names = names(config);
    let issued = runtime.block_on(async {
        let work = async {
            let account = account::load_or_create(root, config).await?;
            order::issue(&account, &names, root).await
        };
        match tokio::time::timeout(ORDER_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no certificate after {} s",
                ORDER_TIMEOUT.as_secs()
            )),
        }
    });
    let issued = issued.map_err(failed)?;
    store::write(root, config, &issued)
}

/// An error and its sources on one line: `a: b: c`, without repeats.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(e) = next {
        let text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// [`STATE_DIR`] on disk, made (root's alone, 0700) when missing.
fn state_dir(root: &Path) -> Result<PathBuf, Error> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = local(root, STATE_DIR);
    let io = |e| Error::io(&dir, e);
    if !dir.is_dir() {
        // Its parent as any directory of /var/lib (the web root is in it too).
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io)?;
    }
    Ok(dir)
}

/// What went wrong in a step talking to the ACME server, on one line.
fn failed(step: &str, e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(problem) => format!("{step} refused: {}", one_line(problem)),
        instant_acme::Error::Other(_) | instant_acme::Error::Hyper(_) => {
            format!("cannot reach the ACME server ({step}): {}", one_line(e))
        }
        _ => format!("{step}: {}", one_line(e)),
    }
}

/// `path` of the target system, on disk below `root`.
fn local(root: &Path, path: &str) -> PathBuf {
    on_disk(root, Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_domain_and_its_web_hosts() {
        let (config, _) = Config::from_str(
            "[params]\nmail_domain = chat.example.org\n",
            Path::new("chatmail.ini"),
        )
        .unwrap();
        assert_eq!(
            names(&config),
            ["chat.example.org", "mta-sts.chat.example.org"]
        );
    }

    #[test]
    fn errors_and_their_sources_make_one_line() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error:\n Connection refused",
        ));
        assert_eq!(
            one_line(&e),
            "client error (Connect): tcp connect error: Connection refused"
        );
    }
}
