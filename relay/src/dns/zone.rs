//! The records in zone-file syntax: one line per record with absolute names, or a zone-file
//! fragment (`$ORIGIN` and `$TTL`, names relative to the mail domain).

use super::records::{Data, Record};

/// The TTL of every record: an hour, short enough to fix a mistake the same day.
pub const TTL: u32 = 3600;

/// Lines of `name. TTL IN TYPE data`, names absolute, aligned in columns. A record that
/// cannot be given yet is a comment saying why.
pub fn absolute(records: &[Record]) -> Vec<String> {
    let width = records.iter().map(|r| r.name.len()).max().unwrap_or(0);
    render(records, |name| format!("{name:<width$} {TTL:<5} IN"))
}

/// A fragment for the zone of `domain` or to `$INCLUDE` in it: `$ORIGIN domain.` and
/// `$TTL`, then the records with names relative to the origin (`@` is the domain itself).
pub fn zonefile(domain: &str, records: &[Record]) -> Vec<String> {
    let origin = format!("{domain}.");
    let relative = |name: &str| -> String {
        if name.eq_ignore_ascii_case(&origin) {
            "@".into()
        } else {
            name.strip_suffix(&format!(".{origin}"))
                .unwrap_or(name)
                .to_string()
        }
    };
    let width = records
        .iter()
        .map(|r| relative(&r.name).len())
        .max()
        .unwrap_or(0);
    let mut lines = vec![
        format!("; the records of the chatmail relay {domain} (chatmail-relay dns --zonefile)"),
        format!("$ORIGIN {origin}"),
        format!("$TTL {TTL}"),
    ];
    lines.extend(render(records, |name| {
        format!("{:<width$} IN", relative(name))
    }));
    lines
}

/// Each record's lines, `head` giving what comes before the type.
fn render(records: &[Record], head: impl Fn(&str) -> String) -> Vec<String> {
    let mut lines = Vec::new();
    for r in records {
        let rtype = r.data.rtype();
        match &r.data {
            Data::Pending { reason, .. } => lines.push(format!("; {} {rtype}: {reason}", r.name)),
            Data::A(v4) if v4.is_empty() => lines.push(format!(
                "; {} A: this machine has no public IPv4 address (behind NAT?): publish the \
                 relay's public one (chatmail-relay dns --ip ADDR)",
                r.name
            )),
            data => {
                for value in rdata(data) {
                    lines.push(format!("{} {rtype:<5} {value}", head(&r.name)));
                }
            }
        }
    }
    lines
}

/// The data of each record, in zone-file syntax.
pub fn rdata(data: &Data) -> Vec<String> {
    match data {
        Data::A(v4) => v4.iter().map(|a| a.to_string()).collect(),
        Data::Aaaa(v6) => v6.iter().map(|a| a.to_string()).collect(),
        Data::Mx {
            preference,
            exchange,
        } => vec![format!("{preference} {exchange}")],
        Data::Txt { text, .. } => vec![quoted(text)],
        Data::Cname(target) => vec![target.clone()],
        Data::Srv { port, target } => vec![format!("0 1 {port} {target}")],
        Data::Caa { issuer, account } => {
            let value = match account {
                Some(uri) => format!("{issuer}; accounturi={uri}"),
                None => issuer.clone(),
            };
            vec![format!("0 issue {}", quoted(&value))]
        }
        Data::Pending { .. } => Vec::new(),
    }
}

/// `text` as quoted strings of at most 255 bytes each (one DNS string's limit; resolvers
/// join them), `"` and `\` escaped.
pub fn quoted(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|chunk| {
            let s = String::from_utf8_lossy(chunk);
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::dkim;
    use crate::dns::records::TxtKind;

    fn record(name: &str, data: Data) -> Record {
        Record {
            name: name.into(),
            data,
        }
    }

    #[test]
    fn lines_have_absolute_names_ttl_and_class() {
        let records = [
            record(
                "chat.example.org.",
                Data::A(vec![Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)]),
            ),
            record(
                "chat.example.org.",
                Data::Mx {
                    preference: 10,
                    exchange: "chat.example.org.".into(),
                },
            ),
            record(
                "_imaps._tcp.chat.example.org.",
                Data::Srv {
                    port: 993,
                    target: "chat.example.org.".into(),
                },
            ),
            record(
                "chat.example.org.",
                Data::Caa {
                    issuer: "letsencrypt.org".into(),
                    account: None,
                },
            ),
            record(
                "opendkim._domainkey.chat.example.org.",
                Data::Pending {
                    rtype: "TXT",
                    reason: "run chatmail-relay setup first".into(),
                },
            ),
        ];
        let lines = absolute(&records);
        let squeezed: Vec<String> = lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            squeezed,
            [
                "chat.example.org. 3600 IN A 1.2.3.4",
                "chat.example.org. 3600 IN A 5.6.7.8",
                "chat.example.org. 3600 IN MX 10 chat.example.org.",
                "_imaps._tcp.chat.example.org. 3600 IN SRV 0 1 993 chat.example.org.",
                "chat.example.org. 3600 IN CAA 0 issue \"letsencrypt.org\"",
                "; opendkim._domainkey.chat.example.org. TXT: run chatmail-relay setup first",
            ]
        );
        let unknown = absolute(&[record("chat.example.org.", Data::A(vec![]))]);
        assert!(unknown[0].starts_with("; chat.example.org. A:") && unknown[0].contains("--ip"));
    }

    #[test]
    fn a_zonefile_fragment_has_relative_names() {
        let records = [
            record("chat.example.org.", Data::Cname("x.example.org.".into())),
            record(
                "_dmarc.chat.example.org.",
                Data::Txt {
                    kind: TxtKind::Dmarc,
                    text: "v=DMARC1; p=reject".into(),
                },
            ),
        ];
        let lines = zonefile("chat.example.org", &records);
        assert_eq!(lines[1], "$ORIGIN chat.example.org.");
        assert_eq!(lines[2], "$TTL 3600");
        assert_eq!(lines[3], "@      IN CNAME x.example.org.");
        assert_eq!(lines[4], "_dmarc IN TXT   \"v=DMARC1; p=reject\"");
    }

    #[test]
    fn long_text_is_split_as_dkim_txt_is() {
        let key = dkim::generate_key().unwrap();
        let text = dkim::record(key.as_bytes(), "chat.example.org", "opendkim").unwrap();
        let line = dkim::zone_line("chat.example.org", "opendkim", &text);
        let (_, strings) = line.split_once(" TXT ").unwrap();
        assert_eq!(quoted(&text), strings);
        assert_eq!(quoted("a\"b\\"), r#""a\"b\\""#);
    }
}
