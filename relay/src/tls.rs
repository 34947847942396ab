//! The relay's TLS certificate: where it is, and the self-signed one of IP-only and `_`
//! relays.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use chatmail_common::config::{Config, TlsCertMode};

use crate::Error;

/// Where the self-signed certificate and its key live.
pub const SELF_SIGNED_DIR: &str = "/etc/chatmail/tls";

/// The certificate and key Postfix and Dovecot use.
pub fn paths(config: &Config) -> (PathBuf, PathBuf) {
    match &config.deployment.tls_cert_mode {
        TlsCertMode::External { cert, key } => (cert.clone(), key.clone()),
        TlsCertMode::SelfSigned => (
            Path::new(SELF_SIGNED_DIR).join("cert.pem"),
            Path::new(SELF_SIGNED_DIR).join("key.pem"),
        ),
        TlsCertMode::Acme => {
            let live = Path::new("/var/lib/acme/live").join(&config.mail_domain_bare);
            (live.join("fullchain"), live.join("privkey"))
        }
    }
}

/// The names a self-signed certificate of this relay covers: its domain or address, and
/// 127.0.0.1 (tests and local clients).
pub fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.mail_domain_bare.clone()];
    if config.mail_domain_bare != "127.0.0.1" {
        names.push("127.0.0.1".into());
    }
    names
}

/// A new self-signed certificate (ECDSA P-256) for `names`: (certificate PEM, key PEM).
pub fn self_signed(names: &[String]) -> Result<(String, String), Error> {
    let failed = |e: rcgen::Error| Error::System {
        what: "self-signed certificate".into(),
        reason: e.to_string(),
    };
    let key = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, names[0].clone());
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// What a certificate file says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names and IP addresses of its subjectAltName extension.
    pub names: Vec<String>,
    /// Seconds since the epoch when it expires.
    pub not_after: i64,
}

/// Reads the first certificate of a PEM file.
pub fn read_cert(pem: &[u8]) -> Result<CertInfo, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => names.push(n.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(octets) = <[u8; 4]>::try_from(*b) {
                        names.push(IpAddr::from(octets).to_string());
                    } else if let Ok(octets) = <[u8; 16]>::try_from(*b) {
                        names.push(IpAddr::from(octets).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        names,
        not_after: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_cover_their_names() {
        let names = vec!["_chat.localhost".to_string(), "127.0.0.1".to_string()];
        let (cert, key) = self_signed(&names).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let info = read_cert(cert.as_bytes()).unwrap();
        assert_eq!(info.names, names);
        assert!(info.not_after > 4_000_000_000);
        assert!(read_cert(b"not a certificate").is_err());
    }
}
