//! `chatmail-relay`: the operator's command. Errors end in one line naming what is wrong.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chatmail_relay::cli::Cli::parse();
    match chatmail_relay::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chatmail-relay: error: {e}");
            ExitCode::FAILURE
        }
    }
}
