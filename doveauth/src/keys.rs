//! The dict keys Dovecot's auth sends (`auth.conf`: `password_key = passdb/%Ew"%Eu`,
//! `user_key = userdb/%Eu`; dict auth adds `shared/`).

/// A parsed request key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `shared/passdb/<password>"<user>`
    Passdb { password: String, user: String },
    /// `shared/userdb/<user>`
    Userdb { user: String },
    /// `shared/last-login/<user>`
    LastLogin { user: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key outside the shared/ namespace")]
    NotShared,
    #[error("unknown key type")]
    UnknownType,
    #[error("passdb key without '\"' separator")]
    NoSeparator,
    #[error("dangling backslash in key")]
    DanglingEscape,
}

/// Parses a key. `%E` escaped `"`, `'` and `\` with a backslash in each part; the first
/// unescaped `"` separates password and user.
pub fn parse(key: &str) -> Result<Key, KeyError> {
    let rest = key.strip_prefix("shared/").ok_or(KeyError::NotShared)?;
    if let Some(rest) = rest.strip_prefix("passdb/") {
        let (password, after) = unescape_until_quote(rest)?;
        let after = after.ok_or(KeyError::NoSeparator)?;
        let (user, _) = unescape_until_quote(after)?;
        Ok(Key::Passdb { password, user })
    } else if let Some(user) = rest.strip_prefix("userdb/") {
        Ok(Key::Userdb {
            user: unescape_all(user)?,
        })
    } else if let Some(user) = rest.strip_prefix("last-login/") {
        Ok(Key::LastLogin {
            user: user.to_string(),
        })
    } else {
        Err(KeyError::UnknownType)
    }
}

/// Unescapes up to the first unescaped `"`; returns the text and what follows the quote.
fn unescape_until_quote(s: &str) -> Result<(String, Option<&str>), KeyError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = memchr::memchr2(b'\\', b'"', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        if rest.as_bytes()[i] == b'"' {
            return Ok((out, Some(&rest[i + 1..])));
        }
        rest = push_escaped(&mut out, &rest[i + 1..])?;
    }
    out.push_str(rest);
    Ok((out, None))
}

fn unescape_all(s: &str) -> Result<String, KeyError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        rest = push_escaped(&mut out, &rest[i + 1..])?;
    }
    out.push_str(rest);
    Ok(out)
}

/// Pushes the character after a backslash; returns what follows it.
fn push_escaped<'a>(out: &mut String, after_backslash: &'a str) -> Result<&'a str, KeyError> {
    let c = after_backslash
        .chars()
        .next()
        .ok_or(KeyError::DanglingEscape)?;
    out.push(c);
    Ok(&after_backslash[c.len_utf8()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passdb_keys_with_escapes() {
        assert_eq!(
            parse(
                r#"shared/passdb/laksjdlaksjdlak\\sjdlk\"12j\'3l1/k2j3123"some42123@chat.example.org"#
            ),
            Ok(Key::Passdb {
                password: r#"laksjdlaksjdlak\sjdlk"12j'3l1/k2j3123"#.into(),
                user: "some42123@chat.example.org".into()
            })
        );
        assert_eq!(
            parse(r#"shared/passdb/"a@b"#),
            Ok(Key::Passdb {
                password: "".into(),
                user: "a@b".into()
            })
        );
        assert_eq!(parse(r"shared/passdb/pw\"), Err(KeyError::DanglingEscape));
        assert_eq!(parse("shared/passdb/nosep"), Err(KeyError::NoSeparator));
    }

    #[test]
    fn other_keys() {
        assert_eq!(
            parse("shared/userdb/a@b"),
            Ok(Key::Userdb { user: "a@b".into() })
        );
        assert_eq!(
            parse("shared/last-login/a@b"),
            Ok(Key::LastLogin { user: "a@b".into() })
        );
        assert_eq!(
            parse(r"shared/userdb/a\\b\ü\@x"),
            Ok(Key::Userdb {
                user: r"a\bü@x".into()
            })
        );
        assert_eq!(parse(r"shared/userdb/a\"), Err(KeyError::DanglingEscape));
        assert_eq!(parse(r#"priv/passdb/x"y"#), Err(KeyError::NotShared));
        assert_eq!(parse("shared/other/x"), Err(KeyError::UnknownType));
    }
}
