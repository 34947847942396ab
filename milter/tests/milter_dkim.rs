//! DKIM over the milter protocol: outbound signing, inbound strict verification.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use chatmail_common::config::Config;
use chatmail_milter::dkim::{Dkim, DkimVerdict, Signer, StaticTxt, Verifier};
use chatmail_milter::policy::Direction;
use common::*;
use indymilter_test::{EomAction, Status};

const KEY: &[u8] = include_bytes!("data/dkim-test.key");
const PUB: &str = include_str!("data/dkim-test.pub.b64");
const SELECTOR: &str = "sel";
const ALICE: &str = "alice@chat.example.org";
const BOB: &str = "bob@chat.example.org";
const REMOTE: &str = "friend@example.net";
const DKIM_REJECTED: &str = "550 5.7.1 No valid DKIM signature found";
const DKIM_MISSING: &str = "554 5.7.1 No DKIM signature found";

/// A UDP "name server" that never answers, kept open for the test's lifetime.
fn silent_nameserver() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    (sock, addr)
}

fn record() -> String {
    format!("v=DKIM1; k=rsa; p={}", PUB.trim())
}

/// Our test key published for chat.example.org and example.net; every other lookup goes to
/// `nameserver`.
fn verifier(nameserver: SocketAddr) -> Verifier {
    let txt = StaticTxt::default();
    txt.add_domain_key(SELECTOR, DOMAIN, &record()).unwrap();
    txt.add_domain_key(SELECTOR, "example.net", &record())
        .unwrap();
    Verifier::new(Some(nameserver))
        .unwrap()
        .with_static_txt(txt)
}

fn dkim(nameserver: SocketAddr) -> Dkim {
    Dkim {
        signer: Signer::from_pem(KEY, DOMAIN, SELECTOR).unwrap(),
        verifier: verifier(nameserver),
    }
}

async fn milter(nameserver: SocketAddr) -> TestMilter {
    let m = TestMilter::start(MilterSettings {
        dkim: Some(dkim(nameserver)),
        ..Default::default()
    })
    .await;
    m.add_mailbox(ALICE, true);
    m.add_mailbox(BOB, true);
    m
}

/// `message` with a DKIM-Signature for `domain` on top.
fn signed(message: &str, domain: &str) -> String {
    dkim_signed(message, domain, SELECTOR)
}

async fn send_full(
    path: &Path,
    auth: Option<&str>,
    from: &str,
    rcpts: &[&str],
    raw: &str,
    lf_folds: bool,
) -> (Outcome, Vec<EomAction>) {
    let mut conn = open(path).await;
    let (outcome, actions) =
        transaction_with_actions(&mut conn, auth, from, rcpts, raw.as_bytes(), lf_folds).await;
    let _ = conn.close().await;
    (outcome, actions.map(|a| a.actions).unwrap_or_default())
}

#[tokio::test]
async fn outbound_mail_gets_a_signature_that_verifies() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    // A long folded Autocrypt header, as Delta Chat sends it.
    let keydata = "xsDNBGNdsAoBDADJ".repeat(40);
    let folded: Vec<String> = keydata
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let autocrypt = format!(
        "addr={ALICE}; prefer-encrypt=mutual; keydata=\r\n {}",
        folded.join("\r\n ")
    );
    let msg = multipart(
        ALICE,
        REMOTE,
        "[...]",
        &[("Autocrypt", &autocrypt)],
        "multipart/encrypted; protocol=\"application/pgp-encrypted\"",
        &encrypted_parts(&quick_armored()),
    );
    for lf_folds in [false, true] {
        let (outcome, actions) = send_full(
            m.socket(Direction::Outbound),
            Some(ALICE),
            ALICE,
            &[REMOTE],
            &msg,
            lf_folds,
        )
        .await;
        assert_eq!(outcome, Outcome::Eom(Status::Accept));
        let value = match actions.as_slice() {
            [
                EomAction::InsertHeader {
                    index: 0,
                    name,
                    value,
                },
            ] => {
                assert_eq!(name.to_str().unwrap(), "DKIM-Signature");
                value.to_str().unwrap().to_string()
            }
            other => panic!("expected one inserted header, got {other:?}"),
        };
        assert!(!value.contains('\r'), "milter header values use LF folds");
        assert!(value.contains("d=chat.example.org") && value.contains("s=sel"));
        let h = value
            .split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix("h="))
            .unwrap()
            .replace(['\n', '\t', ' '], "")
            .to_ascii_lowercase();
        let signed_headers: Vec<&str> = h.split(':').collect();
        for name in ["from", "subject", "to", "autocrypt", "content-type"] {
            assert!(signed_headers.contains(&name), "{name} not in h={h}");
        }
        // What the recipient gets: our header on top of the message Postfix passed us.
        let delivered = format!("DKIM-Signature: {}\r\n{msg}", value.replace('\n', "\r\n"));
        assert_eq!(
            verifier(ns).verify(delivered.as_bytes()).await,
            DkimVerdict::Pass {
                domain: DOMAIN.into()
            }
        );
        // It covers the Subject: changing it breaks the signature.
        let changed = delivered.replace("Subject: [...]", "Subject: hello");
        assert!(matches!(
            verifier(ns).verify(changed.as_bytes()).await,
            DkimVerdict::Fail(_)
        ));
        // From is oversigned: named twice in h= (tests/e2e/test_dkim.py checks with
        // dkimpy that a From added after signing breaks the signature).
        assert_eq!(
            signed_headers.iter().filter(|n| **n == "from").count(),
            2,
            "h={h}"
        );
    }
    m.stop().await;
}

/// Mail for this relay's own mailboxes goes from Postfix to Dovecot and is never verified by
/// anyone: it is not signed. One recipient elsewhere, and the message is signed.
#[tokio::test]
async fn only_mail_that_leaves_the_relay_is_signed() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    for (rcpts, signs) in [
        (&[BOB][..], false),
        (&[BOB, ALICE][..], false),
        (&[BOB, REMOTE][..], true),
        (&[REMOTE, BOB][..], true),
    ] {
        let msg = encrypted(ALICE, &rcpts.join(", "), &quick_armored());
        let (outcome, actions) = send_full(
            m.socket(Direction::Outbound),
            Some(ALICE),
            ALICE,
            rcpts,
            &msg,
            false,
        )
        .await;
        assert_eq!(outcome, Outcome::Eom(Status::Accept), "{rcpts:?}");
        let signed = matches!(
            actions.as_slice(),
            [EomAction::InsertHeader { index: 0, name, .. }] if name.to_str() == Ok("DKIM-Signature")
        );
        assert_eq!(signed, signs, "{rcpts:?}: {actions:?}");
        assert!(signed || actions.is_empty(), "{rcpts:?}: {actions:?}");
    }
    m.stop().await;
}

/// Postfix's bounces reach the internal listener (non_smtpd_milters) with the null sender:
/// they are signed, so that other relays, which require valid signatures, take them.
/// Cleartext that is not a bounce (sendmail(1) on the relay) is refused there, unsigned.
#[tokio::test]
async fn bounces_on_the_internal_listener_are_signed() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let msg = bounce(
        &format!("MAILER-DAEMON@{DOMAIN}"),
        REMOTE,
        Some("auto-replied"),
        "multipart/report",
    );
    let (outcome, actions) = send_full(
        m.socket(Direction::Internal),
        None,
        "",
        &[REMOTE],
        &msg,
        true,
    )
    .await;
    assert_eq!(outcome, Outcome::Eom(Status::Accept));
    let [EomAction::InsertHeader { name, value, .. }] = actions.as_slice() else {
        panic!("expected one inserted header, got {actions:?}");
    };
    assert_eq!(name.to_str().unwrap(), "DKIM-Signature");
    let delivered = format!(
        "DKIM-Signature: {}\r\n{msg}",
        value.to_str().unwrap().replace('\n', "\r\n")
    );
    assert_eq!(
        verifier(ns).verify(delivered.as_bytes()).await,
        DkimVerdict::Pass {
            domain: DOMAIN.into()
        }
    );

    let clear = plain(ALICE, REMOTE, "from a cron job");
    let (outcome, actions) = send_full(
        m.socket(Direction::Internal),
        None,
        ALICE,
        &[REMOTE],
        &clear,
        true,
    )
    .await;
    assert_eq!(outcome.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    assert!(actions.is_empty());
    // an authenticated session there means Postfix points smtpd_milters at it
    let (outcome, _) = send_full(
        m.socket(Direction::Internal),
        Some(ALICE),
        ALICE,
        &[REMOTE],
        &msg,
        true,
    )
    .await;
    assert_eq!(
        outcome.reply().as_deref(),
        Some("451 4.3.5 Mail filter configuration error, try again later")
    );
    m.stop().await;
}

#[tokio::test]
async fn refused_outbound_mail_is_not_signed() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let (outcome, actions) = send_full(
        m.socket(Direction::Outbound),
        Some(ALICE),
        ALICE,
        &[BOB],
        &plain(ALICE, BOB, "hello"),
        false,
    )
    .await;
    assert_eq!(outcome.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    assert!(actions.is_empty());
    m.stop().await;
}

#[tokio::test]
async fn inbound_aligned_signature_passes_even_with_lf_folds() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let msg = signed(&encrypted(REMOTE, ALICE, &quick_armored()), "example.net");
    assert!(msg.contains("\r\n\t"), "the signature header is folded");
    for lf_folds in [false, true] {
        let (outcome, actions) = send_full(
            m.socket(Direction::Inbound),
            None,
            REMOTE,
            &[ALICE],
            &msg,
            lf_folds,
        )
        .await;
        assert_eq!(outcome, Outcome::Eom(Status::Accept));
        assert!(actions.is_empty(), "inbound mail is not changed");
    }
    m.stop().await;
}

#[tokio::test]
async fn inbound_unaligned_tampered_or_missing_signature_is_rejected() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let msg = encrypted(REMOTE, ALICE, &quick_armored());
    // Missing.
    let out = deliver(&m, REMOTE, &[ALICE], &msg).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_MISSING));
    assert!(matches!(out, Outcome::Eom(Status::Reject { .. })));
    // Valid, but for another domain than the From domain (no relaxed alignment either).
    let out = deliver(&m, REMOTE, &[ALICE], &signed(&msg, DOMAIN)).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_REJECTED));
    let sub = encrypted("friend@sub.example.net", ALICE, &quick_armored());
    let out = deliver(&m, REMOTE, &[ALICE], &signed(&sub, "example.net")).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_REJECTED));
    // Tampered body.
    let good = signed(&msg, "example.net");
    let tampered = good.replacen("Version: 1", "Version: 1 ", 1);
    assert_ne!(good, tampered);
    let out = deliver(&m, REMOTE, &[ALICE], &tampered).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_REJECTED));
    // Tampered signed header.
    let tampered = good.replacen("To: <alice@", "To: <bob@", 1);
    let out = deliver(&m, REMOTE, &[ALICE], &tampered).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_REJECTED));
    m.stop().await;
}

#[tokio::test]
async fn encryption_is_checked_before_dkim() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let out = deliver(&m, REMOTE, &[ALICE], &plain(REMOTE, ALICE, "hi")).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn domain_literal_from_skips_dkim() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let msg = encrypted("someone@[1.2.3.4]", ALICE, &quick_armored());
    assert_eq!(
        deliver(&m, "someone@[1.2.3.4]", &[ALICE], &msg).await,
        Outcome::Eom(Status::Accept)
    );
    m.stop().await;
}

#[tokio::test]
async fn dns_failure_is_a_temporary_failure() {
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let msg = signed(
        &encrypted("x@unknown.test", ALICE, &quick_armored()),
        "unknown.test",
    );
    let started = std::time::Instant::now();
    let out = deliver(&m, "x@unknown.test", &[ALICE], &msg).await;
    assert_eq!(
        out.reply().as_deref(),
        Some("451 4.7.5 DKIM signature cannot be checked now (DNS lookup failed), try again later")
    );
    assert!(matches!(out, Outcome::Eom(Status::Tempfail { .. })));
    eprintln!("DNS failure answered after {:?}", started.elapsed());
    m.stop().await;
}

#[tokio::test]
async fn ip_only_relay_neither_signs_nor_verifies() {
    // DKIM off, as `Dkim::from_config` gives for an IP-only relay.
    let m = TestMilter::start(MilterSettings {
        mail_domain: "[127.0.0.1]".into(),
        ..Default::default()
    })
    .await;
    m.add_mailbox("alice@[127.0.0.1]", true);
    let alice = "alice@[127.0.0.1]";
    let msg = encrypted(alice, alice, &quick_armored());
    let (outcome, actions) = send_full(
        m.socket(Direction::Outbound),
        Some(alice),
        alice,
        &[alice],
        &msg,
        false,
    )
    .await;
    assert_eq!(outcome, Outcome::Eom(Status::Accept));
    assert!(actions.is_empty());
    let msg = encrypted(REMOTE, alice, &quick_armored());
    assert!(deliver(&m, REMOTE, &[alice], &msg).await.accepted());
    m.stop().await;
}

fn write_config(dir: &Path, domain: &str, key: Option<&[u8]>, ns: SocketAddr) -> Config {
    let key_path = dir.join("dkim.key");
    if let Some(k) = key {
        std::fs::write(&key_path, k).unwrap();
    }
    let ini = dir.join("chatmail.ini");
    std::fs::write(
        &ini,
        format!(
            "[params]\nmail_domain = {domain}\nmailboxes_dir = {}\ndkim_selector = {SELECTOR}\n\
             dkim_key = {}\ndns_resolver = {ns}\n",
            dir.join("mail").display(),
            key_path.display()
        ),
    )
    .unwrap();
    Config::load(&ini).unwrap()
}

#[tokio::test]
async fn from_config_loads_the_key_and_trusts_our_own_signatures_without_dns() {
    let (_ns, ns) = silent_nameserver();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), DOMAIN, Some(KEY), ns);
    let dkim = Dkim::from_config(&config).unwrap().expect("DKIM on");
    assert_eq!(dkim.signer.dns_record(), record());
    // Inbound mail From our own domain signed with our key: verified from the key itself
    // (the name server never answers, so a DNS lookup would tempfail).
    let m = TestMilter::start(MilterSettings {
        dkim: Some(dkim),
        ..Default::default()
    })
    .await;
    m.add_mailbox(ALICE, true);
    let msg = signed(&encrypted(BOB, ALICE, &quick_armored()), DOMAIN);
    assert_eq!(
        deliver(&m, BOB, &[ALICE], &msg).await,
        Outcome::Eom(Status::Accept)
    );
    m.stop().await;
}

#[test]
fn from_config_refuses_missing_or_bad_keys_and_is_off_on_ip_relays() {
    let ns: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let missing = write_config(dir.path(), DOMAIN, None, ns);
    let e = Dkim::from_config(&missing).err().expect("missing key");
    assert!(e.to_string().contains("cannot read DKIM key"), "{e}");
    let bad = write_config(dir.path(), DOMAIN, Some(b"not a key\n"), ns);
    let e = Dkim::from_config(&bad).err().expect("bad key");
    assert!(e.to_string().contains("unusable DKIM key"), "{e}");
    let ip = write_config(dir.path(), "127.0.0.1", None, ns);
    assert!(Dkim::from_config(&ip).unwrap().is_none());
}

#[tokio::test]
async fn large_messages_are_signed_and_verified_off_the_async_thread() {
    // Over 64 kB: signing and verification run on the blocking pool.
    let (_ns, ns) = silent_nameserver();
    let m = milter(ns).await;
    let armored = rpgp_armored(Rpgp::PasswordV1, &[], &vec![b'x'; 200_000], None);
    let out_msg = encrypted(ALICE, REMOTE, &armored);
    assert!(out_msg.len() > 100_000);
    let (outcome, actions) = send_full(
        m.socket(Direction::Outbound),
        Some(ALICE),
        ALICE,
        &[REMOTE],
        &out_msg,
        false,
    )
    .await;
    assert_eq!(outcome, Outcome::Eom(Status::Accept));
    assert!(matches!(
        actions.as_slice(),
        [EomAction::InsertHeader { index: 0, .. }]
    ));
    let in_msg = signed(&encrypted(REMOTE, ALICE, &armored), "example.net");
    assert_eq!(
        deliver(&m, REMOTE, &[ALICE], &in_msg).await,
        Outcome::Eom(Status::Accept)
    );
    let out = deliver(&m, REMOTE, &[ALICE], &encrypted(REMOTE, ALICE, &armored)).await;
    assert_eq!(out.reply().as_deref(), Some(DKIM_MISSING));
    m.stop().await;
}
