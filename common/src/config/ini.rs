//! The INI dialect of `chatmail.ini`, as the reference reads it (Python `iniconfig`).
//!
//! No crate parses exactly this dialect: `#` inside a value is part of the value, an indented
//! line continues the previous value (joined with `\n`), a duplicate key or section is an error,
//! and there are no quotes or escapes. The whole grammar is a dozen lines, so it lives here.

use std::collections::BTreeMap;

/// One `[section]` of an INI file: key → (value, line number).
pub type Section = BTreeMap<String, (String, usize)>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct IniError {
    pub line: usize,
    pub reason: String,
}

fn err(line: usize, reason: impl Into<String>) -> IniError {
    IniError {
        line,
        reason: reason.into(),
    }
}

/// Parses INI text into sections.
pub fn parse(text: &str) -> Result<BTreeMap<String, Section>, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // continuation of the previous value
            let (Some(section), Some(key)) = (&current, &last_key) else {
                return err_line(lineno, "unexpected indented line");
            };
            if let Some((value, _)) = sections.get_mut(section).and_then(|s| s.get_mut(key)) {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                return err_line(lineno, "section header without closing ']'");
            };
            let name = name.trim().to_string();
            if sections.contains_key(&name) {
                return err_line(lineno, format!("duplicate section [{name}]"));
            }
            sections.insert(name.clone(), Section::new());
            current = Some(name);
            last_key = None;
            continue;
        }
        let Some(section) = &current else {
            return err_line(lineno, "value outside of a [section]");
        };
        let (key, value) = match (trimmed.find('='), trimmed.find(':')) {
            (Some(eq), _) => (&trimmed[..eq], &trimmed[eq + 1..]),
            (None, Some(colon)) => (&trimmed[..colon], &trimmed[colon + 1..]),
            (None, None) => return err_line(lineno, "expected 'name = value'"),
        };
        let key = key.trim().to_string();
        if key.is_empty() {
            return err_line(lineno, "empty key");
        }
        let entries = sections.entry(section.clone()).or_default();
        if entries.contains_key(&key) {
            return err_line(lineno, format!("duplicate key '{key}'"));
        }
        entries.insert(key.clone(), (value.trim().to_string(), lineno));
        last_key = Some(key);
    }
    Ok(sections)
}

fn err_line<T>(line: usize, reason: impl Into<String>) -> Result<T, IniError> {
    Err(err(line, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> Section {
        parse(text).unwrap().remove("params").unwrap()
    }

    #[test]
    fn values_comments_and_continuations() {
        let s = params(
            "\u{feff}# top\n[params]\n; c\nmail_domain = chat.example.org\nx = a # not a comment\n\
             privacy_postal =\n    Line 1\n    Line 2\nempty =\ncolon: v\n",
        );
        assert_eq!(s["mail_domain"].0, "chat.example.org");
        assert_eq!(s["x"].0, "a # not a comment");
        assert_eq!(s["privacy_postal"].0, "\nLine 1\nLine 2");
        assert_eq!(s["empty"].0, "");
        assert_eq!(s["colon"].0, "v");
        assert_eq!(s["x"].1, 5);
    }

    #[test]
    fn duplicates_and_garbage_are_errors() {
        assert_eq!(parse("[p]\na=1\na=2\n").unwrap_err().line, 3);
        assert!(parse("[p]\n[p]\n").is_err());
        assert!(parse("a=1\n").is_err());
        assert!(parse("[p\n").is_err());
        assert!(parse("[p]\njunk\n").is_err());
        assert!(parse("[p]\n  cont\n").is_err());
    }
}
