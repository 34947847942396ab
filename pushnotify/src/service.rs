//! Wires the parts together: token store, queue (reloaded from disk), notifier and the dict
//! handler. Used by `main` and by the in-process tests, which start and restart it.

use std::path::PathBuf;
use std::sync::Arc;

use chatmail_common::config::Config;
use chatmail_common::mailbox::Mailboxes;

use crate::clock::Clock;
use crate::gateway::Gateway;
use crate::metadata::Metadata;
use crate::notifier::{self, Notifier};
use crate::queue::Queue;
use crate::server_info::ServerInfo;
use crate::tokens::TokenStore;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("vmail dir does not exist: {}", .0.display())]
    NoMailboxesDir(PathBuf),
    #[error("notification queue {}: {source}", path.display())]
    Queue {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("internal error: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Everything the service needs besides the gateway and the clock.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mailboxes_dir: PathBuf,
    pub info: ServerInfo,
    pub notifier: notifier::Options,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            mailboxes_dir: config.mailboxes_dir.clone(),
            info: ServerInfo::from_config(config),
            notifier: notifier::Options::default(),
        }
    }
}

/// A running service: the dict handler to serve and the notifier behind it.
pub struct Service {
    pub handler: Arc<Metadata>,
    pub notifier: Notifier,
    /// The dispatcher; aborting it stops all deliveries (pending ones stay on disk).
    pub notifier_task: tokio::task::JoinHandle<()>,
    /// Notifications found on disk at start.
    pub requeued: usize,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.notifier_task.abort();
    }
}

/// Opens the queue, requeues what is on disk and starts the notifier.
pub async fn start(
    settings: Settings,
    gateway: Gateway,
    clock: Arc<dyn Clock>,
) -> Result<Service, StartError> {
    let root = settings.mailboxes_dir.clone();
    if !tokio::fs::metadata(&root).await.is_ok_and(|m| m.is_dir()) {
        return Err(StartError::NoMailboxesDir(root));
    }
    let mailboxes = Mailboxes::new(root);
    let dir = mailboxes.pending_notifications_dir();
    let (queue, items) = {
        let path = dir.clone();
        tokio::task::spawn_blocking(move || {
            let queue = Queue::open(path)?;
            let items = queue.load()?;
            Ok::<_, std::io::Error>((queue, items))
        })
        .await?
        .map_err(|source| StartError::Queue { path: dir, source })?
    };
    let tokens = Arc::new(TokenStore::new(mailboxes, clock.clone()));
    let (notifier, notifier_task) = Notifier::start(
        gateway,
        queue.clone(),
        tokens.clone(),
        clock.clone(),
        settings.notifier,
    );
    let requeued = items.len();
    if requeued > 0 {
        tracing::info!(count = requeued, "requeued pending notifications");
    }
    notifier.submit(items);
    let handler = Arc::new(Metadata {
        tokens,
        queue,
        notifier: notifier.clone(),
        info: settings.info,
        clock,
    });
    Ok(Service {
        handler,
        notifier,
        notifier_task,
        requeued,
    })
}
