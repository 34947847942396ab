//! The open transactions of one connection (`B` … `S`/`U`/`A` … `C` or `R`).

use std::collections::HashMap;

use super::codec::Op;
use super::handler::Transaction;

/// Open transactions per connection.
const MAX_TRANSACTIONS: usize = 1024;
/// Operations in one transaction.
const MAX_OPS: usize = 4096;

/// The open transactions of one connection, by id.
#[derive(Default)]
pub(super) struct Transactions {
    open: HashMap<String, PendingTx>,
}

struct PendingTx {
    tx: Transaction,
    /// Set when the transaction went over a limit; its commit then fails.
    broken: Option<&'static str>,
}

/// What [`Transactions::begin`] did.
pub(super) enum Begun {
    Open,
    /// The id was in use; the older transaction is gone.
    Replaced,
    /// Over the limit of open transactions: its commit will fail.
    TooMany,
}

impl Transactions {
    pub(super) fn begin(&mut self, id: String, user: String) -> Begun {
        if self.open.len() >= MAX_TRANSACTIONS {
            self.open.insert(
                id.clone(),
                PendingTx {
                    tx: Transaction {
                        id,
                        user,
                        ops: Vec::new(),
                    },
                    broken: Some("too many open transactions"),
                },
            );
            return Begun::TooMany;
        }
        let tx = Transaction {
            id: id.clone(),
            user,
            ops: Vec::new(),
        };
        match self.open.insert(id, PendingTx { tx, broken: None }) {
            Some(_) => Begun::Replaced,
            None => Begun::Open,
        }
    }

    /// Adds an operation; `false` if no transaction has this id.
    pub(super) fn add(&mut self, id: &str, op: Op) -> bool {
        match self.open.get_mut(id) {
            Some(p) if p.tx.ops.len() >= MAX_OPS => p.broken = Some("transaction too large"),
            Some(p) => p.tx.ops.push(op),
            None => return false,
        }
        true
    }

    /// Closes a transaction for its commit: `None` if no transaction has this id, else the
    /// transaction or why it cannot be committed.
    pub(super) fn take(&mut self, id: &str) -> Option<Result<Transaction, &'static str>> {
        let pending = self.open.remove(id)?;
        Some(match pending.broken {
            Some(reason) => Err(reason),
            None => Ok(pending.tx),
        })
    }

    pub(super) fn rollback(&mut self, id: &str) {
        self.open.remove(id);
    }
}
