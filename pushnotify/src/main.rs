//! chatmail-pushnotify: the IMAP METADATA dict service of a chatmail relay (device tokens,
//! server info) and its push notifier.

use std::path::PathBuf;
use std::sync::Arc;

use chatmail_common::config::{Config, DEFAULT_CONFIG_PATH};
use chatmail_common::daemon::{self, ListenAddr, exit_with};
use chatmail_pushnotify::clock::SystemClock;
use chatmail_pushnotify::gateway::Gateway;
use chatmail_pushnotify::service::{self, Settings};
use clap::Parser;

/// Where Dovecot's `mail_attribute_dict = proxy:...:metadata` connects by default.
const DEFAULT_SOCKET: &str = "/run/chatmail-metadata/metadata.socket";

/// IMAP METADATA dict service and push notifier of a chatmail relay.
///
/// Stores device tokens set with SETMETADATA in each mailbox's metadata.json, answers
/// server-info lookups, and on every incoming message notifies the push gateway
/// (chatmail.ini `notification_url`) once per device token, with a persistent retry queue in
/// <mailboxes_dir>/pending_notifications/.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// chatmail.ini to read
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Unix socket to listen on (unless systemd passes one)
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() {
    let args = Args::parse();
    daemon::init_logging();
    let config = Config::load(&args.config).unwrap_or_else(|e| exit_with(e));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(format!("cannot start the runtime: {e}")));
    runtime.block_on(run(args, config));
}

async fn run(args: Args, config: Config) {
    let gateway = Gateway::from_env(&config.notification_url).unwrap_or_else(|e| exit_with(e));
    let service = service::start(
        Settings::from_config(&config),
        gateway,
        Arc::new(SystemClock),
    )
    .await
    .unwrap_or_else(|e| exit_with(e));
    let addr = ListenAddr::Unix(args.socket.clone());
    // `_socket_file` removes the socket file on exit (unless systemd passed the socket)
    let (listener, _socket_file) = daemon::listen_with_cleanup("metadata", &addr, 0o660)
        .and_then(|(l, guard)| Ok((l.into_unix()?, guard)))
        .unwrap_or_else(|e| exit_with(format!("cannot listen on {addr}: {e}")));
    tracing::info!(socket = %args.socket.display(), gateway = %config.notification_url, "chatmail-pushnotify ready");
    let shutdown = daemon::shutdown_signal();
    daemon::notify_ready();
    if let Err(e) = chatmail_common::dict::serve(listener, service.handler.clone(), shutdown).await
    {
        tracing::error!(error = %e, "dict server failed");
    }
    daemon::notify_stopping();
    drop(service);
}
