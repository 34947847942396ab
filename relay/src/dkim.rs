//! The DKIM key of a relay with a domain, and the DNS record that publishes it.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine;
use chatmail_milter::dkim::Signer;

use crate::Error;

/// A new RSA-2048 private key, PKCS#8 PEM (what `openssl genpkey` writes; the milter reads
/// it, as it reads OpenDKIM's PKCS#1 keys).
pub fn generate_key() -> Result<String, Error> {
    let failed = |what: &str| Error::System {
        what: "DKIM key".into(),
        reason: what.to_string(),
    };
    let key =
        KeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("RSA key generation failed"))?;
    let der = key.as_der().map_err(|_| failed("cannot encode the key"))?;
    Ok(pem("PRIVATE KEY", der.as_ref()))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The TXT record's text (`v=DKIM1; k=rsa; p=...`), from the key as the milter loads it: a
/// key the milter cannot use is an error here already.
pub fn record(key_pem: &[u8], domain: &str, selector: &str) -> Result<String, String> {
    Signer::from_pem(key_pem, domain, selector).map(|s| s.dns_record().to_string())
}

/// The record as a zone-file line. Its text is longer than the 255 bytes one DNS string may
/// hold, so it is split into several strings, which resolvers join.
pub fn zone_line(domain: &str, selector: &str, record: &str) -> String {
    let strings: Vec<String> = record
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{selector}._domainkey.{domain}. TXT {}", strings.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_one_the_milter_signs_with() {
        let key = generate_key().unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let txt = record(key.as_bytes(), "chat.example.org", "opendkim").unwrap();
        assert!(txt.starts_with("v=DKIM1; k=rsa; p="), "{txt}");
        let line = zone_line("chat.example.org", "opendkim", &txt);
        assert!(line.starts_with("opendkim._domainkey.chat.example.org. TXT \"v=DKIM1; k=rsa; p="));
        let joined: String = line
            .split('"')
            .skip(1)
            .step_by(2)
            .inspect(|s| assert!(s.len() <= 255))
            .collect();
        assert_eq!(joined, txt);
        assert!(record(b"junk", "chat.example.org", "opendkim").is_err());
    }
}
