//! The message as rebuilt from milter callbacks: `Name: value` header lines, a blank line,
//! the body chunks (Postfix sends them with CRLF line ends).
//!
//! Bounded twice: per message by `limit` (beyond it nothing more is stored and the message is
//! marked as too big), and for all connections together by a shared [`BufferBudget`] (when it
//! is used up the message is marked as over budget and gets a temporary failure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes that all message buffers together may hold.
#[derive(Debug)]
pub struct BufferBudget {
    used: AtomicUsize,
    limit: usize,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Self {
        BufferBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Bytes all buffers together may hold.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes currently held by all buffers.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Why a buffer stopped storing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The message is larger than the per-message limit.
    TooBig,
    /// All connections together hold too much right now.
    OverBudget,
}

/// A bounded message buffer.
#[derive(Debug)]
pub struct MessageBuffer {
    data: Vec<u8>,
    limit: usize,
    budget: Arc<BufferBudget>,
    /// Bytes taken from the budget (the buffer's capacity, which is what it holds).
    taken: usize,
    in_body: bool,
    overflow: Option<Overflow>,
    headers: usize,
}

impl MessageBuffer {
    pub fn new(limit: usize, budget: Arc<BufferBudget>) -> Self {
        MessageBuffer {
            data: Vec::new(),
            limit,
            budget,
            taken: 0,
            in_body: false,
            overflow: None,
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

    /// Set when the buffer stopped storing.
    pub fn overflow(&self) -> Option<Overflow> {
        self.overflow
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

    /// The complete message (empty after an overflow). Its bytes stay counted in the budget
    /// until the returned guard is dropped.
    pub fn finish(mut self) -> Finished {
        self.start_body();
        let data = std::mem::take(&mut self.data);
        let taken = std::mem::take(&mut self.taken);
        Finished {
            data,
            taken,
            budget: self.budget.clone(),
        }
    }

    fn start_body(&mut self) {
        if !self.in_body {
            self.in_body = true;
            self.append(&[b"\r\n"]);
        }
    }

    fn append(&mut self, pieces: &[&[u8]]) {
        if self.overflow.is_some() {
            return;
        }
        let n: usize = pieces.iter().map(|p| p.len()).sum();
        let needed = self.data.len() + n;
        if needed > self.limit {
            self.stop(Overflow::TooBig);
            return;
        }
        if needed > self.data.capacity() {
            // Grow by doubling (bounded by the limit), paid for from the budget first.
            let new_capacity = needed
                .max(self.data.capacity() * 2)
                .max(4096)
                .min(self.limit);
            let extra = new_capacity - self.data.capacity();
            if !self.budget.take(extra) {
                self.stop(Overflow::OverBudget);
                return;
            }
            self.taken += extra;
            if self
                .data
                .try_reserve_exact(new_capacity - self.data.len())
                .is_err()
            {
                // Out of memory is treated like the budget: a temporary failure, never a panic.
                self.stop(Overflow::OverBudget);
                return;
            }
        }
        for p in pieces {
            self.data.extend_from_slice(p);
        }
    }

    fn stop(&mut self, why: Overflow) {
        self.overflow = Some(why);
        self.data = Vec::new();
        self.budget.give_back(std::mem::take(&mut self.taken));
    }
}

impl Drop for MessageBuffer {
    fn drop(&mut self) {
        self.budget.give_back(self.taken);
    }
}

/// A finished message; gives its bytes back to the budget when dropped.
#[derive(Debug)]
pub struct Finished {
    data: Vec<u8>,
    taken: usize,
    budget: Arc<BufferBudget>,
}

impl std::ops::Deref for Finished {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Finished {
    fn drop(&mut self) {
        self.budget.give_back(self.taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(n: usize) -> Arc<BufferBudget> {
        Arc::new(BufferBudget::new(n))
    }

    #[test]
    fn rebuilds_the_message() {
        let mut b = MessageBuffer::new(1000, budget(1 << 20));
        b.header(b"From", b"a@x.org");
        b.header(b"Subject", b"hi");
        b.body(b"line1\r\n");
        b.body(b"line2\r\n");
        assert_eq!(b.header_count(), 2);
        assert_eq!(
            &*b.finish(),
            b"From: a@x.org\r\nSubject: hi\r\n\r\nline1\r\nline2\r\n"
        );
        let mut empty = MessageBuffer::new(10, budget(1 << 20));
        empty.header(b"A", b"b");
        assert_eq!(&*empty.finish(), b"A: b\r\n\r\n");
    }

    #[test]
    fn stops_at_the_limit() {
        let shared = budget(1 << 20);
        let mut b = MessageBuffer::new(20, shared.clone());
        b.header(b"From", b"a@x.org");
        assert_eq!(b.overflow(), None);
        b.body(&[b'x'; 100]);
        assert_eq!(b.overflow(), Some(Overflow::TooBig));
        assert!(b.is_empty());
        assert_eq!(shared.used(), 0);
        b.body(b"more");
        assert!(b.finish().is_empty());
    }

    #[test]
    fn shares_one_budget_and_gives_it_back() {
        let shared = budget(10_000);
        let mut a = MessageBuffer::new(1 << 20, shared.clone());
        let mut b = MessageBuffer::new(1 << 20, shared.clone());
        a.body(&[b'a'; 6000]);
        assert_eq!(a.overflow(), None);
        assert!(shared.used() >= 6000);
        b.body(&[b'b'; 6000]);
        assert_eq!(b.overflow(), Some(Overflow::OverBudget));
        let finished = a.finish();
        assert!(shared.used() >= 6000, "held until the check is done");
        drop(finished);
        assert_eq!(shared.used(), 0);
        let mut c = MessageBuffer::new(1 << 20, shared.clone());
        c.body(&[b'c'; 6000]);
        assert_eq!(c.overflow(), None);
        drop(c);
        drop(b);
        assert_eq!(shared.used(), 0);
    }
}
