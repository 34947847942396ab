//! The format of `<mailbox>/metadata.json` and the validity rules of device tokens (pure).
//!
//! Current form, written by us and by the reference:
//! `{"devicetoken": {"<token>": <unix seconds when last set>, ...}}`, in insertion order.
//! Legacy form, read only: `{"devicetoken": ["<token>", ...]}`; its tokens count as set now.
//! Other top-level keys are kept as they are.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Tokens expire this long after they were last set.
pub const TOKEN_LIFETIME: i64 = 90 * 86_400;
/// Tokens dated further than this in the future are invalid.
pub const FUTURE_TOLERANCE: i64 = 60;
/// Longest device token accepted, in bytes. Real tokens (APNs, FCM, UnifiedPush endpoints)
/// are well below 1 KiB; the limit keeps one SETMETADATA from bloating the file and every
/// later notification.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Most tokens kept per address; adding one more drops the least recently set. One account
/// has a few devices; the bound keeps a client from turning one incoming message into
/// thousands of gateway requests.
pub const MAX_TOKENS: usize = 64;

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("empty device token")]
    Empty,
    #[error("device token of {0} bytes is longer than the limit of {MAX_TOKEN_LEN}")]
    TooLong(usize),
    #[error("device token contains white space or a control character")]
    BadChar,
}

/// Checks a device token: non-empty, at most [`MAX_TOKEN_LEN`] bytes, and free of white space
/// (tokens are served space-separated) and control characters (the queue file is
/// line-based).
pub fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong(token.len()));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(TokenError::BadChar);
    }
    Ok(())
}

/// Whether a token last set at `ts` is valid at `now`.
pub fn is_valid_at(ts: i64, now: i64) -> bool {
    now.saturating_sub(TOKEN_LIFETIME) < ts && ts < now.saturating_add(FUTURE_TOLERANCE)
}

/// The parsed content of `metadata.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenFile {
    /// Tokens with the time they were last set, in insertion order, without duplicates.
    pub tokens: Vec<(String, i64)>,
    /// The file held the legacy list form (timestamps were filled in with "now").
    pub legacy: bool,
    /// Other top-level keys, kept verbatim.
    pub other: Vec<(String, serde_json::Value)>,
}

impl TokenFile {
    /// Parses the file content; legacy tokens get the timestamp `now`.
    pub fn parse(text: &str, now: i64) -> Result<TokenFile, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut file = de.deserialize_map(FileVisitor { now })?;
        de.end()?;
        file.dedup();
        Ok(file)
    }

    /// The file content: compact JSON in the reference's layout.
    pub fn to_json(&self) -> String {
        let mut out = String::from("{\"devicetoken\": {");
        for (i, (token, ts)) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&json_string(token));
            out.push_str(": ");
            out.push_str(&ts.to_string());
        }
        out.push('}');
        for (key, value) in &self.other {
            out.push_str(", ");
            out.push_str(&json_string(key));
            out.push_str(": ");
            out.push_str(&value.to_string());
        }
        out.push('}');
        out
    }

    /// Tokens valid at `now`, in insertion order.
    pub fn valid_tokens(&self, now: i64) -> Vec<String> {
        self.tokens
            .iter()
            .filter(|(_, ts)| is_valid_at(*ts, now))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Drops every token that is not valid at `now`; true if any was dropped.
    pub fn prune(&mut self, now: i64) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|(_, ts)| is_valid_at(*ts, now));
        self.tokens.len() != before
    }

    /// Adds `token` set at `now`, or moves the timestamp of an existing one (its position is
    /// kept), drops invalid tokens, and keeps at most [`MAX_TOKENS`] (the most recently set).
    pub fn add(&mut self, token: &str, now: i64) {
        match self.tokens.iter_mut().find(|(t, _)| t == token) {
            Some(entry) => entry.1 = now,
            None => self.tokens.push((token.to_string(), now)),
        }
        self.prune(now);
        while self.tokens.len() > MAX_TOKENS {
            let oldest = self
                .tokens
                .iter()
                .enumerate()
                .min_by_key(|(i, (_, ts))| (*ts, *i))
                .map(|(i, _)| i)
                .unwrap_or(0);
            self.tokens.remove(oldest);
        }
    }

    /// Removes `token`; true if it was there.
    pub fn remove(&mut self, token: &str) -> bool {
        let before = self.tokens.len();
        self.tokens.retain(|(t, _)| t != token);
        self.tokens.len() != before
    }

    /// Keeps the first position of a repeated token, with its latest timestamp.
    fn dedup(&mut self) {
        let mut out: Vec<(String, i64)> = Vec::with_capacity(self.tokens.len());
        for (token, ts) in self.tokens.drain(..) {
            match out.iter_mut().find(|(t, _)| *t == token) {
                Some(entry) => entry.1 = entry.1.max(ts),
                None => out.push((token, ts)),
            }
        }
        self.tokens = out;
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

struct FileVisitor {
    now: i64,
}

impl<'de> Visitor<'de> for FileVisitor {
    type Value = TokenFile;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TokenFile, A::Error> {
        let mut file = TokenFile::default();
        while let Some(key) = map.next_key::<String>()? {
            if key == "devicetoken" {
                let tokens = map.next_value_seed(TokensSeed { now: self.now })?;
                file.legacy = tokens.1;
                file.tokens = tokens.0;
            } else {
                let value = map.next_value::<serde_json::Value>()?;
                file.other.push((key, value));
            }
        }
        Ok(file)
    }
}

/// The `devicetoken` value: an object `{token: ts}` or a legacy list of tokens.
struct TokensSeed {
    now: i64,
}

impl<'de> de::DeserializeSeed<'de> for TokensSeed {
    type Value = (Vec<(String, i64)>, bool);

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TokensSeed {
    type Value = (Vec<(String, i64)>, bool);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tokens to timestamps, or a list of tokens")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut tokens = Vec::new();
        while let Some((token, ts)) = map.next_entry::<String, Timestamp>()? {
            tokens.push((token, ts.0));
        }
        Ok((tokens, false))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut tokens = Vec::new();
        while let Some(token) = seq.next_element::<String>()? {
            tokens.push((token, self.now));
        }
        Ok((tokens, true))
    }
}

/// A unix timestamp, integer or (truncated) float.
struct Timestamp(i64);

impl<'de> de::Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a unix timestamp")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
                if v.is_finite() {
                    // `as` saturates; sub-second precision does not matter here
                    Ok(Timestamp(v as i64))
                } else {
                    Err(E::custom("timestamp is not a finite number"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_871_414;

    #[test]
    fn reads_and_writes_the_reference_bytes() {
        let text = r#"{"devicetoken": {"tok1": 1795871414, "tok2": 1795871414}}"#;
        let f = TokenFile::parse(text, NOW).unwrap();
        assert_eq!(f.tokens, vec![("tok1".into(), NOW), ("tok2".into(), NOW)]);
        assert!(!f.legacy);
        assert_eq!(f.to_json(), text);
    }

    #[test]
    fn insertion_order_is_kept_not_sorted() {
        let mut f = TokenFile::default();
        for t in ["zz", "1111", "aa", "2222"] {
            f.add(t, NOW);
        }
        // re-adding keeps the position and moves the timestamp
        f.add("zz", NOW + 5);
        assert_eq!(f.valid_tokens(NOW + 5), vec!["zz", "1111", "aa", "2222"]);
        let back = TokenFile::parse(&f.to_json(), NOW + 5).unwrap();
        assert_eq!(back, f);
        assert_eq!(back.tokens[0], ("zz".into(), NOW + 5));
    }

    #[test]
    fn legacy_list_form() {
        let f = TokenFile::parse(r#"{"devicetoken": ["b", "a", "b"]}"#, NOW).unwrap();
        assert!(f.legacy);
        assert_eq!(f.tokens, vec![("b".into(), NOW), ("a".into(), NOW)]);
        assert_eq!(
            f.to_json(),
            r#"{"devicetoken": {"b": 1795871414, "a": 1795871414}}"#
        );
    }

    #[test]
    fn other_keys_and_float_timestamps_and_empty_files() {
        let f = TokenFile::parse(
            r#"{"x": [1, {"y": null}], "devicetoken": {"t": 1795871414.7}}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(f.tokens, vec![("t".into(), NOW)]);
        assert_eq!(
            f.to_json(),
            r#"{"devicetoken": {"t": 1795871414}, "x": [1,{"y":null}]}"#
        );
        assert_eq!(TokenFile::parse("{}", NOW).unwrap(), TokenFile::default());
    }

    #[test]
    fn corrupt_content_is_an_error() {
        for bad in [
            "",
            "{",
            "[]",
            "null",
            r#"{"devicetoken": 5}"#,
            r#"{"devicetoken": {"t": "soon"}}"#,
            r#"{"devicetoken": [1, 2]}"#,
            r#"{"devicetoken": {}} trailing"#,
            "\u{0}\u{1}binary",
        ] {
            assert!(TokenFile::parse(bad, NOW).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validity_window() {
        let day = 86_400;
        assert!(is_valid_at(NOW, NOW));
        assert!(is_valid_at(NOW - 90 * day + 1, NOW));
        assert!(!is_valid_at(NOW - 90 * day, NOW));
        assert!(is_valid_at(NOW + 59, NOW));
        assert!(!is_valid_at(NOW + 60, NOW));
        assert!(!is_valid_at(i64::MIN, NOW));
        assert!(!is_valid_at(i64::MAX, NOW));

        let mut f = TokenFile {
            tokens: vec![
                ("old".into(), NOW - 90 * day),
                ("fresh".into(), NOW - 89 * day),
                ("future".into(), NOW + 3600),
            ],
            ..TokenFile::default()
        };
        assert_eq!(f.valid_tokens(NOW), vec!["fresh"]);
        // adding prunes expired and future tokens
        f.add("new", NOW);
        assert_eq!(
            f.tokens,
            vec![("fresh".into(), NOW - 89 * day), ("new".into(), NOW)]
        );
        assert!(!f.prune(NOW));
        assert!(f.prune(NOW + day + 1));
        assert_eq!(f.valid_tokens(NOW + day + 1), vec!["new"]);
    }

    #[test]
    fn at_most_max_tokens_are_kept() {
        let mut f = TokenFile::default();
        for i in 0..MAX_TOKENS as i64 {
            f.add(&format!("t{i}"), NOW - 1000 + i);
        }
        // re-set t0: it keeps its place and is now the most recent
        f.add("t0", NOW);
        f.add("extra1", NOW);
        f.add("extra2", NOW);
        assert_eq!(f.tokens.len(), MAX_TOKENS);
        assert_eq!(f.tokens[0], ("t0".into(), NOW));
        assert!(!f.tokens.iter().any(|(t, _)| t == "t1" || t == "t2"));
        assert!(f.tokens.iter().any(|(t, _)| t == "t3"));
        assert_eq!(f.tokens.last().unwrap().0, "extra2");
    }

    #[test]
    fn remove_token() {
        let mut f = TokenFile::default();
        f.add("a", NOW);
        f.add("b", NOW);
        assert!(f.remove("a"));
        assert!(!f.remove("a"));
        assert_eq!(f.valid_tokens(NOW), vec!["b"]);
    }

    #[test]
    fn token_checks() {
        assert_eq!(check_token("abc:DEF-_/+=."), Ok(()));
        assert_eq!(check_token(""), Err(TokenError::Empty));
        assert_eq!(check_token(&"x".repeat(MAX_TOKEN_LEN)), Ok(()));
        assert_eq!(
            check_token(&"x".repeat(MAX_TOKEN_LEN + 1)),
            Err(TokenError::TooLong(MAX_TOKEN_LEN + 1))
        );
        for bad in [
            "a b",
            "a\nb",
            "a\tb",
            "a\u{0}",
            "\u{7f}",
            "a\u{85}b",
            "a\u{2028}",
        ] {
            assert_eq!(check_token(bad), Err(TokenError::BadChar), "{bad:?}");
        }
        assert_eq!(check_token("ünïcødé"), Ok(()));
    }

    #[test]
    fn token_strings_are_json_escaped() {
        let mut f = TokenFile::default();
        f.add("q\"uo\\te", NOW);
        let back = TokenFile::parse(&f.to_json(), NOW).unwrap();
        assert_eq!(back.tokens[0].0, "q\"uo\\te");
    }
}
