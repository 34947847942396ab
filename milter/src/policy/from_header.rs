//! The `From` header: exactly one address, and outbound it must be the envelope sender.

use mail_parser::{HeaderName, Message};

use super::envelope::Sender;
use super::fields;
use super::verdict::Refused;

/// The address of the only `From` field, if it holds exactly one address, written plainly
/// (see [`plain_mailbox`]).
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
    let address = match msg.from()?.as_list()? {
        [one] => one.address()?,
        _ => return None,
    };
    let raw = fields::single(msg, "From")?;
    plain_mailbox(raw, address).then(|| address.to_string())
}

/// Whether the raw field value is `address`, `<address>` or `name <address>`, the name a
/// quoted string without `"` or `\` inside, or text without specials. `mail-parser` reads an
/// address out of far more (`<a@b> junk`, an unclosed comment), where other readers find
/// none or another one.
fn plain_mailbox(raw: &[u8], address: &str) -> bool {
    let unfolded: Vec<u8> = raw
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let value = unfolded.trim_ascii();
    if value == address.as_bytes() {
        return true;
    }
    let angle = format!("<{address}>");
    let Some(name) = value.strip_suffix(angle.as_bytes()) else {
        return false;
    };
    let name = name.trim_ascii();
    if let Some(quoted) = name.strip_prefix(b"\"").and_then(|n| n.strip_suffix(b"\"")) {
        return !quoted
            .iter()
            .any(|&b| b == b'"' || b == b'\\' || b < 0x20 && b != b'\t');
    }
    name.iter()
        .all(|&b| !b"<>()[],;:@\\\"".contains(&b) && (b >= 0x20 || b == b'\t'))
}

/// Outbound: the `From` address equals `MAIL FROM` (ASCII case-insensitively), which
/// Postfix has already tied to the SASL login.
pub fn check_from_is_sender(msg: Option<&Message<'_>>, sender: &Sender) -> Result<(), Refused> {
    let Some(envelope) = sender.address() else {
        return Err(Refused::InvalidSender(sender.as_str().to_string()));
    };
    let from = msg
        .and_then(single_from_address)
        .ok_or(Refused::InvalidFromHeader)?;
    if from.eq_ignore_ascii_case(envelope.as_str()) {
        Ok(())
    } else {
        Err(Refused::FromMismatch {
            header: from,
            envelope: envelope.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::plain_mailbox;

    #[test]
    fn plain_mailboxes() {
        let a = "a@b.org";
        for ok in [
            "a@b.org",
            " <a@b.org> ",
            "Alice <a@b.org>",
            "\"Alice, the first\" <a@b.org>",
            "=?utf-8?q?Al=C3=AFce?= <a@b.org>",
            "Alice\r\n <a@b.org>",
        ] {
            assert!(plain_mailbox(ok.as_bytes(), a), "{ok}");
        }
        for bad in [
            "<a@b.org> junk",
            "a@b.org (unclosed",
            "(comment) a@b.org",
            "Alice <a@b.org>, <c@d.org>",
            "x@y.org <a@b.org>",
            "<x@y.org> <a@b.org>",
            "\"Al\\\"ice\" <a@b.org>",
            "Alice: <a@b.org>",
            "A\rlice <a@b.org>x",
        ] {
            assert!(!plain_mailbox(bad.as_bytes(), a), "{bad}");
        }
    }
}
