//! The protocol state of one connection: each request line becomes a [`Step`], which the
//! executor (event loop or thread) turns into a reply in request order.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::codec::{
    self, Command, CommitReply, LookupReply, Op, ParseError, ReplyKind, encode_iterate,
};
use super::handler::{Handler, Session};
use super::transaction::{Added, Begun, Transactions};

/// The encoded reply to one request, once it is known.
pub(super) type Reply<'a> = Pin<Box<dyn Future<Output = String> + Send + 'a>>;

/// The outcome of one request line.
pub(super) enum Step<'a> {
    Nothing,
    Reply(Reply<'a>),
    /// A commit: run after all earlier replies, before anything later.
    Barrier(Reply<'a>),
    /// The client went over a limit: answer the earlier requests, then close the connection.
    Close,
}

/// Per-connection protocol state.
pub(super) struct Connection<'h, H> {
    handler: &'h H,
    session: Session,
    transactions: Transactions,
}

impl<'h, H: Handler> Connection<'h, H> {
    pub(super) fn new(handler: &'h H, conn: u64) -> Self {
        Connection {
            handler,
            session: Session {
                dict: Arc::from(""),
                conn,
            },
            transactions: Transactions::default(),
        }
    }

    pub(super) fn handle(&mut self, line: &[u8]) -> Step<'h> {
        if line.is_empty() {
            return Step::Nothing;
        }
        match codec::parse_line(line) {
            Ok(cmd) => self.command(cmd),
            Err(e) => self.bad_line(line, e),
        }
    }

    /// Logs a malformed request (never its content: it may hold a password) and answers it
    /// with a failure if its kind wants an answer.
    fn bad_line(&mut self, line: &[u8], error: ParseError) -> Step<'h> {
        let conn = self.session.conn;
        let cmd = line
            .first()
            .map(|b| b.escape_ascii().to_string())
            .unwrap_or_default();
        crate::warn_limited!("malformed dict request", conn, dict = %self.session.dict, cmd, %error);
        let message = format!("malformed request: {error}");
        let reply = match ReplyKind::of(line) {
            ReplyKind::None => return Step::Nothing,
            ReplyKind::Lookup => {
                let mut out = String::new();
                LookupReply::Failed(message).encode(&mut out);
                out
            }
            ReplyKind::Iterate => {
                let mut out = String::new();
                encode_iterate(&Err(message), &mut out);
                out
            }
            ReplyKind::Commit => {
                let mut out = String::new();
                CommitReply::Failed(message).encode("", &mut out);
                out
            }
        };
        Step::Reply(Box::pin(std::future::ready(reply)))
    }

    fn command(&mut self, cmd: Command) -> Step<'h> {
        let handler = self.handler;
        let conn = self.session.conn;
        match cmd {
            Command::Hello { major, dict, .. } => {
                // 3: Dovecot 2.3; 4: Dovecot 2.4 (BEGIN gains an expiry field, ignored;
                // keys and replies are the same).
                if !(3..=4).contains(&major) {
                    tracing::warn!(conn, major, "unexpected dict protocol major version");
                }
                tracing::debug!(conn, dict, "dict client hello");
                self.session.dict = Arc::from(dict);
                Step::Nothing
            }
            Command::Lookup { key, user } => {
                let session = self.session.clone();
                Step::Reply(Box::pin(async move {
                    let mut out = String::new();
                    handler.lookup(&session, key, user).await.encode(&mut out);
                    out
                }))
            }
            Command::Iterate {
                flags, path, user, ..
            } => {
                let session = self.session.clone();
                Step::Reply(Box::pin(async move {
                    let mut out = String::new();
                    encode_iterate(
                        &handler.iterate(&session, flags, path, user).await,
                        &mut out,
                    );
                    out
                }))
            }
            Command::Begin { id, user } => match self.transactions.begin(id, user) {
                Ok(Begun::Open) => Step::Nothing,
                Ok(Begun::Replaced) => {
                    crate::warn_limited!("dict transaction id reused before commit", conn);
                    Step::Nothing
                }
                Err(error) => {
                    crate::warn_limited!(
                        "dict client over the transaction limits; closing the connection",
                        conn,
                        dict = %self.session.dict,
                        %error
                    );
                    Step::Close
                }
            },
            Command::Set { id, key, value } => self.add_op(&id, Op::Set { key, value }),
            Command::Unset { id, key } => self.add_op(&id, Op::Unset { key }),
            Command::AtomicInc { id, key, diff } => self.add_op(&id, Op::Inc { key, diff }),
            Command::Rollback { id } => {
                self.transactions.rollback(&id);
                Step::Nothing
            }
            Command::TransactionOption { .. } => Step::Nothing,
            Command::Commit { id } => {
                let Some(pending) = self.transactions.take(&id) else {
                    crate::warn_limited!("commit of an unknown dict transaction", conn);
                    let mut out = String::new();
                    CommitReply::Failed("unknown transaction".into()).encode(&id, &mut out);
                    return Step::Reply(Box::pin(std::future::ready(out)));
                };
                let session = self.session.clone();
                Step::Barrier(Box::pin(async move {
                    let reply = match pending {
                        Err(error) => CommitReply::Failed(error.to_string()),
                        Ok(tx) => handler.commit(&session, tx).await,
                    };
                    let mut out = String::new();
                    reply.encode(&id, &mut out);
                    out
                }))
            }
        }
    }

    fn add_op(&mut self, id: &str, op: Op) -> Step<'h> {
        let conn = self.session.conn;
        match self.transactions.add(id, op) {
            Added::Stored | Added::Dropped => {}
            Added::Unknown => crate::warn_limited!("dict operation outside a transaction", conn),
            Added::Broke(error) => crate::warn_limited!(
                "dict transaction over the limits; its commit will fail",
                conn,
                dict = %self.session.dict,
                %error
            ),
        }
        Step::Nothing
    }
}
