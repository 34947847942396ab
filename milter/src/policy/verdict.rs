//! Verdicts, their SMTP replies and their log lines.
//!
//! The log texts keep the reference's wording, which mtail counts
//! (`Outgoing: Filtering encrypted mail.`, `Rejected unencrypted mail`, ...). Each verdict is
//! logged as one line; where the reference printed two lines, both texts are in that line.

use std::time::Duration;

use super::Direction;

/// Why a message passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Encrypted,
    SecureJoin,
    AutocryptSetupMessage,
    /// Inbound bounce from this `From` address.
    MailerDaemonBounce(String),
    /// Inbound cleartext to recipients without `enforceE2EEincoming`.
    RecipientsAcceptCleartext,
}

/// Why a message (or a MAIL command) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Outbound `MAIL FROM` that is not a valid address.
    InvalidSender(String),
    /// Over the per-sender rate limit: this sender, who may send again after `wait`.
    RateLimited { sender: String, wait: Duration },
    /// No `From` header, several, or one without exactly one address.
    InvalidFromHeader,
    /// Outbound `From` header address differs from `MAIL FROM`.
    FromMismatch { header: String, envelope: String },
    /// Cleartext without an exception.
    Unencrypted,
    /// A recipient (as given) that names no existing mailbox of this relay, or (inbound)
    /// no mailbox of this relay at all.
    UnknownRecipient(String),
    /// A recipient's mailbox could not be read: whether it exists is unknown for now.
    RecipientUnreadable(String),
    /// The message is larger than the milter buffers.
    TooBig,
    /// Too many large messages in progress at once (the shared buffer budget is used up).
    Busy,
    /// The connection's macros contradict its listener (e.g. outbound without SASL login).
    ConfigurationError(&'static str),
    /// Anything that went wrong on our side.
    Internal,
}

/// The outcome for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept(Accepted),
    Refuse(Refused),
}

/// An SMTP reply for the milter to hand to Postfix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: &'static str,
    pub xcode: &'static str,
    pub text: String,
}

impl Reply {
    pub fn is_temporary(&self) -> bool {
        self.code.starts_with('4')
    }

    /// The reply line as the SMTP client sees it.
    pub fn line(&self) -> String {
        format!("{} {} {}", self.code, self.xcode, self.text)
    }
}

/// The reply text used for refused cleartext (verbatim at the SMTP client).
pub const ENCRYPTION_NEEDED: &str = "Encryption Needed: Invalid Unencrypted Mail";

impl Refused {
    pub fn reply(&self) -> Reply {
        let (code, xcode, text) = match self {
            Refused::InvalidSender(a) => (
                "553",
                "5.1.7",
                format!("Invalid from address <{}>", reply_safe(a)),
            ),
            Refused::RateLimited { sender, wait } => (
                "450",
                "4.7.1",
                format!(
                    "Too much mail from <{}>, rate limited for {} s",
                    reply_safe(sender),
                    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
                ),
            ),
            Refused::InvalidFromHeader => ("550", "5.7.1", "Invalid FROM header".to_string()),
            Refused::FromMismatch { header, envelope } => (
                "550",
                "5.7.1",
                format!(
                    "Invalid FROM <{}> for <{}>",
                    reply_safe(header),
                    reply_safe(envelope)
                ),
            ),
            Refused::Unencrypted => ("523", "5.7.1", ENCRYPTION_NEEDED.to_string()),
            Refused::UnknownRecipient(r) => (
                "550",
                "5.1.1",
                format!(
                    "<{}>: Recipient address rejected: User unknown",
                    reply_safe(r)
                ),
            ),
            Refused::RecipientUnreadable(r) => (
                "451",
                "4.3.0",
                format!(
                    "<{}>: Recipient address lookup failed, try again later",
                    reply_safe(r)
                ),
            ),
            Refused::TooBig => (
                "552",
                "5.3.4",
                "Message too big for the encryption check".to_string(),
            ),
            Refused::Busy => (
                "451",
                "4.3.1",
                "Too much mail in progress, try again later".to_string(),
            ),
            Refused::ConfigurationError(_) => (
                "451",
                "4.3.5",
                "Mail filter configuration error, try again later".to_string(),
            ),
            Refused::Internal => (
                "451",
                "4.3.0",
                "Mail filter error, try again later".to_string(),
            ),
        };
        Reply { code, xcode, text }
    }
}

/// Text from the message or envelope made safe for an SMTP reply and a log line: printable
/// ASCII only (no `%`, which libmilter-style MTAs treat specially), at most 200 characters.
pub fn reply_safe(s: &str) -> String {
    s.chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() && c != '%' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The log line text of a verdict, with the reference's mtail-compatible wording.
pub fn log_text(direction: Direction, verdict: &Verdict, sender: &str) -> String {
    let dir = match direction {
        Direction::Outbound => "Outgoing",
        Direction::Inbound => "Incoming",
        Direction::Internal => "Internal",
    };
    let sender = reply_safe(sender);
    match verdict {
        Verdict::Accept(Accepted::Encrypted) => format!("{dir}: Filtering encrypted mail."),
        Verdict::Accept(Accepted::SecureJoin) => {
            format!("{dir}: Filtering unencrypted mail. Accepted Secure-Join request.")
        }
        Verdict::Accept(Accepted::AutocryptSetupMessage) => {
            format!("{dir}: Filtering unencrypted mail. Accepted Autocrypt Setup Message.")
        }
        Verdict::Accept(Accepted::MailerDaemonBounce(from)) => format!(
            "{dir}: Filtering unencrypted mail. {dir}: Filtering mailer-daemon message from {}",
            reply_safe(from)
        ),
        Verdict::Accept(Accepted::RecipientsAcceptCleartext) => format!(
            "{dir}: Filtering unencrypted mail. Accepted for recipients without enforceE2EEincoming."
        ),
        Verdict::Refuse(Refused::Unencrypted) => {
            format!("{dir}: Filtering unencrypted mail. Rejected unencrypted mail from: {sender}")
        }
        Verdict::Refuse(Refused::UnknownRecipient(r)) => {
            format!(
                "{dir}: Rejected unknown recipient <{}> from: {sender}",
                reply_safe(r)
            )
        }
        Verdict::Refuse(Refused::RecipientUnreadable(r)) => {
            format!(
                "{dir}: Cannot read the mailbox of recipient <{}>; tempfailed from: {sender}",
                reply_safe(r)
            )
        }
        Verdict::Refuse(Refused::FromMismatch { header, envelope }) => format!(
            "{dir}: Rejected mail with From <{}> for envelope sender <{}>",
            reply_safe(header),
            reply_safe(envelope)
        ),
        Verdict::Refuse(Refused::InvalidFromHeader) => {
            format!("{dir}: Rejected mail with an invalid From header from: {sender}")
        }
        Verdict::Refuse(Refused::InvalidSender(a)) => {
            format!(
                "{dir}: Rejected invalid envelope sender <{}>",
                reply_safe(a)
            )
        }
        Verdict::Refuse(Refused::RateLimited { sender, .. }) => {
            format!(
                "{dir}: Rate limited: too much mail from <{}>",
                reply_safe(sender)
            )
        }
        Verdict::Refuse(Refused::TooBig) => {
            format!("{dir}: Rejected mail too big for the encryption check from: {sender}")
        }
        Verdict::Refuse(Refused::Busy) => {
            format!("{dir}: Message buffer budget used up; mail tempfailed from: {sender}")
        }
        Verdict::Refuse(Refused::ConfigurationError(why)) => {
            format!("{dir}: Configuration error: {why}; mail tempfailed")
        }
        Verdict::Refuse(Refused::Internal) => {
            format!("{dir}: Internal error; mail tempfailed from: {sender}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_the_documented_texts() {
        assert_eq!(
            Refused::Unencrypted.reply().line(),
            "523 5.7.1 Encryption Needed: Invalid Unencrypted Mail"
        );
        assert_eq!(
            Refused::RateLimited {
                sender: "a@x.org".into(),
                wait: Duration::from_millis(1001)
            }
            .reply()
            .line(),
            "450 4.7.1 Too much mail from <a@x.org>, rate limited for 2 s"
        );
        assert_eq!(
            Refused::FromMismatch {
                header: "c@x.org".into(),
                envelope: "a@x.org".into()
            }
            .reply()
            .line(),
            "550 5.7.1 Invalid FROM <c@x.org> for <a@x.org>"
        );
        assert_eq!(
            Refused::UnknownRecipient("nobody@x.org".into())
                .reply()
                .line(),
            "550 5.1.1 <nobody@x.org>: Recipient address rejected: User unknown"
        );
        assert!(
            Refused::RecipientUnreadable("a@x.org".into())
                .reply()
                .is_temporary()
        );
        assert!(Refused::Internal.reply().is_temporary());
        assert!(Refused::ConfigurationError("x").reply().is_temporary());
        assert!(!Refused::TooBig.reply().is_temporary());
        assert!(Refused::Busy.reply().is_temporary());
    }

    #[test]
    fn hostile_text_is_neutralised() {
        assert_eq!(reply_safe("a%b\r\n\0é"), "a?b????");
        assert_eq!(reply_safe(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn log_texts_keep_the_mtail_wording() {
        let out = Direction::Outbound;
        let inb = Direction::Inbound;
        assert_eq!(
            log_text(out, &Verdict::Accept(Accepted::Encrypted), "a@x"),
            "Outgoing: Filtering encrypted mail."
        );
        assert_eq!(
            log_text(inb, &Verdict::Accept(Accepted::Encrypted), "a@x"),
            "Incoming: Filtering encrypted mail."
        );
        let r = log_text(out, &Verdict::Refuse(Refused::Unencrypted), "a@x");
        assert!(r.contains("Outgoing: Filtering unencrypted mail."));
        assert!(r.contains("Rejected unencrypted mail from: a@x"));
        let b = log_text(
            inb,
            &Verdict::Accept(Accepted::MailerDaemonBounce("MAILER-DAEMON@y".into())),
            "",
        );
        assert!(b.contains("Incoming: Filtering unencrypted mail."));
        assert!(b.contains("Incoming: Filtering mailer-daemon message from MAILER-DAEMON@y"));
    }
}
