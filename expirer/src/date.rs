//! Calendar dates for log lines (UTC): the shared crate's.

pub use chatmail_common::unix_time::ymd;
