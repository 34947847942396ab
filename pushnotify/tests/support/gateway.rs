//! A push gateway stand-in for tests and benchmarks: an HTTP server on 127.0.0.1 that records
//! every POST body and answers as a test script says. Plain HTTP/1.1, or TLS with a
//! self-signed certificate offering HTTP/2 and HTTP/1.1 via ALPN.
#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// How the stand-in answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Wait, then answer with the status.
    Delayed(Duration, u16),
    /// Never answer (the client times out).
    Hang,
}

/// Decides the reply from the token and how many times it was seen before.
pub type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// One request as seen by the stand-in.
#[derive(Debug, Clone)]
pub struct Hit {
    pub body: String,
    pub version: hyper::Version,
    pub at: std::time::Instant,
}

pub struct StandIn {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    answered: Arc<AtomicUsize>,
    /// Requests being handled now, and the most ever at once.
    open: Arc<(AtomicUsize, AtomicUsize)>,
    /// PEM of the self-signed certificate (TLS only).
    pub cert_pem: Option<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn bodies(&self) -> Vec<String> {
        self.hits().into_iter().map(|h| h.body).collect()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// Requests that got a response.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// The most requests handled at the same time.
    pub fn max_concurrent(&self) -> usize {
        self.open.1.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the hits (up to 30 s, then panics).
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Hit]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if pred(&self.hits.lock().unwrap()) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; hits: {:?}",
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Plain HTTP/1.1.
    pub async fn http(script: Script) -> StandIn {
        Self::start(script, None).await
    }

    /// TLS with a fresh self-signed certificate for 127.0.0.1, HTTP/2 or HTTP/1.1 by ALPN.
    pub async fn https(script: Script) -> StandIn {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_string(),
            "localhost".to_string(),
        ])
        .unwrap();
        let cert_pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mut s = Self::start(script, Some(acceptor)).await;
        s.cert_pem = Some(cert_pem);
        s
    }

    async fn start(script: Script, tls: Option<tokio_rustls::TlsAcceptor>) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let answered = Arc::new(AtomicUsize::new(0));
        let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let open: Arc<(AtomicUsize, AtomicUsize)> = Arc::default();
        let (h, a, o) = (hits.clone(), answered.clone(), open.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (hits, answered, seen, script, tls, open) = (
                    h.clone(),
                    a.clone(),
                    seen.clone(),
                    script.clone(),
                    tls.clone(),
                    o.clone(),
                );
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (hits, answered, seen, script, open) = (
                            hits.clone(),
                            answered.clone(),
                            seen.clone(),
                            script.clone(),
                            open.clone(),
                        );
                        async move {
                            let now_open = open.0.fetch_add(1, Ordering::SeqCst) + 1;
                            open.1.fetch_max(now_open, Ordering::SeqCst);
                            // counts down even when the client gives up and the future is dropped
                            struct Close(Arc<(AtomicUsize, AtomicUsize)>);
                            impl Drop for Close {
                                fn drop(&mut self) {
                                    self.0.0.fetch_sub(1, Ordering::SeqCst);
                                }
                            }
                            let _close = Close(open.clone());
                            let version = req.version();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let body = String::from_utf8_lossy(&body).into_owned();
                            let nth = {
                                let mut seen = seen.lock().unwrap();
                                let n = seen.entry(body.clone()).or_insert(0);
                                *n += 1;
                                *n - 1
                            };
                            hits.lock().unwrap().push(Hit {
                                body: body.clone(),
                                version,
                                at: std::time::Instant::now(),
                            });
                            let status = match script(&body, nth) {
                                Reply::Status(s) => s,
                                Reply::Delayed(d, s) => {
                                    tokio::time::sleep(d).await;
                                    s
                                }
                                Reply::Hang => {
                                    tokio::time::sleep(Duration::from_secs(3600)).await;
                                    500
                                }
                            };
                            answered.fetch_add(1, Ordering::SeqCst);
                            let mut resp = Response::new(Full::new(Bytes::from_static(b"")));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder
                                .http1_only()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        StandIn {
            url: format!("{scheme}://127.0.0.1:{port}/notify"),
            hits,
            answered,
            open,
            cert_pem: None,
            task,
        }
    }
}

/// A script that always answers `status`.
pub fn always(status: u16) -> Script {
    Arc::new(move |_, _| Reply::Status(status))
}
