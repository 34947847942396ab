//! `chatmail-relay cert [--renew [--force] [--no-reload] | --reload]`: the ACME
//! certificate's state, and its renewal (run daily by `chatmail-relay-certs.timer`).

use std::path::Path;

use chatmail_common::config::{Config, TlsCertMode};

use crate::Error;
use crate::acme::{self, Outcome};
use crate::cli::CertArgs;
use crate::plan::on_disk;
use crate::systemd::{DOVECOT, NGINX, POSTFIX, systemctl};
use crate::tls::CertInfo;

pub fn run(root: &Path, config_path: &Path, args: &CertArgs) -> Result<(), Error> {
    let (config, _) = Config::read(&on_disk(root, config_path))?;
    if config.deployment.tls_cert_mode != TlsCertMode::Acme {
        println!(
            "{} has no ACME certificate ({}): nothing to do",
            config.mail_domain,
            match config.deployment.tls_cert_mode {
                TlsCertMode::SelfSigned => "self-signed",
                _ => "tls_external_cert_and_key",
            }
        );
        return Ok(());
    }
    if args.reload {
        return reload_if_asked(root);
    }
    if !args.renew {
        print_status(&acme::status(root, &config));
        return Ok(());
    }
    match acme::ensure(root, &config, args.force)? {
        Outcome::Kept(info) => {
            println!("certificate {}; not renewed", summary(&info));
        }
        Outcome::Renewed(info) => {
            println!("new certificate {}", summary(&info));
            acme::ask_reload(root)?;
            if !args.no_reload {
                reload_if_asked(root)?;
            }
        }
    }
    Ok(())
}

/// Postfix, Dovecot and nginx read the certificate again (when they run) if a renewal asked
/// for it; only on the real system.
fn reload_if_asked(root: &Path) -> Result<(), Error> {
    if root != Path::new("/") || !acme::reload_asked(root) {
        return Ok(());
    }
    // Dovecot restarts: after a reload, IDLE connections that imap-hibernate took over were
    // not woken by new mail any more (seen on Debian 12's Dovecot 2.3.19 under systemd,
    // tests/e2e/test_deploy.py). Clients reconnect at once; Postfix reloads.
    systemctl(&["try-restart", DOVECOT])?;
    systemctl(&["try-reload-or-restart", POSTFIX])?;
    systemctl(&["try-reload-or-restart", NGINX])?;
    acme::reload_done(root)?;
    println!("restarted {DOVECOT}, reloaded {POSTFIX} and {NGINX}");
    Ok(())
}

fn summary(info: &CertInfo) -> String {
    let days = (info.not_after - acme::renewal::now()).div_euclid(24 * 60 * 60);
    format!(
        "for {}, valid until {} ({days} days)",
        info.names.join(", "),
        utc(info.not_after)
    )
}

fn print_status(status: &acme::CertStatus) {
    println!("certificate: {}", status.cert.display());
    if let Some(info) = &status.info {
        println!("names: {}", info.names.join(", "));
        println!("valid until: {}", utc(info.not_after));
    }
    if status.due.is_due() {
        println!("renewal: due ({})", status.due);
    } else {
        println!("renewal: not due ({})", status.due);
    }
    match &status.last_error {
        Some(e) => println!("last renewal failed at {}: {}", utc(e.at), e.message),
        None => println!("last renewal: no failure"),
    }
}

/// `YYYY-MM-DD HH:MM UTC` of seconds since the epoch.
pub fn utc(secs: i64) -> String {
    chatmail_common::unix_time::ymd_hm(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_825_600), "2000-02-29 12:00 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59 UTC");
    }
}
