//! `chatmail-relay`: from a fresh Debian server to a running relay.
//!
//! - [`init`] writes `chatmail.ini`;
//! - [`setup`] turns the typed config into a plan of files ([`plan`]: Postfix, Dovecot, the
//!   mail name, coturn: [`turn`]), shows or applies it ([`apply`]: atomic, with backups, all or nothing), makes
//!   the DKIM key ([`dkim`]) and the certificate ([`tls`]; [`acme`] for a relay with a
//!   domain), and on a systemd host starts the units. The local test relay (`packaging/relay
//!   up`) renders through the same code (`setup --local`); it keeps only apt, users and
//!   processes in bash;
//! - [`cert`] shows the ACME certificate and renews it (the daily timer);
//! - [`dns`] prints the DNS records the domain needs and checks them;
//! - [`status`] shows the relay on one screen; [`invite`] makes login links.

pub mod acme;
pub mod apply;
pub mod cert;
pub mod cli;
pub mod command;
pub mod dkim;
pub mod dns;
pub mod domain;
pub mod environment;
pub mod error;
pub mod get;
pub mod init;
pub mod installed;
pub mod invite;
pub mod layout;
pub mod plan;
pub mod ports;
pub mod render;
pub mod setup;
pub mod status;
pub mod system;
pub mod systemd;
pub mod templates;
pub mod tls;
pub mod turn;
pub mod values;

use std::process::ExitCode;

pub use error::Error;

/// Runs one command line.
pub fn run(cli: cli::Cli) -> Result<ExitCode, Error> {
    match cli.command {
        cli::Command::Init(args) => {
            init::run(&cli.root, &cli.config, &args).map(|()| ExitCode::SUCCESS)
        }
        cli::Command::Setup(args) => setup::run(&cli.root, &cli.config, &args),
        cli::Command::Dns(args) => dns::run(&cli.root, &cli.config, &args),
        cli::Command::Status => status::run(&cli.root, &cli.config),
        cli::Command::Cert(args) => {
            cert::run(&cli.root, &cli.config, &args).map(|()| ExitCode::SUCCESS)
        }
        cli::Command::Invite(args) => {
            invite::run(&cli.root, &cli.config, &args).map(|()| ExitCode::SUCCESS)
        }
        cli::Command::Get { key } => {
            get::run(&cli.root, &cli.config, &key).map(|()| ExitCode::SUCCESS)
        }
    }
}
