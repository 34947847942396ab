//! Progress on stderr for long runs: a status line redrawn on a terminal, a line every few
//! seconds otherwise (only with `--progress`), nothing under a timer.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Counters the workers bump and the progress thread reads.
#[derive(Debug, Default)]
pub struct Progress {
    pub mailboxes: AtomicU64,
    pub files: AtomicU64,
    pub removed_mailboxes: AtomicU64,
    pub removed_files: AtomicU64,
}

impl Progress {
    pub fn mailbox_done(&self, files: u64, removed_mailbox: bool, removed_files: u64) {
        self.mailboxes.fetch_add(1, Ordering::Relaxed);
        self.files.fetch_add(files, Ordering::Relaxed);
        self.removed_mailboxes
            .fetch_add(u64::from(removed_mailbox), Ordering::Relaxed);
        self.removed_files
            .fetch_add(removed_files, Ordering::Relaxed);
    }

    fn line(&self, started: Instant) -> String {
        format!(
            "{} mailboxes, {} files scanned; {} mailboxes, {} files to remove; {:.0} s",
            self.mailboxes.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
            self.removed_mailboxes.load(Ordering::Relaxed),
            self.removed_files.load(Ordering::Relaxed),
            started.elapsed().as_secs_f64()
        )
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Off,
    /// Redraw one line (stderr is a terminal).
    Terminal,
    /// A plain line every few seconds.
    Lines,
}

impl Display {
    /// `--progress` forces it on; otherwise it is on only when stderr is a terminal.
    pub fn choose(requested: bool, stderr_is_terminal: bool) -> Display {
        match (requested, stderr_is_terminal) {
            (_, true) => Display::Terminal,
            (true, false) => Display::Lines,
            (false, false) => Display::Off,
        }
    }
}

/// Runs `f` while a thread shows `progress`.
pub fn with_progress<T>(display: Display, progress: &Progress, f: impl FnOnce() -> T) -> T {
    if display == Display::Off {
        return f();
    }
    let started = Instant::now();
    let interval = match display {
        Display::Terminal => Duration::from_millis(250),
        _ => Duration::from_secs(10),
    };
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                let mut err = std::io::stderr().lock();
                let _ = match display {
                    Display::Terminal => write!(err, "\r\x1b[K{}", progress.line(started)),
                    _ => writeln!(err, "progress: {}", progress.line(started)),
                };
                let _ = err.flush();
            }
            if display == Display::Terminal {
                let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            }
        });
        let result = f();
        drop(stop);
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_unless_asked_or_on_a_terminal() {
        assert_eq!(Display::choose(false, false), Display::Off);
        assert_eq!(Display::choose(true, false), Display::Lines);
        assert_eq!(Display::choose(false, true), Display::Terminal);
    }

    #[test]
    fn counters_add_up() {
        let p = Progress::default();
        p.mailbox_done(3, false, 1);
        p.mailbox_done(0, true, 0);
        assert!(
            p.line(Instant::now())
                .starts_with("2 mailboxes, 3 files scanned; 1 mailboxes, 1 files")
        );
        assert_eq!(with_progress(Display::Off, &p, || 7), 7);
    }
}
