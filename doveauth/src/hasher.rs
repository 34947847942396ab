//! Password hashing on one thread per core, fed by a queue.
//!
//! First logins are limited by SHA512-CRYPT on all cores: a hashing thread takes the next
//! queued password as soon as it is done with one, so no core waits between two first logins
//! (a semaphore in front of tokio's blocking pool left a core idle while the next waiter was
//! woken and its task handed to a blocking thread: creations at 0.7–0.8 of hashing alone,
//! against 0.9 with this pool, `cargo bench -p chatmail-doveauth`). And a burst of first
//! logins cannot take more than these threads from lookups of existing accounts.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::password::{self, HashError};

struct Job {
    password: String,
    reply: oneshot::Sender<Result<String, HashError>>,
}

/// The hashing threads; they end when the `Hasher` is dropped.
pub struct Hasher {
    jobs: mpsc::Sender<Job>,
}

/// Why a hash has no result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("the hashing threads are gone")]
    Gone,
}

impl Hasher {
    /// Starts `threads` hashing threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Hasher> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("hash-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Hasher { jobs })
    }

    /// Hashes `password` on a hashing thread.
    pub async fn hash(&self, password: &str) -> Result<String, PoolError> {
        let (reply, result) = oneshot::channel();
        let job = Job {
            password: password.to_string(),
            reply,
        };
        self.jobs.send(job).map_err(|_| PoolError::Gone)?;
        Ok(result.await.map_err(|_| PoolError::Gone)??)
    }
}

/// One hashing thread: takes jobs until every sender is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // the lock is held only while taking a job, not while hashing
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // a login that has gone away meanwhile (its connection closed) is not hashed
        if job.reply.is_closed() {
            continue;
        }
        let _ = job.reply.send(password::hash(&job.password));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_concurrently_and_verifies() {
        let hasher = Arc::new(Hasher::new(2).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move {
                    let pw = format!("password-{i}");
                    let h = hasher.hash(&pw).await.unwrap();
                    password::verify(&pw, &h)
                })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_dropped_request_does_not_stop_the_pool() {
        let hasher = Hasher::new(1).unwrap();
        let abandoned = hasher.hash("first-password");
        drop(abandoned);
        // a future dropped before its first poll never queued anything; one dropped while
        // queued leaves a job whose reply goes nowhere
        let queued = tokio::time::timeout(
            std::time::Duration::from_millis(1),
            hasher.hash("second-password"),
        )
        .await;
        drop(queued);
        let h = hasher.hash("third-password").await.unwrap();
        assert!(password::verify("third-password", &h));
    }
}
