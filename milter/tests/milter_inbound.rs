//! The inbound (port 25) listener over the milter protocol.

mod common;

use common::*;
use indymilter_test::Status;

const ALICE: &str = "alice@chat.example.org";
const CAROL: &str = "carol@chat.example.org";
const REMOTE: &str = "friend@example.net";

async fn milter() -> TestMilter {
    let m = TestMilter::start(MilterSettings::default()).await;
    m.add_mailbox(ALICE, true);
    m.add_mailbox(CAROL, false);
    m
}

#[tokio::test]
async fn encrypted_mail_is_accepted_even_with_forwarded_from() {
    let m = milter().await;
    let msg = encrypted("someone-else@example.com", ALICE, &quick_armored());
    assert_eq!(
        deliver(&m, REMOTE, &[ALICE], &msg).await,
        Outcome::Eom(Status::Accept)
    );
    // ProtonMail-style Version: header is fine inbound.
    let msg = encrypted(REMOTE, ALICE, &gpg_fixture("gpg-version-header.asc"));
    assert!(deliver(&m, REMOTE, &[ALICE], &msg).await.accepted());
    m.stop().await;
}

#[tokio::test]
async fn cleartext_to_enforcing_user_gets_523() {
    let m = milter().await;
    let msg = plain(REMOTE, ALICE, "hello");
    let out = deliver(&m, REMOTE, &[ALICE], &msg).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // +detail does not get around it.
    let out = deliver(&m, REMOTE, &["Alice+x@chat.example.org"], &msg).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // One enforcing recipient among others refuses the message.
    let out = deliver(&m, REMOTE, &[CAROL, ALICE], &msg).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // Cleartext MDN.
    let out = deliver(&m, REMOTE, &[ALICE], &mdn(REMOTE, ALICE)).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn cleartext_to_non_enforcing_user_is_accepted() {
    let m = milter().await;
    let msg = plain(REMOTE, CAROL, "hello");
    assert!(deliver(&m, REMOTE, &[CAROL], &msg).await.accepted());
    assert!(
        deliver(&m, REMOTE, &["carol+news@chat.example.org"], &msg)
            .await
            .accepted()
    );
    m.stop().await;
}

#[tokio::test]
async fn bounces_with_null_sender_pass() {
    let m = milter().await;
    let msg = bounce(
        "MAILER-DAEMON@mx.example.net",
        ALICE,
        Some("auto-replied"),
        "multipart/report",
    );
    assert_eq!(
        send(&m.inbound, None, "", &[ALICE], msg.as_bytes()).await,
        Outcome::Eom(Status::Accept)
    );
    let fake = bounce(
        "MAILER-DAEMON@mx.example.net",
        ALICE,
        None,
        "multipart/report",
    );
    let out = send(&m.inbound, None, "", &[ALICE], fake.as_bytes()).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn securejoin_passes_inbound() {
    let m = milter().await;
    let msg = securejoin(REMOTE, ALICE, "vg-request", "Secure-Join: vg-request\n");
    assert!(deliver(&m, REMOTE, &[ALICE], &msg).await.accepted());
    m.stop().await;
}

#[tokio::test]
async fn authenticated_session_on_inbound_listener_is_a_configuration_error() {
    let m = milter().await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    let out = send(&m.inbound, Some(ALICE), ALICE, &[REMOTE], msg.as_bytes()).await;
    assert!(matches!(out, Outcome::Mail(Status::Tempfail { .. })));
    assert_eq!(
        out.reply().as_deref(),
        Some("451 4.3.5 Mail filter configuration error, try again later")
    );
    m.stop().await;
}

#[tokio::test]
async fn inbound_is_not_rate_limited() {
    let m = TestMilter::start(MilterSettings {
        burst: 1,
        per_minute: 1,
        ..Default::default()
    })
    .await;
    m.add_mailbox(ALICE, true);
    let msg = encrypted(REMOTE, ALICE, &quick_armored());
    for _ in 0..5 {
        assert!(deliver(&m, REMOTE, &[ALICE], &msg).await.accepted());
    }
    m.stop().await;
}
