//! The ACME account: created at the first order (with `acme_email` as its contact, if set),
//! its credentials (the account URL and its private key) kept in `STATE_DIR/account.json`,
//! root's alone (0600). A change of `acme_directory` makes a new account; the old file is
//! kept as `account.json.bak`.

use std::path::{Path, PathBuf};

use chatmail_common::config::Config;
use instant_acme::{Account, AccountBuilder, AccountCredentials, NewAccount};

use crate::apply::apply;
use crate::plan::{FileSpec, on_disk};

use super::{STATE_DIR, failed, one_line, state_dir};

/// The credentials file, as a path of the target system.
fn credentials_path() -> PathBuf {
    Path::new(STATE_DIR).join("account.json")
}

/// The account on `acme_directory`: the stored one, or a new one.
pub(super) async fn load_or_create(root: &Path, config: &Config) -> Result<Account, String> {
    let directory = &config.deployment.acme_directory;
    let path = credentials_path();
    if let Some(credentials) = stored(root, directory)? {
        return builder(root, config)?
            .from_credentials(credentials)
            .await
            .map_err(|e| failed("account", &e));
    }
    let contact = (!config.deployment.acme_email.is_empty())
        .then(|| format!("mailto:{}", config.deployment.acme_email));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contacts,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = builder(root, config)?
        .create(&new, directory.clone(), None)
        .await
        .map_err(|e| failed("new account", &e))?;
    let json = serde_json::to_vec_pretty(&credentials)
        .map_err(|e| format!("cannot store the account: {e}"))?;
    state_dir(root).map_err(|e| e.to_string())?;
    let spec = FileSpec {
        secret: true,
        ..FileSpec::new(&path, json, 0o600)
    };
    apply(root, &[&spec]).map_err(|e| format!("cannot store the account: {e}"))?;
    Ok(account)
}

/// The stored credentials, if they are for `directory`.
fn stored(root: &Path, directory: &str) -> Result<Option<AccountCredentials>, String> {
    let path = credentials_path();
    let text = match std::fs::read(on_disk(root, &path)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let unreadable = |e: serde_json::Error| format!("{}: {e}", path.display());
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(unreadable)?;
    if value.get("directory").and_then(|d| d.as_str()) != Some(directory) {
        return Ok(None);
    }
    serde_json::from_value(value).map(Some).map_err(unreadable)
}

/// An account builder whose HTTPS trusts `acme_ca_file` if set, else the system's roots.
fn builder(root: &Path, config: &Config) -> Result<AccountBuilder, String> {
    // rustls needs one crypto provider; `ring` is the workspace's (an error: already set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &config.deployment.acme_ca_file {
        Some(ca) => Account::builder_with_root(on_disk(root, ca))
            .map_err(|e| format!("acme_ca_file {}: {}", ca.display(), one_line(&e))),
        None => Account::builder().map_err(|e| format!("TLS roots: {}", one_line(&e))),
    }
}
