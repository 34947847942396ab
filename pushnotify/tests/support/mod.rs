//! Shared test harness: a mailboxes dir, the service started in-process on a unix socket, and
//! a small dict client.
#![allow(dead_code)]

pub mod gateway;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chatmail_pushnotify::clock::SystemClock;
use chatmail_pushnotify::gateway::Gateway;
use chatmail_pushnotify::notifier;
use chatmail_pushnotify::retry::Schedule;
use chatmail_pushnotify::server_info::ServerInfo;
use chatmail_pushnotify::service::{self, Service, Settings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

pub const USER: &str = "user1234@example.org";

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub mailboxes: PathBuf,
    pub socket: PathBuf,
    pub service: Option<Service>,
    /// Gateway request timeout of the next start.
    pub timeout: Duration,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// A quick retry schedule: 4 retries 20 ms apart, generous deadline.
pub fn fast_schedule() -> Schedule {
    Schedule {
        delays: vec![Duration::from_millis(20); 4],
        deadline: Duration::from_secs(3600),
    }
}

impl Harness {
    /// A mailboxes dir with the mailbox of [`USER`].
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mailboxes = dir.path().join("mail");
        Self::with_mailboxes(dir, mailboxes)
    }

    pub fn with_mailboxes(dir: tempfile::TempDir, mailboxes: PathBuf) -> Harness {
        std::fs::create_dir_all(mailboxes.join(USER)).unwrap();
        Harness {
            socket: dir.path().join("metadata.socket"),
            dir,
            mailboxes,
            service: None,
            timeout: Duration::from_secs(2),
            server: None,
        }
    }

    pub fn queue_dir(&self) -> PathBuf {
        self.mailboxes.join("pending_notifications")
    }

    pub fn metadata_json(&self, user: &str) -> PathBuf {
        self.mailboxes.join(user).join("metadata.json")
    }

    /// Files in the queue directory, sorted.
    pub fn queue_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match std::fs::read_dir(self.queue_dir()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    pub fn settings(&self, schedule: Schedule) -> Settings {
        Settings {
            mailboxes_dir: self.mailboxes.clone(),
            info: ServerInfo {
                iroh_relay: "https://example.org".into(),
                turn_host: "example.org".into(),
                turn_secret: Some(self.dir.path().join("turn.secret")),
                turn_socket: self.dir.path().join("turn.socket"),
                turn_timeout: Duration::from_secs(1),
                appversions_file: Path::new(env!("CARGO_MANIFEST_DIR")).join("appversions.json"),
            },
            notifier: notifier::Options {
                max_in_flight: 16,
                schedule,
            },
        }
    }

    /// Starts (or restarts) the service with `gateway_url` and serves the socket.
    pub async fn start(&mut self, gateway_url: &str, schedule: Schedule) {
        self.stop();
        let gateway = Gateway::new(gateway_url, self.timeout, None).unwrap();
        let service = service::start(self.settings(schedule), gateway, Arc::new(SystemClock))
            .await
            .unwrap();
        let _ = std::fs::remove_file(&self.socket);
        let listener = tokio::net::UnixListener::bind(&self.socket).unwrap();
        let handler = service.handler.clone();
        self.server = Some(tokio::spawn(async move {
            chatmail_common::dict::serve(listener, handler, std::future::pending())
                .await
                .unwrap();
        }));
        self.service = Some(service);
    }

    /// Stops the server and the notifier abruptly (like a crash: nothing is flushed).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
        self.service = None;
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket).await
    }

    /// Waits until the queue directory is empty (up to 30 s).
    pub async fn wait_queue_empty(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.queue_files().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "queue not drained: {:?}",
                self.queue_files()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A dict client speaking like Dovecot.
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_tx: u32,
}

impl Client {
    pub async fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).await.unwrap();
        let (r, mut w) = stream.into_split();
        w.write_all(b"H3\t2\t0\t\tmetadata\n").await.unwrap();
        Client {
            reader: BufReader::new(r),
            writer: w,
            next_tx: 1,
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
    }

    pub async fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), self.reader.read_line(&mut line))
            .await
            .expect("no reply within 30 s")
            .unwrap();
        assert!(n > 0, "connection closed");
        line.pop();
        line
    }

    pub async fn lookup(&mut self, key: &str, user: &str) -> String {
        self.send(&format!("L{key}\t{user}")).await;
        self.read_line().await
    }

    /// One transaction setting `key` to `value` (already escaped), returns the commit reply.
    pub async fn set(&mut self, user: &str, key: &str, value: &str) -> String {
        let id = self.next_tx;
        self.next_tx += 1;
        self.send(&format!("B{id}\t{user}")).await;
        self.send(&format!("S{id}\t{key}\t{value}")).await;
        self.send(&format!("C{id}")).await;
        self.read_line().await
    }

    pub async fn set_token(&mut self, user: &str, token: &str) -> String {
        self.set(
            user,
            "priv/43f5f508a7ea0366dff30200c15250e3/devicetoken",
            token,
        )
        .await
    }

    pub async fn get_tokens(&mut self, user: &str) -> String {
        self.lookup("priv/43f5f508a7ea0366dff30200c15250e3/devicetoken", user)
            .await
    }

    pub async fn message_new(&mut self, user: &str) -> String {
        self.set(user, "priv/43f5f508a7ea0366dff30200c15250e3/messagenew", "")
            .await
    }
}
