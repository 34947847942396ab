//! Whether what DNS answers is what a record should hold.
//!
//! The rules: A and AAAA as sets (equal to the relay's addresses; any, when those are not
//! known here); MX, CNAME and SRV targets by name, case-insensitive, with or without the
//! trailing dot (the relay must be the only MX; SRV priority and weight are free); TXT
//! strings joined, then by meaning:
//! - SPF: exactly one `v=spf1` record, allowing the relay (`a`, `mx`, `ip4:`, `ip6:` or
//!   `include:`) and ending in `~all` or `-all`;
//! - DMARC: one `v=DMARC1` record with `p=reject`, `adkim=s` and `aspf=s` (other tags free);
//! - DKIM: a record with the same public key (`p=`; `k=` absent or `rsa`);
//! - MTA-STS: one `v=STSv1` record with a valid `id=` (any: it only has to change with the
//!   policy);
//! - CAA: every `issue` property names the relay's CA (and its account, when known).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::mta_sts;
use super::records::{Data, TxtKind};

/// One record of an answer, reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Mx {
        preference: u16,
        exchange: String,
    },
    /// The strings of one record, joined.
    Txt(String),
    Cname(String),
    Srv {
        port: u16,
        target: String,
    },
    Caa {
        tag: String,
        value: String,
    },
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::A(a) => write!(f, "{a}"),
            Answer::Aaaa(a) => write!(f, "{a}"),
            Answer::Mx {
                preference,
                exchange,
            } => write!(f, "{preference} {exchange}"),
            Answer::Txt(text) => write!(f, "\"{}\"", shortened(text)),
            Answer::Cname(target) => write!(f, "{target}"),
            Answer::Srv { port, target } => write!(f, "port {port} on {target}"),
            Answer::Caa { tag, value } => write!(f, "{tag} \"{value}\""),
        }
    }
}

/// Long text (a DKIM key) cut to its start: enough to recognise it.
fn shortened(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Missing,
    /// What was found instead.
    Wrong(String),
    /// The record cannot be made yet: why.
    Unknown(String),
}

/// Compares the answers to a lookup of the record's name and type with what it should hold.
pub fn verdict(expected: &Data, found: &[Answer]) -> Verdict {
    let found_list = |answers: &[&Answer]| {
        answers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let relevant: Vec<&Answer> = found.iter().filter(|a| answers_type(expected, a)).collect();
    let relevant = match (expected, relevant.as_slice()) {
        (Data::Pending { reason, .. }, _) => return Verdict::Unknown(reason.clone()),
        (_, []) => return Verdict::Missing,
        (_, r) => r,
    };
    let ok = match expected {
        Data::A(want) => {
            want.is_empty() || same_set(want, relevant.iter().filter_map(|a| as_v4(a)))
        }
        Data::Aaaa(want) => same_set(want, relevant.iter().filter_map(|a| as_v6(a))),
        Data::Mx { exchange, .. } => relevant
            .iter()
            .all(|a| matches!(a, Answer::Mx { exchange: e, .. } if same_name(e, exchange))),
        Data::Cname(target) => relevant
            .iter()
            .all(|a| matches!(a, Answer::Cname(t) if same_name(t, target))),
        Data::Srv { port, target } => relevant.iter().any(
            |a| matches!(a, Answer::Srv { port: p, target: t } if p == port && same_name(t, target)),
        ),
        Data::Caa { issuer, account } => relevant.iter().all(|a| match a {
            Answer::Caa { value, .. } => caa_allows(value, issuer, account.as_deref()),
            _ => false,
        }),
        Data::Txt { kind, text } => {
            let texts: Vec<&str> = relevant
                .iter()
                .filter_map(|a| match a {
                    Answer::Txt(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect();
            txt_ok(*kind, text, &texts)
        }
        Data::Pending { .. } => false,
    };
    if ok {
        Verdict::Ok
    } else {
        Verdict::Wrong(found_list(relevant))
    }
}

/// Whether `answer` is of the kind `expected` is judged by: CAA `issue` properties only, and
/// of TXT records at a name only those of the same purpose (a domain has other TXT records).
fn answers_type(expected: &Data, answer: &Answer) -> bool {
    match (expected, answer) {
        (Data::A(_), Answer::A(_))
        | (Data::Aaaa(_), Answer::Aaaa(_))
        | (Data::Mx { .. }, Answer::Mx { .. })
        | (Data::Cname(_), Answer::Cname(_))
        | (Data::Srv { .. }, Answer::Srv { .. }) => true,
        (Data::Caa { .. }, Answer::Caa { tag, .. }) => tag.eq_ignore_ascii_case("issue"),
        (Data::Txt { kind, .. }, Answer::Txt(text)) => txt_kind(text) == Some(*kind),
        _ => false,
    }
}

/// What a TXT record is for, by its first tag.
fn txt_kind(text: &str) -> Option<TxtKind> {
    let first = text.split(';').next().unwrap_or("").trim();
    let first_word = text.split_whitespace().next().unwrap_or("");
    if first_word.eq_ignore_ascii_case("v=spf1") {
        Some(TxtKind::Spf)
    } else if tag_is(first, "v", "DMARC1") {
        Some(TxtKind::Dmarc)
    } else if tag_is(first, "v", "STSv1") {
        Some(TxtKind::MtaSts)
    } else if tag_is(first, "v", "DKIM1") || tags(text).any(|(k, _)| k == "p") {
        Some(TxtKind::Dkim)
    } else {
        None
    }
}

fn txt_ok(kind: TxtKind, want: &str, found: &[&str]) -> bool {
    match (kind, found) {
        (TxtKind::Dkim, found) => {
            let key = |t: &str| tag(t, "p").map(|p| p.split_whitespace().collect::<String>());
            let rsa = |t: &str| tag(t, "k").is_none_or(|k| k.eq_ignore_ascii_case("rsa"));
            found
                .iter()
                .any(|t| key(t).is_some() && key(t) == key(want) && rsa(t))
        }
        // Two SPF, DMARC or MTA-STS records are an error for whoever reads them.
        (_, [one]) => match kind {
            TxtKind::Spf => spf_ok(one),
            TxtKind::Dmarc => ["p", "adkim", "aspf"]
                .iter()
                .all(|k| tag(one, k).is_some_and(|v| Some(v) == tag(want, k))),
            TxtKind::MtaSts => tag(one, "id").is_some_and(mta_sts::valid_id),
            TxtKind::Dkim => false,
        },
        _ => false,
    }
}

/// An SPF record that lets the relay send and no one else.
fn spf_ok(text: &str) -> bool {
    let terms: Vec<String> = text
        .split_whitespace()
        .skip(1)
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let allows_relay = terms.iter().any(|t| {
        let t = t.strip_prefix('+').unwrap_or(t);
        let mechanism = t.split([':', '/']).next().unwrap_or("");
        ["a", "mx", "ip4", "ip6", "include"].contains(&mechanism)
    });
    allows_relay && matches!(terms.last().map(String::as_str), Some("~all" | "-all"))
}

/// A CAA `issue` value (`ca.example; accounturi=...`) allowing `issuer` (and `account`).
fn caa_allows(value: &str, issuer: &str, account: Option<&str>) -> bool {
    let mut parts = value.split(';');
    let ca = parts.next().unwrap_or("").trim();
    let params: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    ca.eq_ignore_ascii_case(issuer)
        && account.is_none_or(|uri| params.iter().any(|(k, v)| k == "accounturi" && v == uri))
}

/// The `tag=value` pairs of a DKIM, DMARC or MTA-STS record.
fn tags(text: &str) -> impl Iterator<Item = (String, &str)> {
    text.split(';')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
}

fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    tags(text).find(|(k, _)| k == name).map(|(_, v)| v)
}

fn tag_is(pair: &str, name: &str, value: &str) -> bool {
    pair.split_once('=').is_some_and(|(k, v)| {
        k.trim().eq_ignore_ascii_case(name) && v.trim().eq_ignore_ascii_case(value)
    })
}

/// DNS names compare case-insensitively; the trailing dot is optional.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

fn same_set<T: Ord + Copy>(want: &[T], found: impl Iterator<Item = T>) -> bool {
    let mut found: Vec<T> = found.collect();
    found.sort();
    found.dedup();
    let mut want = want.to_vec();
    want.sort();
    want.dedup();
    found == want
}

fn as_v4(a: &Answer) -> Option<Ipv4Addr> {
    match a {
        Answer::A(ip) => Some(*ip),
        _ => None,
    }
}

fn as_v6(a: &Answer) -> Option<Ipv6Addr> {
    match a {
        Answer::Aaaa(ip) => Some(*ip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(kind: TxtKind, text: &str) -> Data {
        Data::Txt {
            kind,
            text: text.into(),
        }
    }

    fn answers(texts: &[&str]) -> Vec<Answer> {
        texts.iter().map(|t| Answer::Txt(t.to_string())).collect()
    }

    #[test]
    fn addresses_are_sets() {
        let want = Data::A(vec![Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)]);
        let a = |s: &str| Answer::A(s.parse().unwrap());
        assert_eq!(verdict(&want, &[a("5.6.7.8"), a("1.2.3.4")]), Verdict::Ok);
        assert_eq!(verdict(&want, &[]), Verdict::Missing);
        assert_eq!(
            verdict(&want, &[a("1.2.3.4")]),
            Verdict::Wrong("1.2.3.4".into())
        );
        assert_eq!(
            verdict(&want, &[a("1.2.3.4"), a("5.6.7.8"), a("9.9.9.9")]),
            Verdict::Wrong("1.2.3.4, 5.6.7.8, 9.9.9.9".into())
        );
        // not known here: any address will do
        assert_eq!(verdict(&Data::A(vec![]), &[a("9.9.9.9")]), Verdict::Ok);
        assert_eq!(verdict(&Data::A(vec![]), &[]), Verdict::Missing);
        // a CNAME the resolver followed is not an address
        let cname = Answer::Cname("elsewhere.example.".into());
        assert_eq!(verdict(&want, &[cname]), Verdict::Missing);
    }

    #[test]
    fn names_ignore_case_and_the_trailing_dot() {
        let mx = Data::Mx {
            preference: 10,
            exchange: "chat.example.org.".into(),
        };
        let found = |e: &str, p| Answer::Mx {
            preference: p,
            exchange: e.into(),
        };
        assert_eq!(verdict(&mx, &[found("Chat.Example.ORG", 20)]), Verdict::Ok);
        assert_eq!(
            verdict(
                &mx,
                &[found("chat.example.org.", 10), found("mx.other.org.", 20)]
            ),
            Verdict::Wrong("10 chat.example.org., 20 mx.other.org.".into())
        );
        let cname = Data::Cname("chat.example.org.".into());
        assert_eq!(
            verdict(&cname, &[Answer::Cname("CHAT.example.org".into())]),
            Verdict::Ok
        );
        let srv = Data::Srv {
            port: 993,
            target: "chat.example.org.".into(),
        };
        let s = |port| Answer::Srv {
            port,
            target: "chat.example.org".into(),
        };
        assert_eq!(verdict(&srv, &[s(143), s(993)]), Verdict::Ok);
        assert_eq!(
            verdict(&srv, &[s(143)]),
            Verdict::Wrong("port 143 on chat.example.org".into())
        );
    }

    #[test]
    fn spf_by_its_meaning() {
        let spf = txt(TxtKind::Spf, "v=spf1 a ~all");
        for good in [
            "v=spf1 a ~all",
            "v=spf1 mx -all",
            "V=SPF1 ip4:1.2.3.4 +a -all",
        ] {
            assert_eq!(verdict(&spf, &answers(&[good])), Verdict::Ok, "{good}");
        }
        for bad in ["v=spf1 a +all", "v=spf1 ~all", "v=spf1 a"] {
            assert!(
                matches!(verdict(&spf, &answers(&[bad])), Verdict::Wrong(_)),
                "{bad}"
            );
        }
        let two = answers(&["v=spf1 a ~all", "v=spf1 mx ~all"]);
        assert!(matches!(verdict(&spf, &two), Verdict::Wrong(_)));
        // other TXT records of the domain are not SPF
        assert_eq!(
            verdict(&spf, &answers(&["google-site-verification=x"])),
            Verdict::Missing
        );
        let mixed = answers(&["google-site-verification=x", "v=spf1 a ~all"]);
        assert_eq!(verdict(&spf, &mixed), Verdict::Ok);
    }

    #[test]
    fn dmarc_by_its_tags() {
        let dmarc = txt(TxtKind::Dmarc, "v=DMARC1; p=reject; adkim=s; aspf=s");
        let ok = answers(&["v=DMARC1;p=reject;adkim=s;aspf=s;rua=mailto:x@example.org"]);
        assert_eq!(verdict(&dmarc, &ok), Verdict::Ok);
        let relaxed = answers(&["v=DMARC1; p=reject"]);
        assert_eq!(
            verdict(&dmarc, &relaxed),
            Verdict::Wrong("\"v=DMARC1; p=reject\"".into())
        );
        assert!(matches!(
            verdict(&dmarc, &answers(&["v=DMARC1; p=none; adkim=s; aspf=s"])),
            Verdict::Wrong(_)
        ));
    }

    #[test]
    fn dkim_by_its_key_and_mta_sts_by_its_id() {
        let dkim = txt(TxtKind::Dkim, "v=DKIM1; k=rsa; p=MIIBkey");
        let same = answers(&["v=DKIM1;k=rsa;p=MIIB key;s=email;t=s"]);
        assert_eq!(verdict(&dkim, &same), Verdict::Ok);
        let other = answers(&["v=DKIM1; k=rsa; p=MIIBother"]);
        assert!(matches!(verdict(&dkim, &other), Verdict::Wrong(_)));
        let sts = txt(TxtKind::MtaSts, "v=STSv1; id=abc");
        assert_eq!(
            verdict(&sts, &answers(&["v=STSv1; id=20240321"])),
            Verdict::Ok
        );
        assert!(matches!(
            verdict(&sts, &answers(&["v=STSv1; id=2024-03"])),
            Verdict::Wrong(_)
        ));
        let pending = Data::Pending {
            rtype: "TXT",
            reason: "run setup".into(),
        };
        assert_eq!(
            verdict(&pending, &same),
            Verdict::Unknown("run setup".into())
        );
    }

    #[test]
    fn caa_allows_only_the_relay_ca() {
        let caa = Data::Caa {
            issuer: "letsencrypt.org".into(),
            account: None,
        };
        let issue = |v: &str| Answer::Caa {
            tag: "issue".into(),
            value: v.into(),
        };
        let iodef = Answer::Caa {
            tag: "iodef".into(),
            value: "mailto:x@example.org".into(),
        };
        let with_account = issue("letsencrypt.org; accounturi=https://acme/acct/1");
        assert_eq!(
            verdict(&caa, &[with_account.clone(), iodef.clone()]),
            Verdict::Ok
        );
        assert_eq!(verdict(&caa, &[iodef]), Verdict::Missing);
        assert!(matches!(
            verdict(&caa, &[issue("letsencrypt.org"), issue("sectigo.com")]),
            Verdict::Wrong(_)
        ));
        let pinned = Data::Caa {
            issuer: "letsencrypt.org".into(),
            account: Some("https://acme/acct/2".into()),
        };
        assert!(matches!(
            verdict(&pinned, &[with_account]),
            Verdict::Wrong(_)
        ));
    }

    #[test]
    fn long_text_is_shortened_in_messages() {
        let long = "v=DKIM1; k=rsa; p=".to_string() + &"A".repeat(400);
        let shown = Answer::Txt(long).to_string();
        assert!(shown.len() < 70 && shown.ends_with("...\""), "{shown}");
    }
}
