//! The `From` header: exactly one address, and outbound it must be the envelope sender.

use mail_parser::{HeaderName, Message};

use super::envelope::Sender;
use super::verdict::Refused;

/// The address of the only `From` field, if it holds exactly one address.
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
    match msg.from()?.as_list()? {
        [one] => one.address().map(str::to_string),
        _ => None,
    }
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
