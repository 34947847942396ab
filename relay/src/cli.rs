//! The command line.

use std::net::IpAddr;
use std::path::PathBuf;

use chatmail_common::config::DEFAULT_CONFIG_PATH;
use clap::{Args, Parser, Subcommand};

/// Set up and operate a chatmail relay on this machine.
///
/// On a fresh Debian server, as root: `chatmail-relay init DOMAIN`, `chatmail-relay dns`,
/// `chatmail-relay setup`.
#[derive(Debug, Parser)]
#[command(name = "chatmail-relay", version)]
pub struct Cli {
    /// The relay's configuration file.
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Work below this directory instead of / (tests): --config and every path of
    /// chatmail.ini are taken below it.
    #[arg(
        long,
        global = true,
        hide = true,
        value_name = "DIR",
        default_value = "/"
    )]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write chatmail.ini for DOMAIN, every key at its default.
    Init(InitArgs),
    /// Configure Postfix and Dovecot from chatmail.ini, create the DKIM key and the
    /// certificate, start the relay. Safe to run again: only what changed is written.
    Setup(SetupArgs),
    /// Print the DNS records the relay's domain needs (zone-file lines to publish), or
    /// check that DNS has them.
    Dns(DnsArgs),
    /// Show the relay on one screen: units, ports, certificate, queue, accounts, last
    /// expiry. Exits non-zero when something is down.
    Status,
    /// Show the relay's ACME certificate: its names, expiry and the last failed renewal.
    /// With --renew, order a new one when it is due (what the daily
    /// chatmail-relay-certs.timer runs).
    Cert(CertArgs),
    /// Print a login link for a new account (created at its first login), and the same as
    /// a QR code to scan with Delta Chat.
    Invite(InviteArgs),
    /// Print the value chatmail.ini gives KEY (its default when unset).
    Get {
        /// A key of chatmail.ini's [params] section.
        key: String,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The relay's mail domain (chat.example.org), or an IPv4 address for an IP-only relay.
    pub domain: String,
    /// Replace an existing chatmail.ini (the old one is kept as chatmail.ini.bak).
    #[arg(long)]
    pub force: bool,
    /// Set a key to a value other than its default (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Show what would change (a diff of every file) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The local test relay of `packaging/relay` (loopback only, logs in
    /// /var/log/chatmail-relay, no systemd): render the files and keys, start nothing.
    #[arg(long)]
    pub local: bool,
    /// Go on even though Postfix or Dovecot has a configuration that is not ours, or
    /// chatmail.ini has keys this version does not know.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CertArgs {
    /// Order a certificate (Let's Encrypt by default, HTTP-01 on port 80) when there is none,
    /// it misses a name, or fewer than 30 days are left; then reload Postfix and Dovecot.
    #[arg(long)]
    pub renew: bool,
    /// With --renew: order a new certificate even when the current one is not due.
    #[arg(long, requires = "renew")]
    pub force: bool,
    /// With --renew: do not reload Postfix and Dovecot after a renewal, leave that to a later
    /// `cert --reload` (the timer's unit renews in its sandbox, then reloads outside it).
    #[arg(long, requires = "renew")]
    pub no_reload: bool,
    /// Reload Postfix and Dovecot if a renewal since their last reload asked for it.
    #[arg(long, conflicts_with = "renew")]
    pub reload: bool,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    /// The IMAP and SMTP host in the link (default: the mail domain).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only the link, no QR code.
    #[arg(long)]
    pub no_qr: bool,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// A fragment for the domain's zone file: `$ORIGIN` and `$TTL` first, names relative to
    /// the mail domain.
    #[arg(long, conflicts_with = "check")]
    pub zonefile: bool,
    /// Look every record up (chatmail.ini's dns_resolver, else the system's resolver) and
    /// say which are ok, missing or wrong; exit non-zero unless all are ok.
    #[arg(long)]
    pub check: bool,
    /// An address the domain points at (repeatable; default: this machine's public IPv4
    /// and IPv6 addresses).
    #[arg(long = "ip", value_name = "ADDR")]
    pub ip: Vec<IpAddr>,
}
