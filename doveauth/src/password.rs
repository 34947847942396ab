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

/// Whether a stored password looks like a whole hash: a complete `{SHA512-CRYPT}` hash, or
/// any other `{SCHEME}` with something after it (not ours to judge). False for a file cut
/// short, after which nobody can log in.
pub fn looks_complete(stored: &str) -> bool {
    let Some(crypt) = stored.strip_prefix(SCHEME) else {
        return stored
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
            .is_some_and(|(scheme, hash)| !scheme.is_empty() && !hash.is_empty());
    };
    let Some(rest) = crypt.strip_prefix("$6$") else {
        return false;
    };
    let rest = match rest.strip_prefix("rounds=") {
        Some(r) => match r.split_once('$') {
            Some((n, after)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => after,
            _ => return false,
        },
        None => rest,
    };
    let crypt64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    rest.split_once('$').is_some_and(|(salt, digest)| {
        (1..=16).contains(&salt.len()) && crypt64(salt) && digest.len() == 86 && crypt64(digest)
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

    #[test]
    fn complete_and_cut_hashes() {
        let h = hash("secret-password").unwrap();
        assert!(looks_complete(&h));
        let glibc = "{SHA512-CRYPT}$6$n3QHkYWgTg7eBMKQ$MttDhv74YHOYKrKgWbWwvTzB8SUxI5HQugUpc5HM3JMmphqUP5rWTFIuzgSuKj1L3fqixDzmwVnadCp4/5xKQ/";
        assert!(looks_complete(glibc));
        assert!(looks_complete(&glibc.replacen("$6$", "$6$rounds=5000$", 1)));
        assert!(!looks_complete(&glibc.replacen("$6$", "$6$rounds=$", 1)));
        for cut in 1..h.len() {
            assert!(!looks_complete(&h[..cut]), "{}", &h[..cut]);
        }
        assert!(looks_complete("{BLF-CRYPT}$2y$05$whatever"));
        assert!(!looks_complete("{BLF-CRYPT}"));
        assert!(!looks_complete("plain"));
    }
}
