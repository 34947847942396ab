//! What may pass (spec §6), as pure functions of the envelope and the message bytes.
//!
//! * [`structure`]: MIME structure with one reading only, before any rule looks at parts;
//! * [`openpgp`]: the packet sequence inside the armor;
//! * [`armor`]: the ASCII armor;
//! * [`encryption`]: the RFC 3156 MIME structure;
//! * [`exceptions`]: cleartext that may pass all the same;
//! * [`from_header`]: the From field (outbound: it must be the envelope sender);
//! * [`recipient`]: which mailbox a recipient reaches;
//! * [`envelope`]: MAIL FROM / RCPT TO as checked;
//! * [`verdict`]: outcomes, SMTP replies, log lines.

pub mod armor;
pub mod encryption;
pub mod envelope;
pub mod exceptions;
mod fields;
pub mod from_header;
pub mod openpgp;
pub mod recipient;
pub mod structure;
pub mod verdict;

use mail_parser::{Message, MessageParser};

use armor::ArmorHeaders;
use encryption::{NotEncrypted, check_encrypted};
use envelope::{Envelope, Sender};
use verdict::{Accepted, Refused, Verdict};

/// Which way a message travels; decided by the listener Postfix connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Authenticated submission (ports 587/465): users sending.
    Outbound,
    /// Port 25: other servers delivering to our users.
    Inbound,
    /// Mail Postfix makes itself (`non_smtpd_milters`): bounces, and anything submitted
    /// with sendmail(1) on this machine.
    Internal,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
            Direction::Internal => "internal",
        }
    }

    fn armor_headers(self) -> ArmorHeaders {
        match self {
            Direction::Outbound | Direction::Internal => ArmorHeaders::Refuse,
            Direction::Inbound => ArmorHeaders::Allow,
        }
    }
}

/// A verdict plus, for cleartext, why the message did not count as encrypted (for the log;
/// it names structure only, never content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub not_encrypted: Option<NotEncrypted>,
}

impl Evaluation {
    fn new(verdict: Verdict) -> Self {
        Evaluation {
            verdict,
            not_encrypted: None,
        }
    }
}

/// The MAIL FROM rule: outbound needs a valid address; inbound and internal take anything,
/// including the null sender `<>`.
pub fn check_sender(direction: Direction, sender: &Sender) -> Result<(), Refused> {
    match (direction, sender) {
        (Direction::Inbound | Direction::Internal, _)
        | (Direction::Outbound, Sender::Address(_)) => Ok(()),
        (Direction::Outbound, other) => Err(Refused::InvalidSender(other.as_str().to_string())),
    }
}

/// Parses the message; `None` when there is nothing that looks like a message.
pub fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// Only the encryption check (one reading of the structure, RFC 3156, armor, packets) on raw
/// message bytes.
pub fn is_encrypted(direction: Direction, raw: &[u8]) -> Result<(), NotEncrypted> {
    match not_encrypted(parse(raw).as_ref(), direction.armor_headers()) {
        None => Ok(()),
        Some(why) => Err(why),
    }
}

/// The end-of-message decision on the envelope as checked at `RCPT TO` and the message.
pub fn evaluate(direction: Direction, envelope: &Envelope, raw: &[u8]) -> Evaluation {
    let msg = parse(raw);
    match direction {
        Direction::Outbound => evaluate_outbound(envelope, msg.as_ref()),
        Direction::Inbound => evaluate_inbound(envelope, msg.as_ref()),
        Direction::Internal => evaluate_internal(envelope, msg.as_ref()),
    }
}

/// Why a (possibly unparsable) message is not encrypted; `None` when it is. A structure with
/// more than one reading is never encrypted, and no exception applies to it.
fn not_encrypted(msg: Option<&Message<'_>>, armor: ArmorHeaders) -> Option<NotEncrypted> {
    let Some(msg) = msg else {
        return Some(NotEncrypted::NotMultipartEncrypted);
    };
    if let Err(ambiguity) = structure::check_unambiguous(msg) {
        return Some(NotEncrypted::Ambiguous(ambiguity));
    }
    check_encrypted(msg, armor).err()
}

/// The cleartext verdict: an exception that `exception` finds, unless the structure was
/// ambiguous (then no exception is even looked for).
fn cleartext(
    msg: Option<&Message<'_>>,
    why: NotEncrypted,
    exception: impl FnOnce(&Message<'_>) -> Option<Accepted>,
) -> Evaluation {
    let accepted = match (&why, msg) {
        (NotEncrypted::Ambiguous(_), _) | (_, None) => None,
        (_, Some(msg)) => exception(msg),
    };
    Evaluation {
        verdict: accepted.map_or(Verdict::Refuse(Refused::Unencrypted), Verdict::Accept),
        not_encrypted: Some(why),
    }
}

/// Postfix's own mail: its bounces pass (and get signed); anything else, e.g. from
/// sendmail(1) on this machine, must be encrypted like a user's.
fn evaluate_internal(envelope: &Envelope, msg: Option<&Message<'_>>) -> Evaluation {
    let Some(why) = not_encrypted(msg, ArmorHeaders::Refuse) else {
        return Evaluation::new(Verdict::Accept(Accepted::Encrypted));
    };
    cleartext(msg, why, |msg| {
        exceptions::delivery_status_notification(msg, &envelope.sender)
            .map(Accepted::MailerDaemonBounce)
    })
}

fn evaluate_outbound(envelope: &Envelope, msg: Option<&Message<'_>>) -> Evaluation {
    if let Err(refused) = from_header::check_from_is_sender(msg, &envelope.sender) {
        return Evaluation::new(Verdict::Refuse(refused));
    }
    let Some(why) = not_encrypted(msg, ArmorHeaders::Refuse) else {
        return Evaluation::new(Verdict::Accept(Accepted::Encrypted));
    };
    cleartext(msg, why, |msg| {
        if exceptions::is_securejoin_request(msg) {
            Some(Accepted::SecureJoin)
        } else if exceptions::is_autocrypt_setup_message(msg, envelope) {
            Some(Accepted::AutocryptSetupMessage)
        } else {
            None
        }
    })
}

fn evaluate_inbound(envelope: &Envelope, msg: Option<&Message<'_>>) -> Evaluation {
    let Some(why) = not_encrypted(msg, ArmorHeaders::Allow) else {
        return Evaluation::new(Verdict::Accept(Accepted::Encrypted));
    };
    cleartext(msg, why, |msg| {
        if exceptions::is_securejoin_request(msg) {
            Some(Accepted::SecureJoin)
        } else if let Some(from) = exceptions::delivery_status_notification(msg, &envelope.sender) {
            Some(Accepted::MailerDaemonBounce(from))
        } else if exceptions::recipients_accept_cleartext(&envelope.recipients) {
            Some(Accepted::RecipientsAcceptCleartext)
        } else {
            None
        }
    })
}
