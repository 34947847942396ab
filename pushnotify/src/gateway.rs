//! The push gateway client: one shared `reqwest` client (rustls, HTTP/2 when the gateway
//! offers it via ALPN, a pooled connection otherwise), one POST per notification with the
//! device token as the body.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole request (connect, send, response headers) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable naming a PEM file of extra trusted CA certificates. **For tests and
/// benchmarks only** (a self-signed gateway stand-in); production trusts the system store.
pub const TEST_EXTRA_CA_ENV: &str = "CHATMAIL_PUSHNOTIFY_TEST_EXTRA_CA";
/// Bytes of a response body read (and thrown away) so the connection can be reused.
const MAX_BODY: usize = 64 * 1024;

/// What the gateway said about one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 200: delivered.
    Delivered,
    /// 410: the token is no longer valid; forget it.
    Gone,
    /// Anything else, a timeout or a connection error: try again later.
    Failed(String),
}

/// The outcome of an HTTP status.
pub fn classify(status: u16) -> Outcome {
    match status {
        200 => Outcome::Delivered,
        410 => Outcome::Gone,
        other => Outcome::Failed(format!("HTTP status {other}")),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("notification_url {0:?}: {1}")]
    Url(String, String),
    #[error("{}: {reason}", path.display())]
    ExtraCa { path: PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The gateway and the one HTTP client used for it.
#[derive(Debug, Clone)]
pub struct Gateway {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Gateway {
    /// A client for `url` (http or https). `extra_ca` is a PEM bundle of additional trusted
    /// roots (tests only).
    pub fn new(
        url: &str,
        timeout: Duration,
        extra_ca: Option<&Path>,
    ) -> Result<Gateway, GatewayError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| GatewayError::Url(url.into(), e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(GatewayError::Url(
                url.into(),
                "must be http:// or https://".into(),
            ));
        }
        // reqwest's rustls is built without a crypto provider: use ring (once per process)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("chatmail-pushnotify/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path).map_err(|e| GatewayError::ExtraCa {
                path: path.into(),
                reason: e.to_string(),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| GatewayError::ExtraCa {
                    path: path.into(),
                    reason: e.to_string(),
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        Ok(Gateway {
            client,
            url: parsed,
        })
    }

    /// Like [`Gateway::new`], taking the extra CA file from [`TEST_EXTRA_CA_ENV`].
    pub fn from_env(url: &str) -> Result<Gateway, GatewayError> {
        let extra = std::env::var_os(TEST_EXTRA_CA_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        if let Some(path) = &extra {
            tracing::warn!(file = %path.display(), "trusting extra CA certificates from {TEST_EXTRA_CA_ENV} (test setting)");
        }
        Gateway::new(url, TIMEOUT, extra.as_deref())
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// POSTs `token` and says what happened.
    pub async fn notify(&self, token: &str) -> Outcome {
        let response = match self
            .client
            .post(self.url.clone())
            .body(token.to_owned())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(describe(&e)),
        };
        let outcome = classify(response.status().as_u16());
        drain(response).await;
        outcome
    }
}

/// Reads a little of the body so the connection goes back to the pool.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while read < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => break,
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // the error chain names the cause (refused, reset, certificate, ...)
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200), Outcome::Delivered);
        assert_eq!(classify(410), Outcome::Gone);
        for s in [201, 204, 301, 400, 404, 429, 500, 503] {
            assert!(matches!(classify(s), Outcome::Failed(_)), "{s}");
        }
    }

    #[test]
    fn urls() {
        assert!(Gateway::new("https://notifications.delta.chat/notify", TIMEOUT, None).is_ok());
        assert!(Gateway::new("http://127.0.0.1:9/notify", TIMEOUT, None).is_ok());
        assert!(matches!(
            Gateway::new("ftp://x/", TIMEOUT, None),
            Err(GatewayError::Url(..))
        ));
        assert!(matches!(
            Gateway::new("not a url", TIMEOUT, None),
            Err(GatewayError::Url(..))
        ));
        assert!(matches!(
            Gateway::new("https://x/", TIMEOUT, Some(Path::new("/nonexistent.pem"))),
            Err(GatewayError::ExtraCa { .. })
        ));
    }

    #[tokio::test]
    async fn connection_refused_is_a_failure() {
        // bind and drop to get a closed port
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let g = Gateway::new(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        assert!(matches!(g.notify("tok").await, Outcome::Failed(m) if m.contains("connect")));
    }
}
