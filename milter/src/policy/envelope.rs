//! The SMTP envelope as the milter sees it: `MAIL FROM` and `RCPT TO` arguments.

use chatmail_common::mailbox::Address;

/// The envelope sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `MAIL FROM:<>`: bounces and other notifications.
    Null,
    Address(Address),
    /// Anything that is not a valid address (kept for the reply and the log).
    Invalid(String),
}

impl Sender {
    /// Parses a `MAIL FROM` argument as Postfix passes it (`<addr>`).
    pub fn parse(arg: &str) -> Sender {
        let inner = strip_angle_brackets(arg);
        if inner.is_empty() {
            return Sender::Null;
        }
        match Address::parse(inner) {
            Ok(a) => Sender::Address(a),
            Err(_) => Sender::Invalid(inner.to_string()),
        }
    }

    /// The address for logs and replies (`""` for the null sender).
    pub fn as_str(&self) -> &str {
        match self {
            Sender::Null => "",
            Sender::Address(a) => a.as_str(),
            Sender::Invalid(s) => s,
        }
    }

    pub fn address(&self) -> Option<&Address> {
        match self {
            Sender::Address(a) => Some(a),
            _ => None,
        }
    }
}

/// One recipient the milter let through at `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// An existing mailbox of this relay (the name Dovecot delivers to), and whether it
    /// refused incoming cleartext when `RCPT TO` was checked.
    Mailbox {
        mailbox: Address,
        enforces_e2ee: bool,
    },
    /// Anything else: another domain (outbound), or a recipient of Postfix's own mail,
    /// which is never looked up. Never a recipient that accepts cleartext.
    Other(String),
}

impl Recipient {
    /// A mailbox that takes incoming cleartext.
    pub fn accepts_cleartext(&self) -> bool {
        matches!(
            self,
            Recipient::Mailbox {
                enforces_e2ee: false,
                ..
            }
        )
    }

    /// The mailbox, for a recipient of this relay.
    pub fn mailbox(&self) -> Option<&Address> {
        match self {
            Recipient::Mailbox { mailbox, .. } => Some(mailbox),
            Recipient::Other(_) => None,
        }
    }
}

/// Envelope of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub sender: Sender,
    pub recipients: Vec<Recipient>,
}

/// `<a@b>` → `a@b`; surrounding white space is ignored; a missing bracket is tolerated.
pub fn strip_angle_brackets(arg: &str) -> &str {
    let s = arg.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s);
    s.trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_senders() {
        assert_eq!(Sender::parse("<>"), Sender::Null);
        assert_eq!(Sender::parse(""), Sender::Null);
        assert_eq!(
            Sender::parse("<User@Example.org>").as_str(),
            "User@Example.org"
        );
        assert!(Sender::parse("<u@x.org>").address().is_some());
        assert!(matches!(Sender::parse("<a@b@c>"), Sender::Invalid(_)));
        assert!(matches!(Sender::parse("<noat>"), Sender::Invalid(_)));
        assert!(matches!(Sender::parse("<../x@y>"), Sender::Invalid(_)));
    }

    #[test]
    fn strips_brackets() {
        assert_eq!(strip_angle_brackets(" <a@b> "), "a@b");
        assert_eq!(strip_angle_brackets("a@b"), "a@b");
        assert_eq!(strip_angle_brackets("<>"), "");
    }
}
