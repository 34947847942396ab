//! Postfix milter of a chatmail relay: only OpenPGP-encrypted mail in and out.

use clap::Parser;

/// Postfix milter of a chatmail relay: only OpenPGP-encrypted mail in and out (not implemented yet).
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
