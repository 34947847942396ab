//! `chatmail-relay dns` against a DNS server of the test's own on 127.0.0.1 (the real
//! protocol, UDP and TCP, an ephemeral port): the records printed, and `--check` finding
//! some right, one wrong and one missing; and what happens when nobody answers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, CAA, CNAME, MX, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

const DOMAIN: &str = "chat.example.org";
const IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

type Zone = Arc<Mutex<HashMap<(String, RecordType), Vec<RData>>>>;

/// A DNS server answering from `zone` on 127.0.0.1, over UDP and TCP on the same port,
/// until the test ends.
fn serve(zone: Zone) -> SocketAddr {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    let tcp = TcpListener::bind(addr).unwrap();
    let z = zone.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            if let Some(reply) = answer(&z, &buf[..n]) {
                let _ = udp.send_to(&reply, peer);
            }
        }
    });
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().flatten() {
            let mut len = [0u8; 2];
            while stream.read_exact(&mut len).is_ok() {
                let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                if stream.read_exact(&mut query).is_err() {
                    break;
                }
                let Some(reply) = answer(&zone, &query) else {
                    break;
                };
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend(reply);
                if stream.write_all(&framed).is_err() {
                    break;
                }
            }
        }
    });
    addr
}

fn answer(zone: &Zone, query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    let zone = zone.lock().unwrap();
    let name = q.name().to_lowercase().to_string();
    match zone.get(&(name.clone(), q.query_type())) {
        Some(data) => {
            for d in data {
                reply.add_answer(Record::from_rdata(q.name().clone(), 60, d.clone()));
            }
        }
        None if !zone.keys().any(|(n, _)| *n == name) => {
            reply.metadata.response_code = ResponseCode::NXDomain;
        }
        None => {}
    }
    reply.add_query(q);
    reply.to_vec().ok()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

struct Relay {
    dir: tempfile::TempDir,
}

impl Relay {
    /// A root with chatmail.ini for DOMAIN (written by `init`) and `set` applied.
    fn new(domain: &str, set: &[String]) -> Relay {
        let relay = Relay {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(relay.root().join("etc/chatmail")).unwrap();
        let mut args = vec!["init".to_string(), domain.to_string()];
        for s in set {
            args.extend(["--set".to_string(), s.clone()]);
        }
        let out = relay.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        relay
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The DKIM key setup would make, and its record's text.
    fn dkim_key(&self) -> String {
        let key = chatmail_relay::dkim::generate_key().unwrap();
        let path = self.root().join("etc/dkimkeys/opendkim.private");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &key).unwrap();
        chatmail_relay::dkim::record(key.as_bytes(), DOMAIN, "opendkim").unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_chatmail-relay"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A zone with every record right but the MX (another host) and DMARC (none). `mta-sts`
/// has the relay's address instead of a CNAME; the DKIM key is in two strings.
fn records(dkim: &str) -> HashMap<(String, RecordType), Vec<RData>> {
    let d = format!("{DOMAIN}.");
    let at = |p: &str| format!("{p}.{DOMAIN}.");
    let txt =
        |strings: &[&str]| RData::TXT(TXT::new(strings.iter().map(|s| s.to_string()).collect()));
    let (dkim1, dkim2) = dkim.split_at(200);
    let mut z = HashMap::new();
    z.insert((d.clone(), RecordType::A), vec![RData::A(A(IP))]);
    z.insert(
        (d.clone(), RecordType::MX),
        vec![RData::MX(MX::new(10, name("mx.elsewhere.example.")))],
    );
    z.insert(
        (d.clone(), RecordType::TXT),
        vec![
            txt(&["google-site-verification=abc"]),
            txt(&["v=spf1 mx -all"]),
        ],
    );
    z.insert(
        (d.clone(), RecordType::CAA),
        vec![RData::CAA(CAA::new_issue(
            false,
            Some(name("letsencrypt.org")),
            vec![],
        ))],
    );
    z.insert(
        (at("opendkim._domainkey"), RecordType::TXT),
        vec![txt(&[dkim1, dkim2])],
    );
    z.insert(
        (at("_mta-sts"), RecordType::TXT),
        vec![txt(&["v=STSv1; id=20240321"])],
    );
    z.insert((at("mta-sts"), RecordType::A), vec![RData::A(A(IP))]);
    for (service, port) in [
        ("_submissions._tcp", 465),
        ("_submission._tcp", 587),
        ("_imaps._tcp", 993),
        ("_imap._tcp", 143),
    ] {
        let target = name("CHAT.example.org.");
        z.insert(
            (at(service), RecordType::SRV),
            vec![RData::SRV(SRV::new(0, 1, port, target))],
        );
    }
    z
}

#[test]
fn check_finds_the_wrong_and_the_missing_record() {
    let zone = Zone::default();
    let server = serve(zone.clone());
    let relay = Relay::new(DOMAIN, &[format!("dns_resolver={server}")]);
    *zone.lock().unwrap() = records(&relay.dkim_key());

    let out = relay.run(&["dns", "--check", "--ip", &IP.to_string()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let status = |prefix: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.starts_with(prefix))
            .copied()
            .collect()
    };
    assert_eq!(
        status("wrong"),
        ["wrong    chat.example.org. MX 10 chat.example.org. (found: 10 mx.elsewhere.example.)"],
        "{text}"
    );
    assert_eq!(
        status("missing"),
        ["missing  _dmarc.chat.example.org. TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\""],
        "{text}"
    );
    assert_eq!(status("ok").len(), 10, "{text}");
    for ok in [
        "ok       chat.example.org. A 203.0.113.7",
        "ok       opendkim._domainkey.chat.example.org. TXT \"v=DKIM1;",
        "ok       mta-sts.chat.example.org. CNAME chat.example.org.",
        "ok       chat.example.org. TXT \"v=spf1 a ~all\"",
        "ok       chat.example.org. CAA 0 issue \"letsencrypt.org\"",
        "ok       _imap._tcp.chat.example.org. SRV 0 1 143 chat.example.org.",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(ok)), "{ok}\n{text}");
    }
    assert_eq!(
        lines.last(),
        Some(&"2 of 12 records missing, wrong or unknown (chatmail-relay dns prints them all)")
    );

    // published as printed: all is well
    {
        let mut z = zone.lock().unwrap();
        z.insert(
            (format!("{DOMAIN}."), RecordType::MX),
            vec![RData::MX(MX::new(10, name("chat.example.org.")))],
        );
        z.insert(
            (format!("_dmarc.{DOMAIN}."), RecordType::TXT),
            vec![RData::TXT(TXT::new(vec![
                "v=DMARC1;p=reject;adkim=s;aspf=s".into(),
            ]))],
        );
        z.insert(
            (format!("mta-sts.{DOMAIN}."), RecordType::CNAME),
            vec![RData::CNAME(CNAME(name("chat.example.org.")))],
        );
    }
    let out = relay.run(&["dns", "--check", "--ip", &IP.to_string()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.ends_with("all 12 records are published\n"), "{text}");
}

#[test]
fn records_are_printed_for_the_zone() {
    let relay = Relay::new(DOMAIN, &[]);
    let out = relay.run(&["dns", "--ip", "203.0.113.7", "--ip", "2001:db8::7"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let squeezed: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for line in [
        "chat.example.org. 3600 IN A 203.0.113.7",
        "chat.example.org. 3600 IN AAAA 2001:db8::7",
        "chat.example.org. 3600 IN MX 10 chat.example.org.",
        "_dmarc.chat.example.org. 3600 IN TXT \"v=DMARC1; p=reject; adkim=s; aspf=s\"",
        "; opendkim._domainkey.chat.example.org. TXT: no DKIM key at /etc/dkimkeys/opendkim.private \
         yet: run chatmail-relay setup first",
    ] {
        assert!(squeezed.iter().any(|l| l == line), "{line}\n{text}");
    }
    let dkim = relay.dkim_key();
    let out = relay.run(&["dns", "--zonefile", "--ip", "203.0.113.7"]);
    let text = stdout(&out);
    assert!(
        text.contains("$ORIGIN chat.example.org.\n$TTL 3600\n"),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("opendkim._domainkey "))
        .unwrap();
    let joined: String = line.split('"').skip(1).step_by(2).collect();
    assert_eq!(joined, dkim);
    assert!(!text.contains("AAAA"), "{text}");
}

#[test]
fn a_resolver_nobody_answers_is_one_error_line() {
    // bound, so nobody else gets the port, and never read
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let relay = Relay::new(DOMAIN, &[format!("dns_resolver={addr}")]);
    let started = Instant::now();
    let out = relay.run(&["dns", "--check", "--ip", "203.0.113.7"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    assert_eq!(stdout(&out), "");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("DNS resolver {addr}")), "{err}");
}

#[test]
fn bad_input_and_ip_only_relays() {
    let relay = Relay::new("1.2.3.4", &[]);
    let out = relay.run(&["dns", "--check"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "1.2.3.4 is an IP-only relay: it needs no DNS records\n"
    );

    let relay = Relay::new(DOMAIN, &[]);
    let ini = relay.root().join("etc/chatmail/chatmail.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    std::fs::write(&ini, text + "max_user_send_per_minute = lots\n").unwrap();
    let out = relay.run(&["dns"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("max_user_send_per_minute"), "{err}");
    let out = relay.run(&["dns", "--ip", "not-an-address"]);
    assert!(!out.status.success());
}
