//! The mailbox layout shared by every daemon: `<mailboxes_dir>/<addr>/` is one account.
//!
//! [`Address`] is the only way to name a mailbox, and it cannot name a path outside
//! `mailboxes_dir`. [`Mailbox`] owns the account files: `password` (whose mtime is the
//! last-login day), `enforceE2EEincoming`, `metadata.json`.

mod account;
mod address;

pub use account::{Created, DAY, Incoming, LastLogin, Mailbox, Mailboxes, login_day};
pub use address::{Address, AddressError};
