//! E-mail addresses as mailbox names.

use std::fmt;

/// Longest address accepted (RFC 5321 path limit).
const MAX_LEN: usize = 254;

/// A validated address: exactly one `@`, non-empty local part and domain, no `/`, no NUL, no
/// control characters or white space, and not starting with `.`. Such a string is always one
/// plain path component, so `mailboxes_dir.join(addr)` stays inside `mailboxes_dir`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    full: String,
    at: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("address longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("address has no '@'")]
    NoAt,
    #[error("address has more than one '@'")]
    MultipleAt,
    #[error("address has an empty local part or domain")]
    EmptyPart,
    #[error("address contains a forbidden character {0:?}")]
    ForbiddenChar(char),
    #[error("address starts with '.'")]
    LeadingDot,
}

impl Address {
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(AddressError::TooLong);
        }
        if let Some(c) = s
            .chars()
            .find(|c| *c == '/' || *c == '\\' || c.is_control() || c.is_whitespace())
        {
            return Err(AddressError::ForbiddenChar(c));
        }
        if s.starts_with('.') {
            return Err(AddressError::LeadingDot);
        }
        let mut ats = s.match_indices('@');
        let at = ats.next().ok_or(AddressError::NoAt)?.0;
        if ats.next().is_some() {
            return Err(AddressError::MultipleAt);
        }
        if at == 0 || at + 1 == s.len() {
            return Err(AddressError::EmptyPart);
        }
        Ok(Address {
            full: s.to_string(),
            at,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    pub fn local_part(&self) -> &str {
        &self.full[..self.at]
    }

    pub fn domain(&self) -> &str {
        &self.full[self.at + 1..]
    }

    /// The mailbox Dovecot delivers this address to: [`Address::delivery_mailbox_of`] its
    /// local part and domain.
    pub fn delivery_mailbox(&self) -> Option<Address> {
        Address::delivery_mailbox_of(self.local_part(), self.domain())
    }

    /// The mailbox Dovecot delivers `local@domain` to, with the relay's settings
    /// (`recipient_delimiter = +`, `auth_username_format = %Lu`): the local part cut at its
    /// first `+`, then ASCII letters lower-cased (Dovecot's `%L` leaves every other character
    /// alone, and so does this). `None` when nothing is left of the local part or the result
    /// is no valid address.
    pub fn delivery_mailbox_of(local: &str, domain: &str) -> Option<Address> {
        let local = local.split_once('+').map_or(local, |(base, _)| base);
        if local.is_empty() {
            return None;
        }
        Address::parse(&format!("{local}@{domain}").to_ascii_lowercase()).ok()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn accepts_ordinary_and_literal_addresses() {
        let a = Address::parse("abc.def-9@chat.example.org").unwrap();
        assert_eq!(a.local_part(), "abc.def-9");
        assert_eq!(a.domain(), "chat.example.org");
        assert!(Address::parse("user@[1.2.3.4]").is_ok());
    }

    #[test]
    fn refuses_path_tricks_and_garbage() {
        for bad in [
            "", "../x@d", "a/b@d", "a@b@d", "@d", "a@", "noat", ".@d", "..@d", ".x@d", "a\0@d",
            "a b@d", "a\n@d", "a\t@d", "a\\b@d", "x@../..",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Address::parse(&format!("{}@d", "a".repeat(300))).is_err());
    }

    #[test]
    fn delivery_mailbox_is_dovecots_user() {
        let a = Address::parse("User+Tag+More@Example.ORG").unwrap();
        let m = a.delivery_mailbox().unwrap();
        assert_eq!(m.as_str(), "user@example.org");
        assert_eq!(m.local_part(), "user");
        // nothing before the delimiter: no user at all (Dovecot would look up "@d")
        assert_eq!(Address::parse("+x@d").unwrap().delivery_mailbox(), None);
        // only ASCII is folded, as Dovecot's %L does: the Kelvin sign stays what it is
        let kelvin = Address::parse("\u{212A}abc@d").unwrap();
        assert_eq!(kelvin.delivery_mailbox().unwrap().as_str(), "\u{212A}abc@d");
        assert_eq!(
            Address::parse("ÄBC@d")
                .unwrap()
                .delivery_mailbox()
                .unwrap()
                .as_str(),
            "Äbc@d"
        );
    }

    proptest! {
        #[test]
        fn valid_addresses_are_one_normal_path_component(s in "\\PC{0,40}") {
            if let Ok(a) = Address::parse(&s) {
                let comps: Vec<_> = Path::new(a.as_str()).components().collect();
                prop_assert_eq!(comps.len(), 1);
                prop_assert!(matches!(comps[0], Component::Normal(_)));
                if let Some(m) = a.delivery_mailbox() {
                    let comps: Vec<_> = Path::new(m.as_str()).components().collect();
                    prop_assert!(matches!(comps.as_slice(), [Component::Normal(_)]));
                }
            }
        }
    }
}
