//! The TURN secret that `chatmail-relay setup` makes and shares between coturn and
//! chatmail-pushnotify (`turn_secret_file`): one line of printable ASCII, no spaces.

/// Shortest secret accepted: a short one would let credentials be guessed.
pub const MIN_LEN: usize = 16;
/// Longest file read as a secret.
pub const MAX_FILE_LEN: usize = 1024;

/// The secret in a file's bytes (surrounding white space and the newline dropped); `None`
/// when they are not one usable secret.
pub fn parse(bytes: &[u8]) -> Option<String> {
    if bytes.len() > MAX_FILE_LEN {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let ok = text.len() >= MIN_LEN && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_one_printable_line() {
        assert_eq!(
            parse(b"  abcdefghijklmnop0123\n").as_deref(),
            Some("abcdefghijklmnop0123")
        );
        assert_eq!(parse(b"short\n"), None);
        assert_eq!(parse(b"abcdefgh ijklmnop0123\n"), None);
        assert_eq!(parse(b"abcdefghijklmnop\n0123\n"), None);
        assert_eq!(parse(b"\xffabcdefghijklmnop0123"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(&[b'a'; 2000]), None);
    }
}
