//! chatmail-web: the HTTP backend of a chatmail relay behind nginx.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chatmail_common::config::{Config, DEFAULT_CONFIG_PATH};
use chatmail_common::daemon::{self, ListenAddr, exit_with};
use chatmail_web::smtp::Timeouts;
use chatmail_web::{App, Limits};
use clap::Parser;

/// Where nginx's `proxy_pass http://unix:...` connects by default.
const DEFAULT_SOCKET: &str = "/run/chatmail-web/web.sock";
/// The Postfix smtpd on loopback that applies the port-25 policy to `/mxdeliv` messages.
const DEFAULT_SMTP: &str = "127.0.0.1:10025";

/// HTTP backend of a chatmail relay, behind nginx.
///
/// Serves the invite page (`/`, with the invite link as a QR code), `/info.html` and
/// `/privacy.html` from chatmail.ini, `/new` (credentials for a new account, as Delta Chat's
/// `dcaccount:` links fetch them; none while `nocreate_file` exists) and `/mxdeliv`
/// (relay-to-relay delivery over HTTPS: the message is handed to Postfix by SMTP, with the
/// sending relay's address from `X-Real-IP` passed on by XCLIENT). nginx terminates TLS and
/// proxies to the unix socket with HTTP/1.1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// chatmail.ini to read
    #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Unix socket to listen on (unless systemd passes one); mode 0660
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// SMTP server (IP:PORT) that /mxdeliv hands messages to
    #[arg(long, default_value = DEFAULT_SMTP)]
    smtp: SocketAddr,
}

fn main() {
    let args = Args::parse();
    daemon::init_logging();
    let config = Config::load(&args.config).unwrap_or_else(|e| exit_with(e));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| exit_with(format!("cannot start the runtime: {e}")));
    runtime.block_on(run(args, config));
}

async fn run(args: Args, config: Config) {
    let addr = ListenAddr::Unix(args.socket.clone());
    // `_socket_file` removes the socket file on exit (unless systemd passed the socket)
    let (listener, _socket_file) = daemon::listen_with_cleanup("web", &addr, 0o660)
        .and_then(|(l, guard)| Ok((l.into_unix()?, guard)))
        .unwrap_or_else(|e| exit_with(format!("cannot listen on {addr}: {e}")));
    let app = Arc::new(App::new(
        config,
        args.smtp,
        Limits::default(),
        Timeouts::default(),
    ));
    tracing::info!(socket = %args.socket.display(), smtp = %args.smtp, domain = %app.config.mail_domain, "chatmail-web ready");
    let shutdown = daemon::shutdown_signal();
    daemon::notify_ready();
    chatmail_web::serve(listener, app, shutdown).await;
    daemon::notify_stopping();
}
