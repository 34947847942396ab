//! Cleartext that may pass all the same (spec §6, "Exceptions"). Each exception is an exact
//! shape, checked on a message whose MIME structure has one reading only
//! ([`super::structure`]); anything near it but not it is refused.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::envelope::{Envelope, Recipient, Sender};
use super::fields;
use super::from_header::single_from_address;

/// The children of a multipart root, each a single part (no multipart, no attached
/// message); `None` for anything else.
fn leaf_children<'a>(msg: &'a Message<'_>) -> Option<Vec<&'a MessagePart<'a>>> {
    let PartType::Multipart(ids) = &msg.root_part().body else {
        return None;
    };
    ids.iter()
        .map(|id| msg.part(*id))
        .collect::<Option<Vec<_>>>()
}

fn is_multipart(part: &MessagePart<'_>) -> bool {
    matches!(part.body, PartType::Multipart(_))
}

/// A text part that counts as `text/plain`: that type, or none at all (the default).
fn is_plain_text(part: &MessagePart<'_>) -> bool {
    (part.content_type().is_none() || part.is_content_type("text", "plain"))
        && matches!(part.body, PartType::Text(_))
}

/// Whether the content of a part that a rule reads decodes alike in every reader: no
/// transfer encoding or an identity one, strict base64 or strict quoted-printable.
/// `mail-parser` decodes far more leniently (base64 without padding, stray characters, `=`
/// not followed by hex) than `mailparse` (which fails on the same base64, found by
/// fuzzing) and others.
pub(super) fn decodes_alike(msg: &Message<'_>, part: &MessagePart<'_>) -> bool {
    let Some(cte) = part.content_transfer_encoding() else {
        return true;
    };
    let body = msg
        .raw_message()
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    match cte.to_ascii_lowercase().as_str() {
        "7bit" | "8bit" | "binary" => true,
        "base64" => strict_base64(body),
        "quoted-printable" => strict_quoted_printable(body),
        _ => false,
    }
}

/// Base64 lines: the standard alphabet with canonical padding at the very end, white space
/// only between characters.
fn strict_base64(body: &[u8]) -> bool {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64_simd::STANDARD.decode_to_vec(&cleaned).is_ok()
}

/// Quoted-printable where every `=` is a soft line break or `=XX` in upper-case hex.
fn strict_quoted_printable(body: &[u8]) -> bool {
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'=', &body[at..]) {
        let rest = &body[at + found + 1..];
        let step = if rest.starts_with(b"\r\n") {
            2
        } else if rest.starts_with(b"\n") {
            1
        } else if rest.len() >= 2
            && rest[..2]
                .iter()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        {
            2
        } else {
            return false;
        };
        at += found + 1 + step;
    }
    true
}

/// Secure-Join handshake start (`vc-request`/`vg-request`), as Delta Chat sends it: one
/// `Secure-Join` field with that value, a `multipart/mixed` root with exactly one
/// `text/plain` part (decoding alike everywhere, [`decodes_alike`]) whose text, trimmed and
/// lower-cased, is `secure-join: <same value>`.
pub fn is_securejoin_request(msg: &Message<'_>) -> bool {
    let Some(value) = fields::single(msg, "Secure-Join") else {
        return false;
    };
    let kind = value.to_ascii_lowercase();
    if kind != b"vc-request" && kind != b"vg-request" {
        return false;
    }
    if !msg.root_part().is_content_type("multipart", "mixed") {
        return false;
    }
    let Some(children) = leaf_children(msg) else {
        return false;
    };
    let [part] = children.as_slice() else {
        return false;
    };
    if !is_plain_text(part) || !decodes_alike(msg, part) {
        return false;
    }
    let mut expected = b"secure-join: ".to_vec();
    expected.extend_from_slice(&kind);
    part.contents().trim_ascii().to_ascii_lowercase() == expected
}

/// Outbound Autocrypt Setup Message: sent by a user to their own mailbox only, top level
/// `multipart/mixed`, marked by the `Autocrypt-Setup-Message: v1` field or by the subject
/// `Autocrypt Setup Message`. (Postfix rewrites the subject to `[...]` before a milter sees
/// it, so the field is what matters on the real stack.)
pub fn is_autocrypt_setup_message(msg: &Message<'_>, envelope: &Envelope) -> bool {
    let Some(own) = envelope.sender.address().and_then(|a| a.delivery_mailbox()) else {
        return false;
    };
    let [only] = envelope.recipients.as_slice() else {
        return false;
    };
    if only.mailbox() != Some(&own) {
        return false;
    }
    if !msg.root_part().is_content_type("multipart", "mixed") {
        return false;
    }
    fields::single(msg, "Autocrypt-Setup-Message").is_some_and(|v| v.eq_ignore_ascii_case(b"v1"))
        // One Subject field only: of two, mail-parser reads the last, mailparse the first.
        || (fields::values(msg, "Subject").count() == 1
            && msg.subject() == Some("Autocrypt Setup Message"))
}

/// A delivery status notification (RFC 3464) from a mail server: the null envelope sender,
/// an `Auto-Submitted` field saying so, a `MAILER-DAEMON@` From, and a
/// `multipart/report; report-type=delivery-status` of exactly the parts a DSN has: the
/// human-readable `text/plain`, the `message/delivery-status`, and at most the returned
/// message or its headers. Returns the From address.
pub fn delivery_status_notification(msg: &Message<'_>, sender: &Sender) -> Option<String> {
    if *sender != Sender::Null {
        return None;
    }
    let auto_submitted = fields::single(msg, "Auto-Submitted")?.to_ascii_lowercase();
    let keyword = auto_submitted
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if !matches!(
        keyword,
        b"auto-replied" | b"auto-generated" | b"auto-notified"
    ) {
        return None;
    }
    let from = single_from_address(msg)?;
    if !from.to_ascii_lowercase().starts_with("mailer-daemon@") {
        return None;
    }
    let root = msg.root_part();
    let report_type = root.content_type()?.attribute("report-type")?;
    if !root.is_content_type("multipart", "report")
        || !report_type.eq_ignore_ascii_case("delivery-status")
    {
        return None;
    }
    let children = leaf_children(msg)?;
    let (text, status, returned) = match children.as_slice() {
        [text, status] => (text, status, None),
        [text, status, returned] => (text, status, Some(returned)),
        _ => return None,
    };
    let status_ok = status.is_content_type("message", "delivery-status")
        || status.is_content_type("message", "global-delivery-status");
    let returned_ok = returned.is_none_or(|r| {
        r.is_content_type("message", "rfc822")
            || r.is_content_type("message", "global")
            || r.is_content_type("text", "rfc822-headers")
            || r.is_content_type("message", "global-headers")
    });
    let single_parts = !is_multipart(status) && returned.is_none_or(|r| !is_multipart(r));
    (is_plain_text(text) && status_ok && returned_ok && single_parts).then_some(from)
}

/// True when there are recipients and every one is a mailbox of this relay that takes
/// incoming cleartext (no `enforceE2EEincoming`).
pub fn recipients_accept_cleartext(recipients: &[Recipient]) -> bool {
    !recipients.is_empty() && recipients.iter().all(Recipient::accepts_cleartext)
}

#[cfg(test)]
mod tests {
    use super::{strict_base64, strict_quoted_printable};

    #[test]
    fn strict_transfer_encodings() {
        assert!(strict_base64(b"aGVs\r\nbG8=\r\n"));
        assert!(strict_base64(b" aGVsbG8= \n"));
        // mailparse fails on a missing padding, where mail-parser decodes (found by fuzzing)
        for bad in [&b"aGVsbG8\r\n"[..], b"aGVs!bG8=", b"aGk=aGk=", b"aGVsbG8=x"] {
            assert!(!strict_base64(bad), "{bad:?}");
        }
        assert!(strict_quoted_printable(b"a=3Db=\r\nc=\nd\r\n"));
        for bad in [&b"a=3d"[..], b"a=ZZ", b"a= \r\n", b"a="] {
            assert!(!strict_quoted_printable(bad), "{bad:?}");
        }
    }
}
