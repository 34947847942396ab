//! `chatmail-expire`: the daily expiry run, the quota trim Dovecot calls, and the storage
//! report.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use chatmail_common::config::{Config, DEFAULT_CONFIG_PATH};
use chatmail_common::daemon::{exit_with, init_logging};
use chatmail_common::mailbox::DAY;
use chatmail_common::unix_time;
use clap::{Parser, Subcommand};

use chatmail_expire::daily::{self, DailyOptions};
use chatmail_expire::progress::{Display, Progress, with_progress};
use chatmail_expire::{pool, quota, report};

/// Expiry of old mail, large mail and abandoned accounts of a chatmail relay.
///
/// Without a command: the daily run. It is a dry run unless --remove is given, and ends with
/// one summary line on stdout.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// chatmail.ini to read
    #[arg(long, global = true, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Really delete (without it nothing on disk changes)
    #[arg(long)]
    remove: bool,
    /// List what goes, on stderr
    #[arg(short, long)]
    verbose: bool,
    /// Apply the rules as if it were N days ago (every cut-off moves N days earlier)
    #[arg(long, global = true, value_name = "N", default_value_t = 0)]
    days: u32,
    /// Look at only the first N entries of the mailboxes directory
    #[arg(long, global = true, value_name = "N")]
    maxnum: Option<usize>,
    /// Show progress on stderr (automatic on a terminal)
    #[arg(long, global = true)]
    progress: bool,
    /// Worker threads (default: number of cores + 1)
    #[arg(long, global = true, value_name = "N")]
    jobs: Option<usize>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Trim one mailbox to TARGET_MB (oldest first, never the last 24 hours); called by
    /// Dovecot's quota_warning. Acts immediately; does not read chatmail.ini.
    Quota {
        /// Target size in MiB, e.g. 350 or 0.7 (by the S= sizes in the file names)
        #[arg(value_name = "TARGET_MB", value_parser = quota::parse_target_mb)]
        target: u64,
        /// The mailbox directory, <mailboxes_dir>/<address>
        #[arg(value_name = "MAILBOX_DIR")]
        mailbox_dir: PathBuf,
    },
    /// Mailbox count, storage by kind and message size, active accounts
    Report {
        /// Write Prometheus text format atomically to DIR/fsreport.prom (or to the file DIR)
        #[arg(long, value_name = "DIR")]
        textfile: Option<PathBuf>,
    },
}

fn load_config(path: &std::path::Path) -> Config {
    Config::load(path).unwrap_or_else(|e| exit_with(e))
}

/// Arguments, with the reference's `chatmail-quota-expire TARGET_MB MAILBOX_DIR` accepted
/// when the binary is called by that name (a symlink), as `chatmail-expire quota ...`.
fn args() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called_as_quota = args.first().is_some_and(|a| {
        std::path::Path::new(a).file_name() == Some(std::ffi::OsStr::new("chatmail-quota-expire"))
    });
    if called_as_quota {
        args.insert(1, "quota".into());
    }
    args
}

fn main() {
    let cli = Cli::parse_from(args());
    init_logging();
    let real_now = unix_time::now();
    let now = real_now - i64::from(cli.days) * DAY;
    let jobs = cli.jobs.unwrap_or_else(pool::default_jobs);
    let display = Display::choose(cli.progress, std::io::stderr().is_terminal());
    let progress = Progress::default();
    match cli.command {
        Some(Command::Quota {
            target,
            mailbox_dir,
        }) => match quota::trim(target, &mailbox_dir, real_now) {
            Ok(t) => {
                if t.removed > 0 {
                    eprintln!(
                        "quota-expire: removed {} message(s) from {}",
                        t.removed, t.name
                    );
                }
            }
            Err(e) => exit_with(e),
        },
        Some(Command::Report { textfile }) => {
            let config = load_config(&cli.config);
            let result = with_progress(display, &progress, || {
                report::collect(&config.mailboxes_dir, cli.maxnum, jobs, now, &progress)
            });
            let rep = result.unwrap_or_else(|e| {
                exit_with(format!(
                    "cannot read mailboxes directory {}: {e}",
                    config.mailboxes_dir.display()
                ))
            });
            match textfile {
                None => print!("{}", rep.human(&config.mailboxes_dir, now)),
                Some(target) => {
                    let path = report::textfile_path(&target);
                    if let Err(e) = report::write_textfile(&path, &rep.prometheus()) {
                        exit_with(format!("cannot write {}: {e}", path.display()));
                    }
                }
            }
        }
        None => {
            let config = load_config(&cli.config);
            let started = Instant::now();
            let opts = DailyOptions {
                remove: cli.remove,
                verbose: cli.verbose,
                now,
                real_now,
                maxnum: cli.maxnum,
                jobs,
            };
            let totals =
                with_progress(display, &progress, || daily::run(&config, &opts, &progress))
                    .unwrap_or_else(|e| exit_with(e));
            if totals.errors > 0 {
                tracing::warn!(
                    "{} scan or delete operations failed (see above)",
                    totals.errors
                );
            }
            println!("{}", totals.summary(started.elapsed().as_secs_f64()));
        }
    }
}
