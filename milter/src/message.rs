//! The message as rebuilt from milter callbacks: `Name: value` header lines, a blank line,
//! the body chunks (Postfix sends them with CRLF line ends). Bounded: beyond `limit` bytes
//! nothing more is stored and the message is marked as too big.

/// A bounded message buffer.
#[derive(Debug)]
pub struct MessageBuffer {
    data: Vec<u8>,
    limit: usize,
    in_body: bool,
    too_big: bool,
    headers: usize,
}

impl MessageBuffer {
    pub fn new(limit: usize) -> Self {
        MessageBuffer {
            data: Vec::new(),
            limit,
            in_body: false,
            too_big: false,
            headers: 0,
        }
    }

    /// Appends one header field.
    pub fn header(&mut self, name: &[u8], value: &[u8]) {
        self.headers += 1;
        self.append(&[name, b": ", value, b"\r\n"]);
    }

    /// Appends a body chunk (the blank line after the headers comes first).
    pub fn body(&mut self, chunk: &[u8]) {
        self.start_body();
        self.append(&[chunk]);
    }

    /// True when more than `limit` bytes arrived.
    pub fn too_big(&self) -> bool {
        self.too_big
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn header_count(&self) -> usize {
        self.headers
    }

    /// The complete message.
    pub fn finish(mut self) -> Vec<u8> {
        self.start_body();
        self.data
    }

    fn start_body(&mut self) {
        if !self.in_body {
            self.in_body = true;
            self.append(&[b"\r\n"]);
        }
    }

    fn append(&mut self, pieces: &[&[u8]]) {
        if self.too_big {
            return;
        }
        let n: usize = pieces.iter().map(|p| p.len()).sum();
        if self.data.len() + n > self.limit {
            self.too_big = true;
            self.data = Vec::new();
            return;
        }
        if self.data.try_reserve(n).is_err() {
            // Out of memory is treated like an oversized message: refused, never a panic.
            self.too_big = true;
            self.data = Vec::new();
            return;
        }
        for p in pieces {
            self.data.extend_from_slice(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilds_the_message() {
        let mut b = MessageBuffer::new(1000);
        b.header(b"From", b"a@x.org");
        b.header(b"Subject", b"hi");
        b.body(b"line1\r\n");
        b.body(b"line2\r\n");
        assert_eq!(b.header_count(), 2);
        assert_eq!(
            b.finish(),
            b"From: a@x.org\r\nSubject: hi\r\n\r\nline1\r\nline2\r\n"
        );
        let mut empty = MessageBuffer::new(10);
        empty.header(b"A", b"b");
        assert_eq!(empty.finish(), b"A: b\r\n\r\n");
    }

    #[test]
    fn stops_at_the_limit() {
        let mut b = MessageBuffer::new(20);
        b.header(b"From", b"a@x.org");
        assert!(!b.too_big());
        b.body(&[b'x'; 100]);
        assert!(b.too_big());
        assert!(b.is_empty());
        b.body(b"more");
        assert!(b.too_big());
        assert!(b.finish().is_empty());
    }
}
