//! `{SHA512-CRYPT}` password hashes that Dovecot and glibc `crypt(3)` accept.
//!
//! glibc keeps at most 16 salt characters and Dovecot compares its `crypt()` output with the
//! stored string, so the salt must be exactly 16 characters: 12 random bytes in crypt's
//! base64. (sha-crypt's own `hash_password` uses 22 characters, which Dovecot rejects.)

use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

/// Dovecot's scheme prefix.
pub const SCHEME: &str = "{SHA512-CRYPT}";

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("no randomness: {0}")]
    Random(getrandom::Error),
    #[error("hashing failed: {0}")]
    Hash(sha_crypt::password_hash::Error),
}

/// Hashes a password for the `password` file.
pub fn hash(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).map_err(HashError::Random)?;
    let hash = ShaCrypt::SHA512
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(HashError::Hash)?;
    Ok(format!("{SCHEME}{hash}"))
}

/// Checks a password against a stored `{SHA512-CRYPT}` hash (Dovecot does this in
/// production; used by tests and tools).
pub fn verify(password: &str, stored: &str) -> bool {
    stored.strip_prefix(SCHEME).is_some_and(|h| {
        ShaCrypt::SHA512
            .verify_password(password.as_bytes(), h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_has_a_16_char_salt_and_verifies() {
        let h = hash("secret-password").unwrap();
        let rest = h.strip_prefix("{SHA512-CRYPT}$6$").unwrap();
        let rest = rest.strip_prefix("rounds=5000$").unwrap_or(rest);
        let (salt, digest) = rest.split_once('$').unwrap();
        assert_eq!(salt.len(), 16);
        assert_eq!(digest.len(), 86);
        assert!(verify("secret-password", &h));
        assert!(!verify("wrong", &h));
        assert_ne!(hash("secret-password").unwrap(), h);
    }

    #[test]
    fn verifies_glibc_hashes() {
        // made with glibc crypt(3): crypt("test", "$6$n3QHkYWgTg7eBMKQ")
        let glibc = "{SHA512-CRYPT}$6$n3QHkYWgTg7eBMKQ$MttDhv74YHOYKrKgWbWwvTzB8SUxI5HQugUpc5HM3JMmphqUP5rWTFIuzgSuKj1L3fqixDzmwVnadCp4/5xKQ/";
        assert!(verify("test", glibc));
        assert!(!verify("tes", glibc));
    }
}
