//! Reading LF-terminated request lines of at most [`MAX_LINE`] bytes.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::codec::MAX_LINE;

/// What a read produced.
pub(super) enum Line {
    /// A whole line is in the buffer (without its LF).
    Complete,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
    /// The line is longer than [`MAX_LINE`]; the connection is to be closed.
    TooLong,
}

/// Appends `available` to `buf` up to the first LF (which is left out). Returns how many bytes
/// of `available` were used, and what the line is if it ended or got too long.
fn append(available: &[u8], buf: &mut Vec<u8>) -> (usize, Option<Line>) {
    let (line, used) = match memchr::memchr(b'\n', available) {
        Some(pos) => (&available[..pos], pos + 1),
        None => (available, available.len()),
    };
    buf.extend_from_slice(line);
    let state = if buf.len() > MAX_LINE {
        Some(Line::TooLong)
    } else if used > line.len() {
        Some(Line::Complete)
    } else {
        None
    };
    (used, state)
}

/// Reads one LF-terminated line into `buf` (without the LF). Cancel-safe: bytes are consumed
/// from the reader only after they were appended to `buf`.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (used, line) = append(available, buf);
        reader.consume(used);
        if let Some(line) = line {
            return Ok(line);
        }
    }
}

/// Logs that a connection is closed for an overlong line.
pub(super) fn warn_too_long(conn: u64) {
    tracing::warn!(
        conn,
        limit = MAX_LINE,
        "dict request line too long; closing connection"
    );
}
