//! What can go wrong, each as one line naming the file, key or command.

use std::path::PathBuf;

use chatmail_common::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("'{domain}' is not a domain name or an IPv4 address: {reason}")]
    Domain { domain: String, reason: String },
    #[error("{} exists (use --force to replace it; the old file is kept as .bak)", path.display())]
    Exists { path: PathBuf },
    #[error("--set {arg}: {reason}")]
    Set { arg: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Template { path: PathBuf, reason: String },
    #[error("{}: unknown key {key} (line {line}); fix it, or run again with --force", path.display())]
    UnknownKey {
        path: PathBuf,
        key: String,
        line: usize,
    },
    #[error("{what}: {reason}")]
    System { what: String, reason: String },
    #[error("{command} failed: {reason}")]
    Command { command: String, reason: String },
    #[error("{0}")]
    Refused(String),
    #[error("certificate from ACME server {server}: {reason}")]
    Acme { server: String, reason: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
