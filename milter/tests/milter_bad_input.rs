//! Hostile and broken input over the milter protocol: always a verdict by the rules or a
//! tempfail, never a crash; the milter keeps serving.

mod common;

use base64::Engine;
use common::*;
use indymilter_test::{MacroStage, Status};

const ALICE: &str = "alice@chat.example.org";
const CAROL: &str = "carol@chat.example.org";
const REMOTE: &str = "friend@example.net";

async fn milter(max_message_size: u64) -> TestMilter {
    let m = TestMilter::start(MilterSettings {
        max_message_size,
        ..Default::default()
    })
    .await;
    m.add_mailbox(ALICE, true);
    m.add_mailbox(CAROL, false);
    m
}

/// Structurally valid SKESK + SEIPD v1 armor around `body_len` pseudo-random bytes.
fn synthetic_armor(body_len: usize) -> String {
    let mut data = vec![0xc3, 13, 4, 9, 3, 8, 1, 2, 3, 4, 5, 6, 7, 8, 96];
    data.extend([0xd2, 255]);
    data.extend(((body_len + 1) as u32).to_be_bytes());
    data.push(1);
    let mut x: u32 = 12345;
    data.extend((0..body_len).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut s = String::with_capacity(b64.len() * 66 / 64 + 100);
    s.push_str("-----BEGIN PGP MESSAGE-----\r\n\r\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push_str("\r\n");
    }
    s.push_str("-----END PGP MESSAGE-----\r\n");
    s
}

async fn assert_still_serving(m: &TestMilter) {
    let msg = encrypted(ALICE, REMOTE, &quick_armored());
    assert!(submit(m, ALICE, &[REMOTE], &msg).await.accepted());
}

#[tokio::test]
async fn malformed_mime_gets_a_verdict() {
    let m = milter(31_457_280).await;
    let armor = quick_armored();
    let cases: Vec<String> = vec![
        // multipart without a boundary parameter
        encrypted(ALICE, REMOTE, &armor).replace("; boundary=\"XzY-boundary-1\"", ""),
        // boundary that never appears
        encrypted(ALICE, REMOTE, &armor)
            .replace("boundary=\"XzY-boundary-1\"", "boundary=\"nope\""),
        // header garbage
        format!("From: <{ALICE}>\r\n: no name\r\nno colon at all\r\n\x01\x02: x\r\n\r\nbody"),
        // no body separator at all
        format!("From: <{ALICE}>\r\nContent-Type: multipart/encrypted; boundary=x"),
        // invalid base64 in a base64 transfer encoding
        encrypted(ALICE, REMOTE, "!!!! not base64 ####\r\n").replace(
            "Content-Disposition",
            "Content-Transfer-Encoding: base64\r\nContent-Disposition",
        ),
    ];
    for (i, raw) in cases.iter().enumerate() {
        let out = submit(&m, ALICE, &[REMOTE], raw).await;
        assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED), "case {i}");
    }
    // A missing closing boundary: readers end the last part differently (`mailparse` makes an
    // empty part of a delimiter at the very end), so it is refused as ambiguous.
    let unclosed = encrypted(ALICE, REMOTE, &armor).replace("--XzY-boundary-1--\r\n", "");
    let out = submit(&m, ALICE, &[REMOTE], &unclosed).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    let unclosed_extra = unclosed + "P.S. cleartext\r\n";
    let out = submit(&m, ALICE, &[REMOTE], &unclosed_extra).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    assert_still_serving(&m).await;
    m.stop().await;
}

#[tokio::test]
async fn bare_cr_lf_and_eight_bit_headers() {
    let m = milter(31_457_280).await;
    let armor = quick_armored();
    let lf_only = encrypted(ALICE, REMOTE, &armor).replace("\r\n", "\n");
    // The milter protocol carries LF-only bodies too; the armor check accepts LF line ends.
    let (fields, body) = split_message(lf_only.replace("\n\n", "\r\n\r\n").as_bytes());
    assert!(!fields.is_empty() && !body.is_empty());
    let out = submit(
        &m,
        ALICE,
        &[REMOTE],
        &lf_only.replacen("\n\n", "\r\n\r\n", 1),
    )
    .await;
    assert!(out.accepted(), "LF-only body: {out:?}");
    let bare_cr = encrypted(ALICE, REMOTE, &armor).replace("Version: 1", "Version:\r1");
    let out = submit(&m, ALICE, &[REMOTE], &bare_cr).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // 8-bit and invalid UTF-8 header values (sent as raw bytes).
    let mut raw = format!("From: \"Al\u{e9}x\" <{ALICE}>\r\nSubject: ").into_bytes();
    raw.extend_from_slice(b"\xff\xfe\xc3\x28 broken\r\nX-Bin: \x80\x81\r\n");
    raw.extend_from_slice(
        encrypted(ALICE, REMOTE, &armor)
            .split_once("Subject: [...]\r\n")
            .unwrap()
            .1
            .as_bytes(),
    );
    let out = send(&m.outbound, Some(ALICE), ALICE, &[REMOTE], &raw).await;
    assert!(out.accepted(), "8-bit headers: {out:?}");
    assert_still_serving(&m).await;
    m.stop().await;
}

#[tokio::test]
async fn deep_nesting_and_many_headers() {
    let m = milter(31_457_280).await;
    // 1000 nested multiparts.
    let mut body = String::from("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in 0..1000 {
        body = format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n{body}--b{i}--\r\n"
        );
    }
    let deep = format!("From: <{ALICE}>\r\nTo: <{CAROL}>\r\n{body}");
    let out = submit(&m, ALICE, &[CAROL], &deep).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // Not even for a recipient that takes cleartext: boundary b1 starts b10, b100, ..., so
    // readers may split it differently, and it nests deeper than any reader should follow.
    let out = deliver(&m, REMOTE, &[CAROL], &deep).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    // 50 levels with boundaries that do not start one another are one structure.
    let mut body = String::from("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    for i in 0..50 {
        body = format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}x\"\r\n\r\n--b{i}x\r\n{body}--b{i}x--\r\n"
        );
    }
    let nested = format!("From: <{REMOTE}>\r\nTo: <{CAROL}>\r\n{body}");
    let out = deliver(&m, REMOTE, &[CAROL], &nested).await;
    assert!(out.accepted(), "{out:?}");
    // 10 000 headers in front of a valid encrypted message.
    let enc = encrypted(ALICE, REMOTE, &quick_armored());
    let mut many = String::new();
    for i in 0..10_000 {
        many.push_str(&format!("X-Filler-{i}: {i}\r\n"));
    }
    let many = format!("{many}{enc}");
    let out = submit(&m, ALICE, &[REMOTE], &many).await;
    assert!(out.accepted(), "{out:?}");
    assert_still_serving(&m).await;
    m.stop().await;
}

#[tokio::test]
async fn message_at_max_message_size_passes() {
    let max = 31_457_280u64;
    let m = milter(max).await;
    let head_room = 2_000;
    let armor = synthetic_armor(((max as usize - head_room) / 4 * 3) * 64 / 66);
    let msg = encrypted(ALICE, REMOTE, &armor);
    assert!(msg.len() as u64 <= max, "{} > {max}", msg.len());
    assert!(msg.len() as u64 > max - 600_000, "only {}", msg.len());
    let out = submit(&m, ALICE, &[REMOTE], &msg).await;
    assert!(out.accepted(), "{out:?}");
    // One flipped byte in the packet header area makes it cleartext-equivalent.
    let broken = msg.replacen(
        "-----BEGIN PGP MESSAGE-----\r\n\r\nw",
        "-----BEGIN PGP MESSAGE-----\r\n\r\ny",
        1,
    );
    let out = submit(&m, ALICE, &[REMOTE], &broken).await;
    assert_eq!(out.reply().as_deref(), Some(ENCRYPTION_NEEDED));
    m.stop().await;
}

#[tokio::test]
async fn oversized_message_is_refused_and_not_buffered() {
    // Buffer limit: 2 × 100 000 + 1 MiB.
    let m = milter(100_000).await;
    let msg = encrypted(ALICE, REMOTE, &synthetic_armor(1_500_000));
    let out = submit(&m, ALICE, &[REMOTE], &msg).await;
    assert_eq!(
        out.reply().as_deref(),
        Some("552 5.3.4 Message too big for the encryption check")
    );
    assert_still_serving(&m).await;
    m.stop().await;
}

#[tokio::test]
async fn client_disconnecting_mid_body() {
    let m = milter(31_457_280).await;
    for _ in 0..3 {
        let mut conn = open_submission(&m, ALICE).await;
        conn.rcpt([format!("<{REMOTE}>")]).await.unwrap();
        conn.header("From", format!("<{ALICE}>")).await.unwrap();
        conn.body(vec![b'x'; 60_000]).await.unwrap();
        drop(conn);
    }
    assert_still_serving(&m).await;
    m.stop().await;
}

#[tokio::test]
async fn many_parallel_connections() {
    let m = milter(31_457_280).await;
    let armor = quick_armored();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let outbound = i % 2 == 0;
        let path = if outbound {
            m.outbound.clone()
        } else {
            m.inbound.clone()
        };
        let from = format!("user{i}@chat.example.org");
        let raw = if i % 4 < 2 {
            encrypted(&from, CAROL, &armor)
        } else {
            plain(&from, CAROL, "hi")
        };
        tasks.push(tokio::spawn(async move {
            let auth = outbound.then_some(from.as_str());
            send(&path, auth, &from, &[CAROL], raw.as_bytes()).await
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.unwrap().accepted() {
            accepted += 1;
        }
    }
    // Outbound: the 10 encrypted pass, the 10 cleartext do not; inbound to CAROL (no
    // enforceE2EEincoming): all 20 pass.
    assert_eq!(accepted, 30);
    m.stop().await;
}

#[tokio::test]
async fn shared_buffer_budget_gives_a_temporary_failure() {
    // 3 MB for everything: one 2 MB message in progress leaves no room for a second one.
    let m = TestMilter::start(MilterSettings {
        budget: 3_000_000,
        ..Default::default()
    })
    .await;
    let big = encrypted(ALICE, REMOTE, &synthetic_armor(1_500_000));
    // Message 1 stays open (everything but end of message).
    let mut first = open(&m.outbound).await;
    first
        .macros(MacroStage::Mail, [("{auth_authen}", ALICE)])
        .await
        .unwrap();
    first.mail([format!("<{ALICE}>")]).await.unwrap();
    first.rcpt([format!("<{REMOTE}>")]).await.unwrap();
    let (fields, body) = split_message(big.as_bytes());
    for (n, v) in fields {
        first
            .header(
                std::ffi::CString::new(n).unwrap(),
                std::ffi::CString::new(v).unwrap(),
            )
            .await
            .unwrap();
    }
    for chunk in body.chunks(65535) {
        first.body(chunk.to_vec()).await.unwrap();
    }
    // Message 2 does not fit beside it.
    let out = submit(
        &m,
        "bob@chat.example.org",
        &[REMOTE],
        &big.replace(ALICE, "bob@chat.example.org"),
    )
    .await;
    assert_eq!(
        out.reply().as_deref(),
        Some("451 4.3.1 Too much mail in progress, try again later")
    );
    // Message 1 completes normally; afterwards there is room again.
    let (_, status) = first.eom().await.unwrap();
    assert_eq!(status, Status::Accept);
    first.close().await.unwrap();
    let out = submit(
        &m,
        "carol@chat.example.org",
        &[REMOTE],
        &big.replace(ALICE, "carol@chat.example.org"),
    )
    .await;
    assert!(out.accepted(), "{out:?}");
    m.stop().await;
}
