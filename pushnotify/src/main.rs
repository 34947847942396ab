//! IMAP METADATA dict and push notifier of a chatmail relay.

use clap::Parser;

/// IMAP METADATA dict and push notifier of a chatmail relay (not implemented yet).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// chatmail.ini to read
    #[arg(long, default_value = chatmail_common::config::DEFAULT_CONFIG_PATH)]
    config: std::path::PathBuf,
}

fn main() {
    let _args = Args::parse();
    chatmail_common::daemon::exit_with("not implemented yet");
}
