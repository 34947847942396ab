//! Verifying incoming mail: a valid signature whose `d=` is exactly the From domain.

use std::net::SocketAddr;
use std::time::Duration;

use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, MessageAuthenticator, Parameters};

use super::{DkimError, StaticTxt};

/// DNS timeout per query; with two attempts a lookup gives up after about 10 s and the
/// message is tempfailed, never rejected.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DkimVerdict {
    /// An aligned signature verified.
    Pass { domain: String },
    /// No DKIM check applies (a domain-literal sender).
    Skipped,
    /// No DKIM signature at all: reject.
    Missing,
    /// Signatures, but no valid aligned one: reject.
    Fail(String),
    /// DNS trouble: try again later.
    TempFail(String),
}

pub struct Verifier {
    authenticator: MessageAuthenticator,
    txt: Option<StaticTxt>,
}

impl Verifier {
    /// Uses the system resolver (`/etc/resolv.conf`), or `nameserver` when given.
    pub fn new(nameserver: Option<SocketAddr>) -> Result<Verifier, DkimError> {
        let mut opts = ResolverOpts::default();
        opts.timeout = DNS_TIMEOUT;
        opts.attempts = 2;
        let authenticator = match nameserver {
            None => {
                let (config, _) = mail_auth::hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| DkimError::Resolver(e.to_string()))?;
                MessageAuthenticator::new(config, opts)
            }
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                MessageAuthenticator::new(ResolverConfig::from_name_servers(vec![server]), opts)
            }
        }
        .map_err(|e| DkimError::Resolver(e.to_string()))?;
        Ok(Verifier {
            authenticator,
            txt: None,
        })
    }

    /// Answers DKIM key lookups from `txt` before asking DNS.
    pub fn with_static_txt(mut self, txt: StaticTxt) -> Verifier {
        self.txt = Some(txt);
        self
    }

    pub async fn verify(&self, message: &[u8]) -> DkimVerdict {
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return DkimVerdict::Fail("unparsable message".into());
        };
        let from_domain = match parsed.froms() {
            [from] => match from.rsplit_once('@') {
                Some((_, domain)) if !domain.is_empty() => domain.to_ascii_lowercase(),
                _ => return DkimVerdict::Fail("From without a domain".into()),
            },
            [] => return DkimVerdict::Fail("no From address".into()),
            _ => return DkimVerdict::Fail("more than one From address".into()),
        };
        if from_domain.starts_with('[') {
            return DkimVerdict::Skipped;
        }
        let outputs = match &self.txt {
            Some(txt) => {
                self.authenticator
                    .verify_dkim(Parameters::new(&parsed).with_txt_cache(txt))
                    .await
            }
            None => self.authenticator.verify_dkim(&parsed).await,
        };
        judge(&outputs, &from_domain)
    }
}

/// Strict alignment: only signatures whose `d=` equals the From domain count.
fn judge(outputs: &[DkimOutput<'_>], from_domain: &str) -> DkimVerdict {
    let aligned: Vec<&DkimOutput<'_>> = outputs
        .iter()
        .filter(|o| {
            o.signature()
                .is_some_and(|s| s.d.eq_ignore_ascii_case(from_domain))
        })
        .collect();
    if aligned.iter().any(|o| o.result() == &DkimResult::Pass) {
        return DkimVerdict::Pass {
            domain: from_domain.to_string(),
        };
    }
    if let Some(o) = aligned
        .iter()
        .find(|o| matches!(o.result(), DkimResult::TempError(_)))
    {
        return DkimVerdict::TempFail(describe(o.result()));
    }
    match aligned.first() {
        Some(o) => DkimVerdict::Fail(describe(o.result())),
        None if outputs.is_empty() => DkimVerdict::Missing,
        None => DkimVerdict::Fail(format!("no DKIM signature for {from_domain}")),
    }
}

fn describe(result: &DkimResult) -> String {
    match result {
        DkimResult::Pass => "pass".into(),
        DkimResult::Neutral(e)
        | DkimResult::Fail(e)
        | DkimResult::PermError(e)
        | DkimResult::TempError(e) => e.to_string(),
        DkimResult::None => "no signature".into(),
    }
}
