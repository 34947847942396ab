//! The real server on a temporary unix socket, spoken to with raw HTTP/1.1, with a fake SMTP
//! server on loopback standing in for Postfix.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatmail_common::config::Config;
use chatmail_web::smtp::Timeouts;
use chatmail_web::{App, Limits};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixStream};

// ---------------------------------------------------------------------------------------------
// The fake SMTP server

/// What the fake SMTP server answers; every other command gets a positive reply.
#[derive(Clone, Default)]
struct Replies {
    /// Replies to `RCPT TO:<addr>` by address.
    rcpt: HashMap<String, String>,
    /// The reply after the final dot (default `250 2.0.0 Ok: queued as 4XYZ`).
    data_end: Option<String>,
}

/// Everything the fake server received: `CONNECT`, each command line, and `BODY:` + the data.
#[derive(Clone, Default)]
struct Dialogue(Arc<Mutex<Vec<String>>>);

impl Dialogue {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    fn has(&self, prefix: &str) -> bool {
        self.lines().iter().any(|l| l.starts_with(prefix))
    }
    fn body(&self) -> String {
        self.lines()
            .iter()
            .find_map(|l| l.strip_prefix("BODY:").map(str::to_string))
            .unwrap_or_default()
    }
}

async fn fake_smtp(replies: Replies) -> (SocketAddr, Dialogue) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dialogue = Dialogue::default();
    let log = dialogue.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, replies) = (log.clone(), replies.clone());
            tokio::spawn(async move {
                log.push("CONNECT".into());
                let (read, mut write) = stream.into_split();
                let mut read = BufReader::new(read);
                write.write_all(b"220 fake ESMTP\r\n").await.unwrap();
                loop {
                    let mut line = String::new();
                    if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let line = line.trim_end_matches("\r\n").to_string();
                    log.push(line.clone());
                    let verb = line
                        .split([' ', ':'])
                        .next()
                        .unwrap_or("")
                        .to_ascii_uppercase();
                    let reply = match verb.as_str() {
                        "EHLO" => "250-fake.test\r\n250-SIZE 10240000\r\n250-XCLIENT ADDR NAME\r\n\
                                   250-8BITMIME\r\n250 SMTPUTF8"
                            .to_string(),
                        "XCLIENT" => "220 fake ESMTP".into(),
                        "RCPT" => {
                            let addr = line
                                .split_once('<')
                                .and_then(|(_, a)| a.split_once('>'))
                                .map(|(a, _)| a.to_string())
                                .unwrap_or_default();
                            replies
                                .rcpt
                                .get(&addr)
                                .cloned()
                                .unwrap_or_else(|| "250 2.1.5 Ok".into())
                        }
                        "DATA" => {
                            write.write_all(b"354 End data with .\r\n").await.unwrap();
                            let mut data = Vec::new();
                            loop {
                                let mut l = Vec::new();
                                if read.read_until(b'\n', &mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == b".\r\n" {
                                    break;
                                }
                                data.extend_from_slice(&l);
                            }
                            log.push(format!("BODY:{}", String::from_utf8_lossy(&data)));
                            replies
                                .data_end
                                .clone()
                                .unwrap_or_else(|| "250 2.0.0 Ok: queued as 4XYZ".into())
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                            return;
                        }
                        _ => "250 2.0.0 Ok".into(),
                    };
                    write
                        .write_all(format!("{reply}\r\n").as_bytes())
                        .await
                        .unwrap();
                }
            });
        }
    });
    (addr, dialogue)
}

// ---------------------------------------------------------------------------------------------
// The server under test

struct Relay {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    nocreate: PathBuf,
}

async fn relay(domain: &str, smtp: SocketAddr) -> Relay {
    relay_with(domain, smtp, Limits::default()).await
}

async fn relay_with(domain: &str, smtp: SocketAddr, limits: Limits) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("web.sock");
    let nocreate = dir.path().join("nocreate");
    let text = format!(
        "[params]\nmail_domain = {domain}\nnocreate_file = {}\nmax_message_size = 10000\n",
        nocreate.display()
    );
    let (config, _) = Config::from_str(&text, Path::new("chatmail.ini")).unwrap();
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        reply: Duration::from_secs(5),
        data_end: Duration::from_secs(5),
    };
    let app = Arc::new(App::new(config, smtp, limits, timeouts));
    tokio::spawn(chatmail_web::serve(listener, app, std::future::pending()));
    Relay {
        _dir: dir,
        socket,
        nocreate,
    }
}

/// A relay with a domain (ACME certificate) and a fake SMTP server with default replies.
async fn acme() -> (Relay, Dialogue) {
    let (smtp, dialogue) = fake_smtp(Replies::default()).await;
    (relay("chat.example.org", smtp).await, dialogue)
}

/// An IP-only relay (self-signed certificate).
async fn ip_only() -> Relay {
    let (smtp, _) = fake_smtp(Replies::default()).await;
    relay("203.0.113.5", smtp).await
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (request line and headers, without the blank line; `Connection: close` is
/// added) and `body`, reads the whole response.
async fn raw(relay: &Relay, head: &str, body: &[u8]) -> Response {
    let mut stream = UnixStream::connect(&relay.socket).await.unwrap();
    let mut request = format!("{head}\r\nConnection: close\r\n\r\n").into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut bytes))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn get(relay: &Relay, path: &str) -> Response {
    raw(relay, &format!("GET {path} HTTP/1.1\r\nHost: x"), b"").await
}

async fn post_new(relay: &Relay) -> Response {
    raw(
        relay,
        "POST /new HTTP/1.1\r\nHost: x\r\nContent-Length: 0",
        b"",
    )
    .await
}

/// `POST /mxdeliv` with `headers` (lines) and `message`.
async fn mxdeliv(relay: &Relay, headers: &[&str], message: &[u8]) -> Response {
    let mut head = String::from("POST /mxdeliv HTTP/1.1\r\nHost: x\r\nX-Real-IP: 203.0.113.9");
    for h in headers {
        head.push_str("\r\n");
        head.push_str(h);
    }
    head.push_str(&format!("\r\nContent-Length: {}", message.len()));
    raw(relay, &head, message).await
}

const ENVELOPE: &[&str] = &[
    "X-Mail-From: alice@other.example",
    "X-Mail-To: bob@chat.example.org",
    "X-Mail-To: carol@chat.example.org",
];

const MESSAGE: &[u8] = b"From: alice@other.example\nSubject: hi\n\n.dot line\nbody\n";

/// The first `dclogin:` link in `html`, in the form HTML shows it.
fn dclogin_in(html: &str) -> String {
    let start = html.find("href=\"dclogin:").expect("a dclogin link") + 6;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_string()
}

// ---------------------------------------------------------------------------------------------
// Pages

#[tokio::test]
async fn invite_page_with_qr_code_and_link() {
    let (relay, _) = acme().await;
    for path in ["/", "/index.html"] {
        let r = get(&relay, path).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'none'; style-src 'unsafe-inline'; img-src data:")
        );
        assert!(r.body.contains("<svg "), "{}", r.body);
        assert!(
            r.body
                .contains("href=\"dcaccount:https://chat.example.org/new\"")
        );
        assert!(r.body.contains(">dcaccount:https://chat.example.org/new<"));
        assert!(r.body.contains("info.html") && r.body.contains("privacy.html"));
        assert!(!r.body.contains("<script"));
    }
    let head = raw(&relay, "HEAD / HTTP/1.1\r\nHost: x", b"").await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn self_signed_invite_page_has_a_fresh_dclogin_per_visit() {
    let relay = ip_only().await;
    let a = dclogin_in(&get(&relay, "/").await.body);
    let b = dclogin_in(&get(&relay, "/").await.body);
    assert_ne!(a, b);
    assert!(a.contains("@[203.0.113.5]?p="), "{a}");
    assert!(a.contains("ih=203.0.113.5") && a.contains("ic=3"), "{a}");
}

#[tokio::test]
async fn info_and_privacy_pages() {
    let (relay, _) = acme().await;
    let info = get(&relay, "/info.html").await;
    assert_eq!(info.status, 200);
    assert_eq!(info.header("cache-control"), Some("max-age=300"));
    assert!(info.body.contains("20 days") && info.body.contains("encrypted"));
    let privacy = get(&relay, "/privacy.html").await;
    assert_eq!(privacy.status, 200);
    assert!(privacy.body.contains("password"));
    assert!(privacy.header("content-security-policy").is_some());
}

// ---------------------------------------------------------------------------------------------
// /new

fn json(r: &Response) -> serde_json::Map<String, serde_json::Value> {
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    match serde_json::from_str(&r.body).unwrap() {
        serde_json::Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn post_new_hands_out_credentials() {
    let (relay, _) = acme().await;
    let r = post_new(&relay).await;
    assert_eq!(r.status, 200);
    let map = json(&r);
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["email", "password"]);
    let email = map["email"].as_str().unwrap();
    let (user, domain) = email.split_once('@').unwrap();
    assert_eq!(domain, "chat.example.org");
    assert_eq!(user.len(), 9);
    assert!(
        user.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    assert_eq!(map["password"].as_str().unwrap().len(), 9 + 3);
    let again = json(&post_new(&relay).await);
    assert_ne!(again["email"], map["email"]);
}

#[tokio::test]
async fn post_new_on_self_signed_relays_adds_the_dclogin_url() {
    let relay = ip_only().await;
    let map = json(&post_new(&relay).await);
    let email = map["email"].as_str().unwrap();
    assert!(email.ends_with("@[203.0.113.5]"), "{email}");
    let url = map["dclogin_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("dclogin:{email}?p=")), "{url}");
    assert!(url.contains("ic=3"), "{url}");
    let password = map["password"].as_str().unwrap();
    assert_eq!(password.len(), 12);
    let encoded = chatmail_common::invite::urlencode(password);
    assert!(url.contains(&format!("?p={encoded}&")), "{url}");
}

#[tokio::test]
async fn get_new_redirects() {
    let (relay, _) = acme().await;
    let r = get(&relay, "/new").await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("dcaccount:https://chat.example.org/new")
    );
    let ip = ip_only().await;
    let r = get(&ip, "/new").await;
    assert_eq!(r.status, 302);
    assert!(r.header("location").unwrap().starts_with("dclogin:"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn nocreate_file_closes_account_creation() {
    let (relay, _) = acme().await;
    std::fs::write(&relay.nocreate, "").unwrap();
    for r in [post_new(&relay).await, get(&relay, "/new").await] {
        assert_eq!(r.status, 403);
        let map = json(&r);
        assert_eq!(
            map["reason"].as_str(),
            Some("This relay does not accept new accounts.")
        );
    }
    let page = get(&relay, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("does not accept new accounts"));
    assert!(!page.body.contains("<svg") && !page.body.contains("dcaccount:"));
    std::fs::remove_file(&relay.nocreate).unwrap();
    assert_eq!(post_new(&relay).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// /mxdeliv

#[tokio::test]
async fn mxdeliv_hands_the_message_to_smtp() {
    let (relay, dialogue) = acme().await;
    let r = mxdeliv(&relay, ENVELOPE, MESSAGE).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "250 2.0.0 Ok: queued as 4XYZ");
    let lines = dialogue.lines();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {lines:?}"))
    };
    assert_eq!(
        lines[at("XCLIENT")],
        "XCLIENT ADDR=203.0.113.9 NAME=[UNAVAILABLE]"
    );
    assert!(at("EHLO chat.example.org") < at("XCLIENT"));
    assert_eq!(
        lines[at("MAIL FROM")],
        format!("MAIL FROM:<alice@other.example> SIZE={}", MESSAGE.len())
    );
    assert!(at("RCPT TO:<bob@chat.example.org>") < at("RCPT TO:<carol@chat.example.org>"));
    assert!(at("RCPT TO:<carol@chat.example.org>") < at("DATA"));
    assert_eq!(
        dialogue.body(),
        "From: alice@other.example\r\nSubject: hi\r\n\r\n..dot line\r\nbody\r\n"
    );
    assert!(dialogue.has("QUIT"));
    // Two EHLOs: before and after XCLIENT.
    assert_eq!(lines.iter().filter(|l| l.starts_with("EHLO")).count(), 2);
}

#[tokio::test]
async fn mxdeliv_passes_a_refused_recipient_on() {
    let mut replies = Replies::default();
    replies.rcpt.insert(
        "carol@chat.example.org".into(),
        "550-5.1.1 <carol@chat.example.org>: Recipient address rejected\r\n\
         550 5.1.1 User unknown"
            .into(),
    );
    let (smtp, dialogue) = fake_smtp(replies).await;
    let relay = relay("chat.example.org", smtp).await;
    let r = mxdeliv(&relay, ENVELOPE, MESSAGE).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        "550 5.1.1 <carol@chat.example.org>: Recipient address rejected\n\
         550 5.1.1 User unknown"
    );
    assert!(!dialogue.has("DATA"), "{:?}", dialogue.lines());
    assert!(dialogue.has("RSET") && dialogue.has("QUIT"));
}

#[tokio::test]
async fn mxdeliv_temporary_failure_is_503() {
    let replies = Replies {
        data_end: Some("451 4.7.1 Try again later".into()),
        ..Replies::default()
    };
    let (smtp, _) = fake_smtp(replies).await;
    let relay = relay("chat.example.org", smtp).await;
    let r = mxdeliv(&relay, ENVELOPE, MESSAGE).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "451 4.7.1 Try again later");
}

#[tokio::test]
async fn mxdeliv_552_is_413() {
    let replies = Replies {
        data_end: Some("552 5.3.4 Message size exceeds fixed limit".into()),
        ..Replies::default()
    };
    let (smtp, _) = fake_smtp(replies).await;
    let relay = relay("chat.example.org", smtp).await;
    let r = mxdeliv(&relay, ENVELOPE, MESSAGE).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body, "552 5.3.4 Message size exceeds fixed limit");
}

#[tokio::test]
async fn mxdeliv_too_large_is_refused_without_smtp() {
    let (relay, dialogue) = acme().await;
    let big = vec![b'x'; 10_001];
    let r = mxdeliv(&relay, ENVELOPE, &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body, "552 5.3.4 Message exceeds maximum size");

    // Without Content-Length (chunked): found while reading.
    let mut head = String::from("POST /mxdeliv HTTP/1.1\r\nHost: x");
    for h in ENVELOPE {
        head.push_str("\r\n");
        head.push_str(h);
    }
    head.push_str("\r\nTransfer-Encoding: chunked");
    let mut body = Vec::new();
    for _ in 0..3 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'y'; 4096]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let r = raw(&relay, &head, &body).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.body, "552 5.3.4 Message exceeds maximum size");
    assert!(dialogue.lines().is_empty(), "{:?}", dialogue.lines());
}

#[tokio::test]
async fn mxdeliv_refuses_bad_envelopes() {
    let (relay, dialogue) = acme().await;
    let r = mxdeliv(&relay, &["X-Mail-From: a@other.example"], MESSAGE).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("X-Mail-To"), "{}", r.body);
    let r = mxdeliv(&relay, &["X-Mail-To: b@chat.example.org"], MESSAGE).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("X-Mail-From"), "{}", r.body);
    let r = mxdeliv(
        &relay,
        &[
            "X-Mail-From: a@other.example",
            "X-Mail-To: <b@chat.example.org>",
        ],
        MESSAGE,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("X-Mail-To"), "{}", r.body);
    let r = mxdeliv(
        &relay,
        &[
            "X-Mail-From: a@other.example, x@y",
            "X-Mail-To: b@chat.example.org",
        ],
        MESSAGE,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("X-Mail-From"), "{}", r.body);
    assert!(dialogue.lines().is_empty());
}

#[tokio::test]
async fn mxdeliv_bounce_has_the_null_sender() {
    let (relay, dialogue) = acme().await;
    let r = mxdeliv(
        &relay,
        &["X-Mail-From:", "X-Mail-To: bob@chat.example.org"],
        MESSAGE,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(dialogue.has("MAIL FROM:<> SIZE="), "{:?}", dialogue.lines());
}

#[tokio::test]
async fn mxdeliv_smtp_down_is_503() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let relay = relay("chat.example.org", port).await;
    let r = mxdeliv(&relay, ENVELOPE, MESSAGE).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "451 4.3.0 Temporary failure");
}

// ---------------------------------------------------------------------------------------------
// Routing and limits

#[tokio::test]
async fn wrong_methods_and_unknown_paths() {
    let (relay, _) = acme().await;
    let r = get(&relay, "/mxdeliv").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = raw(
        &relay,
        "POST /info.html HTTP/1.1\r\nHost: x\r\nContent-Length: 0",
        b"",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = raw(&relay, "DELETE /new HTTP/1.1\r\nHost: x", b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    for path in ["/nope", "/../etc/passwd", "/index.html/", "/new/x", "//"] {
        assert_eq!(get(&relay, path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn too_many_headers_get_431() {
    let (relay, _) = acme().await;
    let mut head = String::from("GET / HTTP/1.1\r\nHost: x");
    for i in 0..=Limits::default().max_headers {
        head.push_str(&format!("\r\nX-Filler-{i}: y"));
    }
    assert_eq!(raw(&relay, &head, b"").await.status, 431);
}

fn short_limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        max_connections: 2,
        ..Limits::default()
    }
}

/// Reads until the server closes the connection; what it sent.
async fn until_closed(stream: &mut UnixStream) -> String {
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut bytes))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let (smtp, dialogue) = fake_smtp(Replies::default()).await;
    let relay = relay_with("chat.example.org", smtp, short_limits()).await;
    // A request head that never ends.
    let mut slow = UnixStream::connect(&relay.socket).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    // A body that never ends.
    let mut slow = UnixStream::connect(&relay.socket).await.unwrap();
    let mut head = String::from("POST /mxdeliv HTTP/1.1\r\nHost: x");
    for h in ENVELOPE {
        head.push_str("\r\n");
        head.push_str(h);
    }
    head.push_str("\r\nContent-Length: 100\r\n\r\nonly a part");
    slow.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(dialogue.lines().is_empty());
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let (smtp, _) = fake_smtp(Replies::default()).await;
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let relay = relay_with("chat.example.org", smtp, limits).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = UnixStream::connect(&relay.socket).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        held.push(s);
    }
    // Let the server accept both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = UnixStream::connect(&relay.socket).await.unwrap();
    assert_eq!(until_closed(&mut third).await, "");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&relay, "/").await.status, 200);
}

#[tokio::test]
async fn mxdeliv_non_ascii_addresses_use_smtputf8() {
    let (relay, dialogue) = acme().await;
    let r = mxdeliv(
        &relay,
        &[
            "X-Mail-From: alice@other.example",
            "X-Mail-To: jörg@chat.example.org",
        ],
        MESSAGE,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        dialogue.has(&format!(
            "MAIL FROM:<alice@other.example> SIZE={} SMTPUTF8",
            MESSAGE.len()
        )),
        "{:?}",
        dialogue.lines()
    );
    assert!(dialogue.has("RCPT TO:<jörg@chat.example.org>"));
}
