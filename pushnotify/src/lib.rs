//! chatmail-pushnotify: the IMAP METADATA dict of a chatmail relay and its push notifier.
//!
//! * [`metadata`]: the Dovecot dict handler (device tokens, new-message triggers, server info)
//! * [`tokens`] / [`token_file`]: `metadata.json` per account
//! * [`queue`]: the persistent queue in `pending_notifications/`
//! * [`notifier`] / [`gateway`] / [`retry`]: delivery to the push gateway with retries
//! * [`server_info`] / [`appversions`] / [`turn`]: server metadata for clients
//! * [`service`]: wiring it all together

pub mod appversions;
pub mod clock;
pub mod gateway;
pub mod keys;
pub mod metadata;
pub mod notifier;
pub mod queue;
pub mod retry;
pub mod server_info;
pub mod service;
pub mod token_file;
pub mod tokens;
pub mod turn;
