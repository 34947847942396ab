//! Connections served on a thread of their own with blocking I/O.
//!
//! That suits Dovecot's auth workers: few connections, one request at a time, and a reply is
//! on the critical path of every login. A blocking read or write there waits exactly as long
//! as the round trip needs, without the event loop's wake-ups, and a slow disk read holds up
//! only that one connection. Handler futures run on the connection's thread with a minimal
//! executor ([`block_on`]); most are ready at their first poll.

use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::codec::{self, Command};
use super::connection::{Connection, Step};
use super::event_loop;
use super::handler::Handler;
use super::lines::{Line, append, read_line_blocking, warn_too_long};

/// Which connections move to their own thread, and how many threads may serve them.
pub(super) struct Threads {
    pub(super) dicts: Vec<String>,
    pub(super) permits: Arc<Semaphore>,
    /// Time for the hello line of a connection on a thread.
    pub(super) hello_timeout: Duration,
}

impl Threads {
    /// A free thread, if threaded dicts are configured and not all threads are busy.
    pub(super) fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        if self.dicts.is_empty() {
            return None;
        }
        self.permits.clone().try_acquire_owned().ok()
    }

    /// Moves `stream` to a thread of its own, which reads the hello and keeps the connection
    /// if its dict is threaded, else hands it back to the event loop. `permit` (the
    /// connection's place among all connections) goes with it.
    pub(super) fn spawn<H: Handler>(
        &self,
        handler: Arc<H>,
        stream: UnixStream,
        conn: u64,
        permit: OwnedSemaphorePermit,
        thread_permit: OwnedSemaphorePermit,
    ) -> io::Result<()> {
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        let runtime = tokio::runtime::Handle::current();
        let dicts = self.dicts.clone();
        let hello_timeout = self.hello_timeout;
        std::thread::Builder::new()
            .name("dict-conn".into())
            .spawn(move || {
                let result =
                    on_thread(handler, stream, conn, &dicts, hello_timeout, permit, &runtime);
                if let Err(e) = result {
                    tracing::debug!(conn, error = %e, "dict connection ended with an error");
                }
                drop(thread_permit);
            })
            .map_err(|e| {
                // Dovecot retries; the next connection may get a thread or the event loop
                tracing::warn!(conn, error = %e, "cannot start a dict connection thread; closing it");
                e
            })?;
        Ok(())
    }
}

/// A new connection on its own thread: reads the hello, then serves a threaded dict here or
/// hands any other back to the event loop with what was read so far.
fn on_thread<H: Handler>(
    handler: Arc<H>,
    stream: StdUnixStream,
    conn: u64,
    threaded_dicts: &[String],
    hello_timeout: Duration,
    permit: OwnedSemaphorePermit,
    runtime: &tokio::runtime::Handle,
) -> io::Result<()> {
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let mut first = Vec::new();
    match read_hello(&mut reader, &stream, &mut first, hello_timeout) {
        Ok(Line::Complete) => {}
        Ok(Line::Eof) => return Ok(()),
        Ok(Line::TooLong) => {
            warn_too_long(conn);
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            crate::warn_limited!(
                "dict client sent no hello in time; closing the connection",
                conn
            );
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    if matches!(codec::parse_line(&first), Ok(Command::Hello { dict, .. }) if threaded_dicts.contains(&dict))
    {
        let result = serve(&*handler, reader, stream, &first, conn, runtime);
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
        if let Err(e) = event_loop::serve(&*handler, reader, wr, conn, first).await {
            tracing::debug!(conn, error = %e, "dict connection ended with an error");
        }
        drop(permit);
    });
    Ok(())
}

/// Reads the first line within `timeout`, however slowly it trickles in: an error of kind
/// `TimedOut` when it is not complete by then. Later reads have no timeout.
fn read_hello(
    reader: &mut std::io::BufReader<StdUnixStream>,
    stream: &StdUnixStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> io::Result<Line> {
    use std::io::BufRead;
    let deadline = Instant::now() + timeout;
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        // the reader reads a clone of `stream`: the same socket
        stream.set_read_timeout(Some(left))?;
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break Line::Eof;
        }
        let (used, line) = append(available, buf);
        reader.consume(used);
        if let Some(line) = line {
            break line;
        }
    };
    stream.set_read_timeout(None)?;
    Ok(line)
}

/// A connection on its own thread: blocking reads and writes, handler futures run to
/// completion one at a time (which also keeps replies in order).
fn serve<H: Handler>(
    handler: &H,
    mut reader: std::io::BufReader<StdUnixStream>,
    stream: StdUnixStream,
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
        let reply = match state.handle(&line) {
            Step::Nothing => None,
            Step::Reply(fut) | Step::Barrier(fut) => Some(block_on(fut, &waker)),
            Step::Close => break,
        };
        if let Some(reply) = reply {
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
