//! The outbound listener over the milter protocol: every rule and reply text.

mod common;

use common::*;
use indymilter_test::Status;

const ALICE: &str = "alice@chat.example.org";
const BOB: &str = "bob@chat.example.org";
const REMOTE: &str = "friend@example.net";

/// A test milter where ALICE and BOB have accounts.
async fn milter() -> TestMilter {
    let m = TestMilter::start(MilterSettings::default()).await;
    m.add_mailbox(ALICE, true);
    m.add_mailbox(BOB, true);
    m
}

#[tokio::test]
async fn encrypted_mail_is_accepted() {
    let m = milter().await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    assert_eq!(
        submit(&m, ALICE, &[REMOTE, BOB], &msg).await,
        Outcome::Eom(Status::Accept)
    );
    m.stop().await;
}

#[tokio::test]
async fn cleartext_gets_523_verbatim() {
    let m = TestMilter::start(MilterSettings::default()).await;
    let out = submit(&m, ALICE, &[REMOTE], &plain(ALICE, REMOTE, "hello")).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    assert!(matches!(out, Outcome::Eom(Status::Reject { .. })));
    // A cleartext MDN too.
    let out = submit(&m, ALICE, &[REMOTE], &mdn(ALICE, REMOTE)).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // A Version: armor header is refused outbound.
    let msg = encrypted(ALICE, REMOTE, &gpg_fixture("gpg-version-header.asc"));
    let out = submit(&m, ALICE, &[REMOTE], &msg).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn forged_from_is_refused() {
    let m = TestMilter::start(MilterSettings::default()).await;
    let msg = encrypted("mallory@chat.example.org", REMOTE, &quick_armored());
    let out = submit(&m, ALICE, &[REMOTE], &msg).await;
    assert_eq!(
        out.reply().as_deref(),
        Some("550 5.7.1 Invalid FROM <mallory@chat.example.org> for <alice@chat.example.org>")
    );
    let no_from =
        encrypted(ALICE, REMOTE, &quick_armored()).replacen(&format!("From: <{ALICE}>\r\n"), "", 1);
    let out = submit(&m, ALICE, &[REMOTE], &no_from).await;
    assert_eq!(
        out.reply().as_deref(),
        Some("550 5.7.1 Invalid FROM header")
    );
    // Case differences are fine.
    let msg = encrypted("ALICE@chat.example.org", REMOTE, &quick_armored());
    assert!(submit(&m, ALICE, &[REMOTE], &msg).await.accepted());
    m.stop().await;
}

#[tokio::test]
async fn invalid_envelope_sender_is_refused_at_mail() {
    let m = TestMilter::start(MilterSettings::default()).await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    for (from, shown) in [("", ""), ("no-at-sign", "no-at-sign"), ("a@b@c", "a@b@c")] {
        let out = send(&m.outbound, Some(ALICE), from, &[REMOTE], msg.as_bytes()).await;
        assert!(
            matches!(out, Outcome::Mail(Status::Reject { .. })),
            "{from:?}"
        );
        assert_eq!(
            out.reply(),
            Some(format!("553 5.1.7 Invalid from address <{shown}>"))
        );
    }
    m.stop().await;
}

#[tokio::test]
async fn securejoin_and_autocrypt_setup_message_pass() {
    let m = milter().await;
    let sj = securejoin(ALICE, REMOTE, "vc-request", "Secure-Join: vc-request\n");
    assert_eq!(
        submit(&m, ALICE, &[REMOTE], &sj).await,
        Outcome::Eom(Status::Accept)
    );
    let fake = securejoin(ALICE, REMOTE, "vc-request", "Buy cheap watches!\n");
    let out = submit(&m, ALICE, &[REMOTE], &fake).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // Subject already rewritten by Postfix: the header is what counts.
    let asm = autocrypt_setup_message(ALICE, ALICE, "[...]", true);
    assert_eq!(
        submit(&m, ALICE, &[ALICE], &asm).await,
        Outcome::Eom(Status::Accept)
    );
    let out = submit(&m, ALICE, &[BOB], &asm).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn several_messages_and_aborts_on_one_connection() {
    let m = TestMilter::start(MilterSettings::default()).await;
    let mut conn = open(&m.outbound).await;
    let enc = encrypted(ALICE, REMOTE, &quick_armored());
    let clear = plain(ALICE, REMOTE, "hello");
    assert!(
        transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], enc.as_bytes())
            .await
            .accepted()
    );
    let out = transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], clear.as_bytes()).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // A transaction aborted in the middle of the body (e.g. RSET) leaves nothing behind.
    conn.macros(
        indymilter_test::MacroStage::Mail,
        [("{auth_authen}", ALICE)],
    )
    .await
    .unwrap();
    assert_eq!(
        conn.mail([format!("<{ALICE}>")]).await.unwrap(),
        Status::Continue
    );
    conn.rcpt([format!("<{REMOTE}>")]).await.unwrap();
    conn.header("From", format!("<{ALICE}>")).await.unwrap();
    conn.body(b"half a body".to_vec()).await.unwrap();
    conn.abort().await.unwrap();
    assert!(
        transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], enc.as_bytes())
            .await
            .accepted()
    );
    conn.close().await.unwrap();
    m.stop().await;
}

#[tokio::test]
async fn unauthenticated_recipient_on_outbound_listener_is_a_configuration_error() {
    let m = TestMilter::start(MilterSettings::default()).await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    // MAIL FROM passes (Postfix refuses unauthenticated recipients itself, with 5xx); a
    // recipient that Postfix let through means its configuration is wrong.
    let out = send(&m.outbound, None, ALICE, &[REMOTE], msg.as_bytes()).await;
    assert!(
        matches!(out, Outcome::Rcpt(Status::Tempfail { .. })),
        "{out:?}"
    );
    assert_eq!(
        out.reply().as_deref(),
        Some("451 4.3.5 Mail filter configuration error, try again later")
    );
    // the refusal does not outlive its transaction
    let mut conn = open(&m.outbound).await;
    let out = transaction(&mut conn, None, ALICE, &[REMOTE], msg.as_bytes()).await;
    assert!(
        matches!(out, Outcome::Rcpt(Status::Tempfail { .. })),
        "{out:?}"
    );
    assert!(
        transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], msg.as_bytes())
            .await
            .accepted()
    );
    conn.close().await.unwrap();
    m.stop().await;
}
