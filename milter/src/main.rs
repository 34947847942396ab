//! `chatmail-milter`: the Postfix milter of a chatmail relay.

use std::path::PathBuf;
use std::sync::Arc;

use chatmail_common::config::{Config, DEFAULT_CONFIG_PATH};
use chatmail_common::daemon::{self, ListenAddr, exit_with};
use chatmail_milter::listener::{self, ServeConfig};
use chatmail_milter::policy::Direction;
use chatmail_milter::shared::Shared;
use clap::Parser;

/// Postfix milter of a chatmail relay: only OpenPGP-encrypted mail in and out.
///
/// Three listeners: the outbound one for Postfix's submission/smtps services (authenticated
/// users sending), the inbound one for port 25 (other servers delivering), the internal one
/// for mail Postfix makes itself (non_smtpd_milters: bounces, which get DKIM-signed). ADDR
/// is `unix:/path` or `inet:HOST:PORT`. Under systemd socket activation the sockets named
/// `outbound`, `inbound` and `internal` are used instead.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// chatmail.ini to read
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Listener for submission/smtps [default: chatmail.ini milter_outbound]
    #[arg(long, value_name = "ADDR")]
    outbound: Option<ListenAddr>,
    /// Listener for port 25 [default: chatmail.ini milter_inbound]
    #[arg(long, value_name = "ADDR")]
    inbound: Option<ListenAddr>,
    /// Listener for Postfix's own mail [default: chatmail.ini milter_internal]
    #[arg(long, value_name = "ADDR")]
    internal: Option<ListenAddr>,
    /// Megabytes that all messages in progress together may occupy; beyond it messages get
    /// a temporary failure [default: 512, at least two messages of max_message_size]
    #[arg(long, value_name = "MB")]
    max_buffered_mb: Option<usize>,
}

fn parse_addr(key: &str, value: &str, config: &Config) -> ListenAddr {
    value.parse().unwrap_or_else(|e| {
        exit_with(format!(
            "{}: invalid {key} {value:?}: {e}",
            config.path.display()
        ))
    })
}

fn main() {
    let args = Args::parse();
    daemon::init_logging();
    let config = Config::load(&args.config).unwrap_or_else(|e| exit_with(e));
    let outbound = args
        .outbound
        .unwrap_or_else(|| parse_addr("milter_outbound", &config.milter_outbound, &config));
    let inbound = args
        .inbound
        .unwrap_or_else(|| parse_addr("milter_inbound", &config.milter_inbound, &config));
    let internal = args
        .internal
        .unwrap_or_else(|| parse_addr("milter_internal", &config.milter_internal, &config));
    let listeners = [
        (Direction::Outbound, outbound),
        (Direction::Inbound, inbound),
        (Direction::Internal, internal),
    ];
    for (i, (a, addr)) in listeners.iter().enumerate() {
        if let Some((b, _)) = listeners[i + 1..].iter().find(|(_, other)| other == addr) {
            exit_with(format!(
                "the {} and {} listeners are the same: {addr}",
                a.name(),
                b.name()
            ));
        }
    }
    // One thread for the protocol: each milter command is a short step, and a single event
    // loop costs fewer context switches than a work-stealing pool (measured on the relay:
    // about 25 % less CPU per message). Checks and signatures of messages over 64 kB go to
    // the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(format!("cannot start the async runtime: {e}")));
    runtime.block_on(run(config, listeners, args.max_buffered_mb));
}

async fn run(
    config: Config,
    listeners: [(Direction, ListenAddr); 3],
    max_buffered_mb: Option<usize>,
) {
    // The DKIM key is loaded before the sockets are opened: a bad key is a bad configuration.
    let shared =
        Arc::new(Shared::from_config(&config, max_buffered_mb).unwrap_or_else(|e| exit_with(e)));
    match &shared.dkim {
        None => tracing::info!(
            mail_domain = %config.mail_domain,
            "DKIM is off: this relay is IP-only (no signing, no verification)"
        ),
        Some(d) => tracing::info!(
            key = %config.dkim_key.display(),
            selector = %config.dkim_selector,
            domain = d.signer.domain(),
            dns_resolver = %config
                .dns_resolver
                .map_or("system".to_string(), |a| a.to_string()),
            "DKIM: signing outbound and internal mail, verifying inbound mail"
        ),
    }
    let wanted: Vec<(Direction, &ListenAddr)> = listeners.iter().map(|(d, a)| (*d, a)).collect();
    let bound = listener::open(&wanted).unwrap_or_else(|e| exit_with(e));
    tokio::spawn(shared.clone().forget_idle_senders());
    let serve_config = ServeConfig::for_max_smtp_connections(config.max_smtp_connections);
    tracing::info!(
        config = %config.path.display(),
        mail_domain = %config.mail_domain,
        max_user_send_per_minute = config.max_user_send_per_minute,
        max_user_send_burst_size = config.max_user_send_burst_size,
        max_message_size = config.max_message_size,
        max_buffered_mb = shared.budget.limit() / (1024 * 1024),
        max_connections = serve_config.max_connections,
        "chatmail-milter starting"
    );
    // Signal handlers exist before READY=1: a SIGTERM right after it must stop us cleanly.
    let shutdown = daemon::shutdown_signal();
    daemon::notify_ready();
    let result = listener::serve(shared, bound, serve_config, shutdown).await;
    daemon::notify_stopping();
    if let Err(e) = result {
        exit_with(format!("milter stopped: {e}"));
    }
}
