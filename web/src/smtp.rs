//! A small SMTP client that hands one message to the local Postfix.
//!
//! `/mxdeliv` passes a message that another relay sent over HTTPS to a Postfix smtpd on
//! loopback that applies the port-25 policy (milter included), as if the other relay had
//! connected on port 25. Why not lettre:
//!
//! * the sending relay must get the reply that decided the message *verbatim* (code,
//!   enhanced code and text of every line), also for a single refused recipient, so that it
//!   bounces with Postfix's (or the milter's) reason; lettre turns replies into its own error
//!   values and sends all recipients before reporting;
//! * Postfix must see the other relay's address, not ours: that takes `XCLIENT`, which lettre
//!   does not speak;
//! * there is no TLS, no AUTH and no pooling here, so the protocol is a few lines: greeting,
//!   EHLO, XCLIENT, MAIL, RCPT, DATA, QUIT.
//!
//! Replies that refuse our own session setup (greeting, EHLO, XCLIENT) are errors
//! ([`SmtpError::Setup`]): they mean Postfix is misconfigured or busy, not that the message is
//! bad, and must not make the other relay bounce it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

/// Longest reply line we read (RFC 5321 allows 512 bytes; Postfix's are shorter).
const MAX_LINE: u64 = 4096;
/// Most lines of one reply (an EHLO reply has about a dozen).
const MAX_LINES: usize = 100;
/// How long QUIT may take; its reply changes nothing.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for the server.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For the TCP connection.
    pub connect: Duration,
    /// For each reply (and for sending each command).
    pub reply: Duration,
    /// For sending the message and the reply after its final dot.
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            reply: Duration::from_secs(30),
            data_end: Duration::from_secs(120),
        }
    }
}

/// One message to hand over.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The envelope sender; empty for a bounce (`MAIL FROM:<>`).
    pub from: &'a str,
    /// The envelope recipients, at least one.
    pub recipients: &'a [String],
    /// The address of whoever sent it to us, passed on with `XCLIENT`.
    pub client_addr: Option<IpAddr>,
    /// The raw RFC 5322 message (LF or CRLF line ends, not dot-stuffed).
    pub message: &'a [u8],
}

/// An SMTP reply: its code and the text of each line (without the code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// 2xx.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// Every line as `CODE TEXT`, joined with `\n`.
    pub fn text(&self) -> String {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                if l.is_empty() {
                    self.code.to_string()
                } else {
                    format!("{} {l}", self.code)
                }
            })
            .collect();
        if lines.is_empty() {
            self.code.to_string()
        } else {
            lines.join("\n")
        }
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text().replace('\n', " / "))
    }
}

/// Why a message could not be handed over (no reply decided about it).
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SMTP connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("no SMTP reply to {0} in time")]
    Timeout(&'static str),
    #[error("the SMTP server closed the connection (waiting for the reply to {0})")]
    Closed(&'static str),
    #[error("malformed SMTP reply to {stage}: {line:?}")]
    Malformed { stage: &'static str, line: String },
    #[error("SMTP server refused {stage}: {reply}")]
    Setup { stage: &'static str, reply: Reply },
}

/// Connects to one SMTP server for each message.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    helo: String,
    timeouts: Timeouts,
}

impl Client {
    /// A client of the server at `addr` that introduces itself as `helo` (a domain; an IP
    /// address is sent as an address literal, `[1.2.3.4]`).
    pub fn new(addr: SocketAddr, helo: &str, timeouts: Timeouts) -> Client {
        let helo = match helo.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("[{ip}]"),
            Ok(IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
            Err(_) => helo.to_string(),
        };
        Client {
            addr,
            helo,
            timeouts,
        }
    }

    /// Hands `submission` over. `Ok` is the reply that decided: the reply after the final dot
    /// when all went through, else the first refusal of MAIL, a RCPT or DATA (the session is
    /// then reset and closed).
    pub async fn send(&self, submission: &Submission<'_>) -> Result<Reply, SmtpError> {
        let stream = tokio::time::timeout(self.timeouts.connect, TcpStream::connect(self.addr))
            .await
            .map_err(|_| SmtpError::Timeout("connect"))?
            .map_err(|source| SmtpError::Connect {
                addr: self.addr,
                source,
            })?;
        let mut session = Session {
            stream: BufStream::new(stream),
            timeout: self.timeouts.reply,
        };
        let result = self.transaction(&mut session, submission).await;
        match &result {
            // A refused MAIL, RCPT or DATA: drop the transaction, then leave.
            Ok(reply) if !reply.is_positive() => session.quit(true).await,
            Ok(_) | Err(SmtpError::Setup { .. }) => session.quit(false).await,
            // The connection is broken or out of step: nothing more to say.
            Err(_) => {}
        }
        result
    }

    async fn transaction(&self, s: &mut Session, sub: &Submission<'_>) -> Result<Reply, SmtpError> {
        setup(s.reply("greeting").await?, "greeting")?;
        let ehlo = format!("EHLO {}", self.helo);
        let mut ext = Extensions::of(&setup(s.command(&ehlo, "EHLO").await?, "EHLO")?);
        if let (Some(ip), true) = (sub.client_addr, ext.xclient) {
            let addr = match ip.to_canonical() {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("IPV6:{v6}"),
            };
            let xclient = format!("XCLIENT ADDR={addr} NAME=[UNAVAILABLE]");
            setup(s.command(&xclient, "XCLIENT").await?, "XCLIENT")?;
            ext = Extensions::of(&setup(s.command(&ehlo, "EHLO").await?, "EHLO")?);
        }

        let mut mail = format!("MAIL FROM:<{}>", sub.from);
        if ext.size {
            mail.push_str(&format!(" SIZE={}", sub.message.len()));
        }
        let non_ascii = !sub.from.is_ascii() || sub.recipients.iter().any(|r| !r.is_ascii());
        if non_ascii && ext.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        let reply = s.command(&mail, "MAIL FROM").await?;
        if !reply.is_positive() {
            return Ok(reply);
        }
        for rcpt in sub.recipients {
            let reply = s.command(&format!("RCPT TO:<{rcpt}>"), "RCPT TO").await?;
            if !reply.is_positive() {
                return Ok(reply);
            }
        }
        let reply = s.command("DATA", "DATA").await?;
        match reply.code {
            354 => {}
            _ if reply.is_positive() => {
                return Err(SmtpError::Malformed {
                    stage: "DATA",
                    line: reply.text(),
                });
            }
            _ => return Ok(reply),
        }
        let data = encode_data(sub.message);
        tokio::time::timeout(self.timeouts.data_end, async {
            s.stream.write_all(&data).await?;
            s.stream.flush().await
        })
        .await
        .map_err(|_| SmtpError::Timeout("the message"))??;
        s.reply_within("the message", self.timeouts.data_end).await
    }
}

/// `reply` when positive, else an error naming `stage`.
fn setup(reply: Reply, stage: &'static str) -> Result<Reply, SmtpError> {
    if reply.is_positive() {
        Ok(reply)
    } else {
        Err(SmtpError::Setup { stage, reply })
    }
}

/// What the server offers, from its EHLO reply.
#[derive(Debug, Default)]
struct Extensions {
    xclient: bool,
    smtputf8: bool,
    size: bool,
}

impl Extensions {
    fn of(ehlo: &Reply) -> Extensions {
        let mut ext = Extensions::default();
        for line in ehlo.lines.iter().skip(1) {
            let keyword = line.split_whitespace().next().unwrap_or("");
            match keyword.to_ascii_uppercase().as_str() {
                "XCLIENT" => ext.xclient = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "SIZE" => ext.size = true,
                _ => {}
            }
        }
        ext
    }
}

struct Session {
    stream: BufStream<TcpStream>,
    timeout: Duration,
}

impl Session {
    /// Sends `line` and reads the reply.
    async fn command(&mut self, line: &str, stage: &'static str) -> Result<Reply, SmtpError> {
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(line.as_bytes()).await?;
            self.stream.write_all(b"\r\n").await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| SmtpError::Timeout(stage))??;
        self.reply(stage).await
    }

    async fn reply(&mut self, stage: &'static str) -> Result<Reply, SmtpError> {
        self.reply_within(stage, self.timeout).await
    }

    async fn reply_within(
        &mut self,
        stage: &'static str,
        timeout: Duration,
    ) -> Result<Reply, SmtpError> {
        tokio::time::timeout(timeout, read_reply(&mut self.stream, stage))
            .await
            .map_err(|_| SmtpError::Timeout(stage))?
    }

    /// Ends the session, after `RSET` when a transaction may be open; best effort.
    async fn quit(&mut self, reset: bool) {
        let _ = tokio::time::timeout(QUIT_TIMEOUT, async {
            if reset {
                self.command("RSET", "RSET").await?;
            }
            self.command("QUIT", "QUIT").await
        })
        .await;
    }
}

/// Reads one (possibly multi-line) reply.
async fn read_reply(
    stream: &mut BufStream<TcpStream>,
    stage: &'static str,
) -> Result<Reply, SmtpError> {
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let mut buf = Vec::new();
        let n = (&mut *stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await?;
        if n == 0 {
            return Err(SmtpError::Closed(stage));
        }
        let (line_code, last, text) = parse_line(&buf).ok_or_else(|| SmtpError::Malformed {
            stage,
            line: String::from_utf8_lossy(&buf).into_owned(),
        })?;
        if *code.get_or_insert(line_code) != line_code || lines.len() >= MAX_LINES {
            return Err(SmtpError::Malformed {
                stage,
                line: String::from_utf8_lossy(&buf).into_owned(),
            });
        }
        lines.push(text);
        if last {
            return Ok(Reply {
                code: line_code,
                lines,
            });
        }
    }
}

/// `(code, is the last line, text)` of a reply line such as `250-SIZE 1000\r\n`.
fn parse_line(raw: &[u8]) -> Option<(u16, bool, String)> {
    let line = raw.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (digits, rest) = line.split_at_checked(3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (last, text) = match rest.split_first() {
        None => (true, &[][..]),
        Some((b' ', text)) => (true, text),
        Some((b'-', text)) => (false, text),
        Some(_) => return None,
    };
    Some((code, last, String::from_utf8_lossy(text).into_owned()))
}

/// The message as sent after DATA: bare LF made CRLF, lines starting with a dot get another,
/// a CRLF at the end if missing, then the final `.` line.
pub fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 5);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        prev = b;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_crlf_and_dot_stuffed() {
        assert_eq!(encode_data(b""), b".\r\n");
        assert_eq!(encode_data(b"a\nb\n"), b"a\r\nb\r\n.\r\n");
        assert_eq!(encode_data(b"a\r\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(
            encode_data(b".hidden\n..two\r\nmid.dle\n.\n"),
            b"..hidden\r\n...two\r\nmid.dle\r\n..\r\n.\r\n"
        );
        assert_eq!(encode_data(b"x\r"), b"x\r\n.\r\n");
        assert_eq!(encode_data(b"\n\n"), b"\r\n\r\n.\r\n");
    }

    #[test]
    fn reply_lines() {
        assert_eq!(
            parse_line(b"250-SIZE 10\r\n"),
            Some((250, false, "SIZE 10".into()))
        );
        assert_eq!(parse_line(b"250 Ok\n"), Some((250, true, "Ok".into())));
        assert_eq!(parse_line(b"354\r\n"), Some((354, true, String::new())));
        assert_eq!(parse_line(b"25 x\r\n"), None);
        assert_eq!(parse_line(b"250xOk\r\n"), None);
        assert_eq!(parse_line(b"abc Ok\r\n"), None);
        assert_eq!(parse_line(b"250 no newline"), None);
        assert_eq!(parse_line(b"650 x\r\n"), None);
    }

    #[test]
    fn reply_text_joins_lines() {
        let r = Reply {
            code: 550,
            lines: vec!["5.7.1 first".into(), "5.7.1 second".into()],
        };
        assert_eq!(r.text(), "550 5.7.1 first\n550 5.7.1 second");
        assert!(r.is_permanent() && !r.is_transient() && !r.is_positive());
        let bare = Reply {
            code: 250,
            lines: vec![String::new()],
        };
        assert_eq!(bare.text(), "250");
    }

    #[test]
    fn extensions_from_ehlo() {
        let ehlo = Reply {
            code: 250,
            lines: vec![
                "relay.example".into(),
                "SIZE 31457280".into(),
                "xclient NAME ADDR".into(),
                "SMTPUTF8".into(),
            ],
        };
        let ext = Extensions::of(&ehlo);
        assert!(ext.size && ext.xclient && ext.smtputf8);
        let none = Extensions::of(&Reply {
            code: 250,
            lines: vec!["XCLIENT is the host name".into()],
        });
        assert!(!none.xclient);
    }

    #[test]
    fn helo_of_ip_relays_is_an_address_literal() {
        let addr: SocketAddr = "127.0.0.1:25".parse().unwrap();
        assert_eq!(
            Client::new(addr, "203.0.113.5", Timeouts::default()).helo,
            "[203.0.113.5]"
        );
        assert_eq!(
            Client::new(addr, "chat.example.org", Timeouts::default()).helo,
            "chat.example.org"
        );
    }
}
