//! Connections served on the tokio event loop: lookups and iterations run concurrently, their
//! replies are written in request order, and a commit is a barrier.

use std::io;

use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::io::{AsyncBufRead, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;

use super::connection::{Connection, Reply, Step};
use super::handler::Handler;
use super::lines::{Line, read_line, warn_too_long};

/// Requests in flight on one connection before we stop reading from it.
const MAX_PIPELINE: usize = 256;

/// Serves a new connection whose first line has not been read yet.
pub(super) async fn serve_new<H: Handler>(
    handler: &H,
    stream: UnixStream,
    conn: u64,
) -> io::Result<()> {
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
    serve(handler, reader, wr, conn, first).await
}

/// Serves a connection whose first line (`first`) has been read.
pub(super) async fn serve<H: Handler, R: AsyncBufRead + Unpin>(
    handler: &H,
    mut reader: R,
    wr: OwnedWriteHalf,
    conn: u64,
    first: Vec<u8>,
) -> io::Result<()> {
    let mut writer = BufWriter::new(wr);
    let mut state = Connection::new(handler, conn);
    let mut pending: FuturesOrdered<Reply<'_>> = FuturesOrdered::new();
    match state.handle(&first) {
        Step::Nothing => {}
        Step::Reply(fut) | Step::Barrier(fut) => pending.push_back(fut),
        Step::Close => return Ok(()),
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
                        warn_too_long(conn);
                        reading = false;
                        pending.clear();
                    }
                    Line::Complete => {
                        let step = state.handle(&line);
                        line.clear();
                        match step {
                            Step::Nothing => {}
                            Step::Reply(fut) => pending.push_back(fut),
                            Step::Close => reading = false,
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
