//! `--check`: each record looked up and judged ([`compare`](super::compare)), one line each.

use super::compare::{Answer, Verdict, verdict};
use super::lookup::Lookup;
use super::records::{Data, Record};
use super::zone::rdata;
use crate::Error;

/// The verdict on each record, in order. Nothing is judged before every lookup has been
/// answered: a resolver that cannot be reached is one error, not a list of missing records.
pub fn check(records: &[Record], lookup: &Lookup) -> Result<Vec<Verdict>, Error> {
    records.iter().map(|r| check_one(r, lookup)).collect()
}

fn check_one(record: &Record, lookup: &Lookup) -> Result<Verdict, Error> {
    if let Data::Pending { reason, .. } = &record.data {
        return Ok(Verdict::Unknown(reason.clone()));
    }
    let found = lookup.answers(&record.name, record.data.rtype())?;
    let result = verdict(&record.data, &found);
    if let (Data::Cname(target), Verdict::Missing) = (&record.data, &result) {
        // Instead of a CNAME, the name may have the target's addresses itself.
        let here = lookup.answers(&record.name, "A")?;
        let there = lookup.answers(target, "A")?;
        if !here.is_empty() && same_addresses(&here, &there) {
            return Ok(Verdict::Ok);
        }
    }
    Ok(result)
}

fn same_addresses(a: &[Answer], b: &[Answer]) -> bool {
    let set = |x: &[Answer]| {
        let mut v: Vec<String> = x.iter().map(|a| a.to_string()).collect();
        v.sort();
        v
    };
    set(a) == set(b)
}

/// `ok`, `missing`, `wrong` or `unknown`, then the record as it should be.
pub fn line(record: &Record, verdict: &Verdict) -> String {
    let expected = match &record.data {
        Data::Pending { .. } => String::new(),
        Data::A(v4) if v4.is_empty() => " (any: no public IPv4 address on this machine)".into(),
        data => format!(" {}", rdata(data).join(", ")),
    };
    let what = format!("{} {}{expected}", record.name, record.data.rtype());
    match verdict {
        Verdict::Ok => format!("ok       {what}"),
        Verdict::Missing => format!("missing  {what}"),
        Verdict::Wrong(found) => format!("wrong    {what} (found: {found})"),
        Verdict::Unknown(reason) => format!("unknown  {what}: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::TxtKind;

    #[test]
    fn lines_say_what_should_be_there() {
        let mx = Record {
            name: "chat.example.org.".into(),
            data: Data::Mx {
                preference: 10,
                exchange: "chat.example.org.".into(),
            },
        };
        assert_eq!(
            line(&mx, &Verdict::Wrong("10 other.org.".into())),
            "wrong    chat.example.org. MX 10 chat.example.org. (found: 10 other.org.)"
        );
        assert_eq!(
            line(&mx, &Verdict::Ok),
            "ok       chat.example.org. MX 10 chat.example.org."
        );
        let dmarc = Record {
            name: "_dmarc.chat.example.org.".into(),
            data: Data::Txt {
                kind: TxtKind::Dmarc,
                text: "v=DMARC1; p=reject".into(),
            },
        };
        assert_eq!(
            line(&dmarc, &Verdict::Missing),
            "missing  _dmarc.chat.example.org. TXT \"v=DMARC1; p=reject\""
        );
        let pending = Record {
            name: "k._domainkey.chat.example.org.".into(),
            data: Data::Pending {
                rtype: "TXT",
                reason: "run chatmail-relay setup first".into(),
            },
        };
        assert_eq!(
            line(
                &pending,
                &Verdict::Unknown("run chatmail-relay setup first".into())
            ),
            "unknown  k._domainkey.chat.example.org. TXT: run chatmail-relay setup first"
        );
    }
}
