//! The daily run: every mailbox scanned, planned and (with `--remove`) expired.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use chatmail_common::config::Config;

use crate::date::ymd;
use crate::execute::{Outcome, execute};
use crate::plan::{Plan, Reason, Rules, plan_mailbox};
use crate::pool::for_each_mailbox;
use crate::progress::Progress;
use crate::scan::{Listing, MailboxDirs, ScanOptions, scan_mailbox};

#[derive(Debug, Clone, Copy)]
pub struct DailyOptions {
    /// Without it nothing on disk changes.
    pub remove: bool,
    /// List what goes on stderr.
    pub verbose: bool,
    /// "now" for the rules (shifted by `--days`).
    pub now: i64,
    /// The clock, for the 24-hour protection of the quota trim.
    pub real_now: i64,
    pub maxnum: Option<usize>,
    pub jobs: usize,
}

/// The counts of the summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub all_mailboxes: u64,
    pub removed_mailboxes: u64,
    /// Message files in mailboxes that stay.
    pub all_files: u64,
    pub removed_files: u64,
    pub errors: u64,
}

impl Totals {
    fn merge(&mut self, other: &Totals) {
        self.all_mailboxes += other.all_mailboxes;
        self.removed_mailboxes += other.removed_mailboxes;
        self.all_files += other.all_files;
        self.removed_files += other.removed_files;
        self.errors += other.errors;
    }

    /// The reference's summary line.
    pub fn summary(&self, seconds: f64) -> String {
        format!(
            "Removed {} out of {} mailboxes and {} out of {} files in existing mailboxes in {seconds:.2} seconds",
            self.removed_mailboxes, self.all_mailboxes, self.removed_files, self.all_files
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    #[error("cannot read mailboxes directory {}: {source}", path.display())]
    Mailboxes {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// Runs the daily expiry over `config.mailboxes_dir`.
pub fn run(
    config: &Config,
    opts: &DailyOptions,
    progress: &Progress,
) -> Result<Totals, DailyError> {
    let root_path = config.mailboxes_dir.as_path();
    let dirs = match MailboxDirs::open(root_path, opts.maxnum) {
        Ok(Some(dirs)) => dirs,
        Ok(None) => {
            eprintln!("no mailboxes found at: {}", root_path.display());
            return Ok(Totals::default());
        }
        Err(source) => {
            return Err(DailyError::Mailboxes {
                path: root_path.to_path_buf(),
                source,
            });
        }
    };
    let rules = Rules::daily(config, opts.now, opts.real_now);
    let per_worker = for_each_mailbox(&dirs, opts.jobs, Totals::default, |totals, name| {
        let listing = match scan_mailbox(
            dirs.root_fd(),
            root_path,
            &name.0,
            ScanOptions { stat_extra: false },
        ) {
            Ok(Some(listing)) => listing,
            Ok(None) => return, // vanished
            Err(e) => {
                tracing::warn!("{e}");
                totals.errors += 1;
                return;
            }
        };
        let plan = plan_mailbox(&listing, &rules);
        if opts.verbose {
            let text = describe(root_path, &listing, &plan);
            if !text.is_empty() {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
        let outcome = execute(dirs.root_fd(), root_path, &listing, &plan, !opts.remove);
        let files = add(totals, &listing, &plan, &outcome);
        progress.mailbox_done(files, outcome.mailbox_removed, outcome.files_removed);
    });
    let mut totals = Totals::default();
    for t in &per_worker {
        totals.merge(t);
    }
    Ok(totals)
}

/// Adds one mailbox to the totals; returns its message count.
fn add(totals: &mut Totals, listing: &Listing, plan: &Plan, outcome: &Outcome) -> u64 {
    totals.all_mailboxes += 1;
    totals.removed_mailboxes += u64::from(outcome.mailbox_removed);
    totals.errors += outcome.errors;
    let files = listing.messages.len() as u64;
    if let Plan::Expire(_) = plan {
        totals.all_files += files;
        totals.removed_files += outcome.files_removed;
    }
    files
}

/// The `-v` lines for one mailbox: what goes and why.
pub fn describe(root: &Path, listing: &Listing, plan: &Plan) -> String {
    let mut out = String::new();
    let dir = root.join(&listing.name);
    match plan {
        Plan::RemoveMailbox { last_login, .. } => {
            let _ = writeln!(
                out,
                "removing mailbox {}: last login {}",
                dir.display(),
                ymd(*last_login)
            );
        }
        Plan::RemoveEmptyDir => {
            let _ = writeln!(
                out,
                "removing empty directory {}: no password file",
                dir.display()
            );
        }
        Plan::KeepWithoutPassword => {
            let _ = writeln!(
                out,
                "Skipped deleting {}, doesn't have last_login but isn't empty",
                dir.display()
            );
        }
        Plan::Expire(files) => {
            for (index, reason) in &files.remove {
                let m = &listing.messages[*index];
                let _ = writeln!(
                    out,
                    "removing {} {} {}",
                    reason.as_str(),
                    ymd(m.mtime),
                    dir.join(listing.message_path(m)).display()
                );
            }
            let trimmed = files.count(Reason::Quota);
            if trimmed > 0 {
                let _ = writeln!(
                    out,
                    "quota-expire: removed {trimmed} message(s) from {}",
                    listing.name
                );
            }
        }
    }
    out
}
