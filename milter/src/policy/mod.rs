//! What may pass (spec §6), as pure functions of the envelope and the message bytes.
//!
//! * [`openpgp`]: the packet sequence inside the armor;
//! * [`armor`]: the ASCII armor;
//! * [`encryption`]: the RFC 3156 MIME structure;
//! * [`exceptions`]: cleartext that may pass all the same;
//! * [`envelope`]: MAIL FROM / RCPT TO;
//! * [`verdict`]: outcomes, SMTP replies, log lines.

pub mod armor;
pub mod encryption;
pub mod envelope;
pub mod exceptions;
pub mod openpgp;
pub mod verdict;

use chatmail_common::mailbox::Address;
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

/// Only the encryption check (RFC 3156 structure, armor, packets) on raw message bytes.
pub fn is_encrypted(direction: Direction, raw: &[u8]) -> Result<(), NotEncrypted> {
    let msg = parse(raw).ok_or(NotEncrypted::NotMultipartEncrypted)?;
    check_encrypted(&msg, direction.armor_headers()).map(|_| ())
}

/// The end-of-message decision. `enforces_e2ee` tells whether a mailbox refuses incoming
/// cleartext (it is only asked for inbound cleartext).
pub fn evaluate(
    direction: Direction,
    envelope: &Envelope,
    raw: &[u8],
    enforces_e2ee: &dyn Fn(&Address) -> bool,
) -> Evaluation {
    let msg = parse(raw);
    match direction {
        Direction::Outbound => evaluate_outbound(envelope, msg.as_ref()),
        Direction::Inbound => evaluate_inbound(envelope, msg.as_ref(), enforces_e2ee),
        Direction::Internal => evaluate_internal(msg.as_ref()),
    }
}

/// Why a (possibly unparsable) message is not encrypted; `None` when it is.
fn not_encrypted(msg: Option<&Message<'_>>, armor: ArmorHeaders) -> Option<NotEncrypted> {
    match msg {
        None => Some(NotEncrypted::NotMultipartEncrypted),
        Some(msg) => check_encrypted(msg, armor).err(),
    }
}

/// Postfix's own mail: its bounces pass (and get signed); anything else, e.g. from
/// sendmail(1) on this machine, must be encrypted like a user's.
fn evaluate_internal(msg: Option<&Message<'_>>) -> Evaluation {
    let Some(why) = not_encrypted(msg, ArmorHeaders::Refuse) else {
        return Evaluation::new(Verdict::Accept(Accepted::Encrypted));
    };
    let verdict = match msg.and_then(exceptions::mailer_daemon_bounce) {
        Some(from) => Verdict::Accept(Accepted::MailerDaemonBounce(from)),
        None => Verdict::Refuse(Refused::Unencrypted),
    };
    Evaluation {
        verdict,
        not_encrypted: Some(why),
    }
}

fn evaluate_outbound(envelope: &Envelope, msg: Option<&Message<'_>>) -> Evaluation {
    let Some(sender) = envelope.sender.address() else {
        return Evaluation::new(Verdict::Refuse(Refused::InvalidSender(
            envelope.sender.as_str().to_string(),
        )));
    };
    let Some(msg) = msg else {
        return Evaluation::new(Verdict::Refuse(Refused::InvalidFromHeader));
    };
    let Some(from) = exceptions::single_from_address(msg) else {
        return Evaluation::new(Verdict::Refuse(Refused::InvalidFromHeader));
    };
    if !from.eq_ignore_ascii_case(sender.as_str()) {
        return Evaluation::new(Verdict::Refuse(Refused::FromMismatch {
            header: from,
            envelope: sender.to_string(),
        }));
    }
    let why = match check_encrypted(msg, ArmorHeaders::Refuse) {
        Ok(_) => return Evaluation::new(Verdict::Accept(Accepted::Encrypted)),
        Err(why) => why,
    };
    let verdict = if exceptions::is_securejoin_request(msg) {
        Verdict::Accept(Accepted::SecureJoin)
    } else if exceptions::is_autocrypt_setup_message(msg, envelope) {
        Verdict::Accept(Accepted::AutocryptSetupMessage)
    } else {
        Verdict::Refuse(Refused::Unencrypted)
    };
    Evaluation {
        verdict,
        not_encrypted: Some(why),
    }
}

fn evaluate_inbound(
    envelope: &Envelope,
    msg: Option<&Message<'_>>,
    enforces_e2ee: &dyn Fn(&Address) -> bool,
) -> Evaluation {
    let Some(why) = not_encrypted(msg, ArmorHeaders::Allow) else {
        return Evaluation::new(Verdict::Accept(Accepted::Encrypted));
    };
    let verdict = if msg.is_some_and(exceptions::is_securejoin_request) {
        Verdict::Accept(Accepted::SecureJoin)
    } else if let Some(from) = msg.and_then(exceptions::mailer_daemon_bounce) {
        Verdict::Accept(Accepted::MailerDaemonBounce(from))
    } else if exceptions::recipients_accept_cleartext(&envelope.recipients, enforces_e2ee) {
        Verdict::Accept(Accepted::RecipientsAcceptCleartext)
    } else {
        Verdict::Refuse(Refused::Unencrypted)
    };
    Evaluation {
        verdict,
        not_encrypted: Some(why),
    }
}
