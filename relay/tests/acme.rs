//! `chatmail-relay cert --renew` against a real ACME server: Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS (every name is 127.0.0.1), both in a network namespace
//! of their own where the binary answers HTTP-01 on port 80. Nothing outside the temporary
//! root is written (`--root`), nothing leaves the namespace.
//!
//! Needs root, `ip` and the `pebble` package; skips (saying why) without them.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use chatmail_relay::tls;

const PEBBLE: &str = "/usr/bin/pebble";
const CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";
const DOMAIN: &str = "chat.example.org";
const DIRECTORY: &str = "https://127.0.0.1:14000/dir";
/// Nothing listens there.
const UNREACHABLE: &str = "https://127.0.0.1:9/dir";

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root (a network namespace and port 80 need root)".into());
    }
    for program in [PEBBLE, CHALLTESTSRV] {
        if !Path::new(program).exists() {
            return Some(format!("{program} missing (apt-get install pebble)"));
        }
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` command (iproute2)".into());
    }
    None
}

/// The namespace, pebble and its DNS; all gone when dropped, whatever happened.
struct Lab {
    netns: String,
    children: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

impl Lab {
    /// Err: the namespace cannot be made here (a reason to skip).
    fn start() -> Result<Lab, String> {
        let netns = format!("chatmail-acme-{}", std::process::id());
        let added = Command::new("ip")
            .args(["netns", "add", &netns])
            .output()
            .map_err(|e| e.to_string())?;
        if !added.status.success() {
            return Err(String::from_utf8_lossy(&added.stderr).trim().to_string());
        }
        let mut lab = Lab {
            netns,
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
        };
        let lo = lab.command("ip").args(["link", "set", "lo", "up"]).status();
        assert!(lo.is_ok_and(|s| s.success()), "lo up");

        let (ca, cert, key) = pebble_tls();
        let d = lab.dir.path().to_path_buf();
        std::fs::write(d.join("ca.pem"), ca).unwrap();
        std::fs::write(d.join("cert.pem"), cert).unwrap();
        std::fs::write(d.join("key.pem"), key).unwrap();
        std::fs::write(
            d.join("pebble.json"),
            format!(
                r#"{{"pebble": {{"listenAddress": "127.0.0.1:14000",
                "managementListenAddress": "127.0.0.1:15000",
                "certificate": "{0}/cert.pem", "privateKey": "{0}/key.pem",
                "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
                "externalAccountBindingRequired": false}}}}"#,
                d.display()
            ),
        )
        .unwrap();

        let mut dns = lab.command(CHALLTESTSRV);
        dns.args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", "127.0.0.1:8053", "-management", "127.0.0.1:8055"])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""]);
        lab.spawn(dns, "challtestsrv.log", "Starting management server");
        let mut pebble = lab.command(PEBBLE);
        pebble
            .arg("-config")
            .arg(d.join("pebble.json"))
            .args(["-dnsserver", "127.0.0.1:8053"])
            // no random delays of validations, no nonces refused on purpose
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0");
        lab.spawn(pebble, "pebble.log", "ACME directory available at");
        Ok(lab)
    }

    /// `program` to run inside the namespace.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.netns]).arg(program);
        command
    }

    /// Starts a server, its output in `log`, and waits until `ready` appears there.
    fn spawn(&mut self, mut command: Command, log: &str, ready: &str) {
        let log = self.dir.path().join(log);
        let out = File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log).unwrap().contains(ready) {
            assert!(
                Instant::now() < deadline,
                "{} not ready: {}",
                log.display(),
                std::fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `chatmail-relay --root ROOT ARGS` inside the namespace.
    fn relay(&self, root: &Path, args: &[&str]) -> Output {
        self.command(env!("CARGO_BIN_EXE_chatmail-relay"))
            .arg("--root")
            .arg(root)
            .args(args)
            .output()
            .unwrap()
    }
}

/// A CA, and a certificate of 127.0.0.1 it signed for pebble's HTTPS: (CA, cert, key) PEM.
fn pebble_tls() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "chatmail-relay test CA");
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_pem, cert.pem(), key.serialize_pem())
}

fn write_ini(root: &Path, directory: &str) {
    std::fs::create_dir_all(root.join("etc/chatmail")).unwrap();
    std::fs::write(
        root.join("etc/chatmail/chatmail.ini"),
        format!(
            "[params]\nmail_domain = {DOMAIN}\nacme_email = ops@{DOMAIN}\n\
             acme_directory = {directory}\nacme_ca_file = /ca.pem\n"
        ),
    )
    .unwrap();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn certificates_from_pebble() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let lab = match Lab::start() {
        Ok(lab) => lab,
        Err(why) => {
            eprintln!("skipped: no network namespace here: {why}");
            return;
        }
    };
    let started = Instant::now();
    let root_dir = tempfile::tempdir().unwrap();
    let root = root_dir.path();
    std::fs::copy(lab.dir.path().join("ca.pem"), root.join("ca.pem")).unwrap();
    write_ini(root, DIRECTORY);
    let live: PathBuf = root.join("var/lib/acme/live").join(DOMAIN);
    let (chain, key) = (live.join("fullchain"), live.join("privkey"));
    let state = root.join("var/lib/chatmail-relay/acme");

    // The first run orders a certificate, answering HTTP-01 on port 80 itself.
    let first = lab.relay(root, &["cert", "--renew"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("new certificate"),
        "{}",
        text(&first.stdout)
    );
    let info = tls::read_cert(&std::fs::read(&chain).unwrap()).unwrap();
    assert_eq!(
        info.names,
        [DOMAIN.to_string(), format!("mta-sts.{DOMAIN}")]
    );
    assert_eq!(mode(&chain), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("account.json")), 0o600);
    assert!(!state.join("last-error").exists());
    let (chain_1, key_1) = (std::fs::read(&chain).unwrap(), std::fs::read(&key).unwrap());

    // A second run finds it good for years: nothing is ordered or written.
    let second = lab.relay(root, &["cert", "--renew"]);
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("not renewed"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(std::fs::read(&chain).unwrap(), chain_1);
    assert!(!live.join("fullchain.bak").exists());
    let status = lab.relay(root, &["cert"]);
    assert!(
        text(&status.stdout).contains("renewal: not due"),
        "{}",
        text(&status.stdout)
    );

    // An unreachable server: one error line, the files as they were, the failure recorded.
    write_ini(root, UNREACHABLE);
    let failed = lab.relay(root, &["cert", "--renew", "--force"]);
    assert!(!failed.status.success());
    let stderr = text(&failed.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("chatmail-relay: error: certificate from ACME server"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot reach the ACME server"), "{stderr}");
    assert_eq!(std::fs::read(&chain).unwrap(), chain_1);
    assert_eq!(std::fs::read(&key).unwrap(), key_1);
    let status = lab.relay(root, &["cert"]);
    assert!(
        text(&status.stdout).contains("last renewal failed at"),
        "{}",
        text(&status.stdout)
    );

    // Forced with the server back: a new key, the old files kept as .bak, the failure gone.
    write_ini(root, DIRECTORY);
    let forced = lab.relay(root, &["cert", "--renew", "--force"]);
    assert!(forced.status.success(), "{}", text(&forced.stderr));
    assert_ne!(std::fs::read(&key).unwrap(), key_1);
    assert_eq!(std::fs::read(live.join("privkey.bak")).unwrap(), key_1);
    assert!(!state.join("last-error").exists());
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}
