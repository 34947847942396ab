//! The binary as systemd runs it: --help, config errors, READY=1, socket activation, SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-doveauth");

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("chatmail.ini");
    std::fs::write(
        &path,
        format!(
            "[params]\nmail_domain = example.org\nmailboxes_dir = {}\n",
            dir.join("vmail").display()
        ),
    )
    .unwrap();
    path
}

fn lookup(socket: &std::path::Path) -> String {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"H3\t2\t0\t\tauth\nLshared/userdb/nobody@example.org\tx\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_and_bad_config() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--socket"));

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.ini");
    std::fs::write(
        &cfg,
        "[params]\nmail_domain = example.org\nmax_load_1m = high\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("max_load_1m") && err.contains("high") && err.contains("bad.ini"),
        "{err}"
    );

    let out = Command::new(BIN)
        .arg("--config")
        .arg(dir.path().join("missing.ini"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn notifies_ready_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let socket = dir.path().join("doveauth.socket");
    let notify = dir.path().join("notify.sock");
    let rx = UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    // ready means listening
    assert_eq!(lookup(&socket), "N\n");
    assert!(terminate(&mut child).success());
    assert!(!socket.exists(), "socket file left behind");
}

#[test]
fn serves_a_socket_passed_by_systemd() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let path = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=doveauth exec {BIN} --config {} --socket {}",
            cfg.display(),
            dir.path().join("unused.sock").display()
        ))
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::fcntl(3, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(listener);
    assert_eq!(lookup(&path), "N\n");
    assert!(!dir.path().join("unused.sock").exists());
    assert!(terminate(&mut child).success());
    assert!(
        path.exists(),
        "a socket passed by systemd is not ours to remove"
    );
}
