//! Turning the `[params]` section into a [`Config`].

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::ini::{self, Section};
use super::values::{parse_bool, parse_float, parse_number, parse_positive, parse_size_mb};
use super::{
    Config, DEFAULT_ACME_DIRECTORY, DEFAULT_NOTIFICATION_URL, DEFAULT_TURN_SECRET_FILE, Deployment,
    TlsCertMode,
};

/// A config that cannot be used. The message is one line naming the file and, where there is
/// one, the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {reason}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: no [params] section", path.display())]
    NoParams { path: PathBuf },
    #[error("{}: missing required key {key}", path.display())]
    Missing { path: PathBuf, key: &'static str },
    #[error("{}: {reason}", path.display())]
    Inconsistent { path: PathBuf, reason: String },
    #[error("{}:{line}: invalid value {value:?} for {key}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        value: String,
        reason: String,
    },
}

/// Something odd in the config that does not stop the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    pub line: usize,
    pub key: String,
    pub reason: &'static str,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} key {}",
            self.path.display(),
            self.line,
            self.reason,
            self.key
        )
    }
}

/// Keys the reference deployment knows that no daemon here reads (deployment-only or made
/// obsolete by the milter). Accepted silently so an operator can keep the file as it is.
const REFERENCE_KEYS: &[&str] = &[
    "filtermail_smtp_port",
    "filtermail_smtp_port_incoming",
    "filtermail_http_port_incoming",
    "filtermail_lmtp_port_transport",
    "postfix_reinject_port",
    "postfix_reinject_port_incoming",
];

/// Keys the reference removed; they are reported like unknown keys.
const REMOVED_KEYS: &[&str] = &["passthrough_senders", "passthrough_recipients"];

pub(super) fn read_file(path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_text(&text, path)
}

pub(super) fn from_text(text: &str, path: &Path) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut sections = ini::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_path_buf(),
        line: e.line,
        reason: e.reason,
    })?;
    let section = sections
        .remove("params")
        .ok_or_else(|| ConfigError::NoParams {
            path: path.to_path_buf(),
        })?;
    let mut p = Params { path, section };
    let config = p.build()?;
    let warnings = p.leftover_warnings();
    Ok((config, warnings))
}

struct Params<'a> {
    path: &'a Path,
    section: Section,
}

impl Params<'_> {
    fn take(&mut self, key: &str) -> Option<(String, usize)> {
        self.section.remove(key)
    }

    /// Takes a key and converts it; `default` is used when the key is absent.
    fn get<T>(
        &mut self,
        key: &str,
        default: T,
        convert: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.take(key) {
            None => Ok(default),
            Some((value, line)) => convert(&value).map_err(|reason| ConfigError::Invalid {
                path: self.path.to_path_buf(),
                line,
                key: key.to_string(),
                value,
                reason,
            }),
        }
    }

    fn string(&mut self, key: &str, default: &str) -> String {
        self.take(key)
            .map(|(v, _)| v)
            .unwrap_or_else(|| default.to_string())
    }

    fn optional(&mut self, key: &str) -> Option<String> {
        self.take(key).map(|(v, _)| v).filter(|v| !v.is_empty())
    }

    fn path(&mut self, key: &str, default: impl Into<PathBuf>) -> Result<PathBuf, ConfigError> {
        let default = default.into();
        self.get(key, default, |v| {
            let v = v.trim();
            if v.is_empty() {
                Err("expected a path".to_string())
            } else {
                Ok(PathBuf::from(v))
            }
        })
    }

    fn build(&mut self) -> Result<Config, ConfigError> {
        let path = self.path.to_path_buf();
        let (raw_domain, domain_line) =
            self.take("mail_domain")
                .ok_or_else(|| ConfigError::Missing {
                    path: path.clone(),
                    key: "mail_domain",
                })?;
        let raw_domain = raw_domain.trim().to_string();
        if let Err(reason) = check_domain(&raw_domain) {
            return Err(ConfigError::Invalid {
                path,
                line: domain_line,
                key: "mail_domain".into(),
                value: raw_domain,
                reason,
            });
        }
        let ipv4_relay = raw_domain.parse::<Ipv4Addr>().ok();
        let mail_domain = match ipv4_relay {
            Some(ip) => format!("[{ip}]"),
            None => raw_domain.clone(),
        };

        let (max_mailbox_size, max_mailbox_size_mb) =
            self.get("max_mailbox_size", ("500M".to_string(), 500), |v| {
                parse_size_mb(v).map(|mb| (v.trim().to_string(), mb))
            })?;

        let iroh = self.take("iroh_relay");
        let (iroh_relay, enable_iroh_relay) = match iroh {
            Some((v, _)) => (v.trim().to_string(), false),
            None => (format!("https://{raw_domain}"), true),
        };

        let tls_external = self.get("tls_external_cert_and_key", None, |v| {
            let parts: Vec<&str> = v.split_whitespace().collect();
            match parts.as_slice() {
                [] => Ok(None),
                [cert, key] => Ok(Some((PathBuf::from(cert), PathBuf::from(key)))),
                _ => Err("must be two space-separated paths: CERT_PATH KEY_PATH".to_string()),
            }
        })?;
        let tls_cert_mode = match tls_external {
            Some((cert, key)) => TlsCertMode::External { cert, key },
            None if raw_domain.starts_with('_') || ipv4_relay.is_some() => TlsCertMode::SelfSigned,
            None => TlsCertMode::Acme,
        };

        let config = Config {
            ipv4_relay,
            max_user_send_per_minute: self.get("max_user_send_per_minute", 60, parse_positive)?,
            max_user_send_burst_size: self.get("max_user_send_burst_size", 10, parse_positive)?,
            max_mailbox_size,
            max_mailbox_size_mb,
            max_message_size: self.get("max_message_size", 31_457_280, parse_number)?,
            delete_mails_after: self.get("delete_mails_after", 20, parse_number)?,
            delete_large_after: self.get("delete_large_after", 7, parse_number)?,
            delete_inactive_users_after: self.get(
                "delete_inactive_users_after",
                90,
                parse_number,
            )?,
            username_min_length: self.get("username_min_length", 9, parse_number)?,
            username_max_length: self.get("username_max_length", 9, parse_number)?,
            password_min_length: self.get("password_min_length", 9, parse_number)?,
            max_load_1m: self.get("max_load_1m", 5.0, parse_float)?,
            min_available_memory_mb: self.get("min_available_memory", 200, parse_size_mb)?,
            min_free_disk_space_mb: self.get("min_free_disk_space", 1024, parse_size_mb)?,
            max_imap_connections: self.get("max_imap_connections", 10_000, parse_positive)?,
            max_smtp_connections: self.get("max_smtp_connections", 1000, parse_positive)?,
            mailboxes_dir: self.path("mailboxes_dir", format!("/home/vmail/mail/{raw_domain}"))?,
            iroh_relay,
            turn_socket_path: self.path("turn_socket_path", "/run/chatmail-turn/turn.socket")?,
            turn_secret_file: match self.take("turn_secret_file") {
                None => Some(PathBuf::from(DEFAULT_TURN_SECRET_FILE)),
                Some((v, _)) if v.trim().is_empty() => None,
                Some((v, line)) if !v.trim().starts_with('/') => {
                    return Err(ConfigError::Invalid {
                        path: self.path.to_path_buf(),
                        line,
                        key: "turn_secret_file".into(),
                        value: v,
                        reason: "expected an absolute path, or nothing".into(),
                    });
                }
                Some((v, _)) => Some(PathBuf::from(v.trim())),
            },
            deployment: Deployment {
                passdb_path: self.path("passdb_path", "/home/vmail/passdb.sqlite")?,
                enable_iroh_relay,
                disable_ipv6: self.get("disable_ipv6", false, parse_bool)?,
                acme_email: self.string("acme_email", ""),
                acme_directory: self.get(
                    "acme_directory",
                    DEFAULT_ACME_DIRECTORY.to_string(),
                    check_url,
                )?,
                acme_ca_file: self.optional("acme_ca_file").map(PathBuf::from),
                www_folder: self.string("www_folder", ""),
                tls_cert_mode,
                mtail_address: self.optional("mtail_address"),
                imap_rawlog: self.get("imap_rawlog", false, parse_bool)?,
                imap_compress: self.get("imap_compress", false, parse_bool)?,
                privacy_postal: self.optional("privacy_postal"),
                privacy_mail: self.optional("privacy_mail"),
                privacy_pdo: self.optional("privacy_pdo"),
                privacy_supervisor: self.optional("privacy_supervisor"),
            },
            notification_url: self.get(
                "notification_url",
                DEFAULT_NOTIFICATION_URL.to_string(),
                check_url,
            )?,
            milter_outbound: self.get(
                "milter_outbound",
                "unix:/var/spool/postfix/chatmail/outbound.sock".to_string(),
                check_listen_addr,
            )?,
            milter_inbound: self.get(
                "milter_inbound",
                "unix:/var/spool/postfix/chatmail/inbound.sock".to_string(),
                check_listen_addr,
            )?,
            milter_internal: self.get(
                "milter_internal",
                "unix:/var/spool/postfix/chatmail/internal.sock".to_string(),
                check_listen_addr,
            )?,
            dkim_selector: self.get("dkim_selector", "opendkim".to_string(), check_selector)?,
            dkim_key: self.path("dkim_key", "/etc/dkimkeys/opendkim.private")?,
            dns_resolver: self.get("dns_resolver", None, |v| {
                let v = v.trim();
                if v.is_empty() {
                    return Ok(None);
                }
                v.parse()
                    .map(Some)
                    .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:53".to_string())
            })?,
            appversions_file: self
                .path("appversions_file", "/usr/share/chatmail/appversions.json")?,
            nocreate_file: self.path("nocreate_file", "/etc/chatmail-nocreate")?,
            path,
            mail_domain,
            mail_domain_bare: raw_domain,
        };
        if config.username_min_length > config.username_max_length {
            return Err(ConfigError::Inconsistent {
                path: config.path.clone(),
                reason: format!(
                    "username_min_length ({}) is greater than username_max_length ({})",
                    config.username_min_length, config.username_max_length
                ),
            });
        }
        Ok(config)
    }

    /// One warning per key nobody took.
    fn leftover_warnings(&mut self) -> Vec<Warning> {
        std::mem::take(&mut self.section)
            .into_iter()
            .filter(|(key, _)| !REFERENCE_KEYS.contains(&key.as_str()))
            .map(|(key, (_, line))| Warning {
                path: self.path.to_path_buf(),
                line,
                reason: if REMOVED_KEYS.contains(&key.as_str()) {
                    "ignoring no longer supported"
                } else {
                    "ignoring unknown"
                },
                key,
            })
            .collect()
    }
}

fn check_domain(domain: &str) -> Result<(), String> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..");
    if ok {
        Ok(())
    } else {
        Err("expected a domain name or an IPv4 address".into())
    }
}

fn check_url(v: &str) -> Result<String, String> {
    let v = v.trim();
    if (v.starts_with("https://") || v.starts_with("http://")) && v.len() > "https://".len() {
        Ok(v.to_string())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

fn check_listen_addr(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = match (v.strip_prefix("unix:"), v.strip_prefix("inet:")) {
        (Some(path), _) => path.starts_with('/'),
        (_, Some(hostport)) => hostport
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok()),
        _ => false,
    };
    if ok {
        Ok(v.to_string())
    } else {
        Err("expected unix:/absolute/path or inet:HOST:PORT".into())
    }
}

fn check_selector(v: &str) -> Result<String, String> {
    let v = v.trim();
    if !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(v.to_string())
    } else {
        Err("expected a DNS label".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        from_text(text, Path::new("/etc/chatmail/chatmail.ini"))
    }

    #[test]
    fn defaults_match_the_reference() {
        let (c, w) = cfg("[params]\nmail_domain = chat.example.org\n").unwrap();
        assert!(w.is_empty());
        assert_eq!(c.mail_domain, "chat.example.org");
        assert_eq!(c.ipv4_relay, None);
        assert_eq!(c.max_user_send_per_minute, 60);
        assert_eq!(c.max_user_send_burst_size, 10);
        assert_eq!(c.max_mailbox_size, "500M");
        assert_eq!(c.max_mailbox_size_mb, 500);
        assert_eq!(c.max_message_size, 31_457_280);
        assert_eq!(c.delete_mails_after, 20);
        assert_eq!(c.delete_large_after, 7);
        assert_eq!(c.delete_inactive_users_after, 90);
        assert_eq!((c.username_min_length, c.username_max_length), (9, 9));
        assert_eq!(c.password_min_length, 9);
        assert_eq!(c.max_load_1m, 5.0);
        assert_eq!(c.min_available_memory_mb, 200);
        assert_eq!(c.min_free_disk_space_mb, 1024);
        assert_eq!(
            (c.max_imap_connections, c.max_smtp_connections),
            (10_000, 1000)
        );
        assert_eq!(
            c.mailboxes_dir,
            PathBuf::from("/home/vmail/mail/chat.example.org")
        );
        assert_eq!(c.iroh_relay, "https://chat.example.org");
        assert!(c.deployment.enable_iroh_relay);
        assert_eq!(
            c.turn_socket_path,
            PathBuf::from("/run/chatmail-turn/turn.socket")
        );
        assert_eq!(
            c.turn_secret_file,
            Some(PathBuf::from("/etc/chatmail/turn.secret"))
        );
        assert_eq!(c.deployment.tls_cert_mode, TlsCertMode::Acme);
        assert_eq!(c.notification_url, DEFAULT_NOTIFICATION_URL);
        assert!(!c.deployment.disable_ipv6);
        assert_eq!(c.dns_resolver, None);
        assert_eq!(c.deployment.acme_directory, DEFAULT_ACME_DIRECTORY);
        assert_eq!(c.deployment.acme_ca_file, None);
    }

    #[test]
    fn acme_server_keys() {
        let (c, w) = cfg(
            "[params]\nmail_domain = x.org\nacme_directory = https://localhost:14000/dir\n\
             acme_ca_file = /etc/chatmail/test-ca.pem\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.deployment.acme_directory, "https://localhost:14000/dir");
        assert_eq!(
            c.deployment.acme_ca_file,
            Some(PathBuf::from("/etc/chatmail/test-ca.pem"))
        );
        let (c, _) = cfg("[params]\nmail_domain = x.org\nacme_ca_file =\n").unwrap();
        assert_eq!(c.deployment.acme_ca_file, None);
        let e = cfg("[params]\nmail_domain = x.org\nacme_directory = letsencrypt\n").unwrap_err();
        assert!(e.to_string().contains("acme_directory"), "{e}");
    }

    #[test]
    fn ipv4_relay() {
        let (c, _) = cfg("[params]\nmail_domain = 1.3.3.7\n").unwrap();
        assert_eq!(c.mail_domain, "[1.3.3.7]");
        assert_eq!(c.mail_domain_bare, "1.3.3.7");
        assert_eq!(c.deployment.tls_cert_mode, TlsCertMode::SelfSigned);
        assert_eq!(c.mailboxes_dir, PathBuf::from("/home/vmail/mail/1.3.3.7"));
    }

    #[test]
    fn overrides_and_tls_modes() {
        let (c, _) = cfg(
            "[params]\nmail_domain = _test.example.org\nmax_user_send_per_minute = 37\n\
             max_mailbox_size = 2G\niroh_relay = \nmailboxes_dir = /tmp/x \n",
        )
        .unwrap();
        assert_eq!(c.max_user_send_per_minute, 37);
        assert_eq!(c.max_mailbox_size_mb, 2048);
        assert_eq!(c.deployment.tls_cert_mode, TlsCertMode::SelfSigned);
        assert_eq!(c.iroh_relay, "");
        assert!(!c.deployment.enable_iroh_relay);
        assert_eq!(c.mailboxes_dir, PathBuf::from("/tmp/x"));
        let (c, _) =
            cfg("[params]\nmail_domain = _x.org\ntls_external_cert_and_key = /c.pem /k.pem\n")
                .unwrap();
        assert_eq!(
            c.deployment.tls_cert_mode,
            TlsCertMode::External {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            }
        );
        let e =
            cfg("[params]\nmail_domain = x.org\ntls_external_cert_and_key = /c.pem\n").unwrap_err();
        assert!(e.to_string().contains("two space-separated paths"), "{e}");
    }

    #[test]
    fn unknown_and_removed_keys_warn() {
        let (_, w) = cfg(
            "[params]\nmail_domain = x.org\npassthrough_senders =\nfoo = 1\nfiltermail_smtp_port = 10080\n",
        )
        .unwrap();
        let msgs: Vec<String> = w.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs.iter().any(|m| m.contains("unknown key foo")));
        assert!(
            msgs.iter()
                .any(|m| m.contains("no longer supported key passthrough_senders"))
        );
    }

    #[test]
    fn bad_values_name_key_value_and_file() {
        let e =
            cfg("[params]\nmail_domain = x.org\nmax_user_send_per_minute = lots\n").unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            msg,
            "/etc/chatmail/chatmail.ini:3: invalid value \"lots\" for max_user_send_per_minute: expected a whole number"
        );
        assert!(!msg.contains('\n'));
        assert!(
            cfg("[params]\n")
                .unwrap_err()
                .to_string()
                .contains("missing required key mail_domain")
        );
        assert!(
            cfg("[other]\n")
                .unwrap_err()
                .to_string()
                .contains("no [params]")
        );
        assert!(cfg("[params]\nmail_domain = a/b\n").is_err());
        assert!(cfg("[params]\nmail_domain = x.org\nmax_mailbox_size = big\n").is_err());
        assert!(cfg("[params]\nmail_domain = x.org\nmilter_inbound = /rel\n").is_err());
        assert!(cfg("[params]\nmail_domain = x.org\ndns_resolver = localhost\n").is_err());
        let (c, _) = cfg("[params]\nmail_domain = x.org\ndns_resolver = 127.0.0.1:5353\n").unwrap();
        assert_eq!(c.dns_resolver, Some("127.0.0.1:5353".parse().unwrap()));
        assert!(cfg("[params]\nmail_domain = x.org\nusername_min_length = 10\n").is_err());
        let e = cfg("[params]\nmail_domain = x.org\nturn_secret_file = turn.secret\n").unwrap_err();
        assert!(e.to_string().contains("turn_secret_file"), "{e}");
        let (c, _) = cfg("[params]\nmail_domain = x.org\nturn_secret_file =\n").unwrap();
        assert_eq!(c.turn_secret_file, None);
    }
}
