//! `chatmail-relay get KEY`: a key's value as the daemons read it (for scripts: the local
//! relay's, the package's maintainer scripts).

use std::path::Path;

use chatmail_common::config::{Config, TlsCertMode};

use crate::Error;
use crate::plan::on_disk;

pub fn run(root: &Path, path: &Path, key: &str) -> Result<(), Error> {
    let (config, _) = Config::read(&on_disk(root, path))?;
    match value(&config, key) {
        Some(v) => {
            println!("{v}");
            Ok(())
        }
        None => Err(Error::Refused(format!("no key {key} in chatmail.ini"))),
    }
}

/// The value of `key`, its default when unset; `None` for a key chatmail.ini does not have.
/// Sizes in megabytes (`500M`); unset optional keys are empty.
pub fn value(c: &Config, key: &str) -> Option<String> {
    let d = &c.deployment;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    Some(match key {
        "mail_domain" => c.mail_domain_bare.clone(),
        "max_user_send_per_minute" => c.max_user_send_per_minute.to_string(),
        "max_user_send_burst_size" => c.max_user_send_burst_size.to_string(),
        "max_mailbox_size" => c.max_mailbox_size.clone(),
        "max_message_size" => c.max_message_size.to_string(),
        "delete_mails_after" => c.delete_mails_after.to_string(),
        "delete_large_after" => c.delete_large_after.to_string(),
        "delete_inactive_users_after" => c.delete_inactive_users_after.to_string(),
        "username_min_length" => c.username_min_length.to_string(),
        "username_max_length" => c.username_max_length.to_string(),
        "password_min_length" => c.password_min_length.to_string(),
        "max_load_1m" => c.max_load_1m.to_string(),
        "min_available_memory" => format!("{}M", c.min_available_memory_mb),
        "min_free_disk_space" => format!("{}M", c.min_free_disk_space_mb),
        "max_imap_connections" => c.max_imap_connections.to_string(),
        "max_smtp_connections" => c.max_smtp_connections.to_string(),
        "mailboxes_dir" => c.mailboxes_dir.display().to_string(),
        "iroh_relay" => c.iroh_relay.clone(),
        "turn_socket_path" => c.turn_socket_path.display().to_string(),
        "turn_secret_file" => c
            .turn_secret_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        "passdb_path" => d.passdb_path.display().to_string(),
        "disable_ipv6" => d.disable_ipv6.to_string(),
        "acme_email" => d.acme_email.clone(),
        "acme_directory" => d.acme_directory.clone(),
        "acme_ca_file" => d
            .acme_ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        "www_folder" => d.www_folder.clone(),
        "tls_external_cert_and_key" => match &d.tls_cert_mode {
            TlsCertMode::External { cert, key } => format!("{} {}", cert.display(), key.display()),
            _ => String::new(),
        },
        "mtail_address" => opt(&d.mtail_address),
        "imap_rawlog" => d.imap_rawlog.to_string(),
        "imap_compress" => d.imap_compress.to_string(),
        "privacy_postal" => opt(&d.privacy_postal),
        "privacy_mail" => opt(&d.privacy_mail),
        "privacy_pdo" => opt(&d.privacy_pdo),
        "privacy_supervisor" => opt(&d.privacy_supervisor),
        "notification_url" => c.notification_url.clone(),
        "milter_outbound" => c.milter_outbound.clone(),
        "milter_inbound" => c.milter_inbound.clone(),
        "milter_internal" => c.milter_internal.clone(),
        "dkim_selector" => c.dkim_selector.clone(),
        "dkim_key" => c.dkim_key.display().to_string(),
        "dns_resolver" => c.dns_resolver.map(|a| a.to_string()).unwrap_or_default(),
        "appversions_file" => c.appversions_file.display().to_string(),
        "nocreate_file" => c.nocreate_file.display().to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_the_template_has_a_value() {
        let text = crate::init::content("chat.example.org", &[]).unwrap();
        let (config, _) = Config::from_str(&text, Path::new("chatmail.ini")).unwrap();
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            let Some((key, _)) = line.split_once(" =") else {
                continue;
            };
            if key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                assert!(value(&config, key).is_some(), "{key}");
            }
        }
        assert_eq!(value(&config, "mail_domain").unwrap(), "chat.example.org");
        assert_eq!(value(&config, "max_load_1m").unwrap(), "5");
        assert_eq!(
            value(&config, "mailboxes_dir").unwrap(),
            "/home/vmail/mail/chat.example.org"
        );
        assert_eq!(value(&config, "nokey"), None);
    }
}
