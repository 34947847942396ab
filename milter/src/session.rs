//! One milter connection from Postfix: its direction, and the message in progress.
//!
//! Every method returns a [`Step`]; `callbacks.rs` turns it into a milter status and reply.
//! Each verdict is logged here, as one line, without message content.

use std::sync::Arc;
use std::time::Duration;

use chatmail_common::mailbox::Incoming;

use crate::dkim::DkimVerdict;
use crate::message::{Finished, MessageBuffer, Overflow};
use crate::policy::envelope::{Envelope, Recipient, Sender, strip_angle_brackets};
use crate::policy::recipient::{Destination, destination};
use crate::policy::verdict::{Refused, Reply, Verdict, log_text, reply_safe};
use crate::policy::{self, Direction, Evaluation};
pub use crate::shared::Shared;

/// Messages larger than this are checked on the blocking thread pool.
const INLINE_CHECK_MAX: usize = 64 * 1024;
/// Recipients beyond this are refused with a temporary error.
const MAX_RECIPIENTS: usize = 10_000;

/// What to tell Postfix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Continue,
    Accept,
    /// Accept after adding a `DKIM-Signature` header with this value (LF-folded) on top.
    AcceptSigned(String),
    Refuse(Reply),
}

/// Reply to inbound mail without any DKIM signature (the reference's reply).
pub fn dkim_missing() -> Reply {
    Reply {
        code: "554",
        xcode: "5.7.1",
        text: "No DKIM signature found".into(),
    }
}

/// Reply to inbound mail whose DKIM signatures are all unaligned, broken or not verifiable
/// with the published key.
pub fn dkim_rejected() -> Reply {
    Reply {
        code: "550",
        xcode: "5.7.1",
        text: "No valid DKIM signature found".into(),
    }
}

/// Reply to inbound mail whose DKIM signature cannot be checked now (DNS trouble).
pub fn dkim_unverifiable() -> Reply {
    Reply {
        code: "451",
        xcode: "4.7.5",
        text: "DKIM signature cannot be checked now (DNS lookup failed), try again later".into(),
    }
}

struct Transaction {
    envelope: Envelope,
    buffer: MessageBuffer,
    /// The rate limit's answer for this message (outbound), asked at its first RCPT.
    rate: Option<Result<(), Duration>>,
}

/// Per-connection state.
pub struct Session {
    shared: Arc<Shared>,
    direction: Direction,
    transaction: Option<Transaction>,
    /// Outbound MAIL FROM without SASL login: Postfix itself refuses such recipients; one
    /// that reaches us means Postfix is misconfigured.
    unauthenticated: bool,
    /// A recipient refusal that could not be answered at RCPT (Postfix was told RCPT needs
    /// no reply): the end of message answers it instead.
    deferred: Option<Reply>,
}

impl Session {
    pub fn new(shared: Arc<Shared>, direction: Direction) -> Self {
        Session {
            shared,
            direction,
            transaction: None,
            unauthenticated: false,
            deferred: None,
        }
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// `MAIL FROM`: checks the connection's macros against the listener and the sender;
    /// starts a new message.
    ///
    /// An outbound MAIL FROM without SASL login is left to Postfix, whose submission
    /// restrictions refuse its recipients with a permanent error (clients probing port 587
    /// are normal); only a recipient that Postfix accepted anyway is a configuration error.
    pub fn mail(&mut self, arg: &str, auth_authen: Option<&str>) -> Step {
        self.abort();
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
            (Direction::Internal, true) => {
                return self.configuration_error(
                    "the internal listener got an authenticated session: \
                     point only non_smtpd_milters at it",
                    &sender,
                );
            }
            _ => {}
        }
        if let Err(refused) = policy::check_sender(self.direction, &sender) {
            return self.refuse_now(refused, &sender);
        }
        self.transaction = Some(Transaction {
            envelope: Envelope {
                sender,
                recipients: Vec::new(),
            },
            buffer: MessageBuffer::new(self.shared.buffer_limit, self.shared.budget.clone()),
            rate: None,
        });
        Step::Continue
    }

    fn configuration_error(&self, why: &'static str, sender: &Sender) -> Step {
        self.refuse_now(Refused::ConfigurationError(why), sender)
    }

    /// Refuses before end of message, with one log line: an error for a configuration error
    /// (the operator must act), a warning otherwise.
    fn refuse_now(&self, refused: Refused, sender: &Sender) -> Step {
        let text = log_text(
            self.direction,
            &Verdict::Refuse(refused.clone()),
            sender.as_str(),
        );
        let listener = self.direction.name();
        if matches!(refused, Refused::ConfigurationError(_)) {
            tracing::error!(listener, "{text}");
        } else {
            tracing::warn!(listener, "{text}");
        }
        Step::Refuse(refused.reply())
    }

    /// `RCPT TO`: `arg` as the client wrote it, `resolved` the address Postfix resolved it to
    /// (the `{rcpt_addr}` macro), which alone decides ([`crate::policy::recipient`]).
    ///
    /// Inbound, every recipient must be an existing mailbox of this relay; outbound, every
    /// recipient of this relay's domain must. Anything else is refused here, in the SMTP
    /// dialogue, so that Postfix never takes mail it would bounce. A mailbox that cannot be
    /// read is a temporary failure.
    ///
    /// The lookup (two `stat`s in the mailbox directory) runs here on the event loop: a trip
    /// to the blocking pool and back cost 0.1 ms of context switches per recipient on the
    /// relay under load, many times the lookup itself.
    pub fn rcpt(&mut self, arg: &str, resolved: Option<&str>) -> Step {
        if self.unauthenticated {
            return self.configuration_error(
                "Postfix accepted a recipient of an unauthenticated session on the outbound \
                 listener: point only submission/smtps smtpd_milters at it, and let them \
                 require SASL login",
                &Sender::Null,
            );
        }
        if self.transaction.is_none() {
            return self.out_of_order("RCPT");
        }
        if let Some(step) = self.rate_limit() {
            return step;
        }
        let Some(t) = self.transaction.as_ref() else {
            return self.out_of_order("RCPT");
        };
        if t.envelope.recipients.len() >= MAX_RECIPIENTS {
            return Step::Refuse(Reply {
                code: "452",
                xcode: "4.5.3",
                text: "Too many recipients".into(),
            });
        }
        let given = strip_angle_brackets(arg).to_string();
        let recipient = match self.direction {
            // Postfix's own mail: RCPT must not be refused there, and nothing is looked up.
            Direction::Internal => Ok(Recipient::Other(given.clone())),
            Direction::Inbound | Direction::Outbound => match resolved {
                Some(resolved) => self.check_recipient(&given, resolved),
                None => {
                    return self.configuration_error(
                        "Postfix sent no {rcpt_addr} macro: do not empty milter_rcpt_macros",
                        &t.envelope.sender,
                    );
                }
            },
        };
        match recipient {
            Ok(r) => {
                if let Some(t) = self.transaction.as_mut() {
                    t.envelope.recipients.push(r);
                }
                Step::Continue
            }
            Err(refused) => {
                let sender = self
                    .transaction
                    .as_ref()
                    .map_or(Sender::Null, |t| t.envelope.sender.clone());
                self.refuse_now(refused, &sender)
            }
        }
    }

    /// Outbound: counts the message against its sender's rate limit at its first RCPT, and
    /// refuses this and every further RCPT of the message if it is over the limit.
    ///
    /// Asked at RCPT, not at MAIL FROM, as the reference's before-queue filter is (Postfix
    /// opens its proxy connection at the first RCPT): clients see a temporary failure per
    /// recipient, which they handle like any other. One message counts once, whatever the
    /// number of its recipients.
    fn rate_limit(&mut self) -> Option<Step> {
        if self.direction != Direction::Outbound {
            return None;
        }
        let t = self.transaction.as_mut()?;
        let Sender::Address(addr) = &t.envelope.sender else {
            return None;
        };
        let rate = *t
            .rate
            .get_or_insert_with(|| self.shared.limiter.check(addr.as_str()));
        let wait = rate.err()?;
        let refused = Refused::RateLimited {
            sender: addr.to_string(),
            wait,
        };
        let sender = t.envelope.sender.clone();
        Some(self.refuse_now(refused, &sender))
    }

    /// The recipient a resolved address names, or why it is refused.
    fn check_recipient(&self, given: &str, resolved: &str) -> Result<Recipient, Refused> {
        let unknown = || Refused::UnknownRecipient(given.to_string());
        let mailbox = match (
            destination(resolved, &self.shared.mail_domain),
            self.direction,
        ) {
            (Destination::Mailbox(mailbox), _) => mailbox,
            (Destination::Remote, Direction::Outbound) => {
                return Ok(Recipient::Other(resolved.to_string()));
            }
            (Destination::Remote | Destination::NotAMailbox, _) => return Err(unknown()),
        };
        let incoming = self.shared.mailboxes.mailbox(&mailbox).incoming();
        match incoming {
            Ok(Incoming::NoAccount) => Err(unknown()),
            Ok(Incoming::AcceptsCleartext) => Ok(Recipient::Mailbox {
                mailbox,
                enforces_e2ee: false,
            }),
            Ok(Incoming::EnforcesE2ee) => Ok(Recipient::Mailbox {
                mailbox,
                enforces_e2ee: true,
            }),
            Err(error) => {
                tracing::error!(listener = self.direction.name(), mailbox = %mailbox, %error,
                    "cannot read a recipient's mailbox; recipient tempfailed");
                Err(Refused::RecipientUnreadable(given.to_string()))
            }
        }
    }

    /// `RCPT TO` without a reply (the internal listener: Postfix's own mail, whose recipients
    /// must not be refused): a refusal is kept for the end of message, which then refuses
    /// the whole message.
    pub fn rcpt_noreply(&mut self, arg: &str, resolved: Option<&str>) {
        if let Step::Refuse(reply) = self.rcpt(arg, resolved) {
            self.deferred.get_or_insert(reply);
        }
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
        if let Some(reply) = self.deferred.take() {
            // logged when it happened
            self.transaction = None;
            return Step::Refuse(reply);
        }
        let Some(t) = self.transaction.take() else {
            return self.out_of_order("end of message");
        };
        let direction = self.direction;
        let sender = t.envelope.sender.as_str().to_string();
        let recipients = t.envelope.recipients.len();
        // A message whose every recipient is a mailbox of this relay goes from Postfix to
        // Dovecot and never leaves the machine: no one would ever verify a signature on it.
        let leaves_relay = t.envelope.recipients.iter().any(|r| r.mailbox().is_none());
        let size = t.buffer.len();
        let headers = t.buffer.header_count();

        let (evaluation, raw) = if let Some(overflow) = t.buffer.overflow() {
            let refused = match overflow {
                Overflow::TooBig => Refused::TooBig,
                Overflow::OverBudget => Refused::Busy,
            };
            let evaluation = Evaluation {
                verdict: Verdict::Refuse(refused),
                not_encrypted: None,
            };
            (evaluation, None)
        } else {
            let raw = t.buffer.finish();
            let envelope = t.envelope;
            let check = move || {
                let evaluation = policy::evaluate(direction, &envelope, &raw);
                (evaluation, Some(raw))
            };
            // The check is pure CPU work (recipients were looked up at RCPT): small messages
            // are checked right here.
            if size <= INLINE_CHECK_MAX {
                check()
            } else {
                match tokio::task::spawn_blocking(check).await {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(queue_id, error = %e, "message check failed");
                        let evaluation = Evaluation {
                            verdict: Verdict::Refuse(Refused::Internal),
                            not_encrypted: None,
                        };
                        (evaluation, None)
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
                let Some(raw) = raw else {
                    tracing::error!(queue_id, "accepted message without its bytes");
                    return Step::Refuse(Refused::Internal.reply());
                };
                let dkim = self.shared.dkim.is_some();
                match direction {
                    // Postfix's own mail (bounces) is signed like users' mail: other relays
                    // refuse mail without a valid signature. One log line for the verdict and
                    // the signature (both texts are what mtail counts).
                    Direction::Outbound | Direction::Internal if dkim && leaves_relay => {
                        match self.sign(queue_id, &sender, raw).await {
                            Some(value) => {
                                tracing::info!(queue_id, from = %sender, recipients, size, headers,
                                    reason, "{text} DKIM-Signature field added");
                                Step::AcceptSigned(value)
                            }
                            None => Step::Refuse(Refused::Internal.reply()),
                        }
                    }
                    Direction::Inbound if dkim => {
                        tracing::info!(queue_id, from = %sender, recipients, size, headers, reason, "{text}");
                        self.verify(queue_id, &sender, raw).await
                    }
                    _ => {
                        tracing::info!(queue_id, from = %sender, recipients, size, headers, reason, "{text}");
                        Step::Accept
                    }
                }
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

    /// Signs a message the policy accepted (outbound and internal mail of a relay with a
    /// domain): the `DKIM-Signature` value, or `None` after logging why not.
    ///
    /// A message of up to 64 kB is signed right here, on the event loop, like its check: an
    /// RSA-2048 signature is about 0.3 ms of CPU (as fast as `openssl speed` on the same
    /// machine), and the trip to the blocking pool and back cost another 0.05 ms of context
    /// switches per message on the relay (measured under load; milter/README.md).
    async fn sign(&self, queue_id: &str, sender: &str, raw: Finished) -> Option<String> {
        let shared = self.shared.clone();
        let size = raw.len();
        let sign = move || match &shared.dkim {
            Some(dkim) => dkim.signer.sign_for_milter(&raw).map_err(|e| e.to_string()),
            None => Err("DKIM is off".to_string()),
        };
        let signed = if size <= INLINE_CHECK_MAX {
            sign()
        } else {
            tokio::task::spawn_blocking(sign)
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        match signed {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::error!(queue_id, from = %reply_safe(sender), error,
                    "DKIM signing failed; mail tempfailed");
                None
            }
        }
    }

    /// Verifies an inbound message the policy accepted (a relay with a domain).
    async fn verify(&self, queue_id: &str, sender: &str, raw: Finished) -> Step {
        let shared = self.shared.clone();
        let verdict = if raw.len() <= INLINE_CHECK_MAX {
            match &self.shared.dkim {
                Some(dkim) => dkim.verifier.verify(&raw).await,
                None => DkimVerdict::Skipped,
            }
        } else {
            // Hashing a large message is CPU work: off the event loop, with the DNS lookups
            // driven from there.
            let handle = tokio::runtime::Handle::current();
            let verify = move || match &shared.dkim {
                Some(dkim) => handle.block_on(dkim.verifier.verify(&raw)),
                None => DkimVerdict::Skipped,
            };
            tokio::task::spawn_blocking(verify)
                .await
                .unwrap_or_else(|e| DkimVerdict::TempFail(e.to_string()))
        };
        self.dkim_verdict(queue_id, sender, verdict)
    }

    fn dkim_verdict(&self, queue_id: &str, sender: &str, verdict: DkimVerdict) -> Step {
        let from = reply_safe(sender);
        match verdict {
            DkimVerdict::Pass { domain } => {
                tracing::info!(queue_id, from, domain, "Incoming: valid DKIM signature");
                Step::Accept
            }
            DkimVerdict::Skipped => {
                tracing::info!(
                    queue_id,
                    from,
                    "Incoming: DKIM check skipped (domain-literal From)"
                );
                Step::Accept
            }
            DkimVerdict::Missing => {
                let reply = dkim_missing();
                tracing::warn!(queue_id, from, reply = %reply.line(),
                    "Incoming: Rejected mail without a DKIM signature");
                Step::Refuse(reply)
            }
            DkimVerdict::Fail(reason) => {
                let reply = dkim_rejected();
                tracing::warn!(queue_id, from, reason, reply = %reply.line(),
                    "Incoming: Rejected mail without a valid DKIM signature");
                Step::Refuse(reply)
            }
            DkimVerdict::TempFail(reason) => {
                let reply = dkim_unverifiable();
                tracing::warn!(queue_id, from, reason, reply = %reply.line(),
                    "Incoming: DKIM signature not verifiable now; mail tempfailed");
                Step::Refuse(reply)
            }
        }
    }

    /// The SMTP transaction was aborted (RSET, client gone, rejected by Postfix).
    pub fn abort(&mut self) {
        self.transaction = None;
        self.unauthenticated = false;
        self.deferred = None;
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
