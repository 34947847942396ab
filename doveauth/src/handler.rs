//! The dict service: routes Dovecot's requests (passdb, userdb, iteration, last login).

use chatmail_common::dict::{CommitReply, Handler, LookupReply, Op, Session, Transaction};
use chatmail_common::mailbox::LastLogin;
use chatmail_common::warn_limited;

use crate::accounts::Accounts;
use crate::keys::{self, Key};

/// The iteration prefix of `auth.conf` (`iterate_prefix = userdb/`), with dict auth's `shared/`.
const USERDB_PREFIX: &str = "shared/userdb/";

pub struct AuthDict {
    pub accounts: Accounts,
}

impl Handler for AuthDict {
    async fn lookup(&self, session: &Session, key: String, _user: String) -> LookupReply {
        let result = match keys::parse(&key) {
            Ok(Key::Passdb { password, user }) => self.accounts.passdb(&user, &password).await,
            Ok(Key::Userdb { user }) => self.accounts.userdb(&user).await,
            Ok(Key::LastLogin { .. }) => return LookupReply::NotFound,
            Err(e) => {
                // never log the key itself: it holds the password
                warn_limited!("unusable lookup key", dict = %session.dict, error = %e);
                return LookupReply::Failed(e.to_string());
            }
        };
        match result {
            Ok(Some(json)) => LookupReply::Found(json),
            Ok(None) => LookupReply::NotFound,
            Err(e) => {
                tracing::error!("{e}");
                LookupReply::Failed("internal error".into())
            }
        }
    }

    async fn iterate(
        &self,
        _session: &Session,
        _flags: u32,
        path: String,
        _user: String,
    ) -> Result<Vec<(String, String)>, String> {
        if path != USERDB_PREFIX {
            tracing::debug!(path, "iteration of an unknown path");
            return Ok(Vec::new());
        }
        match self.accounts.list().await {
            Ok(addrs) => Ok(addrs
                .into_iter()
                .map(|a| (format!("{USERDB_PREFIX}{a}"), String::new()))
                .collect()),
            Err(e) => {
                tracing::error!("{e}");
                Err("internal error".into())
            }
        }
    }

    async fn commit(&self, session: &Session, tx: Transaction) -> CommitReply {
        for op in tx.ops {
            let Op::Set { key, value } = op else {
                warn_limited!("unsupported dict operation", dict = %session.dict);
                return CommitReply::Failed("only last-login sets are supported".into());
            };
            let Ok(Key::LastLogin { user }) = keys::parse(&key) else {
                // not the key: it may be anything, a password too
                warn_limited!("set of an unsupported key", dict = %session.dict);
                return CommitReply::Failed("only last-login sets are supported".into());
            };
            let Ok(ts) = value.trim().parse::<i64>() else {
                warn_limited!("last-login value is not a unix timestamp", user);
                return CommitReply::Failed("bad timestamp".into());
            };
            match self.accounts.last_login(&user, ts).await {
                Ok(LastLogin::NoAccount) => {
                    tracing::debug!(user, "last login for an unknown account")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("{e}");
                    return CommitReply::Failed("internal error".into());
                }
            }
        }
        CommitReply::Ok
    }
}
