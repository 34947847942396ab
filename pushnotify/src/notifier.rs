//! Sends queued notifications to the gateway: a dispatcher task keeps every pending
//! notification in a timer heap and starts a request for each one that is due, with at most
//! `max_in_flight` requests at a time, all on one shared HTTP client.
//!
//! 200 → done (queue file deleted). 410 → done, and the token is removed from the user's
//! `metadata.json`. Anything else, a timeout or a connection error → retried by the
//! [`Schedule`], or dropped with an error log once past its deadline.
//!
//! Handing work to the notifier never waits: the dict service only waits for the queue file
//! to be on disk, so a slow or dead gateway cannot slow down IMAP or LMTP.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use chatmail_common::unix_time;

use crate::clock::Clock;
use crate::gateway::{Gateway, Outcome};
use crate::queue::{Queue, QueueItem};
use crate::retry::{Decision, Schedule};
use crate::tokens::TokenStore;

/// Default bound on concurrent gateway requests.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Counters, for logs, tests and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: AtomicU64,
    pub gone: AtomicU64,
    pub failed_tries: AtomicU64,
    pub dropped: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub gone: u64,
    pub failed_tries: u64,
    pub dropped: u64,
}

impl Stats {
    pub fn snapshot(&self) -> Counts {
        let get = |c: &AtomicU64| c.load(AtomicOrdering::Relaxed);
        Counts {
            delivered: get(&self.delivered),
            gone: get(&self.gone),
            failed_tries: get(&self.failed_tries),
            dropped: get(&self.dropped),
        }
    }
}

/// A notification waiting for its next try.
struct Job {
    item: QueueItem,
    /// Tries that have failed so far.
    failed: usize,
    due: Instant,
}

/// Heap entry: earliest due first, then oldest notification, then arrival order.
struct Entry {
    key: (Instant, i64, u64),
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

/// Everything a request task needs.
struct Context {
    gateway: Gateway,
    queue: Queue,
    tokens: Arc<TokenStore>,
    clock: Arc<dyn Clock>,
    schedule: Schedule,
    stats: Arc<Stats>,
    retries: mpsc::UnboundedSender<Job>,
}

/// Options of the notifier.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_in_flight: usize,
    pub schedule: Schedule,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            schedule: Schedule::default(),
        }
    }
}

/// A handle for submitting notifications; cheap to clone.
#[derive(Clone)]
pub struct Notifier {
    submit: mpsc::UnboundedSender<Job>,
    stats: Arc<Stats>,
}

impl Notifier {
    /// Starts the dispatcher. Aborting the returned task stops it together with every request
    /// in flight; queue files of unfinished notifications stay on disk.
    pub fn start(
        gateway: Gateway,
        queue: Queue,
        tokens: Arc<TokenStore>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> (Notifier, tokio::task::JoinHandle<()>) {
        let (submit, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let context = Arc::new(Context {
            gateway,
            queue,
            tokens,
            clock,
            schedule: options.schedule,
            stats: stats.clone(),
            retries: submit.clone(),
        });
        let task = tokio::spawn(dispatch(context, rx, options.max_in_flight.max(1)));
        (Notifier { submit, stats }, task)
    }

    /// Queues notifications (already on disk) for an immediate first try.
    pub fn submit(&self, items: impl IntoIterator<Item = QueueItem>) {
        let now = Instant::now();
        for item in items {
            let job = Job {
                item,
                failed: 0,
                due: now,
            };
            if self.submit.send(job).is_err() {
                tracing::error!("the notifier has stopped; the notification stays queued on disk");
            }
        }
    }

    pub fn counts(&self) -> Counts {
        self.stats.snapshot()
    }
}

async fn dispatch(
    context: Arc<Context>,
    mut rx: mpsc::UnboundedReceiver<Job>,
    max_in_flight: usize,
) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    let mut in_flight = JoinSet::new();
    let mut seq: u64 = 0;
    loop {
        // start everything that is due, as far as the bound allows
        let now = Instant::now();
        while in_flight.len() < max_in_flight
            && heap.peek().is_some_and(|Reverse(e)| e.key.0 <= now)
        {
            let Some(Reverse(entry)) = heap.pop() else {
                break;
            };
            in_flight.spawn(attempt(context.clone(), entry.job));
        }
        let next_due = heap.peek().map(|Reverse(e)| e.key.0);
        let waiting_for_timer = next_due.is_some_and(|d| d > now);
        tokio::select! {
            job = rx.recv() => {
                // never None: the context holds a sender
                if let Some(job) = job {
                    seq += 1;
                    let key = (job.due, job.item.start_ts, seq);
                    heap.push(Reverse(Entry { key, job }));
                }
            }
            Some(result) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Err(e) = result && e.is_panic() {
                    tracing::error!(error = %e, "notification task panicked; it is retried after a restart");
                }
            }
            () = tokio::time::sleep_until(next_due.unwrap_or(now)), if waiting_for_timer => {}
        }
    }
}

async fn attempt(context: Arc<Context>, mut job: Job) {
    let outcome = context.gateway.notify(&job.item.token).await;
    let item = &job.item;
    match outcome {
        Outcome::Delivered => {
            context
                .stats
                .delivered
                .fetch_add(1, AtomicOrdering::Relaxed);
            tracing::debug!(id = %item.id, addr = %item.addr.as_str(), "notification delivered");
            remove_file(&context, &item.id).await;
        }
        Outcome::Gone => {
            context.stats.gone.fetch_add(1, AtomicOrdering::Relaxed);
            tracing::info!(id = %item.id, addr = %item.addr.as_str(), "gateway says the device token is gone; removing it");
            let tokens = context.tokens.clone();
            let (addr, token) = (item.addr.clone(), item.token.clone());
            match tokio::task::spawn_blocking(move || tokens.remove(&addr, &token)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(addr = %item.addr.as_str(), error = %e, "could not remove a gone device token")
                }
                Err(e) => tracing::error!(error = %e, "token removal task failed"),
            }
            remove_file(&context, &item.id).await;
        }
        Outcome::Failed(reason) => {
            context
                .stats
                .failed_tries
                .fetch_add(1, AtomicOrdering::Relaxed);
            job.failed += 1;
            let start = unix_time::to_system(item.start_ts);
            match context
                .schedule
                .after_failure(start, job.failed, context.clock.now())
            {
                Decision::Retry { delay, .. } => {
                    tracing::warn!(id = %item.id, %reason, tries = job.failed, retry_in = ?delay, "notification request failed");
                    job.due = Instant::now() + delay;
                    // the dispatcher lives as long as this context
                    let _ = context.retries.send(job);
                }
                Decision::Drop => {
                    context.stats.dropped.fetch_add(1, AtomicOrdering::Relaxed);
                    tracing::error!(id = %item.id, addr = %item.addr.as_str(), %reason, tries = job.failed, "notification exceeded deadline; dropped");
                    remove_file(&context, &item.id).await;
                }
            }
        }
    }
}

async fn remove_file(context: &Arc<Context>, id: &str) {
    let queue = context.queue.clone();
    let id_owned = id.to_string();
    match tokio::task::spawn_blocking(move || queue.remove(&id_owned)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(id, error = %e, "could not delete a done notification; it will be sent again after a restart")
        }
        Err(e) => tracing::error!(id, error = %e, "queue file removal task failed"),
    }
}
