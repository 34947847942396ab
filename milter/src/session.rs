//! One milter connection from Postfix: its direction, and the message in progress.
//!
//! Every method returns a [`Step`]; `callbacks.rs` turns it into a milter status and reply.
//! Each verdict is logged here, as one line, without message content.

use std::sync::Arc;

use chatmail_common::mailbox::{Address, Mailboxes};

use crate::message::{BufferBudget, MessageBuffer, Overflow};
use crate::policy::envelope::{Envelope, Sender, strip_angle_brackets};
use crate::policy::verdict::{Refused, Reply, Verdict, log_text};
use crate::policy::{self, Direction, Evaluation};
use crate::ratelimit::SendLimiter;

/// Messages larger than this are checked on the blocking thread pool.
const INLINE_CHECK_MAX: usize = 64 * 1024;
/// Recipients beyond this are refused with a temporary error.
const MAX_RECIPIENTS: usize = 10_000;

/// State shared by every connection of both listeners.
pub struct Shared {
    pub limiter: SendLimiter,
    pub mailboxes: Mailboxes,
    /// Most bytes buffered for one message.
    pub buffer_limit: usize,
    /// Bytes all connections together may buffer.
    pub budget: Arc<BufferBudget>,
}

impl Shared {
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
}

/// What to tell Postfix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Continue,
    Accept,
    Refuse(Reply),
}

struct Transaction {
    envelope: Envelope,
    buffer: MessageBuffer,
}

/// Per-connection state.
pub struct Session {
    shared: Arc<Shared>,
    direction: Direction,
    transaction: Option<Transaction>,
    /// Outbound MAIL FROM without SASL login: Postfix itself refuses such recipients; one
    /// that reaches us means Postfix is misconfigured.
    unauthenticated: bool,
}

impl Session {
    pub fn new(shared: Arc<Shared>, direction: Direction) -> Self {
        Session {
            shared,
            direction,
            transaction: None,
            unauthenticated: false,
        }
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// `MAIL FROM`: checks the connection's macros against the listener, the sender, and
    /// (outbound) the rate limit; starts a new message.
    ///
    /// An outbound MAIL FROM without SASL login is left to Postfix, whose submission
    /// restrictions refuse its recipients with a permanent error (clients probing port 587
    /// are normal); only a recipient that Postfix accepted anyway is a configuration error.
    pub fn mail(&mut self, arg: &str, auth_authen: Option<&str>) -> Step {
        self.transaction = None;
        self.unauthenticated = false;
        let sender = Sender::parse(arg);
        let authenticated = auth_authen.is_some_and(|a| !a.is_empty());
        match (self.direction, authenticated) {
            (Direction::Outbound, false) => {
                self.unauthenticated = true;
                return Step::Continue;
            }
            (Direction::Inbound, true) => {
                return self.configuration_error(
                    "the inbound listener got an authenticated session: \
                     point only the port 25 smtpd_milters at it",
                    &sender,
                );
            }
            _ => {}
        }
        if let Err(refused) = policy::check_sender(self.direction, &sender) {
            return self.refuse_now(refused, &sender);
        }
        if self.direction == Direction::Outbound
            && let Sender::Address(addr) = &sender
            && self.shared.limiter.check(addr.as_str()).is_err()
        {
            return self.refuse_now(Refused::RateLimited(addr.to_string()), &sender);
        }
        self.transaction = Some(Transaction {
            envelope: Envelope {
                sender,
                recipients: Vec::new(),
            },
            buffer: MessageBuffer::new(self.shared.buffer_limit, self.shared.budget.clone()),
        });
        Step::Continue
    }

    fn configuration_error(&self, why: &'static str, sender: &Sender) -> Step {
        let refused = Refused::ConfigurationError(why);
        tracing::error!(
            listener = self.direction.name(),
            "{}",
            log_text(
                self.direction,
                &Verdict::Refuse(refused.clone()),
                sender.as_str()
            )
        );
        Step::Refuse(refused.reply())
    }

    fn refuse_now(&self, refused: Refused, sender: &Sender) -> Step {
        tracing::warn!(
            listener = self.direction.name(),
            "{}",
            log_text(
                self.direction,
                &Verdict::Refuse(refused.clone()),
                sender.as_str()
            )
        );
        Step::Refuse(refused.reply())
    }

    /// `RCPT TO`.
    pub fn rcpt(&mut self, arg: &str) -> Step {
        if self.unauthenticated {
            return self.configuration_error(
                "Postfix accepted a recipient of an unauthenticated session on the outbound \
                 listener: point only submission/smtps smtpd_milters at it, and let them \
                 require SASL login",
                &Sender::Null,
            );
        }
        let Some(t) = self.transaction.as_mut() else {
            return self.out_of_order("RCPT");
        };
        if t.envelope.recipients.len() >= MAX_RECIPIENTS {
            return Step::Refuse(Reply {
                code: "452",
                xcode: "4.5.3",
                text: "Too many recipients".into(),
            });
        }
        t.envelope
            .recipients
            .push(strip_angle_brackets(arg).to_string());
        Step::Continue
    }

    /// One header field.
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Step {
        match self.transaction.as_mut() {
            Some(t) => {
                t.buffer.header(name, value);
                Step::Continue
            }
            None => self.out_of_order("header"),
        }
    }

    /// One body chunk.
    pub fn body(&mut self, chunk: &[u8]) -> Step {
        match self.transaction.as_mut() {
            Some(t) => {
                t.buffer.body(chunk);
                Step::Continue
            }
            None => self.out_of_order("body"),
        }
    }

    /// End of message: the verdict.
    pub async fn end_of_message(&mut self, queue_id: &str) -> Step {
        let Some(t) = self.transaction.take() else {
            return self.out_of_order("end of message");
        };
        let direction = self.direction;
        let sender = t.envelope.sender.as_str().to_string();
        let recipients = t.envelope.recipients.len();
        let size = t.buffer.len();
        let headers = t.buffer.header_count();

        let evaluation = if let Some(overflow) = t.buffer.overflow() {
            let refused = match overflow {
                Overflow::TooBig => Refused::TooBig,
                Overflow::OverBudget => Refused::Busy,
            };
            Evaluation {
                verdict: Verdict::Refuse(refused),
                not_encrypted: None,
            }
        } else {
            let shared = self.shared.clone();
            let raw = t.buffer.finish();
            let envelope = t.envelope;
            let check = move || {
                let enforces = |a: &Address| shared.mailboxes.mailbox(a).enforces_e2ee_incoming();
                policy::evaluate(direction, &envelope, &raw, &enforces)
            };
            if direction == Direction::Outbound && size <= INLINE_CHECK_MAX {
                check()
            } else {
                match tokio::task::spawn_blocking(check).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(queue_id, error = %e, "message check failed");
                        Evaluation {
                            verdict: Verdict::Refuse(Refused::Internal),
                            not_encrypted: None,
                        }
                    }
                }
            }
        };

        let text = log_text(direction, &evaluation.verdict, &sender);
        let reason = evaluation
            .not_encrypted
            .as_ref()
            .map(tracing::field::display);
        match &evaluation.verdict {
            Verdict::Accept(_) => {
                tracing::info!(queue_id, from = %sender, recipients, size, headers, reason, "{text}");
                Step::Accept
            }
            Verdict::Refuse(refused) => {
                let reply = refused.reply();
                if matches!(refused, Refused::Internal) {
                    tracing::error!(queue_id, from = %sender, recipients, size, "{text}");
                } else {
                    tracing::warn!(queue_id, from = %sender, recipients, size, headers, reason,
                        reply = %reply.line(), "{text}");
                }
                Step::Refuse(reply)
            }
        }
    }

    /// The SMTP transaction was aborted (RSET, client gone, rejected by Postfix).
    pub fn abort(&mut self) {
        self.transaction = None;
        self.unauthenticated = false;
    }

    fn out_of_order(&self, stage: &str) -> Step {
        tracing::error!(
            listener = self.direction.name(),
            stage,
            "milter command without MAIL FROM; tempfailing"
        );
        Step::Refuse(Refused::Internal.reply())
    }
}
