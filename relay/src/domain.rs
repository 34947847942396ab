//! What may be a relay's `mail_domain`.

use std::net::Ipv4Addr;

use crate::Error;

/// The mail domain as `init` writes it: an IPv4 address (an IP-only relay), or a domain name
/// of at least two labels in lower case. Labels are letters, digits and `-` (not at either
/// end), and a leading `_` is allowed (test relays such as `_chat.localhost`, which get a
/// self-signed certificate).
pub fn check(domain: &str) -> Result<String, Error> {
    let bad = |reason: &str| Error::Domain {
        domain: domain.to_string(),
        reason: reason.to_string(),
    };
    if let Ok(ip) = domain.parse::<Ipv4Addr>() {
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
            return Err(bad("not an address of a host"));
        }
        return Ok(ip.to_string());
    }
    if domain.is_empty() {
        return Err(bad("empty"));
    }
    let name = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    if name.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err(bad(
            "a domain name needs at least two labels (chat.example.org)",
        ));
    }
    if labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit())) {
        return Err(bad("looks like an IP address but is not an IPv4 address"));
    }
    for label in &labels {
        let body = label.strip_prefix('_').unwrap_or(label);
        if label.is_empty() || body.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("a label is longer than 63 characters"));
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(bad(
                "only letters, digits, '-' and a leading '_' are allowed",
            ));
        }
        if body.starts_with('-') || body.ends_with('-') {
            return Err(bad("a label starts or ends with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad("the last label is all digits"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_domains_and_ipv4() {
        assert_eq!(check("Chat.Example.org").unwrap(), "chat.example.org");
        assert_eq!(check("chat.example.org.").unwrap(), "chat.example.org");
        assert_eq!(check("_chat.localhost").unwrap(), "_chat.localhost");
        assert_eq!(
            check("xn--bcher-kva.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(check("203.0.113.5").unwrap(), "203.0.113.5");
    }

    #[test]
    fn refuses_what_is_not_a_domain() {
        for bad in [
            "",
            "localhost",
            "chat..example.org",
            ".example.org",
            "-chat.example.org",
            "chat-.example.org",
            "chat example.org",
            "chat/../example.org",
            "user@example.org",
            "[1.2.3.4]",
            "1.2.3.4.5",
            "999.1.1.1",
            "0.0.0.0",
            "example.123",
            "_.example.org",
            "exa_mple.org",
            "ex\u{e4}mple.org",
            &format!("{}.org", "a".repeat(64)),
            &format!("{}org", "a.".repeat(127)),
        ] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }
}
