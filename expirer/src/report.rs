//! `chatmail-expire report`: how many mailboxes, how much storage, how active the accounts are.
//!
//! [`Report`] is built from listings (pure) and rendered as text for the operator or in the
//! Prometheus text format, with the reference `chatmail-fsreport` metric names, for
//! node_exporter's textfile collector.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chatmail_common::fsutil;
use chatmail_common::mailbox::DAY;

use crate::date::ymd;
use crate::pool::for_each_mailbox;
use crate::progress::Progress;
use crate::scan::{Listing, MailboxDirs, ScanOptions, scan_mailbox};

/// Message size buckets: messages of at least this many bytes.
pub const SIZE_THRESHOLDS: [u64; 7] = [
    0, 102_400, 524_288, 1_048_576, 2_097_152, 5_242_880, 10_485_760,
];
/// Activity buckets: accounts with a login within this many days.
pub const ACTIVE_DAYS: [i64; 7] = [1, 10, 30, 40, 80, 100, 150];
/// The file written into a `--textfile` directory (the reference's name, so that switching
/// implementations does not leave two files with the same metrics).
pub const TEXTFILE_NAME: &str = "fsreport.prom";

/// Totals over all mailboxes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Mailbox directories (with or without an account).
    pub mailboxes: u64,
    /// Mailboxes with a password file.
    pub accounts: u64,
    /// Accounts whose name starts with `ci-` (test accounts).
    pub ci_accounts: u64,
    pub message_count: u64,
    pub message_bytes: u64,
    pub extra_bytes: u64,
    /// Per [`SIZE_THRESHOLDS`] entry: messages at least that large, and their bytes.
    pub bucket_count: [u64; 7],
    pub bucket_bytes: [u64; 7],
    /// Per [`ACTIVE_DAYS`] entry: non-ci accounts with a login within that many days.
    pub active: [u64; 7],
}

impl Report {
    pub fn add(&mut self, listing: &Listing, now: i64) {
        self.mailboxes += 1;
        if let Some(last_login) = listing.last_login {
            self.accounts += 1;
            if listing.name.starts_with("ci-") {
                self.ci_accounts += 1;
            } else {
                for (days, active) in ACTIVE_DAYS.iter().zip(self.active.iter_mut()) {
                    if last_login >= now - days * DAY {
                        *active += 1;
                    }
                }
            }
        }
        for m in &listing.messages {
            self.message_count += 1;
            self.message_bytes += m.size;
            for (i, min) in SIZE_THRESHOLDS.iter().enumerate() {
                if m.size >= *min {
                    self.bucket_count[i] += 1;
                    self.bucket_bytes[i] += m.size;
                }
            }
        }
        self.extra_bytes += listing.extra_bytes;
    }

    pub fn merge(&mut self, other: &Report) {
        self.mailboxes += other.mailboxes;
        self.accounts += other.accounts;
        self.ci_accounts += other.ci_accounts;
        self.message_count += other.message_count;
        self.message_bytes += other.message_bytes;
        self.extra_bytes += other.extra_bytes;
        for i in 0..7 {
            self.bucket_count[i] += other.bucket_count[i];
            self.bucket_bytes[i] += other.bucket_bytes[i];
            self.active[i] += other.active[i];
        }
    }

    pub fn user_accounts(&self) -> u64 {
        self.accounts - self.ci_accounts
    }

    /// The operator's summary.
    pub fn human(&self, mailboxes_dir: &Path, now: i64) -> String {
        let mut o = String::new();
        let total = self.message_bytes + self.extra_bytes;
        let _ = writeln!(
            o,
            "## Mailbox storage in {} as of {}",
            mailboxes_dir.display(),
            ymd(now)
        );
        let _ = writeln!(o, "mailboxes:      {}", self.mailboxes);
        let _ = writeln!(
            o,
            "accounts:       {} ({} users, {} ci)",
            self.accounts,
            self.user_accounts(),
            self.ci_accounts
        );
        let _ = writeln!(o, "storage total:  {}", human_bytes(total));
        let _ = writeln!(
            o,
            "  messages:     {} in {} files ({})",
            human_bytes(self.message_bytes),
            self.message_count,
            percent(self.message_bytes, total)
        );
        let _ = writeln!(
            o,
            "  extra files:  {} ({})",
            human_bytes(self.extra_bytes),
            percent(self.extra_bytes, total)
        );
        let _ = writeln!(o, "\n## Messages by size");
        for (i, min) in SIZE_THRESHOLDS.iter().enumerate() {
            let _ = writeln!(
                o,
                "at least {:>9}: {:>9} messages, {:>10} ({})",
                human_bytes(*min),
                self.bucket_count[i],
                human_bytes(self.bucket_bytes[i]),
                percent(self.bucket_bytes[i], self.message_bytes)
            );
        }
        let _ = writeln!(o, "\n## Active user accounts (last login within)");
        for (i, days) in ACTIVE_DAYS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{days:>3} days: {:>9} ({})",
                self.active[i],
                percent(self.active[i], self.user_accounts())
            );
        }
        o
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(o, "# HELP {name} {help}");
            let _ = writeln!(o, "# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(o, "{name}{labels} {value}");
            }
        };
        metric(
            "chatmail_mailboxes",
            "Mailbox directories, with or without an account.",
            &[(String::new(), self.mailboxes)],
        );
        metric(
            "chatmail_storage_bytes",
            "Bytes used in mailbox directories by kind.",
            &[
                ("{kind=\"messages\"}".into(), self.message_bytes),
                ("{kind=\"extra\"}".into(), self.extra_bytes),
                (
                    "{kind=\"total\"}".into(),
                    self.message_bytes + self.extra_bytes,
                ),
            ],
        );
        let by_size = |values: &[u64; 7]| -> Vec<(String, u64)> {
            SIZE_THRESHOLDS
                .iter()
                .zip(values)
                .map(|(min, v)| (format!("{{min_size=\"{min}\"}}"), *v))
                .collect()
        };
        metric(
            "chatmail_messages_bytes",
            "Bytes of messages at least min_size bytes large.",
            &by_size(&self.bucket_bytes),
        );
        metric(
            "chatmail_messages_count",
            "Messages at least min_size bytes large.",
            &by_size(&self.bucket_count),
        );
        metric(
            "chatmail_accounts",
            "Accounts (mailboxes with a password file) by kind; ci accounts start with ci-.",
            &[
                ("{kind=\"all\"}".into(), self.accounts),
                ("{kind=\"ci\"}".into(), self.ci_accounts),
                ("{kind=\"user\"}".into(), self.user_accounts()),
            ],
        );
        let active: Vec<(String, u64)> = ACTIVE_DAYS
            .iter()
            .zip(&self.active)
            .map(|(d, v)| (format!("{{days=\"{d}\"}}"), *v))
            .collect();
        metric(
            "chatmail_accounts_active",
            "User accounts with a login within the last days.",
            &active,
        );
        o
    }
}

/// Where `--textfile PATH` writes: `PATH/fsreport.prom` for a directory, else `PATH`.
pub fn textfile_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join(TEXTFILE_NAME)
    } else {
        path.to_path_buf()
    }
}

/// Writes `text` to `path` atomically (temporary file, mode 0644, rename), so that the
/// collector never reads half a file.
pub fn write_textfile(path: &Path, text: &str) -> io::Result<()> {
    let tmp = fsutil::temp_path_for(path);
    let result = fsutil::write_new(&tmp, text.as_bytes(), 0o644)
        .and_then(|()| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// Scans every mailbox (also extra files, for their size) into one [`Report`].
pub fn collect(
    mailboxes_dir: &Path,
    maxnum: Option<usize>,
    jobs: usize,
    now: i64,
    progress: &Progress,
) -> io::Result<Report> {
    let Some(dirs) = MailboxDirs::open(mailboxes_dir, maxnum)? else {
        eprintln!("no mailboxes found at: {}", mailboxes_dir.display());
        return Ok(Report::default());
    };
    let parts = for_each_mailbox(
        &dirs,
        jobs,
        Report::default,
        |report, name| match scan_mailbox(
            dirs.root_fd(),
            mailboxes_dir,
            &name.0,
            ScanOptions { stat_extra: true },
        ) {
            Ok(Some(listing)) => {
                report.add(&listing, now);
                progress.mailbox_done(listing.messages.len() as u64, false, 0);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}"),
        },
    );
    let mut report = Report::default();
    for part in &parts {
        report.merge(part);
    }
    Ok(report)
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / whole as f64)
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Folder;
    use std::path::PathBuf;

    const NOW: i64 = 1_775_000_000;

    fn listing(name: &str, last_login: Option<i64>, sizes: &[u64], extra: u64) -> Listing {
        let mut l = Listing::new(name);
        l.last_login = last_login;
        l.dirs = vec![PathBuf::from("cur")];
        l.extra_bytes = extra;
        l.top_entries = 1;
        for (i, s) in sizes.iter().enumerate() {
            assert!(l.push_message(0, format!("{i}.x").as_bytes(), Folder::Cur, NOW, *s));
        }
        l
    }

    fn sample() -> Report {
        let mut a = Report::default();
        a.add(
            &listing("a@x", Some(NOW - DAY / 2), &[10, 200_000], 100),
            NOW,
        );
        a.add(&listing("ci-b@x", Some(NOW), &[600_000], 5), NOW);
        let mut b = Report::default();
        b.add(&listing("c@x", Some(NOW - 35 * DAY), &[20_000_000], 0), NOW);
        b.add(&listing("d@x", None, &[], 0), NOW);
        a.merge(&b);
        a
    }

    #[test]
    fn counts_buckets_and_activity() {
        let r = sample();
        assert_eq!((r.mailboxes, r.accounts, r.ci_accounts), (4, 3, 1));
        assert_eq!(r.message_count, 4);
        assert_eq!(r.message_bytes, 20_800_010);
        assert_eq!(r.extra_bytes, 105);
        assert_eq!(r.bucket_count, [4, 3, 2, 1, 1, 1, 1]);
        assert_eq!(r.bucket_bytes[1], 20_800_000);
        assert_eq!(r.bucket_bytes[6], 20_000_000);
        // a@x within 1 day; c@x (35 days) from 40 on; ci-b not counted
        assert_eq!(r.active, [1, 1, 1, 2, 2, 2, 2]);
    }

    #[test]
    fn prometheus_text() {
        let text = sample().prometheus();
        for line in [
            "chatmail_mailboxes 4",
            "chatmail_storage_bytes{kind=\"messages\"} 20800010",
            "chatmail_storage_bytes{kind=\"extra\"} 105",
            "chatmail_storage_bytes{kind=\"total\"} 20800115",
            "chatmail_messages_bytes{min_size=\"0\"} 20800010",
            "chatmail_messages_count{min_size=\"10485760\"} 1",
            "chatmail_accounts{kind=\"all\"} 3",
            "chatmail_accounts{kind=\"ci\"} 1",
            "chatmail_accounts{kind=\"user\"} 2",
            "chatmail_accounts_active{days=\"1\"} 1",
            "chatmail_accounts_active{days=\"150\"} 2",
            "# TYPE chatmail_accounts_active gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // every sample line is "name{labels} value" or "name value"
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = l.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
        }
    }

    #[test]
    fn human_text() {
        let text = sample().human(Path::new("/m"), NOW);
        assert!(text.contains("mailboxes:      4"), "{text}");
        assert!(text.contains("accounts:       3 (2 users, 1 ci)"), "{text}");
        assert!(text.contains(" 30 days:         1 (50.0 %)"), "{text}");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10 * 1024 * 1024), "10.0 MiB");
        let empty = Report::default().human(Path::new("/m"), NOW);
        assert!(empty.contains("(-)"), "{empty}");
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = textfile_path(dir.path());
        assert_eq!(path, dir.path().join(TEXTFILE_NAME));
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let file = dir.path().join("custom.prom");
        assert_eq!(textfile_path(&file), file);
    }
}
