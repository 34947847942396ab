//! The Dovecot dict proxy protocol (`proxy:` dicts), server side.
//!
//! A daemon implements [`Handler`] and calls [`serve`] or [`serve_with`].
//!
//! * [`codec`]: parsing request lines and formatting replies;
//! * `server`: the accept loop; `event_loop` and `threads`: serving a connection on the tokio
//!   event loop or on a thread of its own;
//! * `connection`: one connection's protocol state (request line in, reply out), with its
//!   open transactions in `transaction`; `lines`: reading bounded request lines.

pub mod codec;
mod connection;
mod event_loop;
mod handler;
mod lines;
mod server;
mod threads;
mod transaction;

pub use codec::{Command, CommitReply, LookupReply, Op};
pub use handler::{Handler, Session, Transaction};
pub use server::{Options, serve, serve_with};
