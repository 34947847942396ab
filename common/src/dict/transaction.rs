//! The open transactions of one connection (`B` … `S`/`U`/`A` … `C` or `R`), bounded.
//!
//! A connection holds at most [`Limits::transactions`] open transactions, each with at most
//! [`Limits::ops`] operations, and all of them together at most [`Limits::bytes`] bytes (ids,
//! users, keys, values and bookkeeping). A transaction that would go over the operation or
//! byte limit is broken: its operations are dropped at once, later ones are ignored, and its
//! commit fails. A `B` that would go over a limit is refused; the connection is then closed,
//! since Dovecot never comes near these limits.

use std::collections::HashMap;

use super::codec::Op;
use super::handler::Transaction;

/// Bounds on the open transactions of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    pub(super) transactions: usize,
    pub(super) ops: usize,
    pub(super) bytes: usize,
}

impl Limits {
    /// Dovecot opens a transaction or two per connection at a time, each with a few small
    /// operations; a request line is at most 64 KiB.
    pub(super) const DEFAULT: Limits = Limits {
        transactions: 1024,
        ops: 4096,
        bytes: 1024 * 1024,
    };
}

/// Why a transaction or a `B` line went over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum OverLimit {
    #[error("too many open transactions")]
    Transactions,
    #[error("too many operations in the transaction")]
    Ops,
    #[error("transaction too large")]
    Bytes,
}

/// The open transactions of one connection, by id.
pub(super) struct Transactions {
    limits: Limits,
    open: HashMap<String, Open>,
    /// What the open transactions hold, as counted by [`tx_cost`] and [`op_cost`].
    bytes: usize,
}

struct Open {
    tx: Transaction,
    /// What this transaction holds, included in [`Transactions::bytes`].
    bytes: usize,
    /// Set when the transaction went over a limit; its commit then fails.
    broken: Option<OverLimit>,
}

/// What [`Transactions::begin`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Begun {
    Open,
    /// The id was in use; the older transaction is gone.
    Replaced,
}

/// What [`Transactions::add`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Added {
    Stored,
    /// No transaction has this id.
    Unknown,
    /// The transaction went over a limit with this operation and is now broken.
    Broke(OverLimit),
    /// The transaction was broken before; the operation is dropped.
    Dropped,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions::new(Limits::DEFAULT)
    }
}

impl Transactions {
    pub(super) fn new(limits: Limits) -> Self {
        Transactions {
            limits,
            open: HashMap::new(),
            bytes: 0,
        }
    }

    /// Opens a transaction. On an error nothing is stored.
    pub(super) fn begin(&mut self, id: String, user: String) -> Result<Begun, OverLimit> {
        let replaced = self.close(&id).is_some();
        if self.open.len() >= self.limits.transactions {
            return Err(OverLimit::Transactions);
        }
        let bytes = tx_cost(&id, &user);
        if self.bytes + bytes > self.limits.bytes {
            return Err(OverLimit::Bytes);
        }
        self.bytes += bytes;
        let tx = Transaction {
            id: id.clone(),
            user,
            ops: Vec::new(),
        };
        let open = Open {
            tx,
            bytes,
            broken: None,
        };
        self.open.insert(id, open);
        Ok(if replaced {
            Begun::Replaced
        } else {
            Begun::Open
        })
    }

    pub(super) fn add(&mut self, id: &str, op: Op) -> Added {
        let Some(open) = self.open.get_mut(id) else {
            return Added::Unknown;
        };
        if open.broken.is_some() {
            return Added::Dropped;
        }
        let cost = op_cost(&op);
        let error = if open.tx.ops.len() >= self.limits.ops {
            OverLimit::Ops
        } else if self.bytes + cost > self.limits.bytes {
            OverLimit::Bytes
        } else {
            open.tx.ops.push(op);
            open.bytes += cost;
            self.bytes += cost;
            return Added::Stored;
        };
        // free what the broken transaction holds; its commit fails anyway
        let ops_bytes: usize = open.tx.ops.iter().map(op_cost).sum();
        open.tx.ops = Vec::new();
        open.bytes -= ops_bytes;
        self.bytes -= ops_bytes;
        open.broken = Some(error);
        Added::Broke(error)
    }

    /// Closes a transaction for its commit: `None` if no transaction has this id, else the
    /// transaction or why it cannot be committed.
    pub(super) fn take(&mut self, id: &str) -> Option<Result<Transaction, OverLimit>> {
        let open = self.close(id)?;
        Some(match open.broken {
            Some(error) => Err(error),
            None => Ok(open.tx),
        })
    }

    pub(super) fn rollback(&mut self, id: &str) {
        self.close(id);
    }

    fn close(&mut self, id: &str) -> Option<Open> {
        let open = self.open.remove(id)?;
        self.bytes -= open.bytes;
        Some(open)
    }
}

/// What an open transaction holds without its operations: the id twice (map key and
/// transaction), the user and the bookkeeping.
fn tx_cost(id: &str, user: &str) -> usize {
    std::mem::size_of::<(String, Open)>() + 2 * id.len() + user.len()
}

fn op_cost(op: &Op) -> usize {
    std::mem::size_of::<Op>()
        + match op {
            Op::Set { key, value } => key.len() + value.len(),
            Op::Unset { key } | Op::Inc { key, .. } => key.len(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: &str, value: &str) -> Op {
        Op::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    /// Transactions "1" and "2" of user "u", open.
    fn two_open(limits: Limits) -> Transactions {
        let mut t = Transactions::new(limits);
        t.begin("1".into(), "u".into()).unwrap();
        t.begin("2".into(), "u".into()).unwrap();
        t
    }

    #[test]
    fn commits_what_was_added() {
        let mut t = Transactions::default();
        assert_eq!(t.begin("1".into(), "u".into()), Ok(Begun::Open));
        assert_eq!(t.add("1", set("k", "v")), Added::Stored);
        assert_eq!(t.add("2", set("k", "v")), Added::Unknown);
        let tx = t.take("1").unwrap().unwrap();
        assert_eq!((tx.id.as_str(), tx.user.as_str()), ("1", "u"));
        assert_eq!(tx.ops, vec![set("k", "v")]);
        assert!(t.take("1").is_none());
        assert_eq!(t.bytes, 0);
    }

    #[test]
    fn a_reused_id_replaces_and_releases_the_older_transaction() {
        let mut t = Transactions::default();
        t.begin("1".into(), "u".into()).unwrap();
        t.add("1", set("k", &"x".repeat(1000)));
        assert_eq!(t.begin("1".into(), "v".into()), Ok(Begun::Replaced));
        assert_eq!(t.bytes, tx_cost("1", "v"));
        let tx = t.take("1").unwrap().unwrap();
        assert_eq!((tx.user.as_str(), tx.ops.len()), ("v", 0));
    }

    #[test]
    fn too_many_operations_break_the_transaction_only() {
        let mut t = two_open(Limits {
            ops: 3,
            ..Limits::DEFAULT
        });
        for _ in 0..3 {
            assert_eq!(t.add("1", set("k", "v")), Added::Stored);
        }
        assert_eq!(t.add("1", set("k", "v")), Added::Broke(OverLimit::Ops));
        assert_eq!(t.add("1", set("k", "v")), Added::Dropped);
        // the broken transaction holds nothing but its id and user
        assert_eq!(t.bytes, tx_cost("1", "u") + tx_cost("2", "u"));
        assert_eq!(t.add("2", set("k", "v")), Added::Stored);
        assert_eq!(t.take("1"), Some(Err(OverLimit::Ops)));
        assert_eq!(t.take("2").unwrap().unwrap().ops.len(), 1);
        assert_eq!(t.bytes, 0);
    }

    #[test]
    fn the_byte_limit_covers_all_open_transactions() {
        let limits = Limits {
            bytes: 10_000,
            ..Limits::DEFAULT
        };
        let mut t = two_open(limits);
        let big = "x".repeat(4000);
        assert_eq!(t.add("1", set("k", &big)), Added::Stored);
        assert_eq!(t.add("2", set("k", &big)), Added::Stored);
        assert_eq!(t.add("2", set("k", &big)), Added::Broke(OverLimit::Bytes));
        assert!(t.bytes <= limits.bytes);
        // the space freed by the broken transaction is available again
        assert_eq!(t.add("1", set("k", &big)), Added::Stored);
        assert!(t.bytes <= limits.bytes);
        assert_eq!(t.take("2"), Some(Err(OverLimit::Bytes)));
        t.rollback("1");
        assert_eq!(t.bytes, 0);
        // a B line whose id and user alone are over the limit is refused
        assert_eq!(
            t.begin("1".into(), "u".repeat(20_000)),
            Err(OverLimit::Bytes)
        );
        assert!(t.open.is_empty());
    }

    #[test]
    fn open_transactions_are_bounded() {
        let limits = Limits {
            transactions: 4,
            ..Limits::DEFAULT
        };
        let mut t = Transactions::new(limits);
        for id in 0..4 {
            t.begin(id.to_string(), "u".into()).unwrap();
        }
        for id in 4..100 {
            assert_eq!(
                t.begin(id.to_string(), "u".into()),
                Err(OverLimit::Transactions)
            );
        }
        assert_eq!(t.open.len(), 4);
        // reusing an open id is no new transaction
        assert_eq!(t.begin("3".into(), "v".into()), Ok(Begun::Replaced));
        t.rollback("0");
        assert_eq!(t.begin("9".into(), "u".into()), Ok(Begun::Open));
    }
}
