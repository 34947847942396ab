//! `chatmail.ini`: the one configuration file every daemon reads.
//!
//! The model (this file) holds typed values with the reference deployment's defaults;
//! [`ini`] parses the file format; [`read`] turns a `[params]` section into a [`Config`],
//! naming the key, the value and the file in every error.

mod ini;
mod read;
mod values;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use read::{ConfigError, Warning};
pub use values::parse_size_mb;

/// Where the packaged relay installs its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/chatmail/chatmail.ini";

/// Let's Encrypt's production ACME directory, the default of `acme_directory`.
pub const DEFAULT_ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Where `chatmail-relay setup` keeps the TURN secret it shares with coturn.
pub const DEFAULT_TURN_SECRET_FILE: &str = "/etc/chatmail/turn.secret";

/// Default push gateway.
pub const DEFAULT_NOTIFICATION_URL: &str = "https://notifications.delta.chat/notify";

/// How TLS certificates are obtained (derived, as in the reference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsCertMode {
    /// ACME certificates under `/var/lib/acme/live/<domain>/`.
    Acme,
    /// A self-signed certificate (domains starting with `_`, and IP-only relays).
    SelfSigned,
    /// Operator-provided certificate and key.
    External { cert: PathBuf, key: PathBuf },
}

/// All settings of `chatmail.ini`'s `[params]` section.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (for messages).
    pub path: PathBuf,
    /// The domain of addresses: `example.org`, or `[1.2.3.4]` for an IP-only relay.
    pub mail_domain: String,
    /// `mail_domain` as written in the file (without brackets for an IP-only relay).
    pub mail_domain_bare: String,
    /// Set for an IP-only relay.
    pub ipv4_relay: Option<Ipv4Addr>,
    pub max_user_send_per_minute: u32,
    pub max_user_send_burst_size: u32,
    pub max_mailbox_size: String,
    pub max_mailbox_size_mb: u64,
    pub max_message_size: u64,
    pub delete_mails_after: u32,
    pub delete_large_after: u32,
    pub delete_inactive_users_after: u32,
    pub username_min_length: usize,
    pub username_max_length: usize,
    pub password_min_length: usize,
    pub max_load_1m: f64,
    pub min_available_memory_mb: u64,
    pub min_free_disk_space_mb: u64,
    pub max_imap_connections: u32,
    pub max_smtp_connections: u32,
    pub mailboxes_dir: PathBuf,
    /// Iroh relay URL served as METADATA.
    pub iroh_relay: String,
    pub turn_socket_path: PathBuf,
    /// The TURN REST secret shared with coturn (`turn_secret_file`, ours; empty: none).
    /// While the file exists, `turn` credentials are computed from it; otherwise they are
    /// read from `turn_socket_path` (the reference's chatmail-turn).
    pub turn_secret_file: Option<PathBuf>,
    /// How the relay is deployed: read by no daemon.
    pub deployment: Deployment,

    // Keys of ours (not in the reference); defaults keep reference behaviour.
    /// Push gateway URL (`notification_url`).
    pub notification_url: String,
    /// Milter listener for authenticated submission (`milter_outbound`), `unix:PATH` or `inet:HOST:PORT`.
    pub milter_outbound: String,
    /// Milter listener for port 25 (`milter_inbound`).
    pub milter_inbound: String,
    /// Milter listener for mail Postfix makes itself, bounces above all
    /// (`milter_internal`; Postfix's `non_smtpd_milters`).
    pub milter_internal: String,
    /// DKIM selector used for signing (`dkim_selector`).
    pub dkim_selector: String,
    /// DKIM private key in PEM (`dkim_key`).
    pub dkim_key: PathBuf,
    /// DNS server for DKIM key lookups, `IP:PORT` (`dns_resolver`); `None`: the system's
    /// resolver from `/etc/resolv.conf`.
    pub dns_resolver: Option<std::net::SocketAddr>,
    /// The `appversions` JSON served over METADATA (`appversions_file`).
    pub appversions_file: PathBuf,
    /// Where account creation is switched off when this file exists (`nocreate_file`).
    pub nocreate_file: PathBuf,
}

/// The reference's deployment settings: rendered into the Postfix, Dovecot, nginx and
/// certificate configuration, read by none of the daemons. They are parsed and checked here
/// all the same, so that a reference `chatmail.ini` with a bad value is refused with the key's
/// name when a daemon starts, and so that the tool that renders the configuration
/// (`chatmail-relay`, to come; `packaging/relay` for the local relay today) reads them typed
/// from the same place.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The reference's old account database (`passdb_path`); unused since its accounts live
    /// in the mailbox directories, kept so an old file still reads.
    pub passdb_path: PathBuf,
    /// True when `iroh_relay` was not set, i.e. the relay runs its own iroh relay.
    pub enable_iroh_relay: bool,
    pub disable_ipv6: bool,
    pub acme_email: String,
    /// The ACME server's directory URL (`acme_directory`, ours; default Let's Encrypt's
    /// production directory).
    pub acme_directory: String,
    /// A CA certificate (PEM) to trust instead of the system's roots when talking to the ACME
    /// server (`acme_ca_file`, ours; a test CA such as pebble's). `None`: the system's roots.
    pub acme_ca_file: Option<PathBuf>,
    pub www_folder: String,
    pub tls_cert_mode: TlsCertMode,
    pub mtail_address: Option<String>,
    pub imap_rawlog: bool,
    pub imap_compress: bool,
    pub privacy_postal: Option<String>,
    pub privacy_mail: Option<String>,
    pub privacy_pdo: Option<String>,
    pub privacy_supervisor: Option<String>,
}

impl Config {
    /// Reads and validates a config file. Warnings (unknown keys) are returned, not logged,
    /// so the caller decides where they go.
    pub fn read(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        read::read_file(path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
        read::from_text(text, path)
    }

    /// Reads a config file and logs every warning.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let (config, warnings) = Self::read(path)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }

    /// `max_mailbox_size` in bytes.
    pub fn max_mailbox_size_bytes(&self) -> u64 {
        self.max_mailbox_size_mb * 1024 * 1024
    }
}
