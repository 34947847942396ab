//! `check`: two iroh relay clients (the crate's own client, as iroh endpoints use it) connect
//! to a relay, and one sends the other a datagram through it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use iroh_base::SecretKey;
use iroh_relay::client::{Client, ClientBuilder};
use iroh_relay::protos::relay::{ClientToRelayMsg, RelayToClientMsg};
use iroh_relay::tls::CaTlsConfig;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("TLS configuration: {0}")]
    Tls(std::io::Error),
    #[error("cannot read certificates from {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot send through the relay: {0}")]
    Send(String),
    #[error("the relay closed the connection: {0}")]
    Closed(String),
}

/// Connects two clients to `url` and relays one datagram; how long it all took. The relay's
/// certificate is checked against `ca` (PEM), or else the Mozilla roots built in.
pub async fn run(url: url::Url, ca: Option<&Path>) -> Result<Duration, CheckError> {
    let started = Instant::now();
    let ca = match ca {
        None => CaTlsConfig::embedded(),
        Some(path) => {
            let certs = read_certs(path)?;
            CaTlsConfig::custom_server_cert_verifier(Arc::new(move |provider| {
                Ok(Arc::new(Pinned::new(certs.clone(), provider)?) as Arc<dyn ServerCertVerifier>)
            }))
        }
    };
    let tls = ca
        .client_config(iroh_relay::tls::default_provider())
        .map_err(CheckError::Tls)?;
    let (key_a, key_b) = (SecretKey::generate(), SecretKey::generate());
    let (id_a, id_b) = (key_a.public(), key_b.public());
    let mut a = connect(&url, key_a, &tls).await?;
    let mut b = connect(&url, key_b, &tls).await?;
    let payload = format!("chatmail-iroh-relay check {}", started.elapsed().as_nanos());
    // The relay drops datagrams for a client it does not know yet: resend until one arrives.
    loop {
        a.send(ClientToRelayMsg::Datagrams {
            dst_endpoint_id: id_b,
            datagrams: payload.as_bytes().into(),
        })
        .await
        .map_err(|e| CheckError::Send(e.to_string()))?;
        if receive(&mut b, payload.as_bytes()).await? == Some(id_a) {
            return Ok(started.elapsed());
        }
    }
}

async fn connect(
    url: &url::Url,
    key: SecretKey,
    tls: &rustls::ClientConfig,
) -> Result<Client, CheckError> {
    ClientBuilder::new(url.clone(), key, iroh_dns::dns::DnsResolver::new())
        .tls_client_config(tls.clone())
        .connect()
        .await
        .map_err(|e| CheckError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })
}

/// The sender of the datagram `payload` if it arrives within a second; other messages are
/// passed over.
async fn receive(
    client: &mut Client,
    payload: &[u8],
) -> Result<Option<iroh_base::EndpointId>, CheckError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let next = match tokio::time::timeout_at(deadline, client.next()).await {
            Err(_) => return Ok(None),
            Ok(None) => return Err(CheckError::Closed("end of stream".into())),
            Ok(Some(Err(e))) => return Err(CheckError::Closed(e.to_string())),
            Ok(Some(Ok(msg))) => msg,
        };
        if let RelayToClientMsg::Datagrams {
            remote_endpoint_id,
            datagrams,
        } = next
            && datagrams.contents.as_ref() == payload
        {
            return Ok(Some(remote_endpoint_id));
        }
    }
}

/// The certificates of a PEM file (a relay's self-signed certificate, or a CA's).
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CheckError> {
    let bad = |reason: String| CheckError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate".into()));
    }
    Ok(certs)
}

/// Trusts a server whose certificate is one of `certs` exactly (a self-signed relay's own,
/// which may say CA:TRUE and so is no end-entity certificate to WebPKI), else one that chains
/// up to them as roots. The handshake's signature is checked either way.
#[derive(Debug)]
struct Pinned {
    certs: Vec<CertificateDer<'static>>,
    roots: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl Pinned {
    fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> std::io::Result<Pinned> {
        let mut store = rustls::RootCertStore::empty();
        store.add_parsable_certificates(certs.clone());
        let roots = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Pinned {
            certs,
            roots,
            provider,
        })
    }
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
            return Ok(ServerCertVerified::assertion());
        }
        self.roots
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
