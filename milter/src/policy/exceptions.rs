//! Cleartext messages that may pass all the same (spec §6, "Exceptions").

use chatmail_common::mailbox::Address;
use mail_parser::{HeaderName, Message, MimeHeaders, PartType};

use super::envelope::Envelope;

/// The raw values of every top-level header called `name`, trimmed.
fn header_values<'a>(msg: &'a Message<'_>, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    let raw = msg.raw_message();
    msg.root_part()
        .headers
        .iter()
        .filter(move |h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(move |h| {
            raw.get(h.offset_start as usize..h.offset_end as usize)
                .unwrap_or_default()
                .trim_ascii()
        })
}

/// The only value of a header that must occur once; `None` if absent or repeated.
fn single_header<'a>(msg: &'a Message<'_>, name: &'a str) -> Option<&'a [u8]> {
    let mut values = header_values(msg, name);
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// The address of the only `From` header, if it holds exactly one address.
pub fn single_from_address(msg: &Message<'_>) -> Option<String> {
    let count = msg
        .root_part()
        .headers
        .iter()
        .filter(|h| h.name == HeaderName::From)
        .count();
    if count != 1 {
        return None;
    }
    let list = msg.from()?.as_list()?;
    match list {
        [one] => one.address().map(str::to_string),
        _ => None,
    }
}

/// Secure-Join handshake start (`vc-request`/`vg-request`): a `Secure-Join` header with that
/// value, and a multipart message with exactly one `text/plain` part whose text, trimmed
/// and lower-cased, is `secure-join: <same value>`.
pub fn is_securejoin_request(msg: &Message<'_>) -> bool {
    let Some(value) = single_header(msg, "Secure-Join") else {
        return false;
    };
    let kind = value.to_ascii_lowercase();
    if kind != b"vc-request" && kind != b"vg-request" {
        return false;
    }
    let PartType::Multipart(children) = &msg.root_part().body else {
        return false;
    };
    let [only] = children.as_slice() else {
        return false;
    };
    let Some(part) = msg.part(*only) else {
        return false;
    };
    if !part.is_content_type("text", "plain") && part.content_type().is_some() {
        return false;
    }
    if !matches!(part.body, PartType::Text(_)) {
        return false;
    }
    let mut expected = b"secure-join: ".to_vec();
    expected.extend_from_slice(&kind);
    part.contents().trim_ascii().to_ascii_lowercase() == expected
}

/// Outbound Autocrypt Setup Message: sent by a user to themselves only, top level
/// `multipart/mixed`, marked by the `Autocrypt-Setup-Message: v1` header or by the subject
/// `Autocrypt Setup Message`. (Postfix rewrites the subject to `[...]` before a milter sees
/// it, so the header is what matters on the real stack.)
pub fn is_autocrypt_setup_message(msg: &Message<'_>, envelope: &Envelope) -> bool {
    let Some(sender) = envelope.sender.address() else {
        return false;
    };
    let [rcpt] = envelope.recipients.as_slice() else {
        return false;
    };
    if !rcpt.eq_ignore_ascii_case(sender.as_str()) {
        return false;
    }
    if !msg.root_part().is_content_type("multipart", "mixed") {
        return false;
    }
    single_header(msg, "Autocrypt-Setup-Message").is_some_and(|v| v.eq_ignore_ascii_case(b"v1"))
        || msg.subject() == Some("Autocrypt Setup Message")
}

/// Inbound delivery status notification from a mail server: non-empty `Auto-Submitted`,
/// From address `mailer-daemon@...`, top level `multipart/report`. Returns the From address.
pub fn mailer_daemon_bounce(msg: &Message<'_>) -> Option<String> {
    let auto_submitted = single_header(msg, "Auto-Submitted")?;
    if auto_submitted.is_empty() {
        return None;
    }
    if !msg.root_part().is_content_type("multipart", "report") {
        return None;
    }
    let from = single_from_address(msg)?;
    from.to_ascii_lowercase()
        .starts_with("mailer-daemon@")
        .then_some(from)
}

/// True when every recipient accepts cleartext, i.e. its mailbox has no
/// `enforceE2EEincoming` flag. `user+tag@D` counts as `user@D`; an address that cannot be a
/// mailbox never accepts cleartext.
pub fn recipients_accept_cleartext(
    recipients: &[String],
    enforces_e2ee: &dyn Fn(&Address) -> bool,
) -> bool {
    !recipients.is_empty()
        && recipients.iter().all(|r| match Address::parse(r) {
            Ok(a) => !enforces_e2ee(&a.mailbox_address()),
            Err(_) => false,
        })
}
