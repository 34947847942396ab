//! The hyper glue: connections accepted under limits, routing, response helpers and one log
//! line per request.
//!
//! nginx terminates TLS and proxies to us over a unix socket with HTTP/1.1, setting
//! `X-Real-IP: $remote_addr`; that header, when it holds an IP address, is the client's
//! address (for logs and for `XCLIENT`).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chatmail_common::config::Config;
use chatmail_common::warn_limited;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{
    ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderMap, HeaderValue,
    X_CONTENT_TYPE_OPTIONS,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};

use crate::error::{BodyError, Error};
use crate::pages::{self, Invite};
use crate::smtp::{self, Timeouts};
use crate::{mxdeliv, new_account, qr};

/// Every response of ours.
pub type Response = hyper::Response<Full<Bytes>>;

/// What a client may take.
#[derive(Debug, Clone)]
pub struct Limits {
    /// To send a request's head (line and headers).
    pub header_read_timeout: Duration,
    /// Headers of one request; more get hyper's 431. `/mxdeliv` has one per recipient: room
    /// for its 1000 and the usual few.
    pub max_headers: usize,
    /// To send a whole request body.
    pub body_timeout: Duration,
    /// Connections at once; further ones are closed at once.
    pub max_connections: usize,
    /// How long open connections may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            max_headers: crate::mxdeliv::MAX_RECIPIENTS + 100,
            body_timeout: Duration::from_secs(60),
            max_connections: 256,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The most of a `/new` request body that is read (and ignored).
const NEW_BODY_LIMIT: usize = 1024;

/// What the handlers share.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub smtp: smtp::Client,
    pub limits: Limits,
    /// `info.html` and `privacy.html` depend on the configuration only.
    info_html: Bytes,
    privacy_html: Bytes,
}

impl App {
    /// The backend of the relay `config`, handing `/mxdeliv` messages to the SMTP server at
    /// `smtp`.
    pub fn new(config: Config, smtp: SocketAddr, limits: Limits, timeouts: Timeouts) -> App {
        App {
            smtp: smtp::Client::new(smtp, &config.mail_domain_bare, timeouts),
            info_html: pages::info(&config).into(),
            privacy_html: pages::privacy(&config).into(),
            config,
            limits,
        }
    }
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then lets open connections finish
/// their requests (for at most [`Limits::shutdown_grace`]).
pub async fn serve(listener: UnixListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let limits = app.limits.clone();
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    warn_limited!("cannot accept a connection", error = %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            warn_limited!(
                "connection limit reached, closing new connections",
                limit = limits.max_connections
            );
            drop(stream);
            continue;
        };
        let app = app.clone();
        let http = http.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(&app, request).await) }
            });
            let connection = http.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopped.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                // Timeouts, malformed requests, clients that went away: theirs, not ours.
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    let _ = stop.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open at shutdown, closing them");
    }
}

/// Answers one request and logs it: method, path (not the query), status, client address
/// (`/mxdeliv` at info level, the rest at debug).
async fn handle(app: &App, request: Request<Incoming>) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let client = client_addr(request.headers());
    let response = match route(app, request, client).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, %method, %path, "request failed");
            text(e.status(), "Internal server error")
        }
    };
    let client = client.map_or_else(|| "-".to_string(), |c| c.to_string());
    let status = response.status().as_u16();
    // Mail handed over is logged as Postfix logs it; who fetched a page or an account is not
    // kept (nginx writes no access log on a server either).
    if path == "/mxdeliv" {
        tracing::info!(%method, %path, status, %client, "request");
    } else {
        tracing::debug!(%method, %path, status, %client, "request");
    }
    response
}

/// `X-Real-IP` when it is an IP address.
pub fn client_addr(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-real-ip")?
        .to_str()
        .ok()?
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

const GET: &[Method] = &[Method::GET, Method::HEAD];
const NEW: &[Method] = &[Method::GET, Method::HEAD, Method::POST];
const POST: &[Method] = &[Method::POST];

async fn route(
    app: &App,
    request: Request<Incoming>,
    client: Option<IpAddr>,
) -> Result<Response, Error> {
    let method = request.method();
    let allowed = match request.uri().path() {
        "/" | "/index.html" | "/info.html" | "/privacy.html" => GET,
        "/new" => NEW,
        "/mxdeliv" => POST,
        _ => return Ok(text(StatusCode::NOT_FOUND, "Not found")),
    };
    if !allowed.contains(method) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
        let allow = allowed
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        response.headers_mut().insert(
            ALLOW,
            HeaderValue::from_str(&allow).map_err(hyper::http::Error::from)?,
        );
        return Ok(response);
    }
    match request.uri().path() {
        "/info.html" => Ok(html(app.info_html.clone(), "max-age=300")),
        "/privacy.html" => Ok(html(app.privacy_html.clone(), "max-age=300")),
        "/new" => {
            let method = method.clone();
            // Ignored, but read (a little of it), so that the connection can go on.
            let _ = read_body(request.into_body(), NEW_BODY_LIMIT, app.limits.body_timeout).await;
            new_account::handle(&app.config, &method).await
        }
        "/mxdeliv" => Ok(mxdeliv::handle(app, request, client).await),
        _ => index(app).await,
    }
}

/// The invite page.
async fn index(app: &App) -> Result<Response, Error> {
    let invite = if new_account::accepting(&app.config).await? {
        let link = new_account::invite_link(&app.config)?;
        let svg = qr::svg(&link)?;
        Invite::Open { link, svg }
    } else {
        Invite::Closed
    };
    Ok(html(pages::index(&app.config, &invite).into(), "no-store"))
}

/// Reads a request body of at most `limit` bytes within `timeout`.
pub async fn read_body(
    mut body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let expected = hyper::body::Body::size_hint(&body).lower();
        let mut out = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(limit));
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if data.len() > limit - out.len() {
                    return Err(BodyError::TooLarge { limit });
                }
                out.extend_from_slice(&data);
            }
        }
        Ok(out)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BodyError::Timeout(timeout))?
}

/// A response with `body` and the headers every response of ours has.
fn response(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A plain-text response (not cached).
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut r = response(status, "text/plain; charset=utf-8", body.into().into());
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response {
    response(status, "application/json", value.to_string().into())
}

/// An HTML page: only inline styles and `data:` images may load.
fn html(body: Bytes, cache_control: &'static str) -> Response {
    let mut r = response(StatusCode::OK, "text/html; charset=utf-8", body);
    let headers = r.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_address_from_x_real_ip() {
        let mut h = HeaderMap::new();
        assert_eq!(client_addr(&h), None);
        h.insert("x-real-ip", HeaderValue::from_static("203.0.113.7"));
        assert_eq!(client_addr(&h), "203.0.113.7".parse().ok());
        h.insert("x-real-ip", HeaderValue::from_static("::ffff:203.0.113.7"));
        assert_eq!(client_addr(&h), "203.0.113.7".parse().ok());
        h.insert("x-real-ip", HeaderValue::from_static("2001:db8::1"));
        assert_eq!(client_addr(&h), "2001:db8::1".parse().ok());
        h.insert("x-real-ip", HeaderValue::from_static("unix:"));
        assert_eq!(client_addr(&h), None);
    }

    #[test]
    fn html_headers() {
        let r = html(Bytes::from_static(b"<p>"), "no-store");
        let h = r.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            h[CONTENT_SECURITY_POLICY],
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        );
    }
}
