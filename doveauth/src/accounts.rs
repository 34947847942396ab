//! Accounts: lookups, creation on first login, iteration, last login.
//!
//! All disk work and hashing runs on the blocking pool, so the dict socket loop never waits
//! on the disk.

use std::sync::Arc;

use chatmail_common::config::Config;
use chatmail_common::mailbox::{Address, Created, LastLogin, Mailbox, Mailboxes};

use crate::cache::RecordCache;
use crate::hasher::{Hasher, PoolError};
use crate::password;
use crate::rules::{self, check_new_account};
use crate::syslimits::Readings;

/// Accounts kept in the lookup cache at most (about 300 bytes each).
const CACHE_CAPACITY: usize = 20_000;

/// What Dovecot gets for an account (passdb and userdb alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub addr: String,
    pub home: String,
    pub password: String,
}

impl UserRecord {
    fn new(mailbox: &Mailbox, password: String) -> UserRecord {
        UserRecord {
            addr: mailbox.address().to_string(),
            home: mailbox.dir().display().to_string(),
            password,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::json!({
            "addr": self.addr,
            "home": self.home,
            "uid": "vmail",
            "gid": "vmail",
            "password": self.password,
        })
        .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{op} for {addr}: {source}")]
    Io {
        op: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("hashing the password for {addr}: {source}")]
    Hash { addr: String, source: PoolError },
    #[error("worker task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub struct Accounts {
    config: Arc<Config>,
    mailboxes: Mailboxes,
    /// Recently seen accounts, as their JSON record.
    cache: RecordCache,
    /// One hashing thread per core: a burst of first logins cannot starve lookups of
    /// existing accounts.
    hasher: Hasher,
}

impl Accounts {
    /// Fails only if the hashing threads cannot be started.
    pub fn new(config: Arc<Config>) -> std::io::Result<Accounts> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Accounts {
            mailboxes: Mailboxes::new(config.mailboxes_dir.clone()),
            cache: RecordCache::new(CACHE_CAPACITY),
            config,
            hasher: Hasher::new(cores)?,
        })
    }

    /// Parses a user name into an address of our domain; logs why not otherwise.
    fn our_address(&self, user: &str) -> Option<Address> {
        match Address::parse(user) {
            Ok(addr) if rules::in_domain(&self.config, &addr) => Some(addr),
            Ok(_) => {
                tracing::debug!(user, "lookup for a foreign domain");
                None
            }
            Err(e) => {
                chatmail_common::warn_limited!(
                    "lookup for an invalid address",
                    user = %user.escape_debug(),
                    error = %e
                );
                None
            }
        }
    }

    /// userdb lookup: the account's JSON record if it exists.
    pub async fn userdb(&self, user: &str) -> Result<Option<String>, AccountError> {
        if let Some(json) = self.cache.get(user) {
            return Ok(Some(json));
        }
        let Some(addr) = self.our_address(user) else {
            return Ok(None);
        };
        let mailbox = self.mailboxes.mailbox(&addr);
        Ok(read_password(mailbox.clone())
            .await?
            .map(|pw| self.remember(UserRecord::new(&mailbox, pw))))
    }

    /// Remembers an account found or made by a passdb lookup; logs an error if its stored
    /// password is cut short (nobody can log in then, and it is never replaced).
    fn remember_login(&self, record: UserRecord) -> String {
        if !password::looks_complete(&record.password) {
            tracing::error!(
                addr = record.addr,
                "password file holds no complete hash: nobody can log in until an operator \
                 removes it (the next login then creates the account anew)"
            );
        }
        self.remember(record)
    }

    fn remember(&self, record: UserRecord) -> String {
        let json = record.to_json();
        self.cache.insert(&record.addr, json.clone());
        json
    }

    /// passdb lookup: the account's JSON record if it exists, else create the account if the
    /// rules allow. Dovecot itself compares the login password with the returned hash.
    pub async fn passdb(&self, user: &str, password: &str) -> Result<Option<String>, AccountError> {
        if let Some(json) = self.cache.get(user) {
            return Ok(Some(json));
        }
        let Some(addr) = self.our_address(user) else {
            return Ok(None);
        };
        let mailbox = self.mailboxes.mailbox(&addr);
        // one trip to the blocking pool: the password file, else the creation rules
        let (config, mb) = (self.config.clone(), mailbox.clone());
        let password_c = password.to_string();
        let found = tokio::task::spawn_blocking(move || {
            let existing = mb.read_password().map_err(|source| AccountError::Io {
                op: "reading password",
                addr: mb.address().to_string(),
                source,
            })?;
            Ok::<_, AccountError>(match existing {
                Some(hash) => Found::Account(hash),
                None => match creation_refusal(&config, mb.address(), &password_c) {
                    Some(reason) => Found::Refused(reason),
                    None => Found::MayCreate,
                },
            })
        })
        .await??;
        match found {
            Found::Account(existing) => {
                return Ok(Some(
                    self.remember_login(UserRecord::new(&mailbox, existing)),
                ));
            }
            Found::Refused(reason) => {
                tracing::warn!(addr = %addr, "not creating account: {reason}");
                return Ok(None);
            }
            Found::MayCreate => {}
        }
        let hash = self
            .hasher
            .hash(password)
            .await
            .map_err(|source| AccountError::Hash {
                addr: addr.to_string(),
                source,
            })?;
        let mb = mailbox.clone();
        let created = tokio::task::spawn_blocking(move || match mb.create_password(&hash) {
            Ok(Created::New) => Ok((true, hash)),
            Ok(Created::Existing(existing)) => Ok((false, existing)),
            Err(source) => Err(AccountError::Io {
                op: "creating account",
                addr: mb.address().to_string(),
                source,
            }),
        })
        .await??;
        let (new, hash) = created;
        if new {
            tracing::info!("Created address: {addr}");
        }
        Ok(Some(self.remember_login(UserRecord::new(&mailbox, hash))))
    }

    /// All accounts of our domain (those with a password), for `doveadm user '*'`.
    pub async fn list(&self) -> Result<Vec<String>, AccountError> {
        let mailboxes = self.mailboxes.clone();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || {
            let addrs = mailboxes.addresses().map_err(|source| AccountError::Io {
                op: "listing accounts",
                addr: mailboxes.root().display().to_string(),
                source,
            })?;
            Ok(addrs
                .filter(|a| rules::in_domain(&config, a))
                .filter(|a| matches!(mailboxes.mailbox(a).read_password(), Ok(Some(_))))
                .map(|a| a.to_string())
                .collect())
        })
        .await?
    }

    /// Records a login of `user` at unix time `ts`.
    pub async fn last_login(&self, user: &str, ts: i64) -> Result<LastLogin, AccountError> {
        let Some(addr) = self.our_address(user) else {
            return Ok(LastLogin::NoAccount);
        };
        let mailbox = self.mailboxes.mailbox(&addr);
        tokio::task::spawn_blocking(move || {
            mailbox
                .set_last_login(ts)
                .map_err(|source| AccountError::Io {
                    op: "recording last login",
                    addr: mailbox.address().to_string(),
                    source,
                })
        })
        .await?
    }
}

/// What a passdb lookup found on disk for an address not in the cache.
enum Found {
    Account(String),
    Refused(String),
    MayCreate,
}

/// Why no account may be created for `addr` with `password` now, if so (blocking: reads
/// the file system and system load).
fn creation_refusal(config: &Config, addr: &Address, password: &str) -> Option<String> {
    let nocreate = config.nocreate_file.exists();
    if let Err(reason) = check_new_account(config, addr, password, nocreate) {
        return Some(reason.to_string());
    }
    Readings::read(&config.mailboxes_dir)
        .refusal(config)
        .map(|reason| format!("registration rejected: {reason}"))
}

async fn read_password(mailbox: Mailbox) -> Result<Option<String>, AccountError> {
    tokio::task::spawn_blocking(move || {
        mailbox.read_password().map_err(|source| AccountError::Io {
            op: "reading password",
            addr: mailbox.address().to_string(),
            source,
        })
    })
    .await?
}
