//! Is a parsed message an OpenPGP/MIME encrypted message (RFC 3156 §4)?
//!
//! Top level `multipart/encrypted` with exactly two parts, neither of them multipart:
//! `application/pgp-encrypted` whose body, trimmed, is `Version: 1`, then
//! `application/octet-stream` holding an ASCII-armored message that passes
//! [`check_armored_message`], both in a transfer encoding every reader decodes alike
//! ([`decodes_alike`]). The caller checks first that the structure has one reading
//! only ([`super::structure`]), so no reader sees other parts than these.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::armor::{ArmorError, ArmorHeaders, check_armored_message};
use super::exceptions::decodes_alike;
use super::openpgp::PacketSummary;
use super::structure::Ambiguity;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotEncrypted {
    #[error("not multipart/encrypted")]
    NotMultipartEncrypted,
    #[error("{0} MIME parts instead of 2")]
    PartCount(usize),
    #[error("MIME part {0} is itself multipart or a message")]
    NestedPart(usize),
    #[error("MIME part {0} has an unexpected content type")]
    PartType(usize),
    #[error("MIME part {0} in a transfer encoding that readers decode differently")]
    TransferEncoding(usize),
    #[error("the application/pgp-encrypted part is not 'Version: 1'")]
    VersionPart,
    #[error("ambiguous MIME structure: {0}")]
    Ambiguous(#[from] Ambiguity),
    #[error("armor: {0}")]
    Armor(#[from] ArmorError),
}

/// Checks the RFC 3156 structure and the encrypted payload.
pub fn check_encrypted(
    msg: &Message<'_>,
    headers: ArmorHeaders,
) -> Result<PacketSummary, NotEncrypted> {
    let root = msg.root_part();
    if !root.is_content_type("multipart", "encrypted") {
        return Err(NotEncrypted::NotMultipartEncrypted);
    }
    let PartType::Multipart(children) = &root.body else {
        return Err(NotEncrypted::NotMultipartEncrypted);
    };
    if children.len() != 2 {
        return Err(NotEncrypted::PartCount(children.len()));
    }
    let part = |i: usize| -> Result<&MessagePart<'_>, NotEncrypted> {
        let p = msg
            .part(children[i])
            .ok_or(NotEncrypted::PartCount(children.len()))?;
        if matches!(p.body, PartType::Multipart(_) | PartType::Message(_)) {
            return Err(NotEncrypted::NestedPart(i + 1));
        }
        Ok(p)
    };
    let control = part(0)?;
    if !control.is_content_type("application", "pgp-encrypted") {
        return Err(NotEncrypted::PartType(1));
    }
    if !decodes_alike(msg, control) {
        return Err(NotEncrypted::TransferEncoding(1));
    }
    if control.contents().trim_ascii() != b"Version: 1" {
        return Err(NotEncrypted::VersionPart);
    }
    let payload = part(1)?;
    if !payload.is_content_type("application", "octet-stream") {
        return Err(NotEncrypted::PartType(2));
    }
    if !decodes_alike(msg, payload) {
        return Err(NotEncrypted::TransferEncoding(2));
    }
    Ok(check_armored_message(payload.contents(), headers)?)
}
