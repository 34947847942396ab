//! A running `chatmail-doveauth` with its own config and mailboxes directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DOMAIN: &str = "chat.example.org";

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub mailboxes: PathBuf,
    pub nocreate: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts the daemon with permissive system limits plus `extra` config lines.
    pub fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mailboxes = dir.path().join("vmail").join(DOMAIN);
        let nocreate = dir.path().join("nocreate");
        let config = dir.path().join("chatmail.ini");
        let limits = [
            "max_load_1m = 99999",
            "min_available_memory = 0",
            "min_free_disk_space = 0",
        ]
        .iter()
        .filter(|l| !extra.contains(l.split(' ').next().unwrap_or_default()))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
        std::fs::write(
            &config,
            format!(
                "[params]\nmail_domain = {DOMAIN}\nmailboxes_dir = {}\nnocreate_file = {}\n{limits}{extra}",
                mailboxes.display(),
                nocreate.display()
            ),
        )
        .unwrap();
        let socket = dir.path().join("doveauth.socket");
        let child = Command::new(env!("CARGO_BIN_EXE_chatmail-doveauth"))
            .arg("--config")
            .arg(&config)
            .arg("--socket")
            .arg(&socket)
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not start: {}",
                log(dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            dir,
            socket,
            mailboxes,
            nocreate,
            child,
        }
    }

    pub fn log(&self) -> String {
        log(self.dir.path())
    }

    pub fn connect(&self) -> Client {
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        };
        c.send("H3\t2\t0\t\tauth\n");
        c
    }

    pub fn password_file(&self, addr: &str) -> PathBuf {
        self.mailboxes.join(addr).join("password")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("log")).unwrap_or_default()
}

pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn send(&mut self, data: &str) {
        self.stream.write_all(data.as_bytes()).unwrap();
    }

    pub fn send_bytes(&mut self, data: &[u8]) {
        self.stream.write_all(data).unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line
    }

    /// The next line, or "" once the server closed the connection.
    pub fn line_or_closed(&mut self) -> String {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) => line,
            Err(_) => String::new(),
        }
    }

    pub fn request(&mut self, data: &str) -> String {
        self.send(data);
        self.line()
    }

    pub fn passdb(&mut self, user: &str, password: &str) -> String {
        let pw = password
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\'', "\\'");
        self.request(&format!("Lshared/passdb/{pw}\"{user}\t{user}\n"))
    }

    pub fn userdb(&mut self, user: &str) -> String {
        self.request(&format!("Lshared/userdb/{user}\t{user}\n"))
    }
}

/// The JSON object of an `O` reply.
pub fn record(reply: &str) -> serde_json::Value {
    let json = reply
        .strip_prefix('O')
        .unwrap_or_else(|| panic!("not found: {reply:?}"));
    serde_json::from_str(json.trim_end()).unwrap()
}
