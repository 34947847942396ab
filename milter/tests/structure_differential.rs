//! Whatever the milter accepts, `mailparse` (Delta Chat's MIME parser) must read the same
//! way: the kept corpus of the `structure_differential` fuzz target replayed through the
//! comparison of `differential/mod.rs`, and the classes the fuzzer found as tests of their own.

mod common;
mod differential;

use std::path::PathBuf;

use chatmail_milter::policy::verdict::Accepted;
use common::*;
use differential::{USER, check};
use proptest::prelude::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/structure_differential")
}

const A: &str = USER;
const B: &str = "bob@example.net";
const DAEMON: &str = "MAILER-DAEMON@mx.example.net";

/// The base Secure-Join request most seeds vary.
fn sj() -> String {
    securejoin(A, B, "vc-request", "Secure-Join: vc-request\n")
}

/// `msg` with the first `from` replaced by `to` (which must be there).
fn edit(msg: &str, from: &str, to: &str) -> String {
    assert!(msg.contains(from), "{from:?} not in the message");
    msg.replacen(from, to, 1)
}

const BOUNDARY: &str = "boundary=\"XzY-boundary-1\"";

/// A bounce with the returned message attached.
fn bounce_with_returned(returned_type: &str) -> String {
    let base = bounce(DAEMON, A, Some("auto-replied"), "multipart/report");
    let returned = format!(
        "--XzY-boundary-1\r\nContent-Type: {returned_type}\r\n\r\nFrom: <{A}>\r\nTo: <{B}>\r\nSubject: [...]\r\nMessage-ID: <orig@x>\r\n\r\n--XzY-boundary-1--\r\n"
    );
    edit(&base, "--XzY-boundary-1--\r\n", &returned)
}

/// Seeds: every kind of message that passes, and the tricks the structure check refuses.
fn seeds() -> Vec<(&'static str, String)> {
    let armored = rpgp_armored(Rpgp::PasswordV1, &[], b"hi", None);
    let armored2 = rpgp_armored(Rpgp::PasswordV2, &[], b"hi", Some(512));
    let enc = encrypted(A, B, &armored);
    let sj = sj();
    vec![
        ("encrypted-v1", enc.clone()),
        ("encrypted-v2", encrypted(A, B, &armored2)),
        (
            "encrypted-gpg-pkesk",
            encrypted(A, B, &gpg_fixture("gpg-pkesk-two-recipients.asc")),
        ),
        (
            "encrypted-gpg-version",
            encrypted(A, B, &gpg_fixture("gpg-version-header.asc")),
        ),
        ("encrypted-lf", enc.replace("\r\n", "\n")),
        (
            "encrypted-base64-payload",
            edit(
                &enc,
                "Content-Disposition",
                "Content-Transfer-Encoding: 7bit\r\nContent-Disposition",
            ),
        ),
        (
            "encrypted-extra-after-close",
            format!("{enc}--XzY-boundary-1\r\nContent-Type: text/plain\r\n\r\nhi\r\n"),
        ),
        (
            "encrypted-boundary-in-line",
            edit(
                &enc,
                "Version: 1\r\n",
                "Version: 1\r\nx--XzY-boundary-1\r\n",
            ),
        ),
        ("securejoin-vc", sj.clone()),
        (
            "securejoin-vg",
            securejoin(A, B, "vg-request", "Secure-Join: vg-request\n"),
        ),
        ("securejoin-lf", sj.replace("\r\n", "\n")),
        (
            "securejoin-qp",
            edit(
                &edit(
                    &sj,
                    "charset=utf-8\r\n",
                    "charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n",
                ),
                "Secure-Join: vc-request\r\n--",
                "Secure-Join: vc=2Drequest\r\n--",
            ),
        ),
        (
            "securejoin-base64",
            edit(
                &edit(
                    &sj,
                    "charset=utf-8\r\n",
                    "charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
                ),
                "Secure-Join: vc-request\r\n--",
                "U2VjdXJlLUpvaW46IHZjLXJlcXVlc3QK\r\n--",
            ),
        ),
        (
            "securejoin-utf16",
            edit(&sj, "charset=utf-8", "charset=utf-16"),
        ),
        (
            "securejoin-cte-two-tokens",
            edit(
                &sj,
                "charset=utf-8\r\n",
                "charset=utf-8\r\nContent-Transfer-Encoding: base64 x\r\n",
            ),
        ),
        (
            "securejoin-duplicate-content-type",
            edit(
                &sj,
                "Content-Type: multipart/mixed",
                "Content-Type: text/plain\r\nContent-Type: multipart/mixed",
            ),
        ),
        (
            "securejoin-duplicate-boundary",
            edit(
                &sj,
                BOUNDARY,
                "boundary=\"XzY\"; boundary=\"XzY-boundary-1\"",
            ),
        ),
        (
            "securejoin-boundary-continuation",
            edit(
                &sj,
                BOUNDARY,
                "boundary*0=\"XzY\"; boundary*1=\"-boundary-1\"",
            ),
        ),
        (
            "securejoin-quoted-semicolon",
            edit(
                &sj,
                BOUNDARY,
                "name=\"x; boundary=XzY\"; boundary=\"XzY-boundary-1\"",
            ),
        ),
        (
            "securejoin-encoded-boundary",
            edit(&sj, BOUNDARY, "boundary=\"=?utf-8?q?XzY-boundary-1?=\""),
        ),
        (
            "securejoin-delimiter-prefix-line",
            edit(
                &sj,
                "Secure-Join: vc-request\r\n--",
                "Secure-Join: vc-request\r\n--XzY-boundary-1x\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n--",
            ),
        ),
        (
            "securejoin-nested",
            edit(
                &sj,
                "Content-Type: text/plain; charset=utf-8\r\n\r\nSecure-Join: vc-request\r\n",
                "Content-Type: multipart/alternative; boundary=XzY-boundary-1x\r\n\r\n--XzY-boundary-1x\r\nContent-Type: text/plain\r\n\r\nSecure-Join: vc-request\r\n--XzY-boundary-1x--\r\n",
            ),
        ),
        (
            "securejoin-no-content-type-part",
            edit(&sj, "Content-Type: text/plain; charset=utf-8\r\n", ""),
        ),
        (
            "securejoin-header-without-colon",
            edit(&sj, "MIME-Version", "X\r\nMIME-Version"),
        ),
        (
            "securejoin-lone-cr-header",
            edit(
                &sj,
                "Subject: Message from alice\r\n",
                "Subject: x\rContent-Type: text/plain\r\n",
            ),
        ),
        (
            "securejoin-unclosed",
            edit(&sj, "--XzY-boundary-1--\r\n", ""),
        ),
        (
            "securejoin-empty-part-at-end",
            edit(&sj, "--XzY-boundary-1--\r\n", "--XzY-boundary-1\r\n"),
        ),
        ("asm", autocrypt_setup_message(A, A, "[...]", true)),
        (
            "asm-subject",
            autocrypt_setup_message(A, A, "Autocrypt Setup Message", false),
        ),
        (
            "bounce",
            bounce(DAEMON, A, Some("auto-replied"), "multipart/report"),
        ),
        (
            "bounce-returned-message",
            bounce_with_returned("message/rfc822"),
        ),
        (
            "bounce-returned-headers",
            bounce_with_returned("text/rfc822-headers"),
        ),
        (
            "bounce-digest",
            edit(
                &bounce_with_returned("message/rfc822"),
                "multipart/report",
                "multipart/digest",
            ),
        ),
        ("mdn", mdn(A, B)),
        ("plain", plain(A, B, "hello")),
    ]
}

#[test]
fn replay_corpus() {
    let mut n = 0;
    let mut accepted = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        match check(&data) {
            Ok(how) => accepted += usize::from(!how.is_empty()),
            Err(e) => panic!("{}: {e}", path.display()),
        }
        n += 1;
    }
    assert!(n >= 20, "only {n} corpus files");
    assert!(
        accepted >= 8,
        "only {accepted} of {n} corpus files accepted"
    );
}

#[test]
fn seeds_agree() {
    for (name, msg) in seeds() {
        check(msg.as_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn seeds_that_should_pass_do() {
    let passing = |name: &str| {
        let seeds = seeds();
        let msg = &seeds.iter().find(|(n, _)| *n == name).unwrap().1;
        check(msg.as_bytes()).unwrap()
    };
    for name in ["encrypted-v1", "encrypted-lf", "encrypted-gpg-version"] {
        assert!(
            passing(name).iter().any(|(_, a)| *a == Accepted::Encrypted),
            "{name}"
        );
    }
    for name in ["securejoin-vc", "securejoin-qp", "securejoin-base64"] {
        assert!(
            passing(name)
                .iter()
                .any(|(_, a)| *a == Accepted::SecureJoin),
            "{name}"
        );
    }
    assert!(
        passing("asm")
            .iter()
            .any(|(_, a)| *a == Accepted::AutocryptSetupMessage)
    );
    for name in [
        "bounce",
        "bounce-returned-message",
        "bounce-returned-headers",
    ] {
        assert!(
            passing(name)
                .iter()
                .any(|(_, a)| matches!(a, Accepted::MailerDaemonBounce(_))),
            "{name}"
        );
    }
}

/// Rewrites the seed files of the corpus (run with `--ignored`); findings stay.
#[test]
#[ignore]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, msg) in seeds() {
        std::fs::write(dir.join(format!("seed-{name}")), msg).unwrap();
    }
}

/// Every real disagreement the fuzzer found (`finding-*` in the corpus, but the false alarms
/// of the comparison) is now refused in every direction.
#[test]
fn findings_are_refused() {
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("finding-") || name.starts_with("finding-false-alarm-") {
            continue;
        }
        let accepted = check(&std::fs::read(&path).unwrap()).unwrap();
        assert!(accepted.is_empty(), "{name}: {accepted:?}");
        n += 1;
    }
    assert!(n >= 5, "only {n} findings");
}

// ---------------------------------------------------------------------------------------
// Structured MIME: the stable-toolchain counterpart of the fuzz target. Messages near the
// accepted shapes, built from the pieces parsers disagree on.

/// A part of a generated message.
#[derive(Debug, Clone)]
enum Node {
    Leaf {
        content_type: Option<&'static str>,
        cte: Option<&'static str>,
        body: &'static str,
    },
    Multipart {
        subtype: &'static str,
        /// Parameters after the type, boundary included (or not).
        params: String,
        boundary: &'static str,
        /// How the delimiters are written.
        delimiters: Delimiters,
        preamble: &'static str,
        children: Vec<Node>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Delimiters {
    Plain,
    TrailingSpace,
    NoClose,
    CloseWithoutNewline,
    TextAfterClose,
    PartAfterClose,
    EmptyPartAtEnd,
}

const BOUNDARIES: [&str; 6] = ["b1", "b1x", "b", "XzY-boundary-1", "b1 x", "b2"];

fn leaf() -> impl Strategy<Value = Node> {
    (
        prop::sample::select(vec![
            None,
            Some("text/plain"),
            Some("text/plain"),
            Some("text/plain"),
            Some("text/plain"),
            Some("text/plain"),
            Some("text/plain"),
            Some("message/delivery-status"),
            Some("message/delivery-status"),
            Some("text/plain; charset=utf-8"),
            Some("text/plain; charset=\"utf-16\""),
            Some("text/html"),
            Some("application/pgp-encrypted"),
            Some("application/octet-stream"),
            Some("message/delivery-status"),
            Some("message/rfc822"),
            Some("text/plain; name=\"x; boundary=b1\""),
            Some("text/plain;\r\n charset=utf-8"),
            Some("text/plain; charset*=utf-8''x"),
            Some("text/plain; *charset=utf-16"),
            Some("text/plain;\tcharset=\"utf-8\""),
        ]),
        prop::sample::select(vec![
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some("base64"),
            Some("quoted-printable"),
            Some("7bit"),
            Some("\r\n base64"),
            Some("base64 (x)"),
        ]),
        prop::sample::select(vec![
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Secure-Join: vc-request",
            "Version: 1",
            "Version: 1",
            "hello",
            "hello",
            "hello",
            "U2VjdXJlLUpvaW46IHZjLXJlcXVlc3QK",
            "x--b1",
            "--b1x",
            "--b1 x",
            "",
            "From: <bob@example.net>\r\n\r\nhi",
            "a\rb",
        ]),
    )
        .prop_map(|(content_type, cte, body)| Node::Leaf {
            content_type,
            cte,
            body,
        })
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        (
            prop::sample::select(vec![
                "mixed",
                "encrypted",
                "report",
                "alternative",
                "digest",
            ]),
            prop::sample::select(BOUNDARIES.to_vec()),
            prop::sample::select(vec![
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; boundary=\"{b}\"",
                "; report-type=delivery-status; boundary=\"{b}\"",
                "; report-type=delivery-status; boundary=\"{b}\"",
                "; boundary={b}",
                "; protocol=\"application/pgp-encrypted\"; boundary=\"{b}\"",
                "; report-type=delivery-status; boundary=\"{b}\"",
                ";\r\n boundary=\"{b}\"",
                "; boundary=\"{b}\"; boundary=\"b\"",
                "; boundary*0=\"{b}\"",
                "; boundary=\"=?utf-8?q?{b}?=\"",
                "; boundary=\"{b}\"; name=\"=?utf-8?q?a=3B_boundary=3Db2?=\"",
                "; boundary=\"{b}\"; name=\"=?utf-8?b?w6RiYy5wZGY=?=\"",
                "",
            ]),
            prop::sample::select(vec![
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::Plain,
                Delimiters::TrailingSpace,
                Delimiters::NoClose,
                Delimiters::CloseWithoutNewline,
                Delimiters::TextAfterClose,
                Delimiters::PartAfterClose,
                Delimiters::EmptyPartAtEnd,
            ]),
            prop::sample::select(vec![
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "preamble\r\n",
                "--b1x\r\n",
                "x--b1\r\n",
            ]),
            prop::collection::vec(inner, 1..4),
        )
            .prop_map(
                |(subtype, boundary, params, delimiters, preamble, children)| Node::Multipart {
                    subtype,
                    params: params.replace("{b}", boundary),
                    boundary,
                    delimiters,
                    preamble,
                    children,
                },
            )
    })
}

impl Node {
    fn write(&self, out: &mut String) {
        match self {
            Node::Leaf {
                content_type,
                cte,
                body,
            } => {
                if let Some(ct) = content_type {
                    out.push_str(&format!("Content-Type: {ct}\r\n"));
                }
                if let Some(cte) = cte {
                    out.push_str(&format!("Content-Transfer-Encoding: {cte}\r\n"));
                }
                out.push_str(&format!("\r\n{body}\r\n"));
            }
            Node::Multipart {
                subtype,
                params,
                boundary,
                delimiters,
                preamble,
                children,
            } => {
                out.push_str(&format!(
                    "Content-Type: multipart/{subtype}{params}\r\n\r\n"
                ));
                out.push_str(preamble);
                let open = match delimiters {
                    Delimiters::TrailingSpace => format!("--{boundary} \r\n"),
                    _ => format!("--{boundary}\r\n"),
                };
                for child in children {
                    out.push_str(&open);
                    child.write(out);
                }
                match delimiters {
                    Delimiters::Plain | Delimiters::TrailingSpace => {
                        out.push_str(&format!("--{boundary}--\r\n"))
                    }
                    Delimiters::NoClose => {}
                    Delimiters::CloseWithoutNewline => out.push_str(&format!("--{boundary}--")),
                    Delimiters::TextAfterClose => {
                        out.push_str(&format!("--{boundary}--\r\nepilogue\r\n"))
                    }
                    Delimiters::PartAfterClose => out.push_str(&format!(
                        "--{boundary}--\r\n--{boundary}\r\nContent-Type: text/html\r\n\r\n<b>x</b>\r\n"
                    )),
                    Delimiters::EmptyPartAtEnd => out.push_str(&open),
                }
            }
        }
    }
}

/// Top-level fields that open the exceptions (each there or not, the openers more often).
fn top_fields() -> impl Strategy<Value = Vec<&'static str>> {
    (
        prop::bool::weighted(0.6),
        prop::bool::weighted(0.5),
        prop::bool::weighted(0.3),
        prop::sample::select(vec![
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            Some("Content-Type: text/plain"),
            Some("Date:-x"),
            Some("X-Unknown: (unclosed"),
            Some("X-Lone: a\rb"),
        ]),
    )
        .prop_map(|(sj, auto, asm, other)| {
            let mut fields = Vec::new();
            if sj {
                fields.push("Secure-Join: vc-request");
            }
            if auto {
                fields.push("Auto-Submitted: auto-replied");
            }
            if asm {
                fields.push("Autocrypt-Setup-Message: v1");
            }
            fields.extend(other);
            fields
        })
}

fn message(from: &str, fields: &[&str], root: &Node, lf: bool) -> Vec<u8> {
    let mut m = format!("From: {from}\r\nTo: <{USER}>\r\nMIME-Version: 1.0\r\n");
    for f in fields {
        m.push_str(&format!("{f}\r\n"));
    }
    root.write(&mut m);
    if lf {
        m = m.replace("\r\n", "\n");
    }
    m.into_bytes()
}

proptest! {
    // `PROPTEST_CASES=200000` for a longer run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn structured_mime_is_read_alike(
        root in tree().prop_filter("multipart root", |n| matches!(n, Node::Multipart { .. })),
        fields in top_fields(),
        from in prop::sample::select(vec![
            "<alice@chat.example.org>",
            "<alice@chat.example.org>",
            "<MAILER-DAEMON@mx.example.net>",
            "<MAILER-DAEMON@mx.example.net>",
            "MAILER-DAEMON@mx.example.net (x",
            "<alice@chat.example.org> x",
        ]),
        lf in any::<bool>(),
    ) {
        let raw = message(from, &fields, &root, lf);
        if let Err(e) = check(&raw) {
            panic!("{e}\n{}", String::from_utf8_lossy(&raw));
        }
    }
}
