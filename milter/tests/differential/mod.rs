//! Differential check of the milter's reading of a message against `mailparse`, the MIME
//! parser Delta Chat reads delivered mail with.
//!
//! Shared by the `structure_differential` fuzz target (included by path) and the test of
//! the same name, which replays the kept corpus. [`check`] evaluates a message the way the
//! milter does, with envelopes under which only the structural accept paths can accept
//! (encrypted, Secure-Join, Autocrypt Setup Message, bounce: every recipient enforces
//! end-to-end encryption). When the structure check passes, `mailparse` must see the same
//! MIME tree (type of every part in tree order, the structural parameters and `charset`,
//! which parts are multipart, how many children each has, the field names of every part);
//! when any decision accepts, also the same values in the parts and fields the accepting
//! rule read.
//! Anything else is a [`Disagreement`]: a message that passed our checks but that the
//! client reads differently.

use std::fmt;

use chatmail_common::mailbox::Address;
use chatmail_milter::policy::envelope::{Envelope, Recipient, Sender};
use chatmail_milter::policy::structure::check_unambiguous;
use chatmail_milter::policy::verdict::{Accepted, Verdict};
use chatmail_milter::policy::{Direction, evaluate, parse};
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};
use mailparse::{MailHeaderMap, ParsedMail};

/// The relay's only user in these envelopes.
pub const USER: &str = "alice@chat.example.org";

/// What let a message through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Passed {
    /// The structure check ([`check_unambiguous`]), which promises one reading of the tree.
    Structure,
    /// The whole decision in one direction.
    Accepted(Direction, Accepted),
}

impl fmt::Display for Passed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Passed::Structure => write!(f, "passed the structure check"),
            Passed::Accepted(direction, how) => {
                write!(f, "{} accepted as {how:?}", direction.name())
            }
        }
    }
}

/// A message that passed our checks but that `mailparse` reads differently.
#[derive(Debug)]
pub struct Disagreement {
    pub passed: Passed,
    /// Where in the tree (`root`, `root.1.2`, ...), and what differs.
    pub what: String,
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, but mailparse disagrees: {}", self.passed, self.what)
    }
}

fn mailbox() -> Recipient {
    Recipient::Mailbox {
        mailbox: Address::parse(USER).expect("valid address"),
        enforces_e2ee: true,
    }
}

/// The envelopes a message is evaluated with: outbound from the user to themselves (so the
/// Autocrypt Setup Message can pass), inbound and internal with the null sender (so a bounce
/// can pass). No recipient takes cleartext.
pub fn envelopes() -> [(Direction, Envelope); 3] {
    let outbound = Envelope {
        sender: Sender::parse(&format!("<{USER}>")),
        recipients: vec![mailbox()],
    };
    let null = Envelope {
        sender: Sender::Null,
        recipients: vec![mailbox()],
    };
    [
        (Direction::Outbound, outbound),
        (Direction::Inbound, null.clone()),
        (Direction::Internal, null),
    ]
}

/// Checks `raw` as the milter does: the structure check, and the whole decision in every
/// direction. When the structure check passes, `mailparse` must see the same tree (the
/// check promises one reading, and far more inputs reach it than pass a whole decision);
/// for each acceptance, also the values the accepting rule read. Returns what accepted the
/// message (for corpus statistics).
pub fn check(raw: &[u8]) -> Result<Vec<(Direction, Accepted)>, Disagreement> {
    let mut accepted = Vec::new();
    for (direction, envelope) in envelopes() {
        if let Verdict::Accept(how) = evaluate(direction, &envelope, raw).verdict {
            accepted.push((direction, how));
        }
    }
    let Some(ours) = parse(raw) else {
        return match accepted.first() {
            None => Ok(accepted),
            Some((direction, how)) => Err(Disagreement {
                passed: Passed::Accepted(*direction, how.clone()),
                what: "mail-parser found no message".into(),
            }),
        };
    };
    let passed = match accepted.first() {
        Some((direction, how)) => Passed::Accepted(*direction, how.clone()),
        None if check_unambiguous(&ours).is_ok() => Passed::Structure,
        None => return Ok(accepted),
    };
    let fail = |what: String| Disagreement {
        passed: passed.clone(),
        what,
    };
    let theirs = mailparse::parse_mail(raw).map_err(|e| fail(format!("mailparse fails: {e}")))?;
    compare_tree(&ours, ours.root_part(), &theirs, false, "root").map_err(fail)?;
    for (direction, how) in &accepted {
        let from_checked = (*direction == Direction::Outbound).then_some(USER);
        from_checked
            .map_or(Ok(()), |from| compare_from(&theirs, from))
            .and_then(|()| compare_accepted(how, &ours, &theirs))
            .map_err(|what| Disagreement {
                passed: Passed::Accepted(*direction, how.clone()),
                what,
            })?;
    }
    Ok(accepted)
}

/// The field names of a part (the top level included), in order, must be the same: the
/// exceptions read top-level fields, and a field one parser sees in the header and the other
/// in the body is a sign of a different header end.
fn compare_headers(
    ours: &MessagePart<'_>,
    theirs: &ParsedMail<'_>,
    at: &str,
) -> Result<(), String> {
    let our_names: Vec<String> = ours
        .headers
        .iter()
        .map(|h| h.name.as_str().to_ascii_lowercase())
        .collect();
    let their_names: Vec<String> = theirs
        .headers
        .iter()
        .map(|h| h.get_key().to_ascii_lowercase())
        .collect();
    if our_names != their_names {
        return Err(format!("{at}: fields {our_names:?} vs {their_names:?}"));
    }
    Ok(())
}

/// A part's MIME type as `mailparse` names it: lower-case `type/subtype`, with the RFC 2046
/// defaults for a part without `Content-Type`.
fn our_mime_type(part: &MessagePart<'_>, in_digest: bool) -> String {
    match part.content_type() {
        Some(ct) => format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase()
        ),
        None if in_digest => "message/rfc822".into(),
        None => "text/plain".into(),
    }
}

/// The MIME trees (not the inside of attached messages, which `mailparse` does not parse)
/// must have the same shape and the same type in every node.
fn compare_tree(
    msg: &Message<'_>,
    ours: &MessagePart<'_>,
    theirs: &ParsedMail<'_>,
    in_digest: bool,
    at: &str,
) -> Result<(), String> {
    compare_headers(ours, theirs, at)?;
    let our_type = our_mime_type(ours, in_digest);
    if our_type != theirs.ctype.mimetype.to_ascii_lowercase() {
        return Err(format!(
            "{at}: type {our_type} vs {}",
            theirs.ctype.mimetype
        ));
    }
    for name in ["boundary", "protocol", "report-type", "charset"] {
        let our_value = ours.content_type().and_then(|ct| ct.attribute(name));
        let their_value = theirs.ctype.params.get(name).map(String::as_str);
        if our_value != their_value {
            return Err(format!(
                "{at}: parameter {name} {our_value:?} vs {their_value:?}"
            ));
        }
    }
    let our_children: &[u32] = match &ours.body {
        PartType::Multipart(children) => children,
        _ => &[],
    };
    let is_multipart = matches!(ours.body, PartType::Multipart(_));
    if is_multipart != our_type.starts_with("multipart/") {
        return Err(format!("{at}: {our_type} that mail-parser did not split"));
    }
    if our_children.len() != theirs.subparts.len() {
        return Err(format!(
            "{at}: {} parts vs {}",
            our_children.len(),
            theirs.subparts.len()
        ));
    }
    let digest = our_type == "multipart/digest";
    for (i, (id, their_child)) in our_children.iter().zip(&theirs.subparts).enumerate() {
        let our_child = msg
            .part(*id)
            .ok_or_else(|| format!("{at}: mail-parser part {id} missing"))?;
        compare_tree(
            msg,
            our_child,
            their_child,
            digest,
            &format!("{at}.{}", i + 1),
        )?;
    }
    Ok(())
}

/// `mailparse`'s decoded body of a part.
fn their_body(part: &ParsedMail<'_>, at: &str) -> Result<Vec<u8>, String> {
    part.get_body_raw()
        .map_err(|e| format!("{at}: mailparse cannot decode the body: {e}"))
}

/// `mailparse`'s decoded text of a part (transfer encoding and charset).
fn their_text(part: &ParsedMail<'_>, at: &str) -> Result<String, String> {
    part.get_body()
        .map_err(|e| format!("{at}: mailparse cannot decode the text: {e}"))
}

fn our_child<'a>(msg: &'a Message<'_>, index: usize) -> Result<&'a MessagePart<'a>, String> {
    let PartType::Multipart(children) = &msg.root_part().body else {
        return Err("root is not multipart".into());
    };
    children
        .get(index)
        .and_then(|id| msg.part(*id))
        .ok_or_else(|| format!("no part {}", index + 1))
}

fn their_child<'a, 'b>(
    theirs: &'a ParsedMail<'b>,
    index: usize,
) -> Result<&'a ParsedMail<'b>, String> {
    theirs
        .subparts
        .get(index)
        .ok_or_else(|| format!("mailparse has no part {}", index + 1))
}

/// The first top-level field `name` as `mailparse` decodes it, trimmed and lower-cased.
fn their_field(theirs: &ParsedMail<'_>, name: &str) -> Option<String> {
    theirs
        .get_headers()
        .get_first_value(name)
        .map(|v| v.trim().to_ascii_lowercase())
}

/// `mailparse` must read the single `From` address the milter read (outbound: the sender;
/// a bounce: the mailer daemon).
fn compare_from(theirs: &ParsedMail<'_>, ours: &str) -> Result<(), String> {
    let headers = theirs.get_headers();
    let all = headers.get_all_headers("From");
    let their_from = match all.as_slice() {
        [one] => mailparse::addrparse_header(one)
            .ok()
            .and_then(|list| list.extract_single_info())
            .map(|info| info.addr),
        _ => None,
    };
    if their_from
        .as_deref()
        .is_some_and(|f| f.eq_ignore_ascii_case(ours))
    {
        Ok(())
    } else {
        Err(format!("From {ours:?} vs {their_from:?}"))
    }
}

/// The values the accepting rule read must be `mailparse`'s, too.
fn compare_accepted(
    how: &Accepted,
    ours: &Message<'_>,
    theirs: &ParsedMail<'_>,
) -> Result<(), String> {
    match how {
        Accepted::Encrypted => {
            // The control part and the armored payload: what the client decrypts.
            for i in 0..2 {
                let at = format!("root.{}", i + 1);
                let our = our_child(ours, i)?.contents().trim_ascii();
                let their = their_body(their_child(theirs, i)?, &at)?;
                if our != their.trim_ascii() {
                    return Err(format!("{at}: body differs"));
                }
            }
            Ok(())
        }
        Accepted::SecureJoin => {
            let value = their_field(theirs, "Secure-Join");
            if !matches!(value.as_deref(), Some("vc-request" | "vg-request")) {
                return Err(format!("Secure-Join field {value:?}"));
            }
            let our = our_child(ours, 0)?
                .text_contents()
                .ok_or("root.1: no text")?
                .trim()
                .to_ascii_lowercase();
            let their = their_text(their_child(theirs, 0)?, "root.1")?
                .trim()
                .to_ascii_lowercase();
            if our != their {
                return Err(format!("root.1: text {our:?} vs {their:?}"));
            }
            Ok(())
        }
        Accepted::MailerDaemonBounce(from) => {
            compare_from(theirs, from)?;
            let auto = their_field(theirs, "Auto-Submitted").unwrap_or_default();
            if !auto.starts_with("auto-") {
                return Err(format!("Auto-Submitted {auto:?}"));
            }
            // The rule reads the types of the parts only, which the tree comparison covers;
            // not the human-readable text: its bytes may be anything, and the two parsers
            // decode bytes invalid in the charset differently (U+FFFD or Latin-1), which
            // the fuzzer found and which is no different structure. The status report is
            // compared as bytes.
            let our = our_child(ours, 1)?.contents().trim_ascii();
            let their = their_body(their_child(theirs, 1)?, "root.2")?;
            if our != their.trim_ascii() {
                return Err("root.2: body differs".into());
            }
            Ok(())
        }
        Accepted::AutocryptSetupMessage => {
            let marked = their_field(theirs, "Autocrypt-Setup-Message").as_deref() == Some("v1")
                || theirs.get_headers().get_first_value("Subject").as_deref()
                    == Some("Autocrypt Setup Message");
            if marked {
                Ok(())
            } else {
                Err("not marked as Autocrypt Setup Message".into())
            }
        }
        Accepted::RecipientsAcceptCleartext => Ok(()),
    }
}
