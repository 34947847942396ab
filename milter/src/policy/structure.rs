//! MIME structure that every reader sees the same way, or a refusal.
//!
//! The milter decides with one MIME parser (`mail-parser`); Delta Chat reads the delivered
//! message with another (`mailparse`), and other clients with others again. Where the syntax
//! leaves room, parsers disagree: which of two `Content-Type` fields counts, which of two
//! `boundary` parameters, whether `boundary*0=` continues a parameter, whether `--b1x` opens a
//! part of boundary `b1`, whether a quoted `;` ends a parameter, whether a line without a colon
//! ends the header. A message whose parts we check must have one reading only, so before any
//! rule looks at the parts, the whole MIME tree (not the inside of attached messages, which no
//! rule looks at) must keep to a plain subset of RFC 2045/2046 on which conforming parsers
//! agree:
//!
//! * every header line is a field (`name:` with a printable name) or a folded continuation,
//!   with no CR but the one before its LF, and the header ends with an empty line, where
//!   `mail-parser` ends it too, having read the same fields;
//! * at most one `Content-Type` and one `Content-Transfer-Encoding` per part, the latter one
//!   token ending its one line;
//! * `Content-Type` is `type/subtype` plus `; name=value` parameters, values plain tokens or
//!   quoted strings without `\`, `;` or control characters (tab included), names with `*`
//!   only in an RFC 2231 suffix, no comments, no parameter twice, encoded words (`=?`) only
//!   well-formed, in an ASCII-compatible charset and decoding to no ASCII specials
//!   (`mailparse` decodes them before it splits the parameters), and the structural
//!   parameters (`boundary`, `protocol`, `report-type`, and `charset`, which decides the
//!   text) neither empty nor extended (`name*=`) nor encoded (`=?`); and our reading of
//!   it equals `mail-parser`'s;
//! * a multipart part has a boundary of RFC 2046 characters, which no enclosing boundary
//!   starts with and which starts with no enclosing boundary; `--boundary` occurs in its
//!   body only at the start of a line, and every such line is exactly a delimiter
//!   (`--boundary`, `--boundary--`, plus white space); the closing delimiter is there, with
//!   nothing of the kind after it, and there are as many parts as opening delimiters, at
//!   least one (readers differ on where an unclosed part ends, on an empty part after a
//!   last delimiter, on a closing delimiter before any part).

use mail_parser::{Message, MessagePart, PartType};

/// Why a message has more than one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguity {
    #[error("a header line that is neither a field nor a continuation")]
    HeaderLine,
    #[error("a header that ends elsewhere for the parser, or not with an empty line")]
    HeaderEnd,
    #[error("header fields read differently by the parser")]
    FieldsDisagree,
    #[error("repeated {0} field")]
    RepeatedField(&'static str),
    #[error("Content-Type outside the plain syntax")]
    ContentTypeSyntax,
    #[error("Content-Transfer-Encoding not one token on one line")]
    TransferEncoding,
    #[error("repeated Content-Type parameter")]
    RepeatedParameter,
    #[error("extended or encoded {0} parameter")]
    EncodedParameter(&'static str),
    #[error("empty {0} parameter")]
    EmptyParameter(&'static str),
    #[error("encoded word in Content-Type")]
    EncodedWord,
    #[error("Content-Type read differently by the parser")]
    ParserDisagrees,
    #[error("multipart without a plain boundary")]
    Boundary,
    #[error("boundary nested in an enclosing boundary")]
    NestedBoundary,
    #[error("a line that is almost a boundary delimiter")]
    DelimiterLine,
    #[error("multipart without its closing delimiter")]
    Unclosed,
    #[error("multipart whose parts are not one per delimiter")]
    PartCount,
}

/// Parameters whose value decides the structure or how a text is read: neither extended nor
/// encoded.
const STRUCTURAL: [&str; 4] = ["boundary", "protocol", "report-type", "charset"];

/// Checks the whole MIME tree of `msg`.
pub fn check_unambiguous(msg: &Message<'_>) -> Result<(), Ambiguity> {
    let raw = msg.raw_message();
    let mut boundaries: Vec<String> = Vec::new();
    check_part(msg, raw, 0, &mut boundaries, 0)
}

/// Parts nest at most this deep before we give up on reading them.
const MAX_DEPTH: usize = 64;

fn check_part(
    msg: &Message<'_>,
    raw: &[u8],
    id: u32,
    enclosing: &mut Vec<String>,
    depth: usize,
) -> Result<(), Ambiguity> {
    let part = msg.part(id).ok_or(Ambiguity::ParserDisagrees)?;
    if depth > MAX_DEPTH {
        return Err(Ambiguity::Boundary);
    }
    let fields = header_fields(slice(raw, part.offset_header, part.offset_body))?;
    same_fields(&fields, part)?;
    let content_type = single_field(&fields, "Content-Type")?;
    if let Some(cte) = single_field(&fields, "Content-Transfer-Encoding")? {
        plain_transfer_encoding(cte)?;
    }
    let ours = content_type
        .map(|f| parse_content_type(&f.value))
        .transpose()?;
    agrees_with_parser(ours.as_ref(), part)?;
    let Some(ours) = ours.filter(|ct| ct.mime_type == "multipart") else {
        return Ok(());
    };
    let Some(boundary) = ours.param("boundary") else {
        return Err(Ambiguity::Boundary);
    };
    if !plain_boundary(boundary) {
        return Err(Ambiguity::Boundary);
    }
    let PartType::Multipart(children) = &part.body else {
        return Err(Ambiguity::ParserDisagrees);
    };
    if enclosing
        .iter()
        .any(|outer| outer.starts_with(boundary) || boundary.starts_with(outer.as_str()))
    {
        return Err(Ambiguity::NestedBoundary);
    }
    let delimiters =
        check_delimiter_lines(slice(raw, part.offset_body, part.offset_end), boundary)?;
    // RFC 2046: at least one part; `mailparse` makes an empty one of `--boundary--` alone.
    if delimiters == 0 || delimiters != children.len() {
        return Err(Ambiguity::PartCount);
    }
    enclosing.push(boundary.to_string());
    for child in children {
        check_part(msg, raw, *child, enclosing, depth + 1)?;
    }
    enclosing.pop();
    Ok(())
}

fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    raw.get(start as usize..end as usize).unwrap_or_default()
}

/// One header field: its name and its value with folding line breaks removed.
struct Field<'a> {
    name: &'a [u8],
    value: Vec<u8>,
    /// Whether the value continues on a folded line.
    folded: bool,
}

/// The fields of a header block (as `mail-parser` delimits it), in the strict syntax: every
/// line up to the first empty one is `name:value` with a name of printable ASCII, or a
/// continuation (starting with a space or tab) of the field before it; the empty line is
/// there and ends the block (`mail-parser` reads some malformed fields on across it). A CR
/// that does not end a line is refused: some readers end the line there, others keep it in
/// the value.
fn header_fields(block: &[u8]) -> Result<Vec<Field<'_>>, Ambiguity> {
    let mut fields: Vec<Field<'_>> = Vec::new();
    let mut lines = block.split(|&b| b == b'\n');
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The parser's header block must end with this empty line, as ours does.
            return match (lines.next(), lines.next()) {
                (Some([]), None) => Ok(fields),
                _ => Err(Ambiguity::HeaderEnd),
            };
        }
        if line.contains(&b'\r') {
            return Err(Ambiguity::HeaderLine);
        }
        if matches!(line[0], b' ' | b'\t') {
            let last = fields.last_mut().ok_or(Ambiguity::HeaderLine)?;
            last.value.extend_from_slice(line);
            last.folded = true;
            continue;
        }
        let colon = memchr::memchr(b':', line).ok_or(Ambiguity::HeaderLine)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|b| (33..=126).contains(b)) {
            return Err(Ambiguity::HeaderLine);
        }
        fields.push(Field {
            name,
            value: line[colon + 1..].to_vec(),
            folded: false,
        });
    }
    Err(Ambiguity::HeaderEnd)
}

/// `mail-parser` must have read the same fields, by name and in order: it reads some
/// malformed values (a `Date`) on across the line end, and swallows the field after.
fn same_fields(fields: &[Field<'_>], part: &MessagePart<'_>) -> Result<(), Ambiguity> {
    let same = fields.len() == part.headers.len()
        && fields.iter().zip(&part.headers).all(|(ours, theirs)| {
            ours.name
                .eq_ignore_ascii_case(theirs.name.as_str().as_bytes())
        });
    if same {
        Ok(())
    } else {
        Err(Ambiguity::FieldsDisagree)
    }
}

/// The field `name` if it occurs at most once.
fn single_field<'f, 'a>(
    fields: &'f [Field<'a>],
    name: &'static str,
) -> Result<Option<&'f Field<'a>>, Ambiguity> {
    let mut found = fields
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes()));
    let first = found.next();
    if found.next().is_some() {
        return Err(Ambiguity::RepeatedField(name));
    }
    Ok(first)
}

/// `Content-Transfer-Encoding` must be one token on one line, ending the line: `mailparse`
/// does not decode a folded value, nor one with a comment, anything else or only white
/// space after the mechanism (it trims the front of the value, not the end), where
/// `mail-parser` still does; before it only spaces and tabs (`mailparse` also skips a form
/// feed or vertical tab there and decodes, `mail-parser` does not).
fn plain_transfer_encoding(field: &Field<'_>) -> Result<(), Ambiguity> {
    let start = field
        .value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(field.value.len());
    let value = &field.value[start..];
    if field.folded || value.is_empty() || !value.iter().all(|&b| is_token_char(b)) {
        return Err(Ambiguity::TransferEncoding);
    }
    Ok(())
}

/// A `Content-Type` read by the strict grammar: type and subtype lower-cased, parameter
/// names lower-cased, values without their quotes.
#[derive(Debug, PartialEq, Eq)]
struct ContentType {
    mime_type: String,
    subtype: String,
    params: Vec<(String, String)>,
}

impl ContentType {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// RFC 2045 token characters: printable ASCII but the tspecials.
fn is_token_char(b: u8) -> bool {
    (33..=126).contains(&b) && !b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// The token at the start of `rest`, which moves past it.
fn take_token<'a>(rest: &mut &'a str) -> Result<&'a str, Ambiguity> {
    let end = rest
        .bytes()
        .position(|b| !is_token_char(b))
        .unwrap_or(rest.len());
    if end == 0 {
        return Err(Ambiguity::ContentTypeSyntax);
    }
    let (token, after) = rest.split_at(end);
    *rest = after;
    Ok(token)
}

fn parse_content_type(value: &[u8]) -> Result<ContentType, Ambiguity> {
    let text = std::str::from_utf8(value).map_err(|_| Ambiguity::ContentTypeSyntax)?;
    harmless_encoded_words(text)?;
    let mut rest = text.trim_matches([' ', '\t']);
    let mime_type = take_token(&mut rest)?.to_ascii_lowercase();
    rest = rest.strip_prefix('/').ok_or(Ambiguity::ContentTypeSyntax)?;
    let subtype = take_token(&mut rest)?.to_ascii_lowercase();
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix(';').ok_or(Ambiguity::ContentTypeSyntax)?;
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let name = take_token(&mut rest)?.to_ascii_lowercase();
        if !plain_parameter_name(&name) {
            return Err(Ambiguity::ContentTypeSyntax);
        }
        rest = rest.strip_prefix('=').ok_or(Ambiguity::ContentTypeSyntax)?;
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or(Ambiguity::ContentTypeSyntax)?;
            let v = &quoted[..end];
            // No tab either: `mailparse` turns it into a space.
            if v.contains(['\\', ';']) || v.bytes().any(|b| b.is_ascii_control()) {
                return Err(Ambiguity::ContentTypeSyntax);
            }
            rest = &quoted[end + 1..];
            v.to_string()
        } else {
            take_token(&mut rest)?.to_string()
        };
        // `boundary*=...` (RFC 2231) or `boundary="=?..?="` (RFC 2047): some readers decode
        // them, others do not.
        let base = name.split('*').next().unwrap_or_default();
        if let Some(structural) = STRUCTURAL.iter().find(|s| **s == base)
            && (name.len() != base.len() || value.contains("=?"))
        {
            return Err(Ambiguity::EncodedParameter(structural));
        }
        // `protocol=""`: `mail-parser` drops the parameter, `mailparse` keeps it empty (found
        // by fuzzing).
        if let Some(structural) = STRUCTURAL.iter().find(|s| **s == base)
            && value.is_empty()
        {
            return Err(Ambiguity::EmptyParameter(structural));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(Ambiguity::RepeatedParameter);
        }
        params.push((name, value));
    }
    Ok(ContentType {
        mime_type,
        subtype,
        params,
    })
}

/// A parameter name with `*` only in an RFC 2231 suffix (`name*`, `name*0`, `name*0*`):
/// `mail-parser` reads `*charset` as `charset`, `mailparse` as a name of its own.
fn plain_parameter_name(name: &str) -> bool {
    let Some((base, suffix)) = name.split_once('*') else {
        return true;
    };
    let digits = suffix.strip_suffix('*').unwrap_or(suffix);
    !base.is_empty()
        && (suffix.is_empty() || (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())))
}

/// `mailparse` decodes RFC 2047 encoded words in the whole field before it splits the
/// parameters, so `name="=?utf-8?q?=3B_boundary=3Db2?="` adds a boundary for it. Encoded
/// words stay allowed (mail with non-ASCII attachment names has them in `name=`) where they
/// are well-formed, in UTF-8, US-ASCII or ISO 8859 (in which no other bytes decode to ASCII)
/// and decode to no ASCII but token characters and spaces; every other `=?` is refused.
fn harmless_encoded_words(text: &str) -> Result<(), Ambiguity> {
    let mut rest = text;
    while let Some(at) = rest.find("=?") {
        let word = &rest[at + 2..];
        let mut pieces = word.splitn(3, '?');
        let (Some(charset), Some(encoding), Some(tail)) =
            (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(Ambiguity::EncodedWord);
        };
        let end = tail.find("?=").ok_or(Ambiguity::EncodedWord)?;
        let encoded = &tail[..end];
        let charset = charset.to_ascii_lowercase();
        let ascii_compatible = matches!(charset.as_str(), "utf-8" | "us-ascii")
            || charset
                .strip_prefix("iso-8859-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !ascii_compatible || encoded.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(Ambiguity::EncodedWord);
        }
        let decoded = match encoding {
            "q" | "Q" => decode_q(encoded)?,
            "b" | "B" => base64_simd::STANDARD
                .decode_to_vec(encoded)
                .map_err(|_| Ambiguity::EncodedWord)?,
            _ => return Err(Ambiguity::EncodedWord),
        };
        if decoded
            .iter()
            .any(|&b| b.is_ascii() && b != b' ' && !is_token_char(b))
        {
            return Err(Ambiguity::EncodedWord);
        }
        rest = &tail[end + 2..];
    }
    Ok(())
}

/// RFC 2047 "Q" decoding: `_` is a space, `=XX` a byte.
fn decode_q(encoded: &str) -> Result<Vec<u8>, Ambiguity> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut bytes = encoded.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'_' => b' ',
            b'=' => {
                let hex = [
                    bytes.next().ok_or(Ambiguity::EncodedWord)?,
                    bytes.next().ok_or(Ambiguity::EncodedWord)?,
                ];
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(Ambiguity::EncodedWord);
                }
                std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(Ambiguity::EncodedWord)?
            }
            other => other,
        });
    }
    Ok(out)
}

/// Our reading of the `Content-Type` must be `mail-parser`'s: the same type, subtype and
/// boundary, and no type where it saw none (and the reverse).
fn agrees_with_parser(ours: Option<&ContentType>, part: &MessagePart<'_>) -> Result<(), Ambiguity> {
    use mail_parser::MimeHeaders;
    match (ours, part.content_type()) {
        (None, None) => Ok(()),
        (Some(ours), Some(theirs)) => {
            let same_type = theirs.ctype().eq_ignore_ascii_case(&ours.mime_type)
                && theirs
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&ours.subtype));
            let same_boundary = theirs.attribute("boundary") == ours.param("boundary");
            if same_type && same_boundary {
                Ok(())
            } else {
                Err(Ambiguity::ParserDisagrees)
            }
        }
        _ => Err(Ambiguity::ParserDisagrees),
    }
}

/// RFC 2046 §5.1.1: 1 to 70 characters of `bchars`, not ending in a space.
fn plain_boundary(boundary: &str) -> bool {
    (1..=70).contains(&boundary.len())
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b))
}

/// `--boundary` may only start a line, every line that starts with it must be a delimiter
/// line (`--boundary` or `--boundary--`, then only spaces or tabs), the closing one must be
/// there, and none may follow it. Returns the number of parts the delimiters open.
///
/// Without the closing delimiter, readers end the last part differently: `mailparse` makes
/// an empty part of a delimiter at the very end, `mail-parser` does not.
fn check_delimiter_lines(body: &[u8], boundary: &str) -> Result<usize, Ambiguity> {
    let dash_boundary = format!("--{boundary}");
    let mut closed = false;
    let mut opened = 0;
    for at in memchr::memmem::find_iter(body, dash_boundary.as_bytes()) {
        // `mail-parser` takes `--boundary` anywhere for a delimiter, `mailparse` only at the
        // start of a line.
        if at > 0 && body[at - 1] != b'\n' {
            return Err(Ambiguity::DelimiterLine);
        }
        if closed {
            return Err(Ambiguity::DelimiterLine);
        }
        let rest = &body[at + dash_boundary.len()..];
        let line = &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (close, padding) = match line.strip_prefix(b"--") {
            Some(p) => (true, p),
            None => (false, line),
        };
        if !padding.iter().all(|&b| b == b' ' || b == b'\t') {
            return Err(Ambiguity::DelimiterLine);
        }
        closed = close;
        opened += usize::from(!close);
    }
    if closed {
        Ok(opened)
    } else {
        Err(Ambiguity::Unclosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn check(raw: &str) -> Result<(), Ambiguity> {
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        check_unambiguous(&msg)
    }

    fn multipart(top_type: &str, body: &str) -> String {
        format!("From: a@b.org\r\nContent-Type: {top_type}\r\n\r\n{body}")
    }

    const PARTS: &str = "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b1--\r\n";

    #[test]
    fn plain_messages_pass() {
        check("From: a@b.org\r\n\r\nno content type\r\n").unwrap();
        check("From: a@b.org\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\nhi\r\n")
            .unwrap();
        check(&multipart("multipart/mixed; boundary=\"b1\"", PARTS)).unwrap();
        check(&multipart("multipart/mixed;\r\n boundary=b1;", PARTS)).unwrap();
        check(&multipart(
            "multipart/mixed; boundary=b1",
            "preamble\r\n--b1 \t\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1--  \r\nepilogue\r\n",
        ))
        .unwrap();
    }

    #[test]
    fn repeated_fields_and_parameters() {
        assert_eq!(
            check("Content-Type: text/plain\r\ncontent-type: text/html\r\n\r\nx\r\n"),
            Err(Ambiguity::RepeatedField("Content-Type"))
        );
        assert_eq!(
            check(
                "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n\r\nx\r\n"
            ),
            Err(Ambiguity::RepeatedField("Content-Transfer-Encoding"))
        );
        assert_eq!(
            check(&multipart(
                "multipart/mixed; boundary=b1; boundary=b2",
                PARTS
            )),
            Err(Ambiguity::RepeatedParameter)
        );
        assert_eq!(
            check(&multipart(
                "multipart/mixed; boundary=b1; BOUNDARY=b1",
                PARTS
            )),
            Err(Ambiguity::RepeatedParameter)
        );
        // in a part, too
        let body =
            "--b1\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nx\r\n--b1--\r\n";
        assert_eq!(
            check(&multipart("multipart/mixed; boundary=b1", body)),
            Err(Ambiguity::RepeatedField("Content-Type"))
        );
    }

    #[test]
    fn parameter_tricks() {
        // harmless ones, as in attachment names
        for ct in [
            "multipart/mixed; boundary=b1; name*=utf-8''%C3%A4.pdf",
            "multipart/mixed; boundary=b1; name*0*=utf-8''%C3%A4; name*1=.pdf",
            "multipart/mixed; boundary=b1; name=\"=?UTF-8?B?w6RiYy5wZGY=?=\"",
            "multipart/mixed; boundary=b1; name=\"=?iso-8859-1?Q?=E4bc_d.pdf?= =?utf-8?q?x?=\"",
        ] {
            assert_eq!(check(&multipart(ct, PARTS)), Ok(()), "{ct}");
        }
        // empty, then extended or encoded structural parameters
        let empty = [
            "multipart/mixed; boundary=b1; protocol=\"\"",
            "multipart/mixed; boundary=b1; charset=\"\"",
            "multipart/report; report-type=\"\"; boundary=b1",
        ];
        let encoded = [
            "multipart/mixed; boundary*0=b; boundary*1=1",
            "multipart/mixed; boundary=\"=?utf-8?q?b1?=\"",
            "multipart/mixed; charset=\"=?utf-8?q?utf-16?=\"; boundary=b1",
            "multipart/mixed; boundary*=''b1",
            "multipart/mixed; report-type*=x; boundary=b1",
            "multipart/mixed; charset*=utf-8''x; boundary=b1",
        ];
        for (ct, is_empty) in empty
            .iter()
            .map(|ct| (ct, true))
            .chain(encoded.iter().map(|ct| (ct, false)))
        {
            let got = check(&multipart(ct, PARTS));
            let expected = if is_empty {
                matches!(got, Err(Ambiguity::EmptyParameter(_)))
            } else {
                matches!(got, Err(Ambiguity::EncodedParameter(_)))
            };
            assert!(expected, "{ct}: {got:?}");
        }
        // encoded words that could decode to specials: mailparse decodes them before it
        // splits the parameters
        for ct in [
            "multipart/mixed; boundary=b1; name=\"=?utf-8?q?a=3B_boundary=3Db2?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?b?YTsgYm91bmRhcnk9YjI=?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?q?a=22?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-16?b?ADs=?=\"",
            "multipart/mixed; boundary=b1; name=\"=?shift_jis?q?a?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?x?a?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?q?a\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?b?!!?=\"",
            "multipart/mixed; boundary=b1; name=\"=?utf-8?q?a=3?=\"",
        ] {
            assert_eq!(
                check(&multipart(ct, PARTS)),
                Err(Ambiguity::EncodedWord),
                "{ct}"
            );
        }
        for ct in [
            "multipart/mixed; name=\"x; boundary=b2\"; boundary=b1",
            "multipart/mixed; name=\"a\\\"b\"; boundary=b1",
            "multipart/encrypted; protocol=\"a\tb\"; boundary=b1",
            "multipart/mixed; *charset=us-ascii; boundary=b1",
            "multipart/mixed; name**=x; boundary=b1",
            "multipart/mixed; name*x=x; boundary=b1",
            "multipart/mixed; name*0*1=x; boundary=b1",
            "multipart/mixed (comment); boundary=b1",
            "multipart/mixed; boundary=b1 junk",
            "multipart/mixed; boundary",
            "multipart/mixed; boundary=\"b1",
            "multipart",
            "/mixed; boundary=b1",
        ] {
            assert_eq!(
                check(&multipart(ct, PARTS)),
                Err(Ambiguity::ContentTypeSyntax),
                "{ct}"
            );
        }
    }

    #[test]
    fn transfer_encodings() {
        let text = |cte: &str| {
            check(&format!(
                "From: a@b.org\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding:{cte}\r\n\r\naGk=\r\n"
            ))
        };
        for ok in [
            " base64",
            " BASE64",
            "\tquoted-printable",
            "base64",
            "  base64",
            " 7bit",
            " x-unknown",
        ] {
            assert_eq!(text(ok), Ok(()), "{ok:?}");
        }
        // mailparse decodes none of these, mail-parser all
        for bad in [
            "\r\n base64",
            " base64\r\n ",
            // trailing white space (found by fuzzing: `base64\t`)
            " base64 ",
            " base64\t",
            // other white space in front: mailparse skips it, mail-parser does not
            "\x0cbase64",
            " \x0bbase64",
            " base64 (comment)",
            " base64 x",
            " base64;",
            "",
        ] {
            assert_eq!(text(bad), Err(Ambiguity::TransferEncoding), "{bad:?}");
        }
    }

    #[test]
    fn header_lines() {
        assert_eq!(
            check("From: a@b.org\r\nnot a field\r\nContent-Type: text/plain\r\n\r\nx\r\n"),
            Err(Ambiguity::HeaderLine)
        );
        assert_eq!(
            check("From: a@b.org\r\nContent-Type : text/plain\r\n\r\nx\r\n"),
            Err(Ambiguity::HeaderLine)
        );
        // a malformed date (found by fuzzing): mail-parser reads on across the empty line,
        // and takes the Content-Type from the body
        assert_eq!(
            check("From: a@b.org\r\nDate:-x\r\n\r\nContent-Type: text/html\r\n\r\nx\r\n"),
            Err(Ambiguity::HeaderEnd)
        );
        assert_eq!(check("From: a@b.org\r\n"), Err(Ambiguity::HeaderEnd));
        // the same date before another field: mail-parser reads on into it
        assert_eq!(
            check("From: a@b.org\r\nDate:-x\r\nContent-Type: text/html\r\n\r\nx\r\n"),
            Err(Ambiguity::FieldsDisagree)
        );
        // a lone CR: a line end for some readers, part of the value for others
        assert_eq!(
            check("From: <a@b.org>\r.x\r\nContent-Type: text/plain\r\n\r\nx\r\n"),
            Err(Ambiguity::HeaderLine)
        );
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            check(&multipart("multipart/mixed", PARTS)),
            Err(Ambiguity::Boundary)
        );
        assert_eq!(
            check(&multipart(
                &format!("multipart/mixed; boundary=\"{}\"", "x".repeat(71)),
                PARTS
            )),
            Err(Ambiguity::Boundary)
        );
        // a line that only starts like the delimiter
        let body = "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1x\r\nmore\r\n--b1--\r\n";
        assert_eq!(
            check(&multipart("multipart/mixed; boundary=b1", body)),
            Err(Ambiguity::DelimiterLine)
        );
        // the delimiter inside a line: one for mail-parser, not for mailparse
        for body in [
            "--b1\r\n\r\nx--b1\r\nContent-Type: text/html\r\n\r\ny\r\n--b1--\r\n",
            "--b1\r\n\r\nx\r\n---b1--\r\n--b1--\r\n",
        ] {
            assert_eq!(
                check(&multipart("multipart/mixed; boundary=b1", body)),
                Err(Ambiguity::DelimiterLine),
                "{body:?}"
            );
        }
        // parts after the closing delimiter
        let body = "--b1\r\n\r\nx\r\n--b1--\r\n--b1\r\nContent-Type: text/html\r\n\r\ny\r\n";
        assert_eq!(
            check(&multipart("multipart/mixed; boundary=b1", body)),
            Err(Ambiguity::DelimiterLine)
        );
        // a nested boundary that the outer one starts with
        let body = "--b1\r\nContent-Type: multipart/mixed; boundary=b1x\r\n\r\n--b1x\r\n\r\ny\r\n--b1x--\r\n--b1--\r\n";
        assert!(check(&multipart("multipart/mixed; boundary=b1", body)).is_err());
        let body = "--b1x\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\r\ny\r\n--b1--\r\n--b1x--\r\n";
        assert!(check(&multipart("multipart/mixed; boundary=b1x", body)).is_err());
    }

    #[test]
    fn unclosed_and_miscounted_multiparts() {
        let mixed = "multipart/mixed; boundary=b1";
        // no closing delimiter: mailparse makes an empty part of a delimiter at the very end
        for body in [
            "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n",
            "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1\r\n",
            "--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1",
        ] {
            assert_eq!(
                check(&multipart(mixed, body)),
                Err(Ambiguity::Unclosed),
                "{body:?}"
            );
        }
        assert!(check(&multipart(mixed, "no delimiter at all\r\n")).is_err());
        // closed before any part opened
        assert_eq!(
            check(&multipart(mixed, "preamble\r\n--b1--\r\n")),
            Err(Ambiguity::PartCount)
        );
    }
}
