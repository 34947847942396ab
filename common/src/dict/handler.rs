//! What a dict service implements: [`Handler`], and what it is told about a connection.

use std::future::Future;
use std::sync::Arc;

use super::codec::{CommitReply, LookupReply, Op};

/// What a connection said about itself in its hello line.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// The dict name (`auth`, `lastlogin`, `metadata`, …); empty before the hello.
    pub dict: Arc<str>,
    /// Connection number, for logs.
    pub conn: u64,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: String,
    /// The user named in the `B` line.
    pub user: String,
    pub ops: Vec<Op>,
}

/// What a dict service does with requests.
pub trait Handler: Send + Sync + 'static {
    fn lookup(
        &self,
        session: &Session,
        key: String,
        user: String,
    ) -> impl Future<Output = LookupReply> + Send;

    /// Rows for an iteration; the default is none.
    fn iterate(
        &self,
        session: &Session,
        flags: u32,
        path: String,
        user: String,
    ) -> impl Future<Output = Result<Vec<(String, String)>, String>> + Send {
        let _ = (session, flags, path, user);
        async { Ok(Vec::new()) }
    }

    /// Applies a transaction; the default refuses writes.
    fn commit(
        &self,
        session: &Session,
        tx: Transaction,
    ) -> impl Future<Output = CommitReply> + Send {
        let _ = (session, tx);
        async { CommitReply::Failed("this dict is read-only".into()) }
    }
}
