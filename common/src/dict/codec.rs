//! Lines of the dict protocol: parsing requests, formatting replies.
//!
//! Fields are separated by TAB; inside a field `\x01` escapes itself (`\x011`), TAB (`\x01t`),
//! CR (`\x01r`), LF (`\x01n`) and NUL (`\x010`).

use std::borrow::Cow;

/// Longest request line accepted, in bytes (Dovecot's own limit is 64 KiB).
pub const MAX_LINE: usize = 64 * 1024;

/// A request from Dovecot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Hello {
        major: u32,
        minor: u32,
        value_type: String,
        user: String,
        dict: String,
    },
    Lookup {
        key: String,
        user: String,
    },
    Iterate {
        flags: u32,
        max_rows: u64,
        path: String,
        user: String,
    },
    Begin {
        id: String,
        user: String,
    },
    Set {
        id: String,
        key: String,
        value: String,
    },
    Unset {
        id: String,
        key: String,
    },
    AtomicInc {
        id: String,
        key: String,
        diff: i64,
    },
    /// `C` (and the legacy async `D`); the only transaction command with a reply.
    Commit {
        id: String,
    },
    Rollback {
        id: String,
    },
    /// `T` (timestamp) and `V` (hide log values): transaction options we do not use.
    TransactionOption {
        id: String,
    },
}

/// What kind of reply a request line wants, known from its first byte even if the rest is
/// garbage. Needed to keep replies in step with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    None,
    Lookup,
    Iterate,
    Commit,
}

impl ReplyKind {
    pub fn of(line: &[u8]) -> ReplyKind {
        match line.first() {
            Some(b'L') => ReplyKind::Lookup,
            Some(b'I') => ReplyKind::Iterate,
            Some(b'C' | b'D') => ReplyKind::Commit,
            Some(b'H' | b'B' | b'S' | b'U' | b'A' | b'R' | b'T' | b'V') => ReplyKind::None,
            // unknown commands are answered with a failure
            _ => ReplyKind::Lookup,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty line")]
    Empty,
    #[error("unknown command {0:?}")]
    UnknownCommand(char),
    #[error("invalid escape sequence")]
    BadEscape,
    #[error("field is not UTF-8")]
    InvalidUtf8,
    #[error("missing field {0}")]
    MissingField(&'static str),
    #[error("field {0} is not a number")]
    BadNumber(&'static str),
}

/// One transaction operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set { key: String, value: String },
    Unset { key: String },
    Inc { key: String, diff: i64 },
}

/// Reply to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupReply {
    Found(String),
    NotFound,
    Failed(String),
}

/// Reply to a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitReply {
    Ok,
    NotFound,
    Failed(String),
}

/// Escapes one field.
pub fn escape(s: &str) -> Cow<'_, str> {
    let bytes = s.as_bytes();
    // the common case (nothing to escape) is two SIMD scans
    if memchr::memchr3(b'\t', b'\r', b'\n', bytes).is_none()
        && memchr::memchr2(0, 1, bytes).is_none()
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\x01' => out.push_str("\x011"),
            '\t' => out.push_str("\x01t"),
            '\r' => out.push_str("\x01r"),
            '\n' => out.push_str("\x01n"),
            '\0' => out.push_str("\x010"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Unescapes one field.
pub fn unescape(field: &[u8]) -> Result<String, ParseError> {
    let mut out = Vec::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = memchr::memchr(1, rest) {
        out.extend_from_slice(&rest[..i]);
        out.push(match rest.get(i + 1) {
            Some(b'1') => 1,
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(b'0') => 0,
            _ => return Err(ParseError::BadEscape),
        });
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).map_err(|_| ParseError::InvalidUtf8)
}

struct Fields<'a> {
    iter: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl Fields<'_> {
    fn next(&mut self, name: &'static str) -> Result<String, ParseError> {
        unescape(self.iter.next().ok_or(ParseError::MissingField(name))?)
    }

    /// A trailing field that older clients may leave out.
    fn next_or_empty(&mut self) -> Result<String, ParseError> {
        self.iter
            .next()
            .map(unescape)
            .unwrap_or_else(|| Ok(String::new()))
    }

    fn number<T: std::str::FromStr>(&mut self, name: &'static str) -> Result<T, ParseError> {
        self.next(name)?
            .parse()
            .map_err(|_| ParseError::BadNumber(name))
    }
}

/// Parses one request line (without its trailing LF; a trailing CR is tolerated).
pub fn parse_line(line: &[u8]) -> Result<Command, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (&cmd, rest) = line.split_first().ok_or(ParseError::Empty)?;
    let is_tab: fn(&u8) -> bool = |b| *b == b'\t';
    let mut f = Fields {
        iter: rest.split(is_tab),
    };
    Ok(match cmd {
        b'H' => Command::Hello {
            major: f.number("major")?,
            minor: f.number("minor")?,
            value_type: f.next_or_empty()?,
            user: f.next_or_empty()?,
            dict: f.next_or_empty()?,
        },
        b'L' => Command::Lookup {
            key: f.next("key")?,
            user: f.next_or_empty()?,
        },
        b'I' => Command::Iterate {
            flags: f.number("flags")?,
            max_rows: f.number("max_rows")?,
            path: f.next("path")?,
            user: f.next_or_empty()?,
        },
        b'B' => Command::Begin {
            id: f.next("id")?,
            user: f.next_or_empty()?,
        },
        b'S' => Command::Set {
            id: f.next("id")?,
            key: f.next("key")?,
            value: f.next_or_empty()?,
        },
        b'U' => Command::Unset {
            id: f.next("id")?,
            key: f.next("key")?,
        },
        b'A' => Command::AtomicInc {
            id: f.next("id")?,
            key: f.next("key")?,
            diff: f.number("diff")?,
        },
        b'C' | b'D' => Command::Commit { id: f.next("id")? },
        b'R' => Command::Rollback { id: f.next("id")? },
        b'T' | b'V' => Command::TransactionOption { id: f.next("id")? },
        other => return Err(ParseError::UnknownCommand(other as char)),
    })
}

impl LookupReply {
    pub fn encode(&self, out: &mut String) {
        match self {
            LookupReply::Found(v) => {
                // one allocation of the right size: growing the string would realloc, which
                // takes glibc's arena lock (contended with many connection threads)
                out.reserve(v.len() + 2);
                out.push('O');
                out.push_str(&escape(v));
            }
            LookupReply::NotFound => out.push('N'),
            LookupReply::Failed(e) => {
                out.push('F');
                out.push_str(&escape(e));
            }
        }
        out.push('\n');
    }
}

/// Encodes an iteration result: one `O<key>\t<value>` row each, then an empty line.
pub fn encode_iterate(rows: &Result<Vec<(String, String)>, String>, out: &mut String) {
    match rows {
        Ok(rows) => {
            for (k, v) in rows {
                out.push('O');
                out.push_str(&escape(k));
                out.push('\t');
                out.push_str(&escape(v));
                out.push('\n');
            }
            out.push('\n');
        }
        Err(e) => {
            out.push('F');
            out.push_str(&escape(e));
            out.push('\n');
        }
    }
}

impl CommitReply {
    pub fn encode(&self, id: &str, out: &mut String) {
        match self {
            CommitReply::Ok => {
                out.push('O');
                out.push_str(&escape(id));
            }
            CommitReply::NotFound => {
                out.push('N');
                out.push_str(&escape(id));
            }
            CommitReply::Failed(e) => {
                out.push('F');
                out.push_str(&escape(id));
                out.push('\t');
                out.push_str(&escape(e));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_dovecot_sends() {
        assert_eq!(
            parse_line(b"H3\t2\t0\t\tauth").unwrap(),
            Command::Hello {
                major: 3,
                minor: 2,
                value_type: "0".into(),
                user: "".into(),
                dict: "auth".into()
            }
        );
        assert_eq!(
            parse_line(b"Lshared/passdb/se\x01tcret\"good@x\tgood@x").unwrap(),
            Command::Lookup {
                key: "shared/passdb/se\tcret\"good@x".into(),
                user: "good@x".into()
            }
        );
        assert_eq!(
            parse_line(b"I0\t0\tshared/userdb/\t").unwrap(),
            Command::Iterate {
                flags: 0,
                max_rows: 0,
                path: "shared/userdb/".into(),
                user: "".into()
            }
        );
        assert_eq!(
            parse_line(b"S1\tshared/last-login/a@b\t1700000000").unwrap(),
            Command::Set {
                id: "1".into(),
                key: "shared/last-login/a@b".into(),
                value: "1700000000".into()
            }
        );
        assert_eq!(
            parse_line(b"Stx00\tpriv/guid/messagenew").unwrap(),
            Command::Set {
                id: "tx00".into(),
                key: "priv/guid/messagenew".into(),
                value: "".into()
            }
        );
        assert_eq!(
            parse_line(b"C1").unwrap(),
            Command::Commit { id: "1".into() }
        );
        assert_eq!(
            parse_line(b"D7\r").unwrap(),
            Command::Commit { id: "7".into() }
        );
        assert_eq!(
            parse_line(b"A1\tk\t-5").unwrap(),
            Command::AtomicInc {
                id: "1".into(),
                key: "k".into(),
                diff: -5
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_line(b""), Err(ParseError::Empty));
        assert_eq!(parse_line(b"Zfoo"), Err(ParseError::UnknownCommand('Z')));
        assert_eq!(
            parse_line(b"L"),
            Ok(Command::Lookup {
                key: "".into(),
                user: "".into()
            })
        );
        assert_eq!(parse_line(b"Lk\x01x\tu"), Err(ParseError::BadEscape));
        assert_eq!(parse_line(b"Lk\x01"), Err(ParseError::BadEscape));
        assert_eq!(parse_line(b"L\xff\xfe\tu"), Err(ParseError::InvalidUtf8));
        assert_eq!(parse_line(b"Ix\t0\tp"), Err(ParseError::BadNumber("flags")));
        assert_eq!(parse_line(b"S1"), Err(ParseError::MissingField("key")));
        assert_eq!(ReplyKind::of(b"L\xff"), ReplyKind::Lookup);
        assert_eq!(ReplyKind::of(b"Cgarbage"), ReplyKind::Commit);
        assert_eq!(ReplyKind::of(b"Sx"), ReplyKind::None);
    }

    #[test]
    fn replies() {
        let mut out = String::new();
        LookupReply::Found("a\tb\nc".into()).encode(&mut out);
        LookupReply::NotFound.encode(&mut out);
        LookupReply::Failed("bad".into()).encode(&mut out);
        encode_iterate(
            &Ok(vec![("k1".into(), "".into()), ("k\t2".into(), "v".into())]),
            &mut out,
        );
        encode_iterate(&Ok(vec![]), &mut out);
        CommitReply::Ok.encode("5", &mut out);
        CommitReply::Failed("no".into()).encode("6", &mut out);
        assert_eq!(
            out,
            "Oa\x01tb\x01nc\nN\nFbad\nOk1\t\nOk\x01t2\tv\n\n\nO5\nF6\tno\n"
        );
    }

    proptest! {
        #[test]
        fn escape_roundtrip(s in "\\PC*|[\\x00-\\x02\\t\\r\\n a]*") {
            let e = escape(&s);
            prop_assert!(!e.contains(['\t', '\n', '\r', '\0']));
            prop_assert_eq!(unescape(e.as_bytes()).unwrap(), s);
        }

        #[test]
        fn parse_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
            let _ = ReplyKind::of(&line);
        }

        #[test]
        fn set_roundtrip(id in "[0-9a-z]{1,5}", key in "\\PC*", value in "\\PC*") {
            let line = format!("S{}\t{}\t{}", escape(&id), escape(&key), escape(&value));
            prop_assert_eq!(parse_line(line.as_bytes()).unwrap(), Command::Set { id, key, value });
        }
    }
}
