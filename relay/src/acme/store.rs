//! The certificate and its key on disk (`tls::paths`): read, and written together, each file
//! replaced atomically with the previous one kept as `NAME.bak` (Postfix and Dovecot read the
//! key as root when they start or reload: it is root's alone, 0600).

use std::fs::File;
use std::path::Path;

use chatmail_common::config::Config;

use crate::Error;
use crate::apply::apply;
use crate::plan::{FileSpec, on_disk};
use crate::tls::{self, CertInfo};

use super::order::Issued;
use super::state_dir;

/// The certificate on disk, when it and its key are there and it can be read.
pub(super) fn read(root: &Path, config: &Config) -> Option<CertInfo> {
    let (cert, key) = tls::paths(config);
    if !on_disk(root, &key).is_file() {
        return None;
    }
    let pem = std::fs::read(on_disk(root, &cert)).ok()?;
    tls::read_cert(&pem).ok()
}

/// Writes a new certificate chain and its key; returns what the certificate says.
pub(super) fn write(root: &Path, config: &Config, issued: &Issued) -> Result<CertInfo, Error> {
    let (cert_path, key_path) = tls::paths(config);
    let info = tls::read_cert(issued.chain.as_bytes()).map_err(|reason| Error::Acme {
        server: config.deployment.acme_directory.clone(),
        reason: format!("the certificate it issued cannot be read: {reason}"),
    })?;
    let cert = FileSpec::new(cert_path, issued.chain.as_bytes(), 0o644);
    let key = FileSpec {
        secret: true,
        ..FileSpec::new(key_path, issued.key.as_bytes(), 0o600)
    };
    apply(root, &[&key, &cert])?;
    Ok(info)
}

/// Held while a certificate is checked and ordered: the timer's run and `setup` wait for
/// each other.
pub(super) fn lock(root: &Path) -> Result<File, Error> {
    let path = state_dir(root)?.join("lock");
    let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}
