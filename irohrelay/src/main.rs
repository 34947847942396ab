//! chatmail-iroh-relay: the iroh relay of a chatmail relay, behind nginx.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatmail_common::daemon::{self, exit_with};
use clap::{Parser, Subcommand};
use iroh_relay::server::Server;

mod check;

/// Where nginx proxies `/relay`, `/ping` and `/generate_204` to.
const DEFAULT_LISTEN: &str = "127.0.0.1:3340";

/// The iroh relay of a chatmail relay (realtime apps in Delta Chat chats), behind nginx.
///
/// Serves iroh's relay protocol (`/relay`, a WebSocket) and its probes (`/ping`,
/// `/generate_204`) over plain HTTP on a loopback address. nginx terminates TLS on port 443
/// and proxies those paths here, so that clients find it at `https://<mail_domain>`, the
/// `irohrelay` the relay announces over IMAP METADATA. Every endpoint may relay; no QUIC
/// address discovery, no metrics listener.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to serve HTTP on (loopback: nginx proxies to it)
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Connects two iroh clients to the relay at URL and sends a datagram from one to the
    /// other through it; exits non-zero unless it arrives.
    Check {
        /// The relay, e.g. https://chat.example.org (its /relay is used)
        url: url::Url,
        /// Certificates (PEM) to trust instead of the Mozilla roots built in: a self-signed
        /// relay's own certificate, or a CA's
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Seconds to wait for it all
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

fn main() {
    let args = Args::parse();
    daemon::init_logging();
    // rustls needs one crypto provider: `ring`, as everywhere in the workspace.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        exit_with("cannot install the TLS crypto provider");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(format!("cannot start the runtime: {e}")));
    match args.command {
        None => runtime.block_on(serve(args.listen)),
        Some(Command::Check { url, ca, timeout }) => {
            let limit = Duration::from_secs(timeout);
            let check = async { tokio::time::timeout(limit, check::run(url, ca.as_deref())).await };
            match runtime.block_on(check) {
                Ok(Ok(took)) => println!("relayed a datagram between two clients in {took:?}"),
                Ok(Err(e)) => exit_with(e),
                Err(_) => exit_with(format!("no datagram relayed within {timeout} s")),
            }
        }
    }
}

/// The relay service alone on `listen`: plain HTTP, every endpoint admitted, default limits,
/// no QUIC address discovery, no metrics listener.
async fn spawn(listen: SocketAddr) -> Result<Server, iroh_relay::server::SpawnError> {
    use iroh_relay::server::{RelayConfig, ServerConfig};

    let mut config = ServerConfig::default();
    config.relay = Some(RelayConfig::new(listen));
    config.metrics_addr = None;
    Server::spawn(config).await
}

async fn serve(listen: SocketAddr) {
    let mut server = spawn(listen)
        .await
        .unwrap_or_else(|e| exit_with(format!("cannot serve on {listen}: {e}")));
    tracing::info!(%listen, "chatmail-iroh-relay ready");
    daemon::notify_ready();
    tokio::select! {
        () = daemon::shutdown_signal() => {}
        done = server.join() => {
            exit_with(format!("the relay server stopped: {done:?}"));
        }
    }
    daemon::notify_stopping();
    if let Err(e) = server.shutdown().await {
        tracing::warn!(error = %e, "shutdown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_clients_relay_a_datagram_through_the_server() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let server = spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = server.http_addr().unwrap();
        let url = url::Url::parse(&format!("http://{addr}")).unwrap();
        let took = tokio::time::timeout(Duration::from_secs(10), check::run(url, None))
            .await
            .unwrap()
            .unwrap();
        assert!(took < Duration::from_secs(10));
        // nothing listens: one error, no hang
        drop(server);
        let url = url::Url::parse(&format!("http://{addr}")).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), check::run(url, None))
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
