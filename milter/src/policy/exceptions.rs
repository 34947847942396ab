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

/// `Content-Transfer-Encoding` absent or one every reader decodes alike.
fn plain_transfer_encoding(part: &MessagePart<'_>) -> bool {
    part.content_transfer_encoding().is_none_or(|cte| {
        ["7bit", "8bit", "quoted-printable", "base64"]
            .iter()
            .any(|known| cte.eq_ignore_ascii_case(known))
    })
}

/// Secure-Join handshake start (`vc-request`/`vg-request`), as Delta Chat sends it: one
/// `Secure-Join` field with that value, a `multipart/mixed` root with exactly one
/// `text/plain` part whose text, trimmed and lower-cased, is `secure-join: <same value>`.
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
    if !is_plain_text(part) || !plain_transfer_encoding(part) {
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
        || msg.subject() == Some("Autocrypt Setup Message")
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
