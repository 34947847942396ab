//! DKIM with Stalwart's `mail-auth`: signing outbound mail for `mail_domain`, and strict
//! verification of inbound mail (a valid signature whose `d=` equals the From domain).
//!
//! * [`Signer`]: our key, the `DKIM-Signature` value for a message, our DNS record;
//! * [`Verifier`]: DNS (hickory) with fixed answers first ([`StaticTxt`]), the verdict;
//! * [`record`]: the `v=DKIM1; k=rsa; p=...` TXT record of a key.
//!
//! IP-only relays neither sign nor verify ([`Dkim::from_config`] gives `None`).

mod dns;
pub mod record;
mod rsa_key;
mod signer;
mod verifier;

pub use dns::StaticTxt;
pub use signer::Signer;
pub use verifier::{DkimVerdict, Verifier};

use chatmail_common::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("cannot read DKIM key {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("unusable DKIM key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("cannot set up the DNS resolver for DKIM: {0}")]
    Resolver(String),
    #[error("cannot sign: {0}")]
    Sign(mail_auth::Error),
}

/// Signing and verification for a relay with a domain name.
pub struct Dkim {
    pub signer: Signer,
    pub verifier: Verifier,
}

impl Dkim {
    /// `None` on an IP-only relay (no DKIM at all). Otherwise loads `dkim_key` for
    /// `mail_domain` with `dkim_selector`, and a verifier that answers the lookup of our own
    /// key from that key (no DNS needed for mail signed by ourselves).
    pub fn from_config(config: &Config) -> Result<Option<Dkim>, DkimError> {
        if config.ipv4_relay.is_some() {
            return Ok(None);
        }
        let signer = Signer::load(&config.dkim_key, &config.mail_domain, &config.dkim_selector)?;
        let own = StaticTxt::default();
        own.add_domain_key(
            &config.dkim_selector,
            &config.mail_domain,
            signer.dns_record(),
        )
        .map_err(|reason| DkimError::Key {
            path: config.dkim_key.display().to_string(),
            reason,
        })?;
        let verifier = Verifier::new(config.dns_resolver)?.with_static_txt(own);
        Ok(Some(Dkim { signer, verifier }))
    }
}
