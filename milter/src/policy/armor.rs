//! OpenPGP ASCII armor of an encrypted message (RFC 9580 §6.2).
//!
//! ```text
//! -----BEGIN PGP MESSAGE-----
//! Header: value            (optional; refused on outbound mail)
//!                          (blank line, required after headers)
//! base64 lines
//! =CRC24                   (optional)
//! -----END PGP MESSAGE-----
//! ```
//!
//! Lines may end in LF or CRLF; trailing spaces and tabs are ignored; blank lines before the
//! armor and white space after it are allowed, anything else outside it is refused. The
//! base64 is decoded strictly (standard alphabet, canonical padding) in fixed-size chunks and
//! streamed into the [`PacketWalker`], so memory use does not grow with the message.

use super::openpgp::{PacketError, PacketSummary, PacketWalker};

const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
const END: &[u8] = b"-----END PGP MESSAGE-----";

/// Base64 characters decoded at a time (a multiple of 4).
const CHUNK: usize = 16 * 1024;

/// Whether armor header lines are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmorHeaders {
    /// Outbound: no header lines at all (a `Version:` or `Comment:` line identifies software
    /// or carries cleartext).
    Refuse,
    /// Inbound: well-formed `Name: value` lines are skipped (ProtonMail sends `Version:`).
    Allow,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmorError {
    #[error("no '-----BEGIN PGP MESSAGE-----' line")]
    NoBegin,
    #[error("no '-----END PGP MESSAGE-----' line")]
    NoEnd,
    #[error("armor header line not allowed here")]
    HeaderNotAllowed,
    #[error("malformed armor header line")]
    BadHeader,
    #[error("invalid base64 in the armor")]
    InvalidBase64,
    #[error("malformed checksum line")]
    BadChecksum,
    #[error("data after the end of the armor")]
    DataAfterEnd,
    #[error("OpenPGP data: {0}")]
    Packets(#[from] PacketError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Before,
    Headers,
    Data,
    /// After a line with `=` padding: only a checksum line or the END line may follow.
    Padded,
    /// After the checksum line: only the END line may follow.
    Checksum,
    After,
}

/// Checks an armored message and the packet sequence inside it.
pub fn check_armored_message(
    text: &[u8],
    headers: ArmorHeaders,
) -> Result<PacketSummary, ArmorError> {
    let mut section = Section::Before;
    let mut decoder = StreamDecoder::new();

    for raw_line in Lines(text) {
        let line = trim_line_end(raw_line);
        match section {
            Section::Before => {
                if line.is_empty() {
                    continue;
                }
                if line != BEGIN {
                    return Err(ArmorError::NoBegin);
                }
                section = Section::Headers;
            }
            Section::Headers => {
                if line.is_empty() {
                    section = Section::Data;
                } else if line.contains(&b':') {
                    if headers == ArmorHeaders::Refuse {
                        return Err(ArmorError::HeaderNotAllowed);
                    }
                    check_header_line(line)?;
                } else {
                    // No headers and no blank line: the data starts right away.
                    if line == END {
                        section = Section::After;
                    } else {
                        section = data_line(line, &mut decoder)?;
                    }
                }
            }
            Section::Data | Section::Padded | Section::Checksum => {
                if line == END {
                    section = Section::After;
                } else if line.is_empty() {
                    continue;
                } else if line[0] == b'=' {
                    if section == Section::Checksum || !is_checksum_line(line) {
                        return Err(ArmorError::BadChecksum);
                    }
                    section = Section::Checksum;
                } else if section != Section::Data {
                    return Err(ArmorError::InvalidBase64);
                } else {
                    section = data_line(line, &mut decoder)?;
                }
            }
            Section::After => {
                if !line.iter().all(u8::is_ascii_whitespace) {
                    return Err(ArmorError::DataAfterEnd);
                }
            }
        }
    }
    match section {
        Section::Before => Err(ArmorError::NoBegin),
        Section::After => Ok(decoder.finish()?),
        _ => Err(ArmorError::NoEnd),
    }
}

/// Handles one base64 line; returns the section the next line is in.
fn data_line(line: &[u8], decoder: &mut StreamDecoder) -> Result<Section, ArmorError> {
    let unpadded = trim_end_byte(line, b'=');
    let padding = line.len() - unpadded.len();
    if padding > 2 || unpadded.contains(&b'=') {
        return Err(ArmorError::InvalidBase64);
    }
    decoder.push(line)?;
    Ok(if padding > 0 {
        Section::Padded
    } else {
        Section::Data
    })
}

/// `=XXXX`: the optional CRC-24 (not verified: RFC 9580 lets receivers ignore it).
fn is_checksum_line(line: &[u8]) -> bool {
    line.len() == 5
        && line[0] == b'='
        && line[1..]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `Name: value` with a name of letters, digits and `-`.
fn check_header_line(line: &[u8]) -> Result<(), ArmorError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ArmorError::BadHeader)?;
    let name = &line[..colon];
    let rest = &line[colon + 1..];
    let name_ok = !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-');
    if !name_ok || !(rest.is_empty() || rest[0] == b' ') {
        return Err(ArmorError::BadHeader);
    }
    Ok(())
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

fn trim_end_byte(s: &[u8], byte: u8) -> &[u8] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == byte {
        end -= 1;
    }
    &s[..end]
}

/// Splits at `\n` (the last line may lack it).
struct Lines<'a>(&'a [u8]);

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.0.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', self.0) {
            Some(i) => {
                let line = &self.0[..i];
                self.0 = &self.0[i + 1..];
                Some(line)
            }
            None => {
                let line = self.0;
                self.0 = &[];
                Some(line)
            }
        }
    }
}

/// Collects base64 characters and decodes them in chunks into the packet walker.
struct StreamDecoder {
    pending: Vec<u8>,
    out: Vec<u8>,
    walker: PacketWalker,
}

impl StreamDecoder {
    fn new() -> Self {
        StreamDecoder {
            pending: Vec::with_capacity(CHUNK + 128),
            out: vec![0; CHUNK / 4 * 3 + 3],
            walker: PacketWalker::new(),
        }
    }

    fn push(&mut self, chars: &[u8]) -> Result<(), ArmorError> {
        let mut chars = chars;
        while !chars.is_empty() {
            let room = CHUNK - self.pending.len();
            let take = room.min(chars.len());
            self.pending.extend_from_slice(&chars[..take]);
            chars = &chars[take..];
            if self.pending.len() == CHUNK {
                self.decode_pending()?;
            }
        }
        Ok(())
    }

    fn decode_pending(&mut self) -> Result<(), ArmorError> {
        let decoded = base64_simd::STANDARD
            .decode(&self.pending, base64_simd::Out::from_slice(&mut self.out))
            .map_err(|_| ArmorError::InvalidBase64)?;
        self.walker.feed(decoded);
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<PacketSummary, ArmorError> {
        if !self.pending.is_empty() {
            self.decode_pending()?;
        }
        Ok(self.walker.finish()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ArmorHeaders::{Allow, Refuse};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    /// SKESK + SEIPDv1, both new-format headers.
    fn packets() -> Vec<u8> {
        let mut v = vec![0xc3, 13, 4, 9, 3, 8, 1, 2, 3, 4, 5, 6, 7, 8, 96];
        v.extend([0xd2, 40, 1]);
        v.extend((0..39).map(|i| i as u8));
        v
    }

    fn armor(data: &[u8], headers: &str, crc: bool, eol: &str) -> Vec<u8> {
        let b64 = STANDARD.encode(data);
        let mut s = format!("-----BEGIN PGP MESSAGE-----{eol}{headers}{eol}");
        for line in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(line).unwrap());
            s.push_str(eol);
        }
        if crc {
            s.push_str(&format!("=njUN{eol}"));
        }
        s.push_str(&format!("-----END PGP MESSAGE-----{eol}"));
        s.into_bytes()
    }

    #[test]
    fn accepts_valid_armor_with_and_without_crc_and_line_ending() {
        for crc in [true, false] {
            for eol in ["\r\n", "\n"] {
                let a = armor(&packets(), "", crc, eol);
                assert!(check_armored_message(&a, Refuse).is_ok(), "{crc} {eol:?}");
            }
        }
    }

    #[test]
    fn version_header_only_inbound() {
        let a = armor(&packets(), "Version: ProtonMail\r\n", true, "\r\n");
        assert_eq!(
            check_armored_message(&a, Refuse),
            Err(ArmorError::HeaderNotAllowed)
        );
        assert!(check_armored_message(&a, Allow).is_ok());
        let c = armor(&packets(), "Comment: hi\r\nVersion: 1\r\n", true, "\r\n");
        assert!(check_armored_message(&c, Allow).is_ok());
        let bad = armor(&packets(), "Bad header: x\r\n", true, "\r\n");
        assert_eq!(
            check_armored_message(&bad, Allow),
            Err(ArmorError::BadHeader)
        );
    }

    #[test]
    fn no_blank_line_without_headers_is_fine() {
        let a = armor(&packets(), "", false, "\r\n");
        let s = String::from_utf8(a)
            .unwrap()
            .replacen("\r\n\r\n", "\r\n", 1);
        assert!(check_armored_message(s.as_bytes(), Refuse).is_ok());
    }

    #[test]
    fn trailing_blank_lines_and_leading_blank_lines() {
        let mut a = b"\r\n\r\n".to_vec();
        a.extend(armor(&packets(), "", true, "\r\n"));
        a.extend(b"\r\n\r\n\r\n");
        assert!(check_armored_message(&a, Refuse).is_ok());
    }

    #[test]
    fn refuses_broken_armor() {
        let good = String::from_utf8(armor(&packets(), "", true, "\r\n")).unwrap();
        let cases: Vec<(String, ArmorError)> = vec![
            (good.replace("BEGIN", "BEGIN X"), ArmorError::NoBegin),
            (
                good.replace("-----END PGP MESSAGE-----\r\n", ""),
                ArmorError::NoEnd,
            ),
            (format!("hello\r\n{good}"), ArmorError::NoBegin),
            (format!("{good}P.S. cleartext"), ArmorError::DataAfterEnd),
            (good.replace("=njUN", "=nj!N"), ArmorError::BadChecksum),
            (
                good.replace("=njUN", "=njUN\r\n=njUN"),
                ArmorError::BadChecksum,
            ),
            (
                good.replace("=njUN", "=njUN\r\nAAAA"),
                ArmorError::InvalidBase64,
            ),
            (
                good.replacen("\r\n\r\n", "\r\n\r\n!!!!\r\n", 1),
                ArmorError::InvalidBase64,
            ),
            (
                good.replace("=njUN\r\n", "Hello world\r\n"),
                ArmorError::InvalidBase64,
            ),
            (String::new(), ArmorError::NoBegin),
            ("HELLOWORLD".into(), ArmorError::NoBegin),
        ];
        for (text, expected) in cases {
            assert_eq!(
                check_armored_message(text.as_bytes(), Allow),
                Err(expected.clone()),
                "{text:?}"
            );
        }
    }

    #[test]
    fn armor_without_payload_is_refused() {
        let s = "-----BEGIN PGP MESSAGE-----\r\n\r\n=njUN\r\n-----END PGP MESSAGE-----\r\n";
        assert_eq!(
            check_armored_message(s.as_bytes(), Allow),
            Err(ArmorError::Packets(PacketError::Empty))
        );
    }

    #[test]
    fn cleartext_inside_armor_is_refused() {
        let s = "-----BEGIN PGP MESSAGE-----\r\n\r\nHello, this is not encrypted\r\n-----END PGP MESSAGE-----\r\n";
        assert_eq!(
            check_armored_message(s.as_bytes(), Allow),
            Err(ArmorError::InvalidBase64)
        );
        // Valid base64 of something that is not OpenPGP.
        let a = armor(b"Hello world, plain text here", "", false, "\r\n");
        assert!(matches!(
            check_armored_message(&a, Allow),
            Err(ArmorError::Packets(_))
        ));
    }

    #[test]
    fn padding_in_the_middle_is_refused() {
        let data = packets();
        let b64 = STANDARD.encode(&data[..4]) + "\r\n" + &STANDARD.encode(&data[4..]);
        let s =
            format!("-----BEGIN PGP MESSAGE-----\r\n\r\n{b64}\r\n-----END PGP MESSAGE-----\r\n");
        assert_eq!(
            check_armored_message(s.as_bytes(), Allow),
            Err(ArmorError::InvalidBase64)
        );
    }

    #[test]
    fn large_payload_streams_through_chunks() {
        let mut data = vec![0xc3, 4, 4, 9, 3, 8];
        let body = 3 * CHUNK + 17;
        data.extend([0xd2, 255]);
        data.extend(((body + 1) as u32).to_be_bytes());
        data.push(2);
        data.extend((0..body).map(|i| (i % 251) as u8));
        let a = armor(&data, "", true, "\r\n");
        assert_eq!(check_armored_message(&a, Refuse).unwrap().seipd_version, 2);
        // One byte missing.
        let t = armor(&data[..data.len() - 1], "", true, "\r\n");
        assert_eq!(
            check_armored_message(&t, Refuse),
            Err(ArmorError::Packets(PacketError::Truncated))
        );
    }
}
