//! Recipients at `RCPT TO`: judged by the address Postfix resolved them to (`{rcpt_addr}`),
//! never by the spelling; unknown mailboxes refused in the dialogue; unreadable ones
//! tempfailed; Postfix's own mail never refused there.

mod common;

use common::*;
use indymilter_test::{MacroStage, Status};

const ALICE: &str = "alice@chat.example.org";
const CAROL: &str = "carol@chat.example.org";
const REMOTE: &str = "friend@example.net";
const UNKNOWN: &str =
    "550 5.1.1 <nobody@chat.example.org>: Recipient address rejected: User unknown";

async fn milter() -> TestMilter {
    let m = TestMilter::start(MilterSettings::default()).await;
    m.add_mailbox(ALICE, true);
    m.add_mailbox(CAROL, false);
    m
}

/// One inbound transaction whose recipients are `(as written, as Postfix resolved it)`.
async fn deliver_resolved(m: &TestMilter, rcpts: &[(&str, &str)], raw: &str) -> Outcome {
    let mut conn = open(&m.inbound).await;
    let (out, _) =
        transaction_resolved(&mut conn, None, REMOTE, rcpts, raw.as_bytes(), false).await;
    let _ = conn.close().await;
    out
}

#[tokio::test]
async fn the_resolved_address_decides_not_the_spelling() {
    let m = milter().await;
    let clear = plain(REMOTE, ALICE, "hello");
    // Spellings Postfix resolves to alice's mailbox (as the real Postfix does, see
    // tests/e2e/test_recipients.py): all of them reach an enforcing mailbox.
    for (given, resolved) in [
        ("\"alice\"@chat.example.org", ALICE),
        ("alice@chat.example.org.", ALICE),
        ("alice%chat.example.org@chat.example.org", ALICE),
        ("chat.example.org!alice@chat.example.org", ALICE),
        ("\"alice%chat.example.org\"@chat.example.org", ALICE),
        ("@relay.example:alice@chat.example.org", ALICE),
        ("ALICE+news@CHAT.example.org", "ALICE+news@CHAT.example.org"),
        ("\"\\alice+x\"@chat.example.org", "alice+x@chat.example.org"),
        (
            "carol-looking@chat.example.org",
            "\"Alice\"@chat.example.org",
        ),
    ] {
        let out = deliver_resolved(&m, &[(given, resolved)], &clear).await;
        assert_eq!(
            out.reply().as_deref(),
            Some(ENCRYPTION_NEEDED),
            "{given} -> {resolved}"
        );
    }
    // The same spellings of carol, who takes cleartext.
    for (given, resolved) in [
        ("\"carol\"@chat.example.org", CAROL),
        ("carol%chat.example.org@chat.example.org", CAROL),
        ("Carol+x@chat.example.org", "Carol+x@chat.example.org"),
    ] {
        let out = deliver_resolved(&m, &[(given, resolved)], &clear).await;
        assert!(out.accepted(), "{given} -> {resolved}: {out:?}");
    }
    // A spelling that looks like carol but resolves to alice is alice.
    let out = deliver_resolved(&m, &[(CAROL, ALICE)], &clear).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn unknown_local_recipients_are_refused_at_rcpt() {
    let m = milter().await;
    let enc = encrypted(REMOTE, ALICE, &quick_armored());
    for (given, resolved) in [
        ("nobody@chat.example.org", "nobody@chat.example.org"),
        // no mailbox can have these names
        ("nobody@chat.example.org", "\"a b\"@chat.example.org"),
        ("nobody@chat.example.org", "+alice@chat.example.org"),
        ("nobody@chat.example.org", "\"../alice\"@chat.example.org"),
        ("nobody@chat.example.org", "MAILER-DAEMON@chat.example.org"),
        // inbound, anything that is not our domain is no recipient of ours
        ("nobody@chat.example.org", "alice@[127.0.0.1]"),
        ("nobody@chat.example.org", "alice@example.net"),
    ] {
        let out = deliver_resolved(&m, &[(given, resolved)], &enc).await;
        assert!(
            matches!(out, Outcome::Rcpt(Status::Reject { .. })),
            "{resolved}: {out:?}"
        );
        assert_eq!(out.reply().as_deref(), Some(UNKNOWN), "{resolved}");
    }
    // A mailbox directory without a password (or with an empty one) is no account.
    std::fs::create_dir_all(m.mailboxes.join("nobody@chat.example.org")).unwrap();
    std::fs::write(m.mailboxes.join("nobody@chat.example.org/password"), "").unwrap();
    let out = deliver(&m, REMOTE, &["nobody@chat.example.org"], &enc).await;
    assert_eq!(out.reply().as_deref(), Some(UNKNOWN));
    m.stop().await;
}

#[tokio::test]
async fn outbound_refuses_unknown_local_recipients_only() {
    let m = milter().await;
    let enc = encrypted(ALICE, REMOTE, &quick_armored());
    let out = submit(&m, ALICE, &["nobody@chat.example.org"], &enc).await;
    assert!(
        matches!(out, Outcome::Rcpt(Status::Reject { .. })),
        "{out:?}"
    );
    assert_eq!(out.reply().as_deref(), Some(UNKNOWN));
    assert!(submit(&m, ALICE, &[REMOTE, CAROL], &enc).await.accepted());
    m.stop().await;
}

#[tokio::test]
async fn an_unreadable_mailbox_is_a_temporary_failure() {
    let m = milter().await;
    // Where the mailbox directory should be, a file: reading "<it>/password" fails with
    // ENOTDIR, which is neither "exists" nor "does not exist".
    std::fs::write(m.mailboxes.join("broken@chat.example.org"), "x").unwrap();
    let enc = encrypted(REMOTE, ALICE, &quick_armored());
    let out = deliver(&m, REMOTE, &["broken@chat.example.org"], &enc).await;
    assert!(
        matches!(out, Outcome::Rcpt(Status::Tempfail { .. })),
        "{out:?}"
    );
    assert_eq!(
        out.reply().as_deref(),
        Some(
            "451 4.3.0 <broken@chat.example.org>: Recipient address lookup failed, try again later"
        )
    );
    m.stop().await;
}

#[tokio::test]
async fn a_missing_rcpt_addr_macro_is_a_configuration_error() {
    let m = milter().await;
    let mut conn = open(&m.inbound).await;
    conn.macros(MacroStage::Mail, [("{mail_addr}", REMOTE)])
        .await
        .unwrap();
    assert_eq!(
        conn.mail([format!("<{REMOTE}>")]).await.unwrap(),
        Status::Continue
    );
    let status = conn.rcpt([format!("<{ALICE}>")]).await.unwrap();
    match status {
        Status::Tempfail { message } => assert_eq!(
            message.unwrap().to_str().unwrap(),
            "451 4.3.5 Mail filter configuration error, try again later"
        ),
        other => panic!("{other:?}"),
    }
    let _ = conn.close().await;
    m.stop().await;
}

#[tokio::test]
async fn postfix_own_mail_is_never_refused_at_rcpt() {
    let m = milter().await;
    // The internal listener (non_smtpd_milters): a bounce to a remote sender, and one to an
    // address that has no mailbox, pass RCPT (Postfix must not see a refusal there).
    let dsn = bounce(
        "MAILER-DAEMON@chat.example.org",
        REMOTE,
        Some("auto-replied"),
        "multipart/report",
    );
    for rcpt in [REMOTE, "nobody@chat.example.org"] {
        let out = send(&m.internal, None, "", &[rcpt], dsn.as_bytes()).await;
        assert!(out.accepted(), "{rcpt}: {out:?}");
    }
    m.stop().await;
}
