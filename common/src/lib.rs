//! Code shared by every chatmail relay daemon.
//!
//! * [`config`]: `chatmail.ini`, typed, with the reference deployment's keys and defaults.
//! * [`mailbox`]: addresses and the on-disk mailbox layout (password file, flags, last login).
//! * [`dict`]: the Dovecot dict proxy protocol (codec and a concurrent server).
//! * [`daemon`]: logging, listening sockets (also systemd-passed), readiness and shutdown.
//! * [`fsutil`]: atomic file writes.
//! * [`invite`]: credentials for new accounts and `dclogin:` links.
//! * [`turn_secret`]: the TURN secret shared by coturn and the push notifier.
//! * [`log_limit`]: warnings a client can set off, at most one a minute per kind.
//! * [`unix_time`]: unix time in whole seconds, as kept in files.

pub mod config;
pub mod daemon;
pub mod dict;
pub mod fsutil;
pub mod invite;
pub mod log_limit;
pub mod mailbox;
pub mod turn_secret;
pub mod unix_time;
