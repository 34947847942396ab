//! The dict server: the accept loop, and where each connection is served.
//!
//! Dovecot matches replies to requests by order, so each connection answers in request order.
//! Lookups and iterations run concurrently (a slow one does not hold up reading), and their
//! replies are written in order; a commit is a barrier: it runs after every earlier request
//! has been answered and before any later one starts, so a lookup sees earlier writes.
//!
//! Every connection is a task on the tokio event loop ([`super::event_loop`]). Auth
//! connections once had a thread each with blocking I/O. That was faster only for a client
//! that blocks on each connection, which Dovecot is not. With one epoll loop over all
//! connections, as Dovecot's ioloop does, and with clients that reconnect at every request,
//! the event loop was faster (`cargo bench -p chatmail-doveauth`, README).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::event_loop;
use super::handler::Handler;

/// Concurrent connections; further ones wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16_384;

/// Serves connections from `listener` until `shutdown` completes.
pub async fn serve<H: Handler>(
    listener: UnixListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
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
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = counter.fetch_add(1, Ordering::Relaxed);
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = event_loop::serve_new(&*handler, stream, conn).await {
                tracing::debug!(conn, error = %e, "dict connection ended with an error");
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dict::codec::{CommitReply, LookupReply, MAX_LINE, Op};
    use crate::dict::handler::{Session, Transaction};
    use std::collections::HashMap;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

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

    /// Sends `input`, closes the sending side and reads until the server closes; the server
    /// may close before it has read everything.
    async fn exchange_lenient(path: &std::path::Path, input: &[u8]) -> String {
        let mut s = UnixStream::connect(path).await.unwrap();
        let _ = s.write_all(input).await;
        let _ = s.shutdown().await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8(out).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn too_many_open_transactions_close_the_connection() {
        let (_d, path) = start().await;
        for hello in ["", "H3\t2\t0\t\tauth\n"] {
            let mut input = format!("{hello}Lmissing\tu\n").into_bytes();
            for id in 0..2000 {
                input.extend(format!("B{id}\tu\nS{id}\tk\tv\n").bytes());
            }
            input.extend(b"C1\nLmissing\tu\n");
            // earlier requests are answered, nothing after the refused B
            assert_eq!(exchange_lenient(&path, &input).await, "N\n", "{hello}");
            // the server goes on
            let again = format!("{hello}B1\tu\nS1\tk\tv\nC1\nLk\tu\n");
            assert_eq!(exchange(&path, again.as_bytes()).await, "O1\nOv/u\n");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversized_transactions_fail_their_commit_and_the_connection_goes_on() {
        let (_d, path) = start().await;
        for hello in ["", "H3\t2\t0\t\tauth\n"] {
            // more bytes than a connection may hold: 20 values of 60 KiB
            let mut input = format!("{hello}B1\tu\nB2\tu\nS2\tk\tsmall\n").into_bytes();
            let value = "x".repeat(60 * 1024);
            for _ in 0..20 {
                input.extend(format!("S1\tbig\t{value}\n").bytes());
            }
            input.extend(b"C1\nC2\nLbig\tu\nLk\tu\n");
            // more operations than a transaction may hold
            input.extend(b"B3\tu\n");
            for _ in 0..5000 {
                input.extend(b"S3\tmany\tv\n");
            }
            input.extend(b"C3\nLmany\tu\n");
            let out = exchange(&path, &input).await;
            assert_eq!(
                out,
                "F1\ttransaction too large\nO2\nN\nOsmall/u\n\
                 F3\ttoo many operations in the transaction\nN\n",
                "{hello}"
            );
        }
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
