//! The Dovecot dict proxy protocol (`proxy:` dicts), server side.
//!
//! A daemon implements [`Handler`] and calls [`serve`].
//!
//! * [`codec`]: parsing request lines and formatting replies;
//! * `server`: the accept loop; `event_loop`: serving a connection on the tokio event loop;
//! * `connection`: one connection's protocol state (request line in, reply out), with its
//!   open transactions in `transaction`; `lines`: reading bounded request lines.

pub mod codec;
mod connection;
mod event_loop;
mod handler;
mod lines;
mod server;
mod transaction;

pub use codec::{Command, CommitReply, LookupReply, Op};
pub use handler::{Handler, Session, Transaction};
pub use server::serve;
