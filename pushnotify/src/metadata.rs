//! The dict handler behind Dovecot's `mail_attribute_dict`: device tokens, new-message
//! triggers and server metadata.
//!
//! * lookup `priv/<guid>/devicetoken` → the user's valid tokens, space-separated (`O` with an
//!   empty value when there are none);
//! * lookup of a server-info key → [`ServerInfo`]; anything else → `N`;
//! * commit with set `priv/<guid>/devicetoken` → the token is added for the transaction's user;
//! * commit with set `priv/<guid>/messagenew` → one notification per valid token of the user is
//!   written to the queue, and only then the commit is answered;
//! * unsets are ignored (clients cannot delete tokens; other keys are never stored); any other
//!   set or an increment fails the commit;
//! * iterations are empty.
//!
//! Unlike the reference, which acts at the `S` line, changes apply at commit: a rolled-back
//! transaction notifies nobody. Dovecot commits these transactions right away.

use std::sync::Arc;

use chatmail_common::dict::{CommitReply, Handler, LookupReply, Op, Session, Transaction};
use chatmail_common::mailbox::Address;
use chatmail_common::warn_limited;

use crate::clock::Clock;
use crate::keys::{self, Key};
use crate::notifier::Notifier;
use crate::queue::Queue;
use crate::server_info::ServerInfo;
use crate::tokens::TokenStore;

pub struct Metadata {
    pub tokens: Arc<TokenStore>,
    pub queue: Queue,
    pub notifier: Notifier,
    pub info: ServerInfo,
    pub clock: Arc<dyn Clock>,
}

/// Runs blocking disk work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("internal error: {e}"))
}

impl Metadata {
    async fn device_tokens(&self, user: String) -> LookupReply {
        let addr = match Address::parse(&user) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(%e, "devicetoken lookup for an invalid user");
                return LookupReply::Failed(format!("invalid user: {e}"));
            }
        };
        let tokens = self.tokens.clone();
        match blocking(move || tokens.valid_tokens(&addr)).await {
            Ok(Ok(list)) => LookupReply::Found(list.join(" ")),
            Ok(Err(e)) => {
                tracing::error!(user, error = %e, "cannot read device tokens");
                LookupReply::Failed("cannot read device tokens".into())
            }
            Err(e) => LookupReply::Failed(e),
        }
    }

    async fn set_token(&self, addr: &Address, token: String) -> Result<(), String> {
        let tokens = self.tokens.clone();
        let owned = addr.clone();
        match blocking(move || tokens.add(&owned, &token)).await? {
            Ok(()) => {
                tracing::info!(addr = %addr.as_str(), "device token set");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(addr = %addr.as_str(), error = %e, "device token refused");
                Err(e.to_string())
            }
        }
    }

    /// Persists one notification per valid token, then hands them to the notifier.
    async fn message_new(&self, addr: &Address) -> Result<(), String> {
        let tokens = self.tokens.clone();
        let queue = self.queue.clone();
        let start_ts = self.clock.unix_now();
        let owned = addr.clone();
        let result = blocking(move || {
            let list = tokens
                .valid_tokens(&owned)
                .map_err(|e| (Vec::new(), e.to_string()))?;
            queue
                .enqueue(&owned, start_ts, &list)
                .map_err(|e| (e.written, e.error.to_string()))
        })
        .await?;
        match result {
            Ok(items) => {
                tracing::debug!(addr = %addr.as_str(), count = items.len(), "notifications queued");
                self.notifier.submit(items);
                Ok(())
            }
            Err((written, error)) => {
                tracing::error!(addr = %addr.as_str(), %error, "cannot queue notifications");
                // whatever reached the disk is sent anyway
                self.notifier.submit(written);
                Err(format!("cannot queue notifications: {error}"))
            }
        }
    }
}

impl Handler for Metadata {
    async fn lookup(&self, _session: &Session, key: String, user: String) -> LookupReply {
        match keys::parse(&key) {
            Key::DeviceToken => self.device_tokens(user).await,
            Key::ServerInfo(name) => self.info.lookup(name).await,
            Key::MessageNew | Key::Other => {
                tracing::debug!(key, "lookup ignored");
                LookupReply::NotFound
            }
        }
    }

    async fn commit(&self, _session: &Session, tx: Transaction) -> CommitReply {
        let addr = match Address::parse(&tx.user) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "metadata transaction for an invalid user");
                return CommitReply::Failed(format!("invalid user: {e}"));
            }
        };
        for op in tx.ops {
            let result = match op {
                Op::Set { key, value } => match keys::parse(&key) {
                    Key::DeviceToken => self.set_token(&addr, value).await,
                    Key::MessageNew => self.message_new(&addr).await,
                    Key::ServerInfo(_) | Key::Other => {
                        warn_limited!("refusing to store an unsupported metadata key", addr = %addr.as_str());
                        Err(format!("unsupported key {key}"))
                    }
                },
                Op::Unset { key } => {
                    tracing::debug!(key, "unset ignored");
                    Ok(())
                }
                Op::Inc { key, .. } => {
                    warn_limited!("refusing an increment", addr = %addr.as_str());
                    Err(format!("unsupported increment of {key}"))
                }
            };
            if let Err(e) = result {
                return CommitReply::Failed(e);
            }
        }
        CommitReply::Ok
    }
}
