//! The Dovecot dict proxy protocol (`proxy:` dicts), server side.
//!
//! [`codec`] parses request lines and formats replies; [`server`] runs the accept loop and one
//! task per connection with per-connection transactions and replies in request order. A daemon
//! implements [`Handler`].

pub mod codec;
mod server;

pub use codec::{Command, CommitReply, LookupReply, Op};
pub use server::{Handler, Options, Session, Transaction, serve, serve_with};
