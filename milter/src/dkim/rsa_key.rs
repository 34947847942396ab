//! The RSA key that signs: RSA-SHA256 (PKCS#1 v1.5) by AWS-LC.
//!
//! mail-auth is built with `ring`, which also verifies; for signing, which every outbound
//! message of a relay with a domain pays for, AWS-LC's RSA is about twice as fast as ring's
//! on the same machine (the same speed as `openssl speed rsa2048`; `cargo bench -p
//! chatmail-milter` prints both). mail-auth takes any [`SigningKey`].

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use mail_auth::common::crypto::{Algorithm, CryptoError, Sha256, SigningKey};
use mail_auth::common::headers::Writable;
use rustls_pki_types::PrivateKeyDer;

/// An RSA private key for `rsa-sha256` DKIM signatures.
pub struct RsaSigningKey {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl RsaSigningKey {
    /// From a PKCS#1 or PKCS#8 DER key.
    pub fn from_der(der: &PrivateKeyDer<'_>) -> Result<Self, String> {
        let key = match der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            _ => return Err("not an RSA key (PKCS#1 or PKCS#8)".to_string()),
        }
        .map_err(|e| format!("unusable RSA key: {e}"))?;
        Ok(RsaSigningKey {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// The public key as PKCS#1 `RSAPublicKey` DER.
    pub fn public_key_pkcs1(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }
}

impl SigningKey for RsaSigningKey {
    type Hasher = Sha256;

    fn sign(&self, input: impl Writable) -> mail_auth::Result<Vec<u8>> {
        let mut data = Vec::with_capacity(1024);
        input.write(&mut data);
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &self.rng, &data, &mut signature)
            .map_err(|e| mail_auth::Error::Crypto(CryptoError::Library(e.to_string())))?;
        Ok(signature)
    }

    fn algorithm(&self) -> Algorithm {
        Algorithm::RsaSha256
    }
}
