//! `chatmail-doveauth`: Dovecot's passdb/userdb and last-login dict for a chatmail relay.
//!
//! Accounts are created on their first login. One socket serves Dovecot's `auth` dict
//! (passdb, userdb, iteration) and its `last_login_dict`.

use std::path::PathBuf;
use std::sync::Arc;

use chatmail_common::config::{Config, DEFAULT_CONFIG_PATH};
use chatmail_common::daemon::{self, ListenAddr};
use chatmail_common::dict;
use chatmail_doveauth::{accounts, handler};
use clap::Parser;

/// Dovecot passdb/userdb and last-login dict service of a chatmail relay.
///
/// Creates an account on its first login (if the login passes the relay's rules), answers
/// passdb and userdb lookups and `doveadm user '*'` iteration, and records the day of the last
/// login as the mtime of the account's password file.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// chatmail.ini to read
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Unix socket to listen on (ignored when systemd passes a socket)
    #[arg(long, default_value = "/run/doveauth/doveauth.socket")]
    socket: PathBuf,
}

fn main() {
    let args = Args::parse();
    daemon::init_logging();
    let config = Config::load(&args.config).unwrap_or_else(|e| daemon::exit_with(e));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| daemon::exit_with(format!("cannot start runtime: {e}")));
    if let Err(e) = runtime.block_on(run(args, config)) {
        daemon::exit_with(e);
    }
}

async fn run(args: Args, config: Config) -> std::io::Result<()> {
    let addr = ListenAddr::Unix(args.socket.clone());
    let (listener, _socket_file) = daemon::listen_with_cleanup("doveauth", &addr, 0o660)
        .and_then(|(l, guard)| Ok((l.into_unix()?, guard)))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let accounts = accounts::Accounts::new(Arc::new(config))
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start hashing threads: {e}")))?;
    let handler = handler::AuthDict { accounts };
    tracing::info!(socket = %args.socket.display(), "serving Dovecot auth and last-login dicts");
    let shutdown = daemon::shutdown_signal();
    daemon::notify_ready();
    dict::serve(listener, Arc::new(handler), shutdown).await?;
    daemon::notify_stopping();
    Ok(())
}
