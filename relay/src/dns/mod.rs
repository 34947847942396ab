//! `chatmail-relay dns`: the DNS records a relay with a domain needs, for the operator to
//! publish, and (`--check`) whether DNS has them.
//!
//! - [`records`]: what the records are, from chatmail.ini, the DKIM key and the addresses
//!   ([`addresses`]: `--ip`, or this machine's public ones);
//! - [`zone`]: zone-file syntax;
//! - [`lookup`] asks DNS, [`compare`] judges the answers, [`check`] reports.

pub mod addresses;
pub mod check;
pub mod compare;
pub mod lookup;
pub mod mta_sts;
pub mod records;
pub mod zone;

use std::path::Path;
use std::process::ExitCode;

use chatmail_common::config::Config;

use self::addresses::Addresses;
use self::compare::Verdict;
use self::lookup::Lookup;
use self::records::records;
use crate::Error;
use crate::cli::DnsArgs;
use crate::plan::on_disk;

pub fn run(root: &Path, config_path: &Path, args: &DnsArgs) -> Result<ExitCode, Error> {
    let (config, _) = Config::read(&on_disk(root, config_path))?;
    if let Some(ip) = config.ipv4_relay {
        println!("{ip} is an IP-only relay: it needs no DNS records");
        return Ok(ExitCode::SUCCESS);
    }
    let addresses = if args.ip.is_empty() {
        Addresses::of_this_machine()
    } else {
        Addresses::given(&args.ip)
    };
    let records = records(&config, root, &addresses);
    if !args.check {
        let lines = if args.zonefile {
            zone::zonefile(&config.mail_domain_bare, &records)
        } else {
            zone::absolute(&records)
        };
        for line in lines {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let verdicts = check::check(&records, &Lookup::new(config.dns_resolver)?)?;
    for (record, verdict) in records.iter().zip(&verdicts) {
        println!("{}", check::line(record, verdict));
    }
    let bad = verdicts.iter().filter(|v| **v != Verdict::Ok).count();
    if bad == 0 {
        println!("all {} records are published", records.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{bad} of {} records missing, wrong or unknown (chatmail-relay dns prints them all)",
            records.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The records DNS lacks or has wrong, one line each as `--check` prints them (for setup's
/// warnings): this machine's addresses, the resolver of chatmail.ini or the system's.
pub fn missing_records(config: &Config, root: &Path) -> Result<Vec<String>, Error> {
    if config.ipv4_relay.is_some() {
        return Ok(Vec::new());
    }
    let records = records(config, root, &Addresses::of_this_machine());
    let verdicts = check::check(&records, &Lookup::new(config.dns_resolver)?)?;
    Ok(records
        .iter()
        .zip(&verdicts)
        .filter(|(_, v)| **v != Verdict::Ok)
        .map(|(r, v)| check::line(r, v))
        .collect())
}
