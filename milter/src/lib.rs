//! chatmail-milter: a Postfix milter that lets only OpenPGP-encrypted mail in and out of a
//! chatmail relay (spec §6).
//!
//! * [`policy`]: the rules, as pure functions of envelope and message bytes;
//! * [`ratelimit`]: the per-sender GCRA send limit;
//! * [`message`]: the bounded message buffer rebuilt from milter events;
//! * [`dkim`]: DKIM signing (outbound) and strict verification (inbound);
//! * [`shared`]: the state all connections share, made from `chatmail.ini`;
//! * [`session`]: one Postfix connection, its direction and the message in progress;
//! * [`callbacks`]: indymilter glue;
//! * [`listener`]: the outbound, inbound and internal listeners and the servers on them.

pub mod callbacks;
pub mod dkim;
pub mod listener;
pub mod message;
pub mod policy;
pub mod ratelimit;
pub mod session;
pub mod shared;
