//! The per-sender rate limit, answered at MAIL FROM (its own configuration: burst 3).

mod common;

use common::*;
use indymilter_test::Status;

const ALICE: &str = "alice@chat.example.org";
const BOB: &str = "bob@chat.example.org";
const REMOTE: &str = "friend@example.net";

#[tokio::test]
async fn burst_then_450_at_mail_from() {
    let m = TestMilter::start(MilterSettings {
        per_minute: 6,
        burst: 3,
        ..Default::default()
    })
    .await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    let mut conn = open(&m.outbound).await;
    for i in 0..3 {
        let out = transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], msg.as_bytes()).await;
        assert!(out.accepted(), "message {i}: {out:?}");
    }
    let out = transaction(&mut conn, Some(ALICE), ALICE, &[REMOTE], msg.as_bytes()).await;
    assert!(
        matches!(out, Outcome::Mail(Status::Tempfail { .. })),
        "{out:?}"
    );
    assert_eq!(
        out.reply().as_deref(),
        Some("450 4.7.1 Too much mail from <alice@chat.example.org>")
    );
    // Case variants count as the same sender.
    let out = send(
        &m.outbound,
        Some(ALICE),
        "Alice@Chat.Example.org",
        &[REMOTE],
        msg.as_bytes(),
    )
    .await;
    assert!(matches!(out, Outcome::Mail(Status::Tempfail { .. })));
    // Other senders are unaffected.
    let bob_msg = encrypted(BOB, REMOTE, &quick_armored());
    assert!(submit(&m, BOB, &[REMOTE], &bob_msg).await.accepted());
    // Refused cleartext counts too (the limit is on MAIL commands).
    let _ = conn.close().await;
    m.stop().await;
}
