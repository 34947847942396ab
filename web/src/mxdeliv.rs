//! `POST /mxdeliv`: relay-to-relay delivery over HTTPS, as filtermail's transport sends it.
//!
//! The envelope comes in headers (`X-Mail-From`, one `X-Mail-To` per recipient), the raw
//! message is the body. It is handed to a Postfix smtpd on loopback that applies the port-25
//! policy (milter included), with the sending relay's address passed on by `XCLIENT`, and the
//! deciding SMTP reply goes back verbatim: 2xx → 200, 5xx → 400 (552 → 413), 4xx or no
//! answer → 503.

use std::net::IpAddr;

use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, HeaderMap};
use hyper::{Request, StatusCode};

use crate::error::BodyError;
use crate::server::{App, Response, read_body, text};
use crate::smtp::Submission;

/// The envelope sender header.
pub const MAIL_FROM: &str = "x-mail-from";
/// The envelope recipient header, once per recipient.
pub const MAIL_TO: &str = "x-mail-to";
/// Most recipients of one request.
pub const MAX_RECIPIENTS: usize = 1000;
/// Longest address (RFC 5321's path limit less the angle brackets would be 254; 320 is the
/// traditional 64 + 1 + 255 that mail software accepts).
pub const MAX_ADDRESS: usize = 320;

/// The answer to a message over the size limit.
pub const TOO_LARGE: &str = "552 5.3.4 Message exceeds maximum size";
/// The answer when Postfix could not be asked.
pub const TEMPORARY_FAILURE: &str = "451 4.3.0 Temporary failure";

/// The envelope of a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Empty for a bounce.
    pub from: String,
    pub recipients: Vec<String>,
}

/// Why the envelope headers were refused (answered with 400, this as the body).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("501 5.5.4 Missing {0} header")]
    Missing(&'static str),
    #[error("501 5.5.4 Exactly one {0} header expected")]
    Repeated(&'static str),
    #[error("550 5.5.3 Too many recipients: more than {MAX_RECIPIENTS} X-Mail-To headers")]
    TooManyRecipients,
    #[error("501 5.5.4 Bad {header} header: {reason}")]
    Invalid {
        header: &'static str,
        reason: &'static str,
    },
}

/// Reads and checks the envelope headers.
pub fn envelope(headers: &HeaderMap) -> Result<Envelope, EnvelopeError> {
    let mut from = headers.get_all(MAIL_FROM).iter();
    let (Some(sender), None) = (from.next(), from.next()) else {
        return Err(if headers.contains_key(MAIL_FROM) {
            EnvelopeError::Repeated("X-Mail-From")
        } else {
            EnvelopeError::Missing("X-Mail-From")
        });
    };
    let mut from = address(sender.as_bytes(), "X-Mail-From", true)?;
    if from == "<>" {
        from.clear();
    }
    let mut recipients = Vec::new();
    for value in headers.get_all(MAIL_TO) {
        if recipients.len() == MAX_RECIPIENTS {
            return Err(EnvelopeError::TooManyRecipients);
        }
        recipients.push(address(value.as_bytes(), "X-Mail-To", false)?);
    }
    if recipients.is_empty() {
        return Err(EnvelopeError::Missing("X-Mail-To"));
    }
    Ok(Envelope { from, recipients })
}

/// One address: UTF-8 with no spaces, control characters, `<`, `>` or `,`, at most
/// [`MAX_ADDRESS`] bytes. `<>` passes as the null sender when `empty_ok`.
fn address(raw: &[u8], header: &'static str, empty_ok: bool) -> Result<String, EnvelopeError> {
    let invalid = |reason| EnvelopeError::Invalid { header, reason };
    if raw.len() > MAX_ADDRESS {
        return Err(invalid("longer than 320 bytes"));
    }
    let value = std::str::from_utf8(raw).map_err(|_| invalid("not UTF-8"))?;
    if empty_ok && (value.is_empty() || value == "<>") {
        return Ok(value.to_string());
    }
    if value.is_empty() {
        return Err(invalid("empty"));
    }
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ','))
    {
        return Err(invalid(
            "not a single address (spaces, control characters, '<', '>' and ',' are not allowed)",
        ));
    }
    Ok(value.to_string())
}

/// Answers `POST /mxdeliv`.
pub async fn handle(app: &App, request: Request<Incoming>, client: Option<IpAddr>) -> Response {
    let envelope = match envelope(request.headers()) {
        Ok(e) => e,
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let limit = usize::try_from(app.config.max_message_size).unwrap_or(usize::MAX);
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > app.config.max_message_size) {
        return text(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE);
    }
    let message = match read_body(request.into_body(), limit, app.limits.body_timeout).await {
        Ok(m) => m,
        Err(BodyError::TooLarge { .. }) => return text(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE),
        Err(e @ BodyError::Timeout(_)) => {
            tracing::debug!(error = %e, "mxdeliv");
            return text(StatusCode::REQUEST_TIMEOUT, "Request body timed out");
        }
        Err(e @ BodyError::Read(_)) => {
            tracing::debug!(error = %e, "mxdeliv");
            return text(StatusCode::BAD_REQUEST, "Bad request body");
        }
    };
    let submission = Submission {
        from: &envelope.from,
        recipients: &envelope.recipients,
        client_addr: client,
        message: &message,
    };
    match app.smtp.send(&submission).await {
        Ok(reply) => {
            let status = if reply.is_positive() {
                StatusCode::OK
            } else if reply.code == 552 {
                StatusCode::PAYLOAD_TOO_LARGE
            } else if reply.is_permanent() {
                StatusCode::BAD_REQUEST
            } else {
                if !reply.is_transient() {
                    tracing::warn!(%reply, "mxdeliv: unexpected SMTP reply");
                    return text(StatusCode::SERVICE_UNAVAILABLE, TEMPORARY_FAILURE);
                }
                tracing::info!(%reply, "mxdeliv: delivery deferred by Postfix");
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, reply.text())
        }
        Err(e) => {
            tracing::warn!(error = %e, "mxdeliv: cannot hand the message to Postfix");
            text(StatusCode::SERVICE_UNAVAILABLE, TEMPORARY_FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        h
    }

    #[test]
    fn good_envelopes() {
        let e = envelope(&headers(&[
            ("X-Mail-From", b"a@example.org"),
            ("X-Mail-To", b"b@example.org"),
            ("x-mail-to", "jö@[203.0.113.5]".as_bytes()),
        ]))
        .unwrap();
        assert_eq!(e.from, "a@example.org");
        assert_eq!(e.recipients, ["b@example.org", "jö@[203.0.113.5]"]);
        for bounce in [&b""[..], b"<>"] {
            let e = envelope(&headers(&[("X-Mail-From", bounce), ("X-Mail-To", b"b@x")]));
            assert_eq!(e.unwrap().from, "");
        }
    }

    #[test]
    fn bad_envelopes() {
        use EnvelopeError::*;
        let to = ("X-Mail-To", &b"b@x"[..]);
        assert_eq!(envelope(&headers(&[to])), Err(Missing("X-Mail-From")));
        assert_eq!(
            envelope(&headers(&[
                ("X-Mail-From", b"a@x"),
                ("X-Mail-From", b"c@x"),
                to
            ])),
            Err(Repeated("X-Mail-From"))
        );
        assert_eq!(
            envelope(&headers(&[("X-Mail-From", b"a@x")])),
            Err(Missing("X-Mail-To"))
        );
        for bad in [
            &b"a b@x"[..],
            b"<a@x>",
            b"a@x,c@x",
            b"a\t@x",
            b"",
            b"\xff@x",
            "a\u{a0}@x".as_bytes(),
            "a\u{85}@x".as_bytes(),
        ] {
            let err = envelope(&headers(&[("X-Mail-From", b"a@x"), ("X-Mail-To", bad)]));
            assert!(
                matches!(
                    err,
                    Err(Invalid {
                        header: "X-Mail-To",
                        ..
                    })
                ),
                "{bad:?}: {err:?}"
            );
        }
        let long = format!("{}@x", "a".repeat(MAX_ADDRESS));
        let err = envelope(&headers(&[("X-Mail-From", long.as_bytes()), to])).unwrap_err();
        assert!(err.to_string().contains("X-Mail-From"), "{err}");
        let ok = format!("{}@x", "a".repeat(MAX_ADDRESS - 2));
        assert!(envelope(&headers(&[("X-Mail-From", ok.as_bytes()), to])).is_ok());

        let mut many = headers(&[("X-Mail-From", b"a@x")]);
        for i in 0..=MAX_RECIPIENTS {
            many.append(
                "X-Mail-To",
                HeaderValue::from_str(&format!("r{i}@x")).unwrap(),
            );
        }
        assert_eq!(envelope(&many), Err(TooManyRecipients));
        many.remove("X-Mail-To");
        for i in 0..MAX_RECIPIENTS {
            many.append(
                "X-Mail-To",
                HeaderValue::from_str(&format!("r{i}@x")).unwrap(),
            );
        }
        assert_eq!(envelope(&many).unwrap().recipients.len(), MAX_RECIPIENTS);
    }
}
