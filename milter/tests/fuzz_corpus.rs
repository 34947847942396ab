//! The fuzz corpus as a regression test, and property tests that the message check never
//! panics on mutated messages (the stable-toolchain counterpart of `cargo fuzz`).

mod common;

use std::path::PathBuf;

use chatmail_common::mailbox::Address;
use chatmail_milter::policy::armor::{ArmorHeaders, check_armored_message};
use chatmail_milter::policy::envelope::{Envelope, Recipient, Sender};
use chatmail_milter::policy::openpgp::check_packets;
use chatmail_milter::policy::{Direction, evaluate};
use common::*;
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/message_check")
}

/// What the fuzz target does with one input.
fn run_target(data: &[u8]) {
    let Some((&mode, raw)) = data.split_first() else {
        return;
    };
    let envelope = Envelope {
        sender: Sender::parse("<alice@chat.example.org>"),
        recipients: vec![
            Recipient::Mailbox {
                mailbox: Address::parse("alice@chat.example.org").unwrap(),
                enforces_e2ee: true,
            },
            Recipient::Mailbox {
                mailbox: Address::parse("bob@chat.example.org").unwrap(),
                enforces_e2ee: false,
            },
        ],
    };
    match mode % 4 {
        0 => {
            let _ = evaluate(Direction::Outbound, &envelope, raw);
        }
        1 => {
            let _ = evaluate(Direction::Inbound, &envelope, raw);
        }
        2 => {
            let _ = check_armored_message(raw, ArmorHeaders::Allow);
            let _ = check_armored_message(raw, ArmorHeaders::Refuse);
        }
        _ => {
            let _ = check_packets(raw);
        }
    }
}

const A: &str = "alice@chat.example.org";
const B: &str = "bob@chat.example.org";

/// Small messages of every kind the corpus covers.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let armored = rpgp_armored(Rpgp::PasswordV1, &[], b"hi", None);
    let armored2 = rpgp_armored(Rpgp::PasswordV2, &[], b"hi", Some(512));
    let enc = encrypted(A, B, &armored);
    let mut out = vec![
        ("encrypted-v1", enc.clone()),
        ("encrypted-v2", encrypted(A, B, &armored2)),
        (
            "gpg-pkesk",
            encrypted(A, B, &gpg_fixture("gpg-pkesk-two-recipients.asc")),
        ),
        (
            "gpg-version",
            encrypted(A, B, &gpg_fixture("gpg-version-header.asc")),
        ),
        ("plain", plain(A, B, "hello")),
        (
            "securejoin",
            securejoin(A, B, "vc-request", "Secure-Join: vc-request\n"),
        ),
        ("asm", autocrypt_setup_message(A, A, "[...]", true)),
        (
            "bounce",
            bounce(
                "MAILER-DAEMON@x.net",
                A,
                Some("auto-replied"),
                "multipart/report",
            ),
        ),
        ("mdn", mdn(A, B)),
    ];
    out.push(("lf-only", enc.replace("\r\n", "\n")));
    let mut seeds = Vec::new();
    for (name, msg) in out {
        for mode in [0u8, 1] {
            let mut d = vec![mode];
            d.extend_from_slice(msg.as_bytes());
            seeds.push((name, d));
        }
    }
    let mut a = vec![2u8];
    a.extend_from_slice(armored.as_bytes());
    seeds.push(("armor", a));
    seeds
}

#[test]
fn replay_corpus() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run_target(&data);
        n += 1;
    }
    assert!(n >= 10, "only {n} corpus files");
}

/// Rewrites the seed corpus (run with `--ignored`).
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (name, data)) in seeds().into_iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}-{name}-m{}", data[0])), data).unwrap();
    }
}

fn mutate(base: &[u8], ops: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(op, pos, byte) in ops {
        if v.is_empty() {
            v.push(byte);
            continue;
        }
        let p = pos % v.len();
        match op % 5 {
            0 => v[p] = byte,
            1 => v.insert(p, byte),
            2 => {
                v.remove(p);
            }
            3 => v.truncate(p),
            _ => {
                // Duplicate a slice: repeated boundaries, headers, packets.
                let end = (p + 1 + byte as usize).min(v.len());
                let piece = v[p..end].to_vec();
                v.splice(p..p, piece);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn mutated_messages_never_panic(
        which in 0usize..21,
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 0..12),
    ) {
        thread_local! {
            static SEEDS: Vec<Vec<u8>> = seeds().into_iter().map(|(_, d)| d).collect();
        }
        let data = SEEDS.with(|s| mutate(&s[which % s.len()], &ops));
        run_target(&data);
        // Every mode on the same bytes.
        for mode in 0..4u8 {
            let mut d = data.clone();
            if let Some(first) = d.first_mut() {
                *first = mode;
            }
            run_target(&d);
        }
    }

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        run_target(&data);
    }
}
