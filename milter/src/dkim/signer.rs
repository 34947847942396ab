//! Signing outgoing mail.

use std::path::Path;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::DkimError;
use super::record::rsa_txt_record;
use super::rsa_key::RsaSigningKey;

/// Headers covered by our signatures. Absent ones are skipped by the signer.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Autocrypt",
    "Autocrypt-Setup-Message",
    "Chat-Version",
    "Secure-Join",
];

/// Headers signed once more than they occur ("oversigned", as OpenDKIM's `OversignHeaders`
/// in the reference): `h=` names them one extra time, which covers an instance that does not
/// exist, so a copy added after signing (a second `From` above ours, say) breaks the
/// signature. The reference's list, as far as we sign those headers at all.
const OVERSIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "Autocrypt",
];

/// Signs messages for one domain with one RSA key (PKCS#1 or PKCS#8 PEM, as OpenDKIM's
/// `opendkim-genkey` and `openssl genpkey` write them).
pub struct Signer {
    signer: DkimSigner<RsaSigningKey, Done>,
    domain: String,
    record: String,
}

impl Signer {
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Signer, DkimError> {
        let pem = std::fs::read(path).map_err(|source| DkimError::KeyFile {
            path: path.display().to_string(),
            source,
        })?;
        Signer::from_pem(&pem, domain, selector).map_err(|reason| DkimError::Key {
            path: path.display().to_string(),
            reason,
        })
    }

    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Signer, String> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
        let key = RsaSigningKey::from_der(&der)?;
        let record = rsa_txt_record(&key.public_key_pkcs1());
        let signer = DkimSigner::from_key(key)
            .domain(domain)
            .selector(selector)
            // mail-auth signs every instance of a listed header and lists a name it does not
            // find once more in `h=`: a name given twice is thus one extra, empty instance.
            .headers(SIGNED_HEADERS.iter().chain(OVERSIGNED_HEADERS).copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        Ok(Signer {
            signer,
            domain: domain.to_string(),
            record,
        })
    }

    /// The domain we sign for (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The DNS TXT record publishing our key: `v=DKIM1; k=rsa; p=...`.
    pub fn dns_record(&self) -> &str {
        &self.record
    }

    /// The value of a `DKIM-Signature` header for `message` (headers and body, CRLF), folded
    /// with CRLF + tab.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let header = self
            .signer
            .sign(message)
            .map_err(DkimError::Sign)?
            .to_header();
        let value = header
            .strip_prefix("DKIM-Signature:")
            .unwrap_or(&header)
            .trim_start()
            .trim_end_matches(['\r', '\n']);
        Ok(value.to_string())
    }

    /// [`Signer::sign`] folded the milter way: continuation lines separated by a bare LF
    /// (libmilter's convention; Postfix writes its own line ends).
    pub fn sign_for_milter(&self, message: &[u8]) -> Result<String, DkimError> {
        Ok(self.sign(message)?.replace("\r\n", "\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = include_bytes!("../../tests/data/dkim-test.key");
    /// `openssl pkey -in dkim-test.key -pubout -outform DER | base64 -w0`
    const PUB: &str = include_str!("../../tests/data/dkim-test.pub.b64");

    #[test]
    fn dns_record_matches_openssl() {
        let s = Signer::from_pem(KEY, "example.org", "sel").unwrap();
        assert_eq!(s.dns_record(), format!("v=DKIM1; k=rsa; p={}", PUB.trim()));
        assert_eq!(s.domain(), "example.org");
    }

    #[test]
    fn bad_keys_are_errors() {
        assert!(Signer::from_pem(b"", "example.org", "sel").is_err());
        assert!(
            Signer::from_pem(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "example.org",
                "sel"
            )
            .is_err()
        );
    }

    #[test]
    fn from_is_oversigned() {
        let s = Signer::from_pem(KEY, "example.org", "sel").unwrap();
        let v = s
            .sign(b"From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nbody\r\n")
            .unwrap();
        let unfolded: String = v.split_whitespace().collect();
        let h = unfolded
            .split(';')
            .find_map(|tag| tag.strip_prefix("h="))
            .unwrap();
        let names: Vec<String> = h.split(':').map(|n| n.to_ascii_lowercase()).collect();
        for once_more in ["from", "to", "subject"] {
            assert_eq!(
                names.iter().filter(|n| *n == once_more).count(),
                2,
                "{once_more} in h={h}"
            );
        }
        // absent ones are named too, so they cannot be added
        assert!(names.iter().any(|n| n == "reply-to"), "h={h}");
    }

    #[test]
    fn milter_folding_has_no_cr() {
        let s = Signer::from_pem(KEY, "example.org", "sel").unwrap();
        let v = s
            .sign_for_milter(b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n")
            .unwrap();
        assert!(!v.contains('\r'), "{v}");
        assert!(v.contains("\n\t") || v.len() < 200, "{v}");
        assert!(v.contains("d=example.org") && v.contains("s=sel"), "{v}");
    }
}
