//! The `chatmail-pushnotify` binary: CLI, config errors, `kill -9` with pending notifications,
//! SIGTERM.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::gateway::{Reply, StandIn, always};
use support::{Client, USER};

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-pushnotify");

struct Setup {
    dir: tempfile::TempDir,
    ini: PathBuf,
    socket: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("mail").join(USER)).unwrap();
        Setup {
            ini: dir.path().join("chatmail.ini"),
            socket: dir.path().join("metadata.socket"),
            dir,
        }
    }

    fn write_ini(&self, url: &str) {
        let d = self.dir.path();
        std::fs::write(
            &self.ini,
            format!(
                "[params]\nmail_domain = example.org\nmailboxes_dir = {}\nnotification_url = {url}\n\
                 appversions_file = {}\nturn_socket_path = {}\nturn_secret_file = {}\n",
                d.join("mail").display(),
                Path::new(env!("CARGO_MANIFEST_DIR")).join("appversions.json").display(),
                d.join("turn.socket").display(),
                d.join("turn.secret").display()
            ),
        )
        .unwrap();
    }

    fn queue_len(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("mail/pending_notifications"))
            .map_or(0, |rd| rd.count())
    }

    /// Starts the daemon and waits until it accepts connections.
    async fn spawn(&self) -> Child {
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&self.ini)
            .arg("--socket")
            .arg(&self.socket)
            .env("RUST_LOG", "debug")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::UnixStream::connect(&self.socket).await.is_err() {
            assert!(Instant::now() < deadline, "daemon did not start listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        child
    }
}

#[test]
fn help_and_bad_config() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--config") && help.contains("--socket"),
        "{help}"
    );

    let s = Setup::new();
    std::fs::write(
        &s.ini,
        "[params]\nmail_domain = example.org\nnotification_url = ftp://x\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.ini)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("notification_url"), "{err}");

    // the mailboxes directory must exist
    std::fs::write(
        &s.ini,
        "[params]\nmail_domain = example.org\nmailboxes_dir = /nonexistent/mail\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&s.ini)
        .arg("--socket")
        .arg(&s.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vmail dir does not exist: /nonexistent/mail"),
        "{err}"
    );
}

#[tokio::test]
async fn kill_9_loses_no_notification() {
    let s = Setup::new();
    let dead = StandIn::http(Arc::new(|_: &str, _| Reply::Hang)).await;
    s.write_ini(&dead.url);
    let mut child = s.spawn().await;
    let mut c = Client::connect(&s.socket).await;
    assert_eq!(c.set_token(USER, "1111").await, "O1");
    assert_eq!(c.set_token(USER, "2222").await, "O2");
    assert_eq!(c.message_new(USER).await, "O3");
    assert_eq!(c.message_new(USER).await, "O4");
    dead.wait_for("four requests", |hits| hits.len() == 4).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(s.queue_len(), 4);

    let gw = StandIn::http(always(200)).await;
    s.write_ini(&gw.url);
    let mut child = s.spawn().await;
    gw.wait_for("four posts", |hits| hits.len() == 4).await;
    let mut bodies = gw.bodies();
    bodies.sort();
    assert_eq!(bodies, vec!["1111", "1111", "2222", "2222"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.queue_len() > 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // tokens survived too
    let mut c = Client::connect(&s.socket).await;
    assert_eq!(c.get_tokens(USER).await, "O1111 2222");

    assert!(s.socket.exists());
    // SIGTERM: a clean exit that removes the socket file
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            assert!(!s.socket.exists());
            break;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
