//! A few worker threads taking mailboxes one by one from the shared directory reader.
//!
//! Memory stays bounded: each worker holds one mailbox's listing at a time and its own
//! running totals, which are merged at the end.

use crate::scan::{MailboxDirs, MailboxName};

/// The default number of workers: directory walking waits on the disk as much as on the CPU,
/// so one more than the number of cores keeps both busy.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get() + 1)
}

/// Calls `work` for every mailbox in `dirs` on `jobs` threads; each thread starts with
/// `init()` and its final state is returned.
pub fn for_each_mailbox<S, I, F>(dirs: &MailboxDirs, jobs: usize, init: I, work: F) -> Vec<S>
where
    S: Send,
    I: Fn() -> S + Sync,
    F: Fn(&mut S, &MailboxName) + Sync,
{
    let jobs = jobs.max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut state = init();
                    while let Some(name) = dirs.next_mailbox() {
                        work(&mut state, &name);
                    }
                    state
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}
