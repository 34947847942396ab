//! Which mailbox a recipient reaches: the spelling in `RCPT TO` is not what decides.
//!
//! RFC 5321 and Postfix accept many spellings of one mailbox: `"user"@d`, `user@d.`,
//! `user%d@d`, `d!user@d`, `"user%d"@d`, `@relay:user@d`, `USER@D`, `user+tag@d`, ... Postfix
//! resolves each of them (trivial-rewrite: source routes, `%` and `!` routing operators, quoted
//! local parts, a trailing dot, an empty local part, a missing domain) before it delivers, and
//! hands the milter the address it resolved to as the `{rcpt_addr}` macro (RFC 5321 form,
//! local part quoted where needed). Postfix's LMTP client passes that address to Dovecot,
//! which unquotes it, lower-cases it (`auth_username_format = %Lu`) and cuts the local part at
//! the recipient delimiter `+`; the result names the mailbox directory.
//!
//! So a recipient is judged by `{rcpt_addr}` after Dovecot's two steps, never by the string
//! the client sent. Whatever cannot be resolved with certainty is no mailbox, which the milter
//! treats as an unknown recipient (refused) and never as one that accepts cleartext.

use std::borrow::Cow;

use chatmail_common::mailbox::Address;

/// Where a resolved recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A mailbox of this relay (whether it exists is for the caller to find out).
    Mailbox(Address),
    /// Another domain.
    Remote,
    /// Our domain, but no name a mailbox can have (quoted white space, `/`, an empty local
    /// part, ...): Dovecot could not deliver it to any account.
    NotAMailbox,
}

/// The destination of `resolved` (Postfix's `{rcpt_addr}`) on a relay whose addresses end
/// in `@mail_domain` (`example.org`, or `[1.2.3.4]` for an IP-only relay).
pub fn destination(resolved: &str, mail_domain: &str) -> Destination {
    // The domain never holds an '@'; a quoted local part may.
    let Some((local, domain)) = resolved.rsplit_once('@') else {
        return Destination::NotAMailbox;
    };
    if !domain.eq_ignore_ascii_case(mail_domain) {
        return Destination::Remote;
    }
    let Some(local) = unquote_local_part(local) else {
        return Destination::NotAMailbox;
    };
    match Address::delivery_mailbox_of(&local, domain) {
        Some(mailbox) => Destination::Mailbox(mailbox),
        None => Destination::NotAMailbox,
    }
}

/// An RFC 5321 local part in its plain form: a quoted string loses its quotes and
/// backslash escapes (`"a\"b"` → `a"b`); a dot-string stays as it is. `None` for anything
/// that is neither (an unterminated quote, text after the closing quote, a stray backslash).
fn unquote_local_part(local: &str) -> Option<Cow<'_, str>> {
    let Some(quoted) = local.strip_prefix('"') else {
        return (!local.contains(['"', '\\'])).then_some(Cow::Borrowed(local));
    };
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    loop {
        match chars.next()? {
            '\\' => out.push(chars.next()?),
            '"' => return chars.next().is_none().then_some(Cow::Owned(out)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "chat.example.org";

    fn mailbox(s: &str) -> Destination {
        Destination::Mailbox(Address::parse(s).unwrap())
    }

    #[test]
    fn spellings_of_one_mailbox() {
        let user = mailbox("abcdefghi@chat.example.org");
        for resolved in [
            "abcdefghi@chat.example.org",
            "ABCDEFGHI@CHAT.EXAMPLE.ORG",
            "abcdefghi+tag@chat.example.org",
            "abcdefghi+@chat.example.org",
            "\"abcdefghi\"@chat.example.org",
            "\"abc\\defghi\"@chat.example.org",
            "\"abcdefghi+x y\"@chat.example.org",
            "\"abcdefghi+\\\"\"@chat.example.org",
        ] {
            assert_eq!(destination(resolved, D), user, "{resolved}");
        }
    }

    #[test]
    fn quoted_local_parts_keep_their_characters() {
        // Postfix quotes a local part that ends in a dot; the account is "abcdefgh."
        assert_eq!(
            destination("\"abcdefgh.\"@chat.example.org", D),
            mailbox("abcdefgh.@chat.example.org")
        );
    }

    #[test]
    fn not_a_mailbox() {
        for resolved in [
            "\"a b\"@chat.example.org",
            "\"a/b\"@chat.example.org",
            "\"..\"@chat.example.org",
            "+tag@chat.example.org",
            "\"\"@chat.example.org",
            "\"abc@chat.example.org",
            "\"abc\"x@chat.example.org",
            "\"abc\\\"@chat.example.org",
            "a\"b@chat.example.org",
            "a\\b@chat.example.org",
            "@chat.example.org",
            "no-at-sign",
            "",
        ] {
            assert_eq!(
                destination(resolved, D),
                Destination::NotAMailbox,
                "{resolved}"
            );
        }
    }

    #[test]
    fn other_domains_are_remote() {
        for resolved in [
            "abcdefghi@example.org",
            "abcdefghi@chat.example.org.evil",
            "abcdefghi@[127.0.0.1]",
            "\"abcdefghi@chat.example.org\"@elsewhere.org",
        ] {
            assert_eq!(destination(resolved, D), Destination::Remote, "{resolved}");
        }
    }

    #[test]
    fn ip_only_relays() {
        assert_eq!(
            destination("abcdefghi@[127.0.0.1]", "[127.0.0.1]"),
            mailbox("abcdefghi@[127.0.0.1]")
        );
        assert_eq!(
            destination("abcdefghi@[127.0.0.2]", "[127.0.0.1]"),
            Destination::Remote
        );
    }
}
