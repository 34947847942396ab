//! State shared by every connection of every listener, and how `chatmail.ini` makes it.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chatmail_common::config::Config;
use chatmail_common::mailbox::Mailboxes;

use crate::dkim::{Dkim, DkimError};
use crate::message::BufferBudget;
use crate::ratelimit::SendLimiter;

/// How often senders that stayed quiet are dropped from the rate limiter.
const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// State shared by every connection of every listener.
pub struct Shared {
    pub limiter: SendLimiter,
    /// The domain of this relay's addresses (`example.org`, or `[1.2.3.4]`).
    pub mail_domain: String,
    pub mailboxes: Mailboxes,
    /// Most bytes buffered for one message.
    pub buffer_limit: usize,
    /// Bytes all connections together may buffer.
    pub budget: Arc<BufferBudget>,
    /// DKIM signing (outbound) and verification (inbound); `None` on an IP-only relay.
    pub dkim: Option<Dkim>,
}

impl Shared {
    /// The state for `config`: its send limits, mailboxes, message size and DKIM key.
    /// `max_buffered_mb` overrides the default budget of all message buffers together.
    ///
    /// Fails when the DKIM key of a relay with a domain name cannot be used.
    pub fn from_config(config: &Config, max_buffered_mb: Option<usize>) -> Result<Self, DkimError> {
        let dkim = Dkim::from_config(config)?;
        let buffer_limit = Self::buffer_limit_for(config.max_message_size);
        let budget = max_buffered_mb
            .map(|mb| mb.saturating_mul(1024 * 1024))
            .unwrap_or_else(|| Self::default_budget(buffer_limit));
        Ok(Shared {
            // chatmail.ini refuses 0 for both; MIN keeps a limit if it ever gets through.
            limiter: SendLimiter::new(
                NonZeroU32::new(config.max_user_send_per_minute).unwrap_or(NonZeroU32::MIN),
                NonZeroU32::new(config.max_user_send_burst_size).unwrap_or(NonZeroU32::MIN),
            ),
            mail_domain: config.mail_domain.clone(),
            mailboxes: Mailboxes::new(config.mailboxes_dir.clone()),
            buffer_limit,
            budget: Arc::new(BufferBudget::new(budget)),
            dkim,
        })
    }

    /// Bytes to buffer for a `max_message_size` limit: Postfix counts a line end as one byte,
    /// the milter protocol sends CRLF, so a message of only line ends doubles; plus headers.
    pub fn buffer_limit_for(max_message_size: u64) -> usize {
        usize::try_from(max_message_size)
            .unwrap_or(usize::MAX / 4)
            .saturating_mul(2)
            .saturating_add(1024 * 1024)
    }

    /// The default budget for all buffers together: 512 MiB, and at least two messages of
    /// the largest size.
    pub fn default_budget(buffer_limit: usize) -> usize {
        (512 * 1024 * 1024usize).max(buffer_limit.saturating_mul(2))
    }

    /// Drops idle senders from the rate limiter every minute, forever (spawn it).
    pub async fn forget_idle_senders(self: Arc<Self>) {
        let mut tick = tokio::time::interval(FORGET_IDLE_EVERY);
        loop {
            tick.tick().await;
            self.limiter.forget_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, params: &str) -> Config {
        let path = dir.join("chatmail.ini");
        let mail = dir.join("mail");
        std::fs::write(
            &path,
            format!("[params]\nmailboxes_dir = {}\n{params}", mail.display()),
        )
        .unwrap();
        Config::load(&path).unwrap()
    }

    #[test]
    fn from_config_takes_chatmail_ini() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(
            dir.path(),
            "mail_domain = 127.0.0.1\nmax_message_size = 1000000\n",
        );
        let shared = Shared::from_config(&c, Some(3)).unwrap();
        assert!(shared.dkim.is_none(), "an IP-only relay has no DKIM");
        assert_eq!(shared.buffer_limit, 2_000_000 + 1024 * 1024);
        assert_eq!(shared.mailboxes.root(), dir.path().join("mail"));
    }

    #[test]
    fn from_config_fails_without_the_dkim_key_of_a_named_relay() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("missing.key");
        let c = config(
            dir.path(),
            &format!(
                "mail_domain = chat.example.org\ndkim_key = {}\n",
                key.display()
            ),
        );
        let err = Shared::from_config(&c, None)
            .err()
            .expect("no key, no milter");
        assert!(err.to_string().contains("missing.key"), "{err}");
    }
}
