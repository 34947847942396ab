//! The dict server: an accept loop and one task per Dovecot connection.
//!
//! Dovecot matches replies to requests by order, so each connection answers in request order.
//! Lookups and iterations run concurrently (a slow one does not hold up reading), and their
//! replies are written in order; a commit is a barrier: it runs after every earlier request
//! has been answered and before any later one starts, so a lookup sees earlier writes.
//!
//! Connections of dicts named in [`Options::threaded_dicts`] are served on a thread of their
//! own with blocking I/O. That suits Dovecot's auth workers:
//! few connections, one request at a time, and a reply is on the critical path of every login.
//! A blocking read or write there waits exactly as long as the round trip needs, without the
//! event loop's wake-ups, and a slow disk read holds up only that one connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::codec::{
    self, Command, CommitReply, LookupReply, MAX_LINE, Op, ParseError, ReplyKind, encode_iterate,
};

/// Requests in flight on one connection before we stop reading from it.
const MAX_PIPELINE: usize = 256;
/// Open transactions per connection.
const MAX_TRANSACTIONS: usize = 1024;
/// Operations in one transaction.
const MAX_OPS: usize = 4096;
/// Concurrent connections; further ones wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16_384;
/// Connections served on threads of their own at most; further ones stay on the event loop.
const MAX_THREADS: usize = 256;

/// How [`serve_with`] runs connections.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Dict names (as in the hello line) whose connections get a thread of their own.
    pub threaded_dicts: Vec<String>,
}

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

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_with(listener, handler, shutdown, Options::default()).await
}

/// [`serve`] with options.
pub async fn serve_with<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    options: Options,
) -> io::Result<()> {
    let threads = Arc::new(Threads {
        dicts: options.threaded_dicts,
        permits: Arc::new(Semaphore::new(MAX_THREADS)),
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let counter = AtomicU64::new(0);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => return Ok(()),
            p = permits.clone().acquire_owned() => p.expect("semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: log, back off a little, keep serving
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = counter.fetch_add(1, Ordering::Relaxed);
        let handler = handler.clone();
        let threads = threads.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(handler, stream, conn, &threads, permit).await {
                tracing::debug!(conn, error = %e, "dict connection ended with an error");
            }
        });
    }
}

enum Line {
    Complete,
    Eof,
    TooLong,
}

/// Reads one LF-terminated line into `buf` (without the LF). Cancel-safe: bytes are consumed
/// from the reader only after they were appended to `buf`.
async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        if let Some(pos) = available.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&available[..pos]);
            reader.consume(pos + 1);
            return Ok(if buf.len() > MAX_LINE {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
        let n = available.len();
        buf.extend_from_slice(available);
        reader.consume(n);
        if buf.len() > MAX_LINE {
            return Ok(Line::TooLong);
        }
    }
}

type Reply<'a> = Pin<Box<dyn Future<Output = String> + Send + 'a>>;

/// Per-connection protocol state.
struct Connection<'h, H> {
    handler: &'h H,
    session: Session,
    transactions: HashMap<String, PendingTx>,
}

struct PendingTx {
    tx: Transaction,
    /// Set when the transaction went over a limit; its commit then fails.
    broken: Option<&'static str>,
}

/// The outcome of one request line.
enum Step<'a> {
    Nothing,
    Reply(Reply<'a>),
    /// A commit: run after all earlier replies, before anything later.
    Barrier(Reply<'a>),
}

/// Which connections move to their own thread.
struct Threads {
    dicts: Vec<String>,
    permits: Arc<Semaphore>,
}

/// Serves one connection. With threaded dicts configured (and a thread free), the connection
/// goes to a thread of its own at once, which reads the hello and keeps the connection if its
/// dict is threaded, else hands it back to the event loop. The hello is not read on the event
/// loop first: a connection that had been read through the event loop kept costing about
/// twice the floor's kernel time per request after the move (measured with
/// `cargo bench -p chatmail-doveauth`, reconnecting clients), one never touched by it did not.
async fn connection<H: Handler>(
    handler: Arc<H>,
    stream: UnixStream,
    conn: u64,
    threads: &Threads,
    permit: OwnedSemaphorePermit,
) -> io::Result<()> {
    if !threads.dicts.is_empty()
        && let Ok(thread_permit) = threads.permits.clone().try_acquire_owned()
    {
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        let runtime = tokio::runtime::Handle::current();
        let dicts = threads.dicts.clone();
        std::thread::Builder::new()
            .name("dict-conn".into())
            .spawn(move || {
                if let Err(e) = on_thread(handler, stream, conn, &dicts, permit, &runtime) {
                    tracing::debug!(conn, error = %e, "dict connection ended with an error");
                }
                drop(thread_permit);
            })
            .map_err(|e| {
                // Dovecot retries; the next connection may get a thread or the event loop
                tracing::warn!(conn, error = %e, "cannot start a dict connection thread; closing it");
                e
            })?;
        return Ok(());
    }
    let (rd, wr) = stream.into_split();
    let mut reader = BufReader::new(rd);
    let mut first = Vec::new();
    match read_line(&mut reader, &mut first).await? {
        Line::Complete => {}
        Line::Eof => return Ok(()),
        Line::TooLong => {
            warn_too_long(conn);
            return Ok(());
        }
    }
    let result = event_loop_connection(&*handler, reader, wr, conn, first).await;
    drop(permit);
    result
}

fn warn_too_long(conn: u64) {
    tracing::warn!(
        conn,
        limit = MAX_LINE,
        "dict request line too long; closing connection"
    );
}

/// A new connection on its own thread: reads the hello, then serves a threaded dict here or
/// hands any other back to the event loop with what was read so far.
fn on_thread<H: Handler>(
    handler: Arc<H>,
    stream: std::os::unix::net::UnixStream,
    conn: u64,
    threaded_dicts: &[String],
    permit: OwnedSemaphorePermit,
    runtime: &tokio::runtime::Handle,
) -> io::Result<()> {
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut first = Vec::new();
    match read_line_blocking(&mut reader, &mut first)? {
        Line::Complete => {}
        Line::Eof => return Ok(()),
        Line::TooLong => {
            warn_too_long(conn);
            return Ok(());
        }
    }
    if matches!(codec::parse_line(&first), Ok(Command::Hello { dict, .. }) if threaded_dicts.contains(&dict))
    {
        let result = threaded_connection(&*handler, reader, stream, &first, conn, runtime);
        drop(permit);
        return result;
    }
    let leftover = std::io::Cursor::new(reader.buffer().to_vec());
    drop(reader);
    stream.set_nonblocking(true)?;
    let stream = {
        let _context = runtime.enter();
        UnixStream::from_std(stream)?
    };
    let (rd, wr) = stream.into_split();
    runtime.spawn(async move {
        let reader = BufReader::new(leftover.chain(rd));
        if let Err(e) = event_loop_connection(&*handler, reader, wr, conn, first).await {
            tracing::debug!(conn, error = %e, "dict connection ended with an error");
        }
        drop(permit);
    });
    Ok(())
}

/// [`read_line`] for blocking readers.
fn read_line_blocking<R: std::io::BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> io::Result<Line> {
    use std::io::{BufRead, Read};
    let limit = (MAX_LINE + 1).saturating_sub(buf.len()) as u64;
    reader.by_ref().take(limit).read_until(b'\n', buf)?;
    if buf.last() != Some(&b'\n') {
        return Ok(if buf.len() > MAX_LINE {
            Line::TooLong
        } else {
            Line::Eof
        });
    }
    buf.pop();
    Ok(Line::Complete)
}

/// A connection on its own thread: blocking reads and writes, handler futures run to
/// completion one at a time (which also keeps replies in order).
fn threaded_connection<H: Handler>(
    handler: &H,
    mut reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    stream: std::os::unix::net::UnixStream,
    first: &[u8],
    conn: u64,
    runtime: &tokio::runtime::Handle,
) -> io::Result<()> {
    use std::io::Write;
    // The handler may use tokio (spawn_blocking, timers): give this thread the runtime context.
    let _context = runtime.enter();
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut writer = std::io::BufWriter::new(stream);
    let mut state = Connection::new(handler, conn);
    let _ = state.handle(first);
    let mut line = Vec::new();
    loop {
        match read_line_blocking(&mut reader, &mut line)? {
            Line::Complete => {}
            Line::Eof => break,
            Line::TooLong => {
                warn_too_long(conn);
                break;
            }
        }
        if let Some(reply) = state.reply_now(&line, &waker) {
            writer.write_all(reply.as_bytes())?;
            // replies to requests that came in one read go out in one write
            if reader.buffer().is_empty() {
                writer.flush()?;
            }
        }
        line.clear();
    }
    writer.flush()
}

/// Wakes a thread parked in [`block_on`].
struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future to completion on this thread. Most handler futures are ready at the first
/// poll (a cache hit), which then costs nothing but the poll.
fn block_on<T>(fut: Pin<Box<dyn Future<Output = T> + Send + '_>>, waker: &std::task::Waker) -> T {
    let mut fut = fut;
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

async fn event_loop_connection<H: Handler, R: AsyncBufRead + Unpin>(
    handler: &H,
    mut reader: R,
    wr: tokio::net::unix::OwnedWriteHalf,
    conn: u64,
    first: Vec<u8>,
) -> io::Result<()> {
    let mut writer = BufWriter::new(wr);
    let mut state = Connection::new(handler, conn);
    let mut pending: FuturesOrdered<Reply<'_>> = FuturesOrdered::new();
    if let Step::Reply(fut) | Step::Barrier(fut) = state.handle(&first) {
        pending.push_back(fut);
    }
    let mut line = Vec::new();
    let mut reading = true;
    while reading || !pending.is_empty() {
        tokio::select! {
            Some(reply) = pending.next(), if !pending.is_empty() => {
                writer.write_all(reply.as_bytes()).await?;
                if pending.is_empty() {
                    writer.flush().await?;
                }
            }
            read = read_line(&mut reader, &mut line), if reading && pending.len() < MAX_PIPELINE => {
                match read? {
                    Line::Eof => reading = false,
                    Line::TooLong => {
                        tracing::warn!(conn, limit = MAX_LINE, "dict request line too long; closing connection");
                        reading = false;
                        pending.clear();
                    }
                    Line::Complete => {
                        let step = state.handle(&line);
                        line.clear();
                        match step {
                            Step::Nothing => {}
                            Step::Reply(fut) => pending.push_back(fut),
                            Step::Barrier(fut) => {
                                while let Some(reply) = pending.next().await {
                                    writer.write_all(reply.as_bytes()).await?;
                                }
                                let reply = fut.await;
                                writer.write_all(reply.as_bytes()).await?;
                                writer.flush().await?;
                            }
                        }
                    }
                }
            }
        }
    }
    writer.flush().await?;
    Ok(())
}

impl<'h, H: Handler> Connection<'h, H> {
    fn new(handler: &'h H, conn: u64) -> Self {
        Connection {
            handler,
            session: Session {
                dict: Arc::from(""),
                conn,
            },
            transactions: HashMap::new(),
        }
    }

    /// Handles a line and waits for its reply (threaded connections).
    fn reply_now(&mut self, line: &[u8], waker: &std::task::Waker) -> Option<String> {
        match self.handle(line) {
            Step::Nothing => None,
            Step::Reply(fut) | Step::Barrier(fut) => Some(block_on(fut, waker)),
        }
    }

    fn handle(&mut self, line: &[u8]) -> Step<'h> {
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
        tracing::warn!(conn, dict = %self.session.dict, cmd, %error, "malformed dict request");
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
                if major != 3 {
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
            Command::Begin { id, user } => {
                if self.transactions.len() >= MAX_TRANSACTIONS {
                    tracing::warn!(conn, "too many open dict transactions; refusing another");
                    self.transactions.insert(
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
                    return Step::Nothing;
                }
                let tx = Transaction {
                    id: id.clone(),
                    user,
                    ops: Vec::new(),
                };
                if self
                    .transactions
                    .insert(id, PendingTx { tx, broken: None })
                    .is_some()
                {
                    tracing::warn!(conn, "dict transaction id reused before commit");
                }
                Step::Nothing
            }
            Command::Set { id, key, value } => self.add_op(&id, Op::Set { key, value }),
            Command::Unset { id, key } => self.add_op(&id, Op::Unset { key }),
            Command::AtomicInc { id, key, diff } => self.add_op(&id, Op::Inc { key, diff }),
            Command::Rollback { id } => {
                self.transactions.remove(&id);
                Step::Nothing
            }
            Command::TransactionOption { .. } => Step::Nothing,
            Command::Commit { id } => {
                let Some(pending) = self.transactions.remove(&id) else {
                    tracing::warn!(conn, "commit of an unknown dict transaction");
                    let mut out = String::new();
                    CommitReply::Failed("unknown transaction".into()).encode(&id, &mut out);
                    return Step::Reply(Box::pin(std::future::ready(out)));
                };
                let session = self.session.clone();
                Step::Barrier(Box::pin(async move {
                    let reply = match pending.broken {
                        Some(reason) => CommitReply::Failed(reason.into()),
                        None => handler.commit(&session, pending.tx).await,
                    };
                    let mut out = String::new();
                    reply.encode(&id, &mut out);
                    out
                }))
            }
        }
    }

    fn add_op(&mut self, id: &str, op: Op) -> Step<'h> {
        match self.transactions.get_mut(id) {
            Some(p) if p.tx.ops.len() >= MAX_OPS => p.broken = Some("transaction too large"),
            Some(p) => p.tx.ops.push(op),
            None => tracing::warn!(
                conn = self.session.conn,
                "dict operation outside a transaction"
            ),
        }
        Step::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Looks up `sleep/<ms>` slowly; stores sets; fails everything else.
    #[derive(Default)]
    struct Test {
        store: std::sync::Mutex<HashMap<String, String>>,
    }

    impl Handler for Test {
        async fn lookup(&self, session: &Session, key: String, user: String) -> LookupReply {
            if let Some(ms) = key.strip_prefix("sleep/") {
                tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
                return LookupReply::Found(format!("{ms}:{user}:{}", session.dict));
            }
            match self.store.lock().unwrap().get(&key) {
                Some(v) => LookupReply::Found(v.clone()),
                None => LookupReply::NotFound,
            }
        }

        async fn iterate(
            &self,
            _: &Session,
            _: u32,
            path: String,
            _: String,
        ) -> Result<Vec<(String, String)>, String> {
            Ok(vec![
                (format!("{path}a"), "1".into()),
                (format!("{path}b"), "".into()),
            ])
        }

        async fn commit(&self, _: &Session, tx: Transaction) -> CommitReply {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut store = self.store.lock().unwrap();
            for op in tx.ops {
                match op {
                    Op::Set { key, value } => {
                        store.insert(key, format!("{value}/{}", tx.user));
                    }
                    _ => return CommitReply::Failed("unsupported".into()),
                }
            }
            CommitReply::Ok
        }
    }

    async fn start() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dict.sock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(serve(
            listener,
            Arc::new(Test::default()),
            std::future::pending(),
        ));
        (dir, path)
    }

    async fn start_threaded() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dict.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let options = Options {
            threaded_dicts: vec!["auth".into()],
        };
        tokio::spawn(serve_with(
            listener,
            Arc::new(Test::default()),
            std::future::pending(),
            options,
        ));
        (dir, path)
    }

    async fn exchange(path: &std::path::Path, input: &[u8]) -> String {
        let mut s = UnixStream::connect(path).await.unwrap();
        s.write_all(input).await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn replies_come_in_request_order() {
        let (_d, path) = start().await;
        let out = exchange(
            &path,
            b"H3\t2\t0\t\tauth\nLsleep/200\tu1\nLsleep/1\tu2\nLmissing\tu\nI0\t0\tp/\tu\nLsleep/50\tu3\n",
        )
        .await;
        assert_eq!(
            out,
            "O200:u1:auth\nO1:u2:auth\nN\nOp/a\t1\nOp/b\t\n\nO50:u3:auth\n"
        );
    }

    #[tokio::test]
    async fn transactions_are_per_connection_and_commits_are_barriers() {
        let (_d, path) = start().await;
        let out = exchange(
            &path,
            b"B1\talice\nS1\tk\tv\x01t1\nB2\tbob\nS2\tk2\tx\nR2\nC1\nLk\tu\nC2\nA3\tk\t1\nC9\n",
        )
        .await;
        assert_eq!(
            out,
            "O1\nOv\x01t1/alice\nF2\tunknown transaction\nF9\tunknown transaction\n"
        );
        // another connection may reuse id 1
        let out = exchange(&path, b"B1\tcarol\nS1\tk\tw\nC1\nLk\tu\n").await;
        assert_eq!(out, "O1\nOw/carol\n");
    }

    #[tokio::test]
    async fn hostile_lines_get_failures_and_the_server_keeps_serving() {
        let (_d, path) = start().await;
        let out = exchange(
            &path,
            b"L\xff\xfe\tu\nZzz\nI\t\t\nCx\x01\nS1\nLk\x01q\n\nLmissing\tu\n",
        )
        .await;
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 6, "{out:?}");
        assert!(lines[0].starts_with("Fmalformed request"));
        assert!(lines[1].starts_with("Fmalformed request: unknown command"));
        assert!(lines[2].starts_with("Fmalformed"));
        assert!(lines[3].starts_with("F\tmalformed"));
        assert!(lines[4].starts_with("Fmalformed"));
        assert_eq!(lines[5], "N");

        let mut long = vec![b'L'; MAX_LINE + 10];
        long.push(b'\n');
        assert_eq!(exchange(&path, &long).await, "");
        assert_eq!(exchange(&path, b"Lmissing\tu\n").await, "N\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn threaded_connections_answer_like_event_loop_ones() {
        let (_d, path) = start_threaded().await;
        // Requests that arrive with the hello, one of them cut in two writes.
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"H3\t2\t0\t\tauth\nLsleep/30\tu1\nB1\tbob\nS1\tk\tv\nC1\nLk\tu\nLmis")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"sing\tu\nI0\t0\tp/\tu\n").await.unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "O30:u1:auth\nO1\nOv/bob\nN\nOp/a\t1\nOp/b\t\n\n");

        // an overlong line closes the connection; the next connection is served
        let mut long = b"H3\t2\t0\t\tauth\n".to_vec();
        long.extend(vec![b'L'; MAX_LINE + 10]);
        long.push(b'\n');
        assert_eq!(exchange(&path, &long).await, "");
        assert_eq!(
            exchange(&path, b"H3\t2\t0\t\tauth\nLmissing\tu\n").await,
            "N\n"
        );
        // other dicts go back to the event loop with what came with the hello, a partial
        // line included; replies stay in request order
        let mut s = UnixStream::connect(&path).await.unwrap();
        s.write_all(b"H3\t2\t0\t\tlastlogin\nLsleep/40\tu\nLsleep/1\tv\nLmis")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.write_all(b"sing\tu\nB1\tbob\nS1\tk\tv\nC1\nLk\tu\n")
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "O40:u:lastlogin\nO1:v:lastlogin\nN\nO1\nOv/bob\n");

        // no hello at all, or an overlong one: closed, and the server goes on
        assert_eq!(exchange(&path, b"").await, "");
        assert_eq!(exchange(&path, &vec![b'H'; MAX_LINE + 10]).await, "");
        assert_eq!(
            exchange(&path, b"H3\t2\t0\t\tauth\nLsleep/1\tu\n").await,
            "O1:u:auth\n"
        );
    }

    #[tokio::test]
    async fn many_concurrent_connections() {
        let (_d, path) = start().await;
        let mut tasks = Vec::new();
        for i in 0..200 {
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                let req = format!("Lsleep/{}\tu{i}\n", i % 7);
                exchange(&path, req.as_bytes()).await == format!("O{}:u{i}:\n", i % 7)
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
    }
}
