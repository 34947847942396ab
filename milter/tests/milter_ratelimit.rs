//! The per-sender rate limit, answered at the first RCPT of a message (its own configuration:
//! burst 3, 6 a minute).

mod common;

use common::*;
use indymilter_test::{MacroStage, Status};

const ALICE: &str = "alice@chat.example.org";
const BOB: &str = "bob@chat.example.org";
const REMOTE: &str = "friend@example.net";

#[tokio::test]
async fn burst_then_450_at_rcpt() {
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
        matches!(out, Outcome::Rcpt(Status::Tempfail { .. })),
        "{out:?}"
    );
    // 6 a minute: the next message may go in at most 10 s
    let reply = out.reply().unwrap();
    let wait: u64 = reply
        .strip_prefix("450 4.7.1 Too much mail from <alice@chat.example.org>, rate limited for ")
        .and_then(|r| r.strip_suffix(" s"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{reply}"));
    assert!((1..=10).contains(&wait), "{reply}");
    // Case variants count as the same sender.
    let out = send(
        &m.outbound,
        Some(ALICE),
        "Alice@Chat.Example.org",
        &[REMOTE],
        msg.as_bytes(),
    )
    .await;
    assert!(matches!(out, Outcome::Rcpt(Status::Tempfail { .. })));
    // Other senders are unaffected.
    let bob_msg = encrypted(BOB, REMOTE, &quick_armored());
    assert!(submit(&m, BOB, &[REMOTE], &bob_msg).await.accepted());
    // Refused cleartext counts too (a message counts at its first RCPT).
    let _ = conn.close().await;
    m.stop().await;
}

#[tokio::test]
async fn a_message_counts_once_and_all_its_recipients_are_refused_when_over() {
    let m = TestMilter::start(MilterSettings {
        per_minute: 1,
        burst: 2,
        ..Default::default()
    })
    .await;
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    let many = ["a@example.net", "b@example.net", "c@example.net", REMOTE];
    // one message to four recipients, then one to one: the burst of two
    assert!(submit(&m, ALICE, &many, &msg).await.accepted());
    assert!(submit(&m, ALICE, &[REMOTE], &msg).await.accepted());
    // the third: MAIL passes, every RCPT is refused, none counts again
    let mut conn = open_submission(&m, ALICE).await;
    for rcpt in many {
        conn.macros(MacroStage::Rcpt, [("{rcpt_addr}", rcpt)])
            .await
            .unwrap();
        let s = conn.rcpt([format!("<{rcpt}>")]).await.unwrap();
        assert!(matches!(s, Status::Tempfail { .. }), "{rcpt}: {s:?}");
    }
    let _ = conn.close().await;
    m.stop().await;
}
