//! Throughput of the encryption check on one core: `cargo bench -p chatmail-milter`.
//!
//! For 10 kB, 1 MB and 30 MB PGP/MIME messages it prints MB/s of
//! * the whole end-of-message decision (`policy::evaluate`, outbound: MIME parse, From check,
//!   armor, packets),
//! * the armor + packet check alone,
//!
//! and, measured in the same run, the two floors it is made of: `mail-parser` parsing the
//! message, and a bare SIMD base64 decode of the armor (line breaks removed beforehand, not
//! timed). Target: ≥ 500 MB/s for the whole decision.
//!
//! Then the cost of a DKIM signature (RSA-2048, what every outbound message of a relay with a
//! domain gets) on a 10 kB message, beside OpenSSL's own RSA-2048 signing speed
//! (`openssl speed rsa2048`) measured in the same run, as the floor.

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use chatmail_milter::policy::armor::{ArmorHeaders, check_armored_message};
use chatmail_milter::policy::envelope::{Envelope, Recipient, Sender};
use chatmail_milter::policy::verdict::{Accepted, Verdict};
use chatmail_milter::policy::{Direction, evaluate};

const FROM: &str = "alice@chat.example.org";
const TO: &str = "bob@example.net";

/// Structurally valid SKESK + SEIPD v1 armor of about `size` bytes.
fn armor(size: usize) -> String {
    let body_len = size / 4 * 3 * 64 / 66;
    let mut data = vec![0xc3, 13, 4, 9, 3, 8, 1, 2, 3, 4, 5, 6, 7, 8, 96, 0xd2, 255];
    data.extend(((body_len + 1) as u32).to_be_bytes());
    data.push(1);
    let mut x: u32 = 7;
    data.extend((0..body_len).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    let b64 = base64::engine::general_purpose::STANDARD.encode(&data);
    let mut s = String::from("-----BEGIN PGP MESSAGE-----\r\n\r\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push_str("\r\n");
    }
    s.push_str("-----END PGP MESSAGE-----\r\n");
    s
}

fn message(armor: &str) -> String {
    format!(
        "From: <{FROM}>\r\nTo: <{TO}>\r\nSubject: [...]\r\nDate: Sat, 28 Nov 2026 14:00:00 +0000\r\n\
         Message-ID: <bench@chat.example.org>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n\
         --b\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n{armor}\r\n--b--\r\n"
    )
}

/// Runs `f` repeatedly for about `budget`; returns MB/s for `bytes` per call.
fn rate(bytes: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm up
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (bytes as f64 * n as f64) / secs / 1e6
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let budget = Duration::from_millis(if quick { 50 } else { 1500 });
    let envelope = Envelope {
        sender: Sender::parse(&format!("<{FROM}>")),
        recipients: vec![Recipient::Other(TO.into())],
    };
    println!("encryption check, one core (MB/s of message bytes)");
    println!(
        "{:>8} {:>10} {:>14} {:>12} {:>12} {:>8}",
        "size", "evaluate", "armor+packets", "mail-parser", "base64-simd", "ratio"
    );
    for size in [10_000usize, 1_000_000, 30_000_000] {
        let a = armor(size);
        let msg = message(&a);
        assert_eq!(
            evaluate(Direction::Outbound, &envelope, msg.as_bytes()).verdict,
            Verdict::Accept(Accepted::Encrypted)
        );
        let whole = rate(msg.len(), budget, || {
            black_box(evaluate(
                Direction::Outbound,
                &envelope,
                black_box(msg.as_bytes()),
            ));
        });
        let parse_only = rate(msg.len(), budget, || {
            black_box(mail_parser::MessageParser::default().parse(black_box(msg.as_bytes())));
        });
        let armor_only = rate(a.len(), budget, || {
            black_box(check_armored_message(black_box(a.as_bytes()), ArmorHeaders::Refuse).ok());
        });
        let b64: Vec<u8> = a
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('-'))
            .flat_map(|l| l.trim_end().bytes())
            .collect();
        let mut out = vec![0u8; b64.len() / 4 * 3 + 3];
        let floor = rate(a.len(), budget, || {
            black_box(
                base64_simd::STANDARD
                    .decode(black_box(&b64), base64_simd::Out::from_slice(&mut out))
                    .is_ok(),
            );
        });
        // Both steps back to back at their floor speeds.
        let combined_floor = 1.0 / (1.0 / parse_only + 1.0 / floor);
        println!(
            "{:>8} {:>10.0} {:>14.0} {:>12.0} {:>12.0} {:>8.2}",
            human(msg.len()),
            whole,
            armor_only,
            parse_only,
            floor,
            whole / combined_floor
        );
    }
    println!(
        "ratio = evaluate / (mail-parser and base64-simd back to back); target: evaluate >= 500 MB/s"
    );
    dkim_signing(budget);
}

/// Microseconds per DKIM signature of a 10 kB message, and per bare RSA-2048 signature of
/// `openssl speed` on this machine.
fn dkim_signing(budget: Duration) {
    let key = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dkim-test.key"
    ))
    .expect("test key");
    let signer =
        chatmail_milter::dkim::Signer::from_pem(&key, "chat.example.org", "sel").expect("signer");
    let msg = message(&armor(10_000));
    let per_second = rate(1, budget, || {
        black_box(signer.sign(black_box(msg.as_bytes())).ok());
    }) * 1e6;
    let ours = 1e6 / per_second;
    println!();
    println!("DKIM signature of a 10 kB message (RSA-2048, one core)");
    match openssl_rsa2048_sign_us(budget) {
        Some(floor) => println!(
            "chatmail-milter {ours:.0} µs   openssl speed rsa2048 sign {floor:.0} µs   ratio {:.2}",
            ours / floor
        ),
        None => println!("chatmail-milter {ours:.0} µs   (openssl speed not available)"),
    }
}

/// `openssl speed -mr rsa2048` prints `+F2:<n>:2048:<sign>:<verify>`: signatures per
/// second with OpenSSL 3, seconds per signature with older versions.
fn openssl_rsa2048_sign_us(budget: Duration) -> Option<f64> {
    let seconds = budget.as_secs().max(1).to_string();
    let out = std::process::Command::new("openssl")
        .args(["speed", "-mr", "-seconds", &seconds, "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("+F2:"))?;
    let sign: f64 = line.split(':').nth(3)?.parse().ok()?;
    let seconds = if sign > 1.0 { 1.0 / sign } else { sign };
    Some(seconds * 1e6)
}

fn human(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{} MB", n / 1_000_000)
    } else {
        format!("{} kB", n / 1000)
    }
}
