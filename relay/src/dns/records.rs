//! The records a relay with a domain needs, built from chatmail.ini, the DKIM key and the
//! addresses the domain points at.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use chatmail_common::config::{Config, TlsCertMode};

use super::addresses::Addresses;
use super::mta_sts;
use crate::dkim;
use crate::plan::on_disk;

/// The certificate authority of `tls_cert_mode = acme`.
pub const ACME_CA: &str = "letsencrypt.org";

/// One name and type, with what it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute, with the trailing dot.
    pub name: String,
    pub data: Data,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// The relay's IPv4 addresses (one record each); empty when this machine has no public
    /// one (behind NAT): then any address is taken as right.
    A(Vec<Ipv4Addr>),
    /// The relay's IPv6 addresses (one record each).
    Aaaa(Vec<Ipv6Addr>),
    Mx {
        preference: u16,
        exchange: String,
    },
    Txt {
        kind: TxtKind,
        text: String,
    },
    Cname(String),
    Srv {
        port: u16,
        target: String,
    },
    /// `issue` restricted to `issuer`, and to one ACME account when its URI is known.
    Caa {
        issuer: String,
        account: Option<String>,
    },
    /// A record that cannot be made yet, and why (the DKIM key before setup).
    Pending {
        rtype: &'static str,
        reason: String,
    },
}

/// What a TXT record is for: each is compared by its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxtKind {
    Spf,
    Dmarc,
    Dkim,
    MtaSts,
}

impl Data {
    /// The record type, as in a zone file.
    pub fn rtype(&self) -> &'static str {
        match self {
            Data::A(_) => "A",
            Data::Aaaa(_) => "AAAA",
            Data::Mx { .. } => "MX",
            Data::Txt { .. } => "TXT",
            Data::Cname(_) => "CNAME",
            Data::Srv { .. } => "SRV",
            Data::Caa { .. } => "CAA",
            Data::Pending { rtype, .. } => rtype,
        }
    }
}

/// Every record of the relay's domain: addresses, MX, DKIM, MTA-STS (with a certificate
/// from a CA only: senders would refuse a self-signed one), SPF, DMARC, CAA (ACME only),
/// and SRV records for the clients' ports.
pub fn records(config: &Config, root: &Path, addresses: &Addresses) -> Vec<Record> {
    let domain = &config.mail_domain_bare;
    let apex = format!("{domain}.");
    let at = |prefix: &str| format!("{prefix}.{domain}.");
    let mut out = vec![Record {
        name: apex.clone(),
        data: Data::A(addresses.v4.clone()),
    }];
    if !config.deployment.disable_ipv6 && !addresses.v6.is_empty() {
        out.push(Record {
            name: apex.clone(),
            data: Data::Aaaa(addresses.v6.clone()),
        });
    }
    out.push(Record {
        name: apex.clone(),
        data: Data::Mx {
            preference: 10,
            exchange: apex.clone(),
        },
    });
    out.push(Record {
        name: at(&format!("{}._domainkey", config.dkim_selector)),
        data: dkim_data(config, root),
    });
    if config.deployment.tls_cert_mode != TlsCertMode::SelfSigned {
        out.push(Record {
            name: at("_mta-sts"),
            data: Data::Txt {
                kind: TxtKind::MtaSts,
                text: format!("v=STSv1; id={}", mta_sts::policy_id(domain)),
            },
        });
        out.push(Record {
            name: at("mta-sts"),
            data: Data::Cname(apex.clone()),
        });
    }
    out.push(Record {
        name: apex.clone(),
        data: Data::Txt {
            kind: TxtKind::Spf,
            text: "v=spf1 a ~all".into(),
        },
    });
    out.push(Record {
        name: at("_dmarc"),
        data: Data::Txt {
            kind: TxtKind::Dmarc,
            text: "v=DMARC1; p=reject; adkim=s; aspf=s".into(),
        },
    });
    if config.deployment.tls_cert_mode == TlsCertMode::Acme {
        out.push(Record {
            name: apex.clone(),
            data: Data::Caa {
                issuer: ACME_CA.into(),
                account: acme_account_uri(config),
            },
        });
    }
    for (service, port) in [
        ("_submissions._tcp", 465),
        ("_submission._tcp", 587),
        ("_imaps._tcp", 993),
        ("_imap._tcp", 143),
    ] {
        out.push(Record {
            name: at(service),
            data: Data::Srv {
                port,
                target: apex.clone(),
            },
        });
    }
    out
}

/// The ACME account the relay's certificates are issued to, for CAA's `accounturi`
/// (RFC 8657): then only that account may get certificates for the domain. No ACME client of
/// this relay records its account yet; when one does, return its URI here.
fn acme_account_uri(_config: &Config) -> Option<String> {
    None
}

/// The DKIM record from the key on disk, computed as setup writes `dkim.txt`.
fn dkim_data(config: &Config, root: &Path) -> Data {
    let pending = |reason: String| Data::Pending {
        rtype: "TXT",
        reason,
    };
    let key = match std::fs::read(on_disk(root, &config.dkim_key)) {
        Ok(key) => key,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return pending(format!(
                "no DKIM key at {} yet: run chatmail-relay setup first",
                config.dkim_key.display()
            ));
        }
        Err(e) => return pending(format!("{}: {e}", config.dkim_key.display())),
    };
    match dkim::record(&key, &config.mail_domain_bare, &config.dkim_selector) {
        Ok(text) => Data::Txt {
            kind: TxtKind::Dkim,
            text,
        },
        Err(reason) => pending(format!(
            "DKIM key {} not usable: {reason}",
            config.dkim_key.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!("[params]\nmail_domain = chat.example.org\n{extra}");
        Config::from_str(&text, Path::new("chatmail.ini"))
            .unwrap()
            .0
    }

    fn addresses() -> Addresses {
        Addresses {
            v4: vec![Ipv4Addr::new(203, 0, 113, 7)],
            v6: vec!["2001:db8::7".parse().unwrap()],
        }
    }

    fn types(records: &[Record]) -> Vec<(String, &'static str)> {
        records
            .iter()
            .map(|r| (r.name.clone(), r.data.rtype()))
            .collect()
    }

    #[test]
    fn a_relay_with_acme_gets_every_record() {
        let root = tempfile::tempdir().unwrap();
        let records = records(&config(""), root.path(), &addresses());
        let d = "chat.example.org.";
        let names: Vec<(String, &str)> = [
            (d, "A"),
            (d, "AAAA"),
            (d, "MX"),
            ("opendkim._domainkey.chat.example.org.", "TXT"),
            ("_mta-sts.chat.example.org.", "TXT"),
            ("mta-sts.chat.example.org.", "CNAME"),
            (d, "TXT"),
            ("_dmarc.chat.example.org.", "TXT"),
            (d, "CAA"),
            ("_submissions._tcp.chat.example.org.", "SRV"),
            ("_submission._tcp.chat.example.org.", "SRV"),
            ("_imaps._tcp.chat.example.org.", "SRV"),
            ("_imap._tcp.chat.example.org.", "SRV"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
        assert_eq!(types(&records), names);
        let Data::Pending { reason, .. } = &records[3].data else {
            panic!("{:?}", records[3]);
        };
        assert!(
            reason.contains("run chatmail-relay setup first"),
            "{reason}"
        );
    }

    #[test]
    fn the_dkim_record_is_made_from_the_key_on_disk() {
        let root = tempfile::tempdir().unwrap();
        let c = config("dkim_selector = sel\n");
        let key = dkim::generate_key().unwrap();
        let path = on_disk(root.path(), &c.dkim_key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &key).unwrap();
        let record = records(&c, root.path(), &addresses())
            .into_iter()
            .find(|r| r.name == "sel._domainkey.chat.example.org.")
            .unwrap();
        let text = dkim::record(key.as_bytes(), "chat.example.org", "sel").unwrap();
        assert_eq!(
            record.data,
            Data::Txt {
                kind: TxtKind::Dkim,
                text
            }
        );
        std::fs::write(&path, "junk").unwrap();
        let record = records(&c, root.path(), &addresses()).remove(3);
        assert!(
            matches!(&record.data, Data::Pending { reason, .. } if reason.contains("not usable")),
            "{record:?}"
        );
    }

    #[test]
    fn ipv6_mta_sts_and_caa_only_where_they_apply() {
        let root = tempfile::tempdir().unwrap();
        let no_v6 = records(&config("disable_ipv6 = true\n"), root.path(), &addresses());
        assert!(!types(&no_v6).iter().any(|(_, t)| *t == "AAAA"));
        let v4_only = Addresses {
            v6: vec![],
            ..addresses()
        };
        assert!(
            !types(&records(&config(""), root.path(), &v4_only))
                .iter()
                .any(|(_, t)| *t == "AAAA")
        );
        let text = "[params]\nmail_domain = _chat.example.org\n";
        let test_domain = Config::from_str(text, Path::new("chatmail.ini")).unwrap().0;
        let types = types(&records(&test_domain, root.path(), &addresses()));
        assert!(
            !types
                .iter()
                .any(|(n, t)| *t == "CAA" || n.contains("mta-sts"))
        );
        let external = config("tls_external_cert_and_key = /c.pem /k.pem\n");
        let records = records(&external, root.path(), &addresses());
        assert!(records.iter().any(|r| r.name.starts_with("_mta-sts.")));
        assert!(!records.iter().any(|r| r.data.rtype() == "CAA"));
    }
}
