//! The OpenPGP packet sequence of an encrypted message (RFC 9580 §4.2, §10.3).
//!
//! An acceptable message is zero or more session-key packets (PKESK, tag 1; SKESK, tag 3)
//! followed by exactly one SEIPD packet (tag 18, version 1 or 2) that ends exactly at the end
//! of the data. Both packet header formats are accepted (new and legacy), and partial body
//! lengths on the SEIPD packet. Nothing else: no literal, compressed or marker packets, no
//! padding, no trailing data.
//!
//! [`PacketWalker`] is fed the decoded bytes in chunks of any size and only looks at packet
//! headers: it keeps a few bytes of state and skips packet bodies without copying them.

/// Public-Key Encrypted Session Key packet.
pub const TAG_PKESK: u8 = 1;
/// Symmetric-Key Encrypted Session Key packet.
pub const TAG_SKESK: u8 = 3;
/// Symmetrically Encrypted and Integrity Protected Data packet.
pub const TAG_SEIPD: u8 = 18;

/// Why a byte sequence is not an acceptable encrypted OpenPGP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("no OpenPGP data")]
    Empty,
    #[error("byte {offset} is not an OpenPGP packet header")]
    NotAPacket { offset: u64 },
    #[error("packet type {tag} is not allowed in an encrypted message")]
    UnexpectedPacket { tag: u8 },
    #[error("packet type {tag} uses a partial body length")]
    PartialLengthNotAllowed { tag: u8 },
    #[error("encrypted data packet of version {version} (expected 1 or 2)")]
    BadSeipdVersion { version: u8 },
    #[error("empty encrypted data packet")]
    EmptySeipd,
    #[error("the data ends inside a packet")]
    Truncated,
    #[error("data after the encrypted data packet")]
    TrailingData,
    #[error("no encrypted data packet")]
    NoSeipd,
}

/// What an accepted packet sequence contained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSummary {
    /// Number of PKESK and SKESK packets.
    pub session_keys: u32,
    /// Version of the SEIPD packet (1 or 2).
    pub seipd_version: u8,
}

/// Body length of one packet (or of one chunk of a packet with partial lengths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// The body (or its last chunk) has this many bytes.
    Fixed(u64),
    /// A chunk of this many bytes, followed by another length.
    Partial(u64),
    /// Legacy header type 3: the packet extends to the end of the data.
    Indeterminate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Expecting the header of the next packet (`pending` holds its first bytes).
    PacketStart,
    /// Inside a packet body.
    Body {
        tag: u8,
        remaining: u64,
        /// Another length header follows this chunk.
        more: bool,
        /// The next body byte is the SEIPD version octet.
        need_version: bool,
    },
    /// Expecting the next partial-length header of a packet.
    ChunkLength { tag: u8, need_version: bool },
    /// A legacy packet of indeterminate length: everything up to the end belongs to it.
    ToEnd { tag: u8, need_version: bool },
    /// The SEIPD packet is complete; nothing may follow.
    Done,
    /// An error was found; further input is ignored.
    Failed(PacketError),
}

/// Streaming check of the packet sequence. Feed decoded bytes with [`PacketWalker::feed`],
/// then call [`PacketWalker::finish`].
#[derive(Debug, Clone)]
pub struct PacketWalker {
    state: State,
    pending: [u8; 6],
    pending_len: usize,
    offset: u64,
    session_keys: u32,
    seipd_version: u8,
}

impl Default for PacketWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketWalker {
    pub fn new() -> Self {
        PacketWalker {
            state: State::PacketStart,
            pending: [0; 6],
            pending_len: 0,
            offset: 0,
            session_keys: 0,
            seipd_version: 0,
        }
    }

    /// Consumes the next decoded bytes. Errors are sticky: once one is found, `finish`
    /// reports it, and feeding more does nothing.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.state {
                State::Failed(_) => return,
                State::Done => {
                    self.state = State::Failed(PacketError::TrailingData);
                    return;
                }
                State::Body {
                    tag,
                    remaining,
                    more,
                    need_version,
                } => {
                    if remaining == 0 {
                        self.end_of_chunk(tag, more, need_version);
                        continue;
                    }
                    if need_version {
                        if let Err(e) = check_seipd_version(data[0]) {
                            self.state = State::Failed(e);
                            return;
                        }
                        self.seipd_version = data[0];
                    }
                    let take = remaining.min(data.len() as u64);
                    self.offset += take;
                    data = &data[take as usize..];
                    self.state = State::Body {
                        tag,
                        remaining: remaining - take,
                        more,
                        need_version: false,
                    };
                }
                State::ToEnd { tag, need_version } => {
                    if need_version {
                        if let Err(e) = check_seipd_version(data[0]) {
                            self.state = State::Failed(e);
                            return;
                        }
                        self.seipd_version = data[0];
                    }
                    self.offset += data.len() as u64;
                    self.state = State::ToEnd {
                        tag,
                        need_version: false,
                    };
                    return;
                }
                State::PacketStart | State::ChunkLength { .. } => {
                    self.pending[self.pending_len] = data[0];
                    self.pending_len += 1;
                    self.offset += 1;
                    data = &data[1..];
                    self.try_header();
                }
            }
        }
        // A chunk that ends exactly at a packet boundary: settle it now, so that `finish`
        // sees `Done` for a complete SEIPD.
        if let State::Body {
            tag,
            remaining: 0,
            more,
            need_version,
        } = self.state
        {
            self.end_of_chunk(tag, more, need_version);
        }
    }

    /// Ends the check.
    pub fn finish(self) -> Result<PacketSummary, PacketError> {
        let summary = PacketSummary {
            session_keys: self.session_keys,
            seipd_version: self.seipd_version,
        };
        match self.state {
            State::Failed(e) => Err(e),
            State::Done => Ok(summary),
            State::PacketStart if self.offset == 0 => Err(PacketError::Empty),
            State::PacketStart if self.pending_len == 0 => Err(PacketError::NoSeipd),
            State::ToEnd { tag, need_version } => {
                if tag == TAG_SEIPD && !need_version {
                    Ok(summary)
                } else if tag == TAG_SEIPD {
                    Err(PacketError::EmptySeipd)
                } else {
                    Err(PacketError::NoSeipd)
                }
            }
            State::Body {
                tag,
                remaining: 0,
                more: false,
                ..
            } if tag == TAG_SEIPD => Ok(summary),
            _ => Err(PacketError::Truncated),
        }
    }

    fn end_of_chunk(&mut self, tag: u8, more: bool, need_version: bool) {
        self.state = if more {
            State::ChunkLength { tag, need_version }
        } else if need_version {
            // The packet ended before its first body byte.
            State::Failed(PacketError::EmptySeipd)
        } else if tag == TAG_SEIPD {
            State::Done
        } else {
            State::PacketStart
        };
    }

    /// Tries to parse the pending header bytes; waits for more when incomplete.
    fn try_header(&mut self) {
        let pending = &self.pending[..self.pending_len];
        match self.state {
            State::PacketStart => {
                let start = self.offset - self.pending_len as u64;
                match parse_packet_header(pending, start) {
                    Err(e) => self.state = State::Failed(e),
                    Ok(None) => {}
                    Ok(Some((tag, length))) => {
                        self.pending_len = 0;
                        self.start_packet(tag, length);
                    }
                }
            }
            State::ChunkLength { tag, need_version } => match parse_new_length(pending) {
                None => {}
                Some(length) => {
                    self.pending_len = 0;
                    self.start_chunk(tag, length, need_version);
                }
            },
            _ => {}
        }
    }

    fn start_packet(&mut self, tag: u8, length: Length) {
        let need_version = match tag {
            TAG_PKESK | TAG_SKESK => {
                self.session_keys += 1;
                false
            }
            TAG_SEIPD => true,
            _ => {
                self.state = State::Failed(PacketError::UnexpectedPacket { tag });
                return;
            }
        };
        if matches!(length, Length::Partial(_)) && tag != TAG_SEIPD {
            self.state = State::Failed(PacketError::PartialLengthNotAllowed { tag });
            return;
        }
        self.start_chunk(tag, length, need_version);
    }

    fn start_chunk(&mut self, tag: u8, length: Length, need_version: bool) {
        self.state = match length {
            Length::Fixed(n) => State::Body {
                tag,
                remaining: n,
                more: false,
                need_version,
            },
            Length::Partial(n) => State::Body {
                tag,
                remaining: n,
                more: true,
                need_version,
            },
            Length::Indeterminate => State::ToEnd { tag, need_version },
        };
        if let State::Body {
            remaining: 0,
            more: false,
            ..
        } = self.state
        {
            self.end_of_chunk(tag, false, need_version);
        }
    }
}

fn check_seipd_version(version: u8) -> Result<(), PacketError> {
    match version {
        1 | 2 => Ok(()),
        version => Err(PacketError::BadSeipdVersion { version }),
    }
}

/// Parses a packet header from its first bytes: `Ok(None)` when more bytes are needed.
fn parse_packet_header(bytes: &[u8], offset: u64) -> Result<Option<(u8, Length)>, PacketError> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first & 0x80 == 0 {
        return Err(PacketError::NotAPacket { offset });
    }
    if first & 0x40 != 0 {
        // New format: the tag is in bits 5..0, then a new-format length.
        let tag = first & 0x3f;
        Ok(parse_new_length(&bytes[1..]).map(|len| (tag, len)))
    } else {
        // Legacy format: tag in bits 5..2, length type in bits 1..0.
        let tag = (first >> 2) & 0x0f;
        let rest = &bytes[1..];
        let length = match first & 0x03 {
            0 => rest.first().map(|&b| Length::Fixed(u64::from(b))),
            1 => (rest.len() >= 2).then(|| Length::Fixed(u64::from(be_u16(rest)))),
            2 => (rest.len() >= 4).then(|| Length::Fixed(u64::from(be_u32(rest)))),
            _ => Some(Length::Indeterminate),
        };
        Ok(length.map(|len| (tag, len)))
    }
}

/// Parses a new-format body length (RFC 9580 §4.2.1): `None` when more bytes are needed.
fn parse_new_length(bytes: &[u8]) -> Option<Length> {
    let &first = bytes.first()?;
    match first {
        0..=191 => Some(Length::Fixed(u64::from(first))),
        192..=223 => {
            let &second = bytes.get(1)?;
            Some(Length::Fixed(
                ((u64::from(first) - 192) << 8) + u64::from(second) + 192,
            ))
        }
        224..=254 => Some(Length::Partial(1u64 << (first & 0x1f))),
        255 => (bytes.len() >= 5).then(|| Length::Fixed(u64::from(be_u32(&bytes[1..])))),
    }
}

fn be_u16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks a complete decoded packet sequence.
pub fn check_packets(data: &[u8]) -> Result<PacketSummary, PacketError> {
    let mut walker = PacketWalker::new();
    walker.feed(data);
    walker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A new-format header with a one-octet or two-octet or five-octet length.
    fn new_packet(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![0xc0 | tag];
        let n = body.len();
        if n < 192 {
            out.push(n as u8);
        } else if n < 8384 {
            let v = n - 192;
            out.push((v >> 8) as u8 + 192);
            out.push((v & 0xff) as u8);
        } else {
            out.push(255);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        out.extend_from_slice(body);
        out
    }

    fn legacy_packet(tag: u8, body: &[u8], length_type: u8) -> Vec<u8> {
        let mut out = vec![0x80 | (tag << 2) | length_type];
        let n = body.len();
        match length_type {
            0 => out.push(n as u8),
            1 => out.extend_from_slice(&(n as u16).to_be_bytes()),
            2 => out.extend_from_slice(&(n as u32).to_be_bytes()),
            _ => {}
        }
        out.extend_from_slice(body);
        out
    }

    /// A new-format packet whose body is split into partial chunks of 2^power bytes.
    fn partial_packet(tag: u8, body: &[u8], power: u8) -> Vec<u8> {
        let chunk = 1usize << power;
        let mut out = vec![0xc0 | tag];
        let mut rest = body;
        while rest.len() > chunk {
            out.push(224 + power);
            out.extend_from_slice(&rest[..chunk]);
            rest = &rest[chunk..];
        }
        // The last chunk must use a definite length.
        let n = rest.len();
        if n < 192 {
            out.push(n as u8);
        } else {
            let v = n - 192;
            out.push((v >> 8) as u8 + 192);
            out.push((v & 0xff) as u8);
        }
        out.extend_from_slice(rest);
        out
    }

    fn seipd_body(version: u8, len: usize) -> Vec<u8> {
        let mut b = vec![version];
        b.extend((0..len).map(|i| (i * 7) as u8));
        b
    }

    fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn accepts_esks_then_seipd() {
        let msg = cat(&[
            new_packet(TAG_PKESK, &[3; 90]),
            new_packet(TAG_SKESK, &[4; 40]),
            new_packet(TAG_SEIPD, &seipd_body(1, 300)),
        ]);
        assert_eq!(
            check_packets(&msg),
            Ok(PacketSummary {
                session_keys: 2,
                seipd_version: 1
            })
        );
        let lone = new_packet(TAG_SEIPD, &seipd_body(2, 10_000));
        assert_eq!(check_packets(&lone).unwrap().seipd_version, 2);
    }

    #[test]
    fn accepts_legacy_headers_of_every_length_type() {
        for lt in 0..3 {
            let msg = cat(&[
                legacy_packet(TAG_PKESK, &[3; 100], lt),
                legacy_packet(TAG_SKESK, &[4; 20], lt),
                new_packet(TAG_SEIPD, &seipd_body(1, 50)),
            ]);
            assert!(check_packets(&msg).is_ok(), "length type {lt}");
        }
    }

    #[test]
    fn indeterminate_legacy_esk_swallows_the_rest() {
        let msg = cat(&[
            legacy_packet(TAG_PKESK, &[3; 10], 3),
            new_packet(TAG_SEIPD, &seipd_body(1, 50)),
        ]);
        assert_eq!(check_packets(&msg), Err(PacketError::NoSeipd));
    }

    #[test]
    fn accepts_partial_lengths_on_seipd_only() {
        let msg = cat(&[
            new_packet(TAG_SKESK, &[4; 20]),
            partial_packet(TAG_SEIPD, &seipd_body(1, 5000), 9),
        ]);
        assert!(check_packets(&msg).is_ok());
        let exact = partial_packet(TAG_SEIPD, &seipd_body(2, 1023), 9);
        assert!(check_packets(&exact).is_ok());
        let bad = cat(&[
            partial_packet(TAG_SKESK, &[4; 2000], 9),
            new_packet(TAG_SEIPD, &seipd_body(1, 5)),
        ]);
        assert_eq!(
            check_packets(&bad),
            Err(PacketError::PartialLengthNotAllowed { tag: TAG_SKESK })
        );
    }

    #[test]
    fn refuses_other_packets() {
        // Literal data: the reference's `literal.eml` payload.
        let literal = b"\xcb\x12b\x00\x00\x00\x00\x00Hello world!";
        assert_eq!(
            check_packets(literal),
            Err(PacketError::UnexpectedPacket { tag: 11 })
        );
        for tag in [2, 4, 8, 9, 10, 11, 19, 20, 21, 60] {
            let msg = cat(&[
                new_packet(TAG_SKESK, &[4; 20]),
                new_packet(tag, &[1; 20]),
                new_packet(TAG_SEIPD, &seipd_body(1, 20)),
            ]);
            assert_eq!(
                check_packets(&msg),
                Err(PacketError::UnexpectedPacket { tag }),
                "tag {tag}"
            );
        }
    }

    #[test]
    fn refuses_bad_sequences() {
        let seipd = new_packet(TAG_SEIPD, &seipd_body(1, 20));
        let esk = new_packet(TAG_SKESK, &[4; 20]);
        assert_eq!(check_packets(&[]), Err(PacketError::Empty));
        assert_eq!(check_packets(&esk), Err(PacketError::NoSeipd));
        assert_eq!(
            check_packets(&cat(&[seipd.clone(), esk.clone()])),
            Err(PacketError::TrailingData)
        );
        assert_eq!(
            check_packets(&cat(&[seipd.clone(), seipd.clone()])),
            Err(PacketError::TrailingData)
        );
        assert_eq!(
            check_packets(&cat(&[seipd.clone(), vec![0]])),
            Err(PacketError::TrailingData)
        );
        assert_eq!(
            check_packets(&seipd[..seipd.len() - 1]),
            Err(PacketError::Truncated)
        );
        assert_eq!(
            check_packets(&[0xc0 | TAG_SEIPD]),
            Err(PacketError::Truncated)
        );
        assert_eq!(
            check_packets(&[0xc0 | TAG_SEIPD, 0]),
            Err(PacketError::EmptySeipd)
        );
        assert_eq!(
            check_packets(&new_packet(TAG_SEIPD, &seipd_body(3, 5))),
            Err(PacketError::BadSeipdVersion { version: 3 })
        );
        assert_eq!(
            check_packets(b"hello"),
            Err(PacketError::NotAPacket { offset: 0 })
        );
        // A partial chunk that is never followed by a final length.
        let mut p = partial_packet(TAG_SEIPD, &seipd_body(1, 2000), 9);
        p.truncate(1 + 512 + 1 + 512);
        assert_eq!(check_packets(&p), Err(PacketError::Truncated));
    }

    #[test]
    fn five_octet_lengths_beyond_the_data_are_truncated() {
        let msg = [0xc0 | TAG_SEIPD, 255, 0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(check_packets(&msg), Err(PacketError::Truncated));
    }

    proptest! {
        /// Any split of the input into chunks gives the same verdict as one piece.
        #[test]
        fn chunking_does_not_change_the_verdict(
            esks in prop::collection::vec((prop::bool::ANY, 0usize..300, 0u8..4), 0..4),
            body in 1usize..3000,
            power in 0u8..12,
            cut in prop::collection::vec(0usize..4000, 0..8),
            garbage in prop::collection::vec(any::<u8>(), 0..3),
        ) {
            let mut msg = Vec::new();
            for (pk, len, lt) in esks {
                let tag = if pk { TAG_PKESK } else { TAG_SKESK };
                if lt < 3 {
                    msg.extend(legacy_packet(tag, &vec![9; len.min(255)], lt));
                } else {
                    msg.extend(new_packet(tag, &vec![9; len]));
                }
            }
            msg.extend(partial_packet(TAG_SEIPD, &seipd_body(1, body), power));
            msg.extend(garbage);
            let whole = check_packets(&msg);
            let mut cuts: Vec<usize> = cut.into_iter().map(|c| c.min(msg.len())).collect();
            cuts.sort_unstable();
            let mut walker = PacketWalker::new();
            let mut last = 0;
            for c in cuts {
                walker.feed(&msg[last..c]);
                last = c;
            }
            walker.feed(&msg[last..]);
            prop_assert_eq!(walker.finish(), whole);
        }

        #[test]
        fn never_panics(data in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = check_packets(&data);
        }
    }
}
