//! MTA-STS (RFC 8461): the policy senders fetch from `https://mta-sts.DOMAIN/.well-known/
//! mta-sts.txt`, and the id the `_mta-sts` TXT record announces it by.

use aws_lc_rs::digest::{SHA256, digest};

/// Four weeks, as the reference relay publishes.
pub const MAX_AGE: u32 = 2_419_200;

/// The relay's policy: TLS with a valid certificate is required to deliver to its MX.
pub fn policy(domain: &str) -> String {
    format!("version: STSv1\nmode: enforce\nmx: {domain}\nmax_age: {MAX_AGE}\n")
}

/// The policy's id: the first 16 hex digits of its SHA-256. It changes exactly when the
/// policy does (senders fetch the policy again when the id changes), and the same relay
/// always prints the same record.
pub fn policy_id(domain: &str) -> String {
    digest(&SHA256, policy(domain).as_bytes())
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `id` is one RFC 8461 allows: 1 to 32 letters and digits.
pub fn valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_follows_the_policy() {
        let id = policy_id("chat.example.org");
        assert_eq!(id.len(), 16);
        assert!(valid_id(&id));
        assert_eq!(id, policy_id("chat.example.org"));
        assert_ne!(id, policy_id("other.example.org"));
        assert!(policy("chat.example.org").contains("mx: chat.example.org\n"));
        assert!(!valid_id("") && !valid_id("a-b") && !valid_id(&"a".repeat(33)));
    }
}
