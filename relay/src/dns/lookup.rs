//! Asking DNS: the resolver of chatmail.ini (`dns_resolver`) or the system's, with short
//! timeouts; answers reduced to [`Answer`]s.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};

use super::compare::Answer;
use crate::Error;

/// Per query and attempt: an unreachable resolver is reported within about 6 s.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Retries after the first attempt (hickory's `attempts`): two attempts in all.
const RETRIES: usize = 1;

pub struct Lookup {
    runtime: tokio::runtime::Runtime,
    resolver: TokioResolver,
    /// The resolver, for messages.
    server: String,
}

impl Lookup {
    /// Asks `server` (UDP, TCP when an answer is too long), or the resolvers of
    /// `/etc/resolv.conf`.
    pub fn new(server: Option<SocketAddr>) -> Result<Lookup, Error> {
        let failed = |what: &str, reason: String| Error::System {
            what: what.to_string(),
            reason,
        };
        let (config, name) = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                (
                    ResolverConfig::from_name_servers(vec![ns]),
                    format!("DNS resolver {addr} (dns_resolver)"),
                )
            }
            None => {
                let (config, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| failed("/etc/resolv.conf", e.to_string()))?;
                (config, "the system's DNS resolver".to_string())
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| failed("async runtime", e.to_string()))?;
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let opts = builder.options_mut();
        opts.timeout = TIMEOUT;
        opts.attempts = RETRIES;
        opts.use_hosts_file = ResolveHosts::Never;
        // Names are absolute: never try the search domains.
        opts.ndots = 0;
        let resolver = {
            let _guard = runtime.enter();
            builder.build().map_err(|e| failed(&name, e.to_string()))?
        };
        Ok(Lookup {
            runtime,
            resolver,
            server: name,
        })
    }

    /// The records of `rtype` at `name` (absolute); none when the name or the type does not
    /// exist. A resolver that does not answer, or answers with an error, is an error.
    pub fn answers(&self, name: &str, rtype: &str) -> Result<Vec<Answer>, Error> {
        let failed = |reason: String| Error::System {
            what: self.server.clone(),
            reason,
        };
        let rtype: RecordType = rtype
            .parse()
            .map_err(|_| failed(format!("unknown record type {rtype}")))?;
        let result = self.runtime.block_on(self.resolver.lookup(name, rtype));
        match result {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .filter_map(|r| answer(&r.data))
                .collect()),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(failed(format!("{name} {rtype}: {e}"))),
        }
    }
}

fn answer(data: &RData) -> Option<Answer> {
    Some(match data {
        RData::A(a) => Answer::A(a.0),
        RData::AAAA(a) => Answer::Aaaa(a.0),
        RData::MX(mx) => Answer::Mx {
            preference: mx.preference,
            exchange: mx.exchange.to_string(),
        },
        RData::TXT(txt) => Answer::Txt(
            txt.txt_data
                .iter()
                .map(|s| String::from_utf8_lossy(s))
                .collect(),
        ),
        RData::CNAME(c) => Answer::Cname(c.0.to_string()),
        RData::SRV(srv) => Answer::Srv {
            port: srv.port,
            target: srv.target.to_string(),
        },
        RData::CAA(caa) => Answer::Caa {
            tag: caa.tag.clone(),
            value: String::from_utf8_lossy(&caa.value).into_owned(),
        },
        _ => return None,
    })
}
