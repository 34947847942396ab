//! `chatmail-expire`: mailbox expiry, quota trimming and storage reports of a chatmail relay.
//!
//! * [`scan`]: streaming, symlink-safe walk of `mailboxes_dir`, one mailbox at a time.
//! * [`plan`]: the rules, as a pure function of a listing and the time.
//! * [`execute`]: deleting what the plan says (or only counting, in a dry run).
//! * [`daily`]: the daily run; [`quota`]: trimming one mailbox for Dovecot's quota warning;
//!   [`report`]: storage and activity report.
//! * [`pool`], [`progress`], [`date`]: worker threads, progress display, dates in log lines.

pub mod daily;
pub mod date;
pub mod execute;
pub mod plan;
pub mod pool;
pub mod progress;
pub mod quota;
pub mod report;
pub mod scan;
