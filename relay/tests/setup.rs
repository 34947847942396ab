//! `chatmail-relay init` and `setup` on a directory standing in for `/` (`--root`): what is
//! written, what is kept, what is refused. (On a real host: tests/e2e.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// A root with the users and groups the package creates (owned by whoever runs the test,
    /// so that setup may chown to them without being root).
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let (uid, gid) = (meta.uid(), meta.gid());
        std::fs::create_dir_all(dir.path().join("etc/chatmail")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            format!(
                "root:x:0:0::/root:/bin/sh\nvmail:x:{uid}:{gid}::/home/vmail:/usr/sbin/nologin\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            format!(
                "root:x:0:\nvmail:x:{gid}:\nchatmail-dkim:x:{gid}:\npostfix:x:{gid}:\n\
                 chatmail-turn:x:{gid}:\nturnserver:x:{gid}:\n"
            ),
        )
        .unwrap();
        Host { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn ini(&self) -> PathBuf {
        self.root().join("etc/chatmail/chatmail.ini")
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root().join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatmail-relay"));
        cmd.arg("--root")
            .arg(self.root())
            .arg("--config")
            .arg("/etc/chatmail/chatmail.ini")
            .args(args);
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        err
    }

    fn init(&self, domain: &str) {
        self.ok(&["init", domain]);
    }

    /// Every file below the root, with its content.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>, u32)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>, u32)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    walk(&e.path(), out);
                } else {
                    out.push((e.path(), std::fs::read(e.path()).unwrap(), meta.mode()));
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), &mut out);
        out.sort();
        out
    }
}

#[test]
fn init_writes_a_config_and_refuses_to_overwrite_it() {
    let host = Host::new();
    host.init("chat.example.org");
    let ini = host.read("/etc/chatmail/chatmail.ini");
    assert!(ini.contains("mail_domain = chat.example.org\n"), "{ini}");
    assert!(ini.contains("max_user_send_per_minute = 60\n"), "{ini}");
    let err = host.fails(&["init", "other.example.org"]);
    assert!(err.contains("exists") && err.contains("--force"), "{err}");
    assert_eq!(host.read("/etc/chatmail/chatmail.ini"), ini);
    host.ok(&["init", "other.example.org", "--force"]);
    assert!(
        host.read("/etc/chatmail/chatmail.ini")
            .contains("mail_domain = other.example.org")
    );
    assert_eq!(host.read("/etc/chatmail/chatmail.ini.bak"), ini);
    for bad in ["not a domain", "chat..example.org", "../etc", "x"] {
        let err = host.fails(&["init", bad, "--force"]);
        assert!(err.contains("not a domain name"), "{err}");
    }
    let err = host.fails(&[
        "init",
        "chat.example.org",
        "--force",
        "--set",
        "max_load_1m=lots",
    ]);
    assert!(err.contains("max_load_1m"), "{err}");
}

#[test]
fn local_setup_renders_everything_once() {
    let host = Host::new();
    host.init("_chat.localhost");
    let out = host.ok(&["setup", "--local"]);
    assert!(out.contains("wrote /etc/postfix/main.cf"), "{out}");
    let main = host.read("/etc/postfix/main.cf");
    assert!(main.contains("inet_interfaces = 127.0.0.1\n"), "{main}");
    assert!(main.contains("mydestination = _chat.localhost\n"), "{main}");
    assert!(main.contains("maillog_file = /var/log/chatmail-relay/postfix.log\n"));
    assert!(main.contains("non_smtpd_milters = unix:chatmail/internal.sock\n"));
    assert!(!main.contains("{{"), "{main}");
    let dovecot = host.read("/etc/dovecot/dovecot.conf");
    assert!(dovecot.contains("listen = 127.0.0.1\n"), "{dovecot}");
    assert!(dovecot.contains(&format!(
        "mail_location = maildir:{}/%u",
        "/home/vmail/mail/_chat.localhost"
    )));
    assert_eq!(host.read("/etc/mailname"), "_chat.localhost\n");
    // nginx on loopback only, port 443 split by ALPN; the web files it serves.
    let nginx = host.read("/etc/nginx/nginx.conf");
    for line in [
        "        listen 127.0.0.1:443;\n",
        "        listen 127.0.0.1:80;\n",
        "        ~\\bimap\\b 127.0.0.1:10993;\n",
        "        ~\\bsmtp\\b 127.0.0.1:10465;\n",
        "        server unix:/run/chatmail-web/web.sock;\n",
        "    access_log /var/log/chatmail-relay/nginx-access.log;\n",
    ] {
        assert!(nginx.contains(line), "{line}: {nginx}");
    }
    assert!(!nginx.contains("{{") && !nginx.contains("[::]"), "{nginx}");
    // The relay's own iroh relay behind /relay (its WebSocket) and the probes.
    for line in [
        "        location = /relay {\n            proxy_pass http://127.0.0.1:3340;\n",
        "            proxy_set_header Upgrade $http_upgrade;\n",
        "        location = /generate_204 {\n",
        "        location = /ping {\n",
    ] {
        assert!(nginx.contains(line), "{line}: {nginx}");
    }
    assert_eq!(
        host.read("/var/lib/chatmail-relay/www/mta-sts.txt"),
        "version: STSv1\nmode: enforce\nmx: _chat.localhost\nmax_age: 2419200\n"
    );
    assert!(
        host.read("/var/lib/chatmail-relay/www/autoconfig.xml")
            .contains("<hostname>_chat.localhost</hostname>")
    );
    // The DKIM key (mode 0640) and its record; the self-signed certificate.
    let key = host.path("/etc/dkimkeys/opendkim.private");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(key.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    let txt = host.read("/etc/chatmail/dkim.txt");
    assert!(
        txt.starts_with("opendkim._domainkey._chat.localhost. TXT \"v=DKIM1; k=rsa; p="),
        "{txt}"
    );
    assert!(
        host.read("/etc/chatmail/tls/cert.pem")
            .contains("BEGIN CERTIFICATE")
    );
    let tls_key = host.path("/etc/chatmail/tls/key.pem");
    assert_eq!(
        std::fs::metadata(&tls_key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // coturn's configuration with the TURN secret setup made (both 0640: root and a group),
    // on loopback, relaying nowhere near the host.
    let secret = host.read("/etc/chatmail/turn.secret");
    assert!(
        secret.len() == 49 && secret.trim().bytes().all(|b| b.is_ascii_alphanumeric()),
        "{secret}"
    );
    let turn = host.read("/etc/chatmail/turnserver.conf");
    for line in [
        "realm=_chat.localhost\n".to_string(),
        "use-auth-secret\n".into(),
        format!("static-auth-secret={secret}"),
        "listening-ip=127.0.0.1\n".into(),
        "listening-port=3478\n".into(),
        "denied-peer-ip=127.0.0.0-127.255.255.255\n".into(),
        "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n".into(),
        "no-tcp-relay\n".into(),
        "no-cli\n".into(),
        "log-file=stdout\n".into(),
    ] {
        assert!(turn.contains(&line), "{line}: {turn}");
    }
    assert!(
        !turn.contains("{{") && !turn.contains("\nweb-admin"),
        "{turn}"
    );
    for file in ["/etc/chatmail/turn.secret", "/etc/chatmail/turnserver.conf"] {
        let mode = std::fs::metadata(host.path(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640, "{file}");
    }

    // A second run changes nothing, and a dry run shows nothing.
    let before = host.snapshot();
    assert_eq!(
        host.ok(&["setup", "--local"]).trim(),
        format!(
            "configuration unchanged\nDKIM record for _chat.localhost: {} (chatmail-relay dns lists every record)",
            "/etc/chatmail/dkim.txt"
        )
    );
    assert_eq!(host.ok(&["setup", "--local", "--dry-run"]), "");
    assert_eq!(host.snapshot(), before);

    // A changed key shows up as a diff in a dry run, and is written by the next run, the old
    // file kept.
    let ini = host
        .read("/etc/chatmail/chatmail.ini")
        .replace("max_message_size = 31457280", "max_message_size = 1000000");
    std::fs::write(host.ini(), ini).unwrap();
    let diff = host.ok(&["setup", "--local", "--dry-run"]);
    assert!(
        diff.contains("-message_size_limit = 31457280\n+message_size_limit = 1000000"),
        "{diff}"
    );
    assert!(!diff.contains("PRIVATE KEY"), "{diff}");
    assert!(!diff.contains(secret.trim()), "{diff}");
    let after_dry_run: Vec<_> = host
        .snapshot()
        .into_iter()
        .filter(|(p, _, _)| !p.ends_with("chatmail.ini"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _, _)| !p.ends_with("chatmail.ini"))
        .collect();
    assert_eq!(after_dry_run, before);
    host.ok(&["setup", "--local"]);
    assert!(
        host.read("/etc/postfix/main.cf")
            .contains("message_size_limit = 1000000\n")
    );
    assert!(
        host.read("/etc/postfix/main.cf.bak")
            .contains("message_size_limit = 31457280\n")
    );
}

#[test]
fn dovecot_2_4_gets_its_own_configuration() {
    let host = Host::new();
    host.init("_chat.localhost");
    // dpkg says: Debian 13's Dovecot.
    let status = host.path("/var/lib/dpkg/status");
    std::fs::create_dir_all(status.parent().unwrap()).unwrap();
    std::fs::write(
        &status,
        "Package: dovecot-core\nStatus: install ok installed\nVersion: 1:2.4.1+dfsg1-6+deb13u7\n",
    )
    .unwrap();
    host.ok(&["setup"]);
    let conf = host.read("/etc/dovecot/dovecot.conf");
    let first_setting = conf.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(first_setting, "dovecot_config_version = 2.4.1");
    for line in [
        "mail_path = /home/vmail/mail/_chat.localhost/%{user}\n",
        "  lua_file = /etc/dovecot/chatmail-auth.lua\n",
        "    dict_proxy_socket_path = /run/doveauth/doveauth.socket\n",
        "  executable = script /usr/bin/chatmail-expire quota\n",
    ] {
        assert!(conf.contains(line), "{line}: {conf}");
    }
    assert!(!conf.contains("{{"), "{conf}");
    let lua = host.read("/etc/dovecot/chatmail-auth.lua");
    assert!(lua.contains("local SOCKET = \"/run/doveauth/doveauth.socket\"\n"));
    // 2.3's files are not written.
    assert!(!host.path("/etc/dovecot/auth.conf").exists());
    assert!(!host.path("/etc/dovecot/chatmail.d").exists());
}

#[test]
fn ip_only_relays_get_no_dkim_key() {
    let host = Host::new();
    host.init("203.0.113.5");
    host.ok(&["setup", "--local"]);
    assert!(
        host.read("/etc/postfix/main.cf")
            .contains("mydestination = [203.0.113.5]\n")
    );
    assert!(
        host.read("/etc/postfix/main.cf")
            .contains("myhostname = 5.113.0.203.in-addr.arpa\n")
    );
    assert!(!host.path("/etc/dkimkeys/opendkim.private").exists());
    assert!(!host.path("/etc/chatmail/dkim.txt").exists());
}

#[test]
fn another_iroh_relay_and_no_turn_secret_leave_both_out() {
    let host = Host::new();
    host.ok(&[
        "init",
        "203.0.113.5",
        "--set",
        "iroh_relay=https://iroh.example.org",
        "--set",
        "turn_secret_file=",
    ]);
    host.ok(&["setup", "--local"]);
    let nginx = host.read("/etc/nginx/nginx.conf");
    assert!(
        !nginx.contains("/relay") && !nginx.contains("3340"),
        "{nginx}"
    );
    assert!(!host.path("/etc/chatmail/turnserver.conf").exists());
    assert!(!host.path("/etc/chatmail/turn.secret").exists());
}

#[test]
fn server_setup_refuses_a_configuration_that_is_not_ours() {
    let host = Host::new();
    host.init("chat.example.org");
    // Debian's nginx.conf (its default site) is replaced without asking; an operator's is not.
    std::fs::create_dir_all(host.path("/etc/nginx")).unwrap();
    let stock_nginx = "user www-data;\nworker_processes auto;\nhttp {\n\
                       \tinclude /etc/nginx/sites-enabled/*;\n}\n";
    std::fs::write(host.path("/etc/nginx/nginx.conf"), "# mine\nhttp {}\n").unwrap();
    let err = host.fails(&["setup"]);
    assert!(err.contains("/etc/nginx/nginx.conf"), "{err}");
    std::fs::write(host.path("/etc/nginx/nginx.conf"), stock_nginx).unwrap();
    let theirs = "# my own Postfix\nmyhostname = mx.example.net\n";
    std::fs::create_dir_all(host.path("/etc/postfix")).unwrap();
    std::fs::write(host.path("/etc/postfix/main.cf"), theirs).unwrap();
    let err = host.fails(&["setup"]);
    assert!(
        err.contains("/etc/postfix/main.cf") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(host.read("/etc/postfix/main.cf"), theirs);
    assert!(!host.path("/etc/dovecot/dovecot.conf").exists());
    // Debian's stock file is replaced without asking.
    std::fs::write(
        host.path("/etc/postfix/main.cf"),
        "# See /usr/share/postfix/main.cf.dist for a commented, more complete version\n",
    )
    .unwrap();
    let out = host.ok(&["setup", "--dry-run"]);
    assert!(out.contains("+inet_interfaces = all"), "{out}");
    // --force replaces the operator's file, keeping it.
    std::fs::write(host.path("/etc/postfix/main.cf"), theirs).unwrap();
    host.ok(&["setup", "--force"]);
    assert_eq!(host.read("/etc/postfix/main.cf.bak"), theirs);
    assert!(
        host.read("/etc/postfix/main.cf")
            .contains("inet_interfaces = all\n")
    );
    assert!(
        host.read("/etc/dovecot/dovecot.conf")
            .contains("listen = *, ::\n")
    );
    assert!(host.path("/home/vmail/mail/chat.example.org").is_dir());
    // The package's binaries (the local relay's are in /usr/local/bin).
    assert!(
        host.read("/etc/dovecot/chatmail.d/expire.conf")
            .contains("  executable = script /usr/bin/chatmail-expire quota\n")
    );
    let nginx = host.read("/etc/nginx/nginx.conf");
    assert!(
        nginx.contains("        listen 443;\n        listen [::]:443;\n")
            && nginx.contains("    access_log off;\n"),
        "{nginx}"
    );
    assert_eq!(
        host.read("/var/lib/chatmail-relay/chatmail.ini.applied"),
        host.read("/etc/chatmail/chatmail.ini")
    );
}

#[test]
fn unknown_and_bad_keys_are_refused_before_anything_is_written() {
    let host = Host::new();
    host.init("chat.example.org");
    let ini = host.read("/etc/chatmail/chatmail.ini");
    std::fs::write(host.ini(), format!("{ini}max_mailbox_sise = 1G\n")).unwrap();
    let err = host.fails(&["setup", "--local"]);
    assert!(err.contains("unknown key max_mailbox_sise"), "{err}");
    std::fs::write(
        host.ini(),
        ini.replace("max_mailbox_size = 500M", "max_mailbox_size = lots"),
    )
    .unwrap();
    let err = host.fails(&["setup", "--local"]);
    assert!(
        err.contains("max_mailbox_size") && err.contains("lots"),
        "{err}"
    );
    assert!(!host.path("/etc/postfix").exists());
    std::fs::remove_file(host.ini()).unwrap();
    let err = host.fails(&["setup", "--local"]);
    assert!(err.contains("chatmail.ini"), "{err}");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

#[test]
fn another_program_on_a_relay_port_stops_setup() {
    // The root's /proc is the real one; this test listens on 127.0.0.2:587, beside whatever
    // else may listen on 587 on this machine.
    let Ok(listener) = std::net::TcpListener::bind("127.0.0.2:587") else {
        eprintln!("skipped: cannot listen on 127.0.0.2:587 (not root, or taken)");
        return;
    };
    let host = Host::new();
    host.init("chat.example.org");
    std::os::unix::fs::symlink("/proc", host.path("/proc")).unwrap();
    let err = host.fails(&["setup"]);
    let me = std::process::id();
    assert!(
        err.contains("port 587") && err.contains(&format!("(pid {me})")),
        "{err}"
    );
    assert!(!host.path("/etc/postfix/main.cf").exists());
    drop(listener);
    host.ok(&["setup", "--dry-run"]);
}

#[test]
fn a_full_disk_leaves_the_previous_configuration() {
    if !is_root() {
        eprintln!("skipped: mounting a small file system needs root");
        return;
    }
    let host = Host::new();
    host.init("chat.example.org");
    host.ok(&["setup", "--local"]);
    let main_cf = host.read("/etc/postfix/main.cf");
    let dovecot_conf = host.read("/etc/dovecot/dovecot.conf");
    // /etc/dovecot becomes a small file system holding the same files, then full.
    let dovecot = host.path("/etc/dovecot");
    let copy = tempfile::tempdir().unwrap();
    let cp = |from: &Path, to: &Path| {
        let done = Command::new("cp")
            .arg("-a")
            .arg(from.join("."))
            .arg(to)
            .status();
        assert!(done.unwrap().success());
    };
    cp(&dovecot, copy.path());
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dovecot)
        .status();
    assert!(mount.unwrap().success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _mounted = Unmount(dovecot.clone());
    cp(copy.path(), &dovecot);
    assert!(std::fs::write(dovecot.join("filler"), vec![0u8; 1 << 20]).is_err());

    // A change to both Postfix's and Dovecot's configuration.
    let ini = host.read("/etc/chatmail/chatmail.ini");
    let ini = ini.replace("max_message_size = 31457280", "max_message_size = 1000000");
    std::fs::write(host.ini(), ini).unwrap();
    let err = host.fails(&["setup", "--local"]);
    assert!(
        err.contains("No space left on device") && err.contains("/etc/dovecot"),
        "{err}"
    );
    assert_eq!(host.read("/etc/postfix/main.cf"), main_cf);
    assert_eq!(host.read("/etc/dovecot/dovecot.conf"), dovecot_conf);
    let leftovers: Vec<_> = host
        .snapshot()
        .into_iter()
        .filter(|(p, _, _)| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_operators_certificate_is_used_and_watched() {
    let host = Host::new();
    host.ok(&[
        "init",
        "chat.example.org",
        "--set",
        "tls_external_cert_and_key=/etc/ssl/relay/cert.pem /etc/ssl/relay/key.pem",
    ]);
    let err = host.fails(&["setup"]);
    assert!(
        err.contains("tls_external_cert_and_key") && err.contains("/etc/ssl/relay/cert.pem"),
        "{err}"
    );
    assert!(!host.path("/etc/postfix/main.cf").exists());
    std::fs::create_dir_all(host.path("/etc/ssl/relay")).unwrap();
    for file in ["/etc/ssl/relay/cert.pem", "/etc/ssl/relay/key.pem"] {
        std::fs::write(host.path(file), "PEM\n").unwrap();
    }
    host.ok(&["setup"]);
    let main = host.read("/etc/postfix/main.cf");
    assert!(
        main.contains("smtpd_tls_cert_file = /etc/ssl/relay/cert.pem\n"),
        "{main}"
    );
    assert!(
        main.contains("smtpd_tls_key_file = /etc/ssl/relay/key.pem\n"),
        "{main}"
    );
    let dovecot = host.read("/etc/dovecot/dovecot.conf");
    assert!(
        dovecot.contains("ssl_cert = </etc/ssl/relay/cert.pem\n"),
        "{dovecot}"
    );
    let path = host.read("/etc/systemd/system/chatmail-relay-tls-reload.path");
    assert!(
        path.contains("PathChanged=/etc/ssl/relay/cert.pem\nPathChanged=/etc/ssl/relay/key.pem\n"),
        "{path}"
    );
    let service = host.read("/etc/systemd/system/chatmail-relay-tls-reload.service");
    assert!(service.contains("try-restart dovecot.service"), "{service}");
    assert!(
        service.contains("try-reload-or-restart postfix.service"),
        "{service}"
    );
    assert!(
        !host.path("/etc/chatmail/tls").exists(),
        "no self-signed certificate"
    );
    // The local relay has no systemd: no units there.
    let local = Host::new();
    local.ok(&[
        "init",
        "chat.example.org",
        "--set",
        "tls_external_cert_and_key=/c.pem /k.pem",
    ]);
    for file in ["/c.pem", "/k.pem"] {
        std::fs::write(local.path(file), "PEM\n").unwrap();
    }
    local.ok(&["setup", "--local"]);
    assert!(!local.path("/etc/systemd").exists());
}
