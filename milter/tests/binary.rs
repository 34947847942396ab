//! The `chatmail-milter` binary: CLI, config errors, sockets, readiness, systemd socket
//! activation, SIGTERM.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_chatmail-milter");
const ALICE: &str = "alice@chat.example.org";

/// A config for chat.example.org with the test DKIM key (and a name server that is never
/// asked: nothing here verifies foreign mail), and ALICE's account. The listeners default to
/// sockets in a directory that does not exist (a test that binds gives its own), never to
/// the system's.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let account = dir.join("mailboxes").join(ALICE);
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(account.join("password"), "{SHA512-CRYPT}x").unwrap();
    let key = dir.join("dkim.key");
    std::fs::copy(data_dir().join("dkim-test.key"), &key).unwrap();
    let missing = dir.join("no-such-dir");
    let sockets: String = ["outbound", "inbound", "internal"]
        .iter()
        .filter(|name| !extra.contains(&format!("milter_{name}")))
        .map(|name| format!("milter_{name} = unix:{}/{name}.sock\n", missing.display()))
        .collect();
    let path = dir.join("chatmail.ini");
    std::fs::write(
        &path,
        format!(
            "[params]\nmail_domain = chat.example.org\nmailboxes_dir = {}\n\
             dkim_key = {}\ndns_resolver = 127.0.0.1:9\n{sockets}{extra}",
            dir.join("mailboxes").display(),
            key.display(),
        ),
    )
    .unwrap();
    path
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{path:?} never appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn help_names_the_options() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--config",
        "--outbound",
        "--inbound",
        "--internal",
        "unix:/path",
        "inet:HOST:PORT",
    ] {
        assert!(text.contains(word), "--help lacks {word}: {text}");
    }
}

#[test]
fn bad_config_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "max_user_send_per_minute = lots\n");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("max_user_send_per_minute") && err.contains("lots"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/chatmail.ini"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = Command::new(BIN)
        .arg("--config")
        .arg(write_config(dir.path(), ""))
        .args(["--outbound", "tcp:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // two listeners on one address: one line naming both
    let out = Command::new(BIN)
        .arg("--config")
        .arg(write_config(dir.path(), ""))
        .args([
            "--inbound",
            "unix:/tmp/x.sock",
            "--internal",
            "unix:/tmp/x.sock",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().lines().count() == 1 && err.contains("inbound and internal"),
        "{err}"
    );
    // A DKIM key that is missing or not a key: one line, exit 1.
    for content in [None, Some("not a key\n")] {
        let cfg = write_config(dir.path(), "");
        let key = dir.path().join("dkim.key");
        match content {
            None => std::fs::remove_file(&key).unwrap(),
            Some(c) => std::fs::write(&key, c).unwrap(),
        }
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("DKIM key") && err.contains("dkim.key"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[tokio::test]
async fn serves_from_config_sockets_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out_sock = dir.path().join("spool/chatmail/outbound.sock");
    let in_sock = dir.path().join("spool/chatmail/inbound.sock");
    let internal_sock = dir.path().join("spool/chatmail/internal.sock");
    // The packaging makes the directory; the milter only binds in it.
    std::fs::create_dir_all(dir.path().join("spool/chatmail")).unwrap();
    let cfg = write_config(
        dir.path(),
        &format!(
            "milter_outbound = unix:{}\nmilter_inbound = unix:{}\nmilter_internal = unix:{}\n",
            out_sock.display(),
            in_sock.display(),
            internal_sock.display()
        ),
    );
    let notify = dir.path().join("notify.sock");
    let notify_rx = UnixDatagram::bind(&notify).unwrap();
    notify_rx
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &notify)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = notify_rx.recv(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    for sock in [&out_sock, &in_sock, &internal_sock] {
        let mode = std::fs::metadata(sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o660, "{sock:?}");
    }
    let enc = encrypted(ALICE, "x@example.net", &quick_armored());
    let out = send(
        &out_sock,
        Some(ALICE),
        ALICE,
        &["x@example.net"],
        enc.as_bytes(),
    )
    .await;
    assert!(out.accepted(), "{out:?}");
    let clear = plain("x@example.net", ALICE, "hi");
    std::fs::create_dir_all(dir.path().join("mailboxes").join(ALICE)).unwrap();
    std::fs::write(
        dir.path()
            .join("mailboxes")
            .join(ALICE)
            .join("enforceE2EEincoming"),
        "",
    )
    .unwrap();
    let out = send(&in_sock, None, "x@example.net", &[ALICE], clear.as_bytes()).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));

    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(
        !out_sock.exists() && !in_sock.exists(),
        "socket files left behind"
    );
    let mut log = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    eprintln!("--- milter log ---\n{log}");
    assert!(log.contains("Outgoing: Filtering encrypted mail."), "{log}");
    assert!(
        log.contains("Rejected unencrypted mail from: x@example.net"),
        "{log}"
    );
    assert!(!log.contains("hi\r\n"), "message content in the log");
}

#[tokio::test]
async fn command_line_addresses_override_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "milter_outbound = unix:/nonexistent/dir/o.sock\n",
    );
    let out_sock = dir.path().join("o.sock");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--outbound")
        .arg(format!("unix:{}", out_sock.display()))
        .arg("--inbound")
        .arg(format!("inet:127.0.0.1:{port}"))
        .arg("--internal")
        .arg(format!("unix:{}", dir.path().join("i.sock").display()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&out_sock);
    let start = Instant::now();
    let mut conn = loop {
        match indymilter_test::TestConnection::open(("127.0.0.1", port)).await {
            Ok(c) => break c,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("inbound TCP listener: {e}"),
        }
    };
    // From our own domain, signed with our key: verified without DNS.
    let enc = encrypted("bob@chat.example.org", ALICE, &quick_armored());
    let enc = dkim_signed(&enc, "chat.example.org", "opendkim");
    let out = transaction(&mut conn, None, "x@example.net", &[ALICE], enc.as_bytes()).await;
    assert!(out.accepted(), "{out:?}");
    let _ = conn.close().await;
    assert!(terminate(&mut child).success());
}

#[tokio::test]
async fn systemd_socket_activation_by_name() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    // The internal listener is not passed: the milter binds it itself, from the config.
    let internal_sock = dir.path().join("internal.sock");
    let cfg = write_config(
        dir.path(),
        &format!("milter_internal = unix:{}\n", internal_sock.display()),
    );
    // Sockets made "by systemd", passed as fds 3 and 4, in the opposite order of their names.
    let in_path = dir.path().join("in.sock");
    let out_path = dir.path().join("out.sock");
    let inbound = UnixListener::bind(&in_path).unwrap();
    let outbound = UnixListener::bind(&out_path).unwrap();
    let (fd_in, fd_out) = (inbound.as_raw_fd(), outbound.as_raw_fd());
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID=$$ LISTEN_FDS=2 LISTEN_FDNAMES=inbound:outbound exec {BIN} --config {}",
            cfg.display()
        ))
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Via high numbers first, in case one of them already is 3 or 4.
            for (from, to) in [(fd_in, 200), (fd_out, 201), (200, 3), (201, 4)] {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::fcntl(to, libc::F_SETFD, 0);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop((inbound, outbound));
    // The default sockets from the config (under /var/spool/postfix) must not be needed.
    let enc = encrypted(ALICE, "x@example.net", &quick_armored());
    let out = send(
        &out_path,
        Some(ALICE),
        ALICE,
        &["x@example.net"],
        enc.as_bytes(),
    )
    .await;
    assert!(out.accepted(), "outbound by name: {out:?}");
    let signed = dkim_signed(&enc, "chat.example.org", "opendkim");
    let out = send(&in_path, None, "x@example.net", &[ALICE], signed.as_bytes()).await;
    assert!(out.accepted(), "inbound by name: {out:?}");
    // Direction really follows the name: an authenticated session on "inbound" is refused.
    let out = send(
        &in_path,
        Some(ALICE),
        ALICE,
        &["x@example.net"],
        enc.as_bytes(),
    )
    .await;
    assert!(matches!(out, Outcome::Mail(_)), "{out:?}");
    assert!(terminate(&mut child).success());
    // Sockets passed by systemd are not ours to remove.
    assert!(in_path.exists() && out_path.exists());
}
