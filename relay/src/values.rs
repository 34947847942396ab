//! The values of the templates' placeholders, from the typed config and the layout.

use std::path::Path;

use chatmail_common::config::Config;

use crate::layout::Layout;
use crate::render::Values;
use crate::tls;

/// The mail user's ids (Dovecot's `first_valid_uid` and friends).
#[derive(Debug, Clone, Copy)]
pub struct Vmail {
    pub uid: u32,
    pub gid: u32,
}

/// doveauth's socket (passdb, userdb, last login), in the units and on the local relay.
pub const DOVEAUTH_SOCKET: &str = "/run/doveauth/doveauth.socket";

/// chatmail-web's socket, which nginx proxies to.
pub const WEB_SOCKET: &str = "/run/chatmail-web/web.sock";
/// The web files setup renders (autoconfig, the MTA-STS policy), served by nginx.
pub const WEB_STATIC: &str = "/var/lib/chatmail-relay/www";
/// The operator's own web pages when chatmail.ini has no `www_folder`.
pub const DEFAULT_WWW_DIR: &str = "/etc/chatmail/www";

/// Loopback ports behind nginx's port 443 (PROXY protocol), and the Postfix listener that
/// chatmail-web hands `/mxdeliv` mail to.
pub const IMAPS_PROXY_PORT: u16 = 10993;
pub const SMTPS_PROXY_PORT: u16 = 10465;
pub const HTTPS_PROXY_PORT: u16 = 8443;
pub const MXDELIV_SMTP_PORT: u16 = 10025;
/// chatmail-iroh-relay's HTTP listener on loopback, behind nginx's `/relay`, `/ping` and
/// `/generate_204` (the iroh relay's default port, as the reference's).
pub const IROH_RELAY_PORT: u16 = 3340;

pub fn values(config: &Config, layout: Layout, vmail: Vmail) -> Values {
    let mut v = Values::new();
    let mut set = |k: &'static str, value: String| {
        v.insert(k, value);
    };
    set("CHATMAIL_INI", config.path.display().to_string());
    set("MAIL_DOMAIN", config.mail_domain.clone());
    set("MAIL_DOMAIN_BARE", config.mail_domain_bare.clone());
    set("MYHOSTNAME", myhostname(config));
    set("MAILBOXES_DIR", config.mailboxes_dir.display().to_string());
    set("MAX_MESSAGE_SIZE", config.max_message_size.to_string());
    set(
        "MAX_MAILBOX_SIZE",
        format!("{}M", config.max_mailbox_size_mb),
    );
    set(
        "QUOTA_TARGET_MB",
        quota_target_mb(config.max_mailbox_size_mb),
    );
    let smtp = config.max_smtp_connections;
    set("MAX_SMTP_CONNECTIONS", smtp.to_string());
    set(
        "MAX_SMTP_CONNECTIONS_PER_CLIENT",
        (smtp / 5).max(1).to_string(),
    );
    set(
        "MAX_IMAP_CONNECTIONS",
        config.max_imap_connections.to_string(),
    );
    set("INET_INTERFACES", layout.inet_interfaces().into());
    set("INET_PROTOCOLS", layout.inet_protocols(config).into());
    set("MYNETWORKS", layout.mynetworks(config).into());
    set("DOVECOT_LISTEN", layout.dovecot_listen(config).into());
    set(
        "IMAP_LOGIN_MIN_AVAIL",
        layout.imap_login_min_avail().to_string(),
    );
    set("POSTFIX_LOG_FILE", layout.postfix_log_file());
    set("DOVECOT_LOG", layout.dovecot_log());
    let (cert, key) = tls::paths(config);
    set("TLS_CERT", cert.display().to_string());
    set("TLS_KEY", key.display().to_string());
    set("DOVEAUTH_SOCKET", DOVEAUTH_SOCKET.into());
    set("BIN_DIR", layout.bin_dir().into());
    set("WEB_SOCKET", WEB_SOCKET.into());
    set("WEB_STATIC", WEB_STATIC.into());
    set("WWW_DIR", www_dir(config));
    set("ACME_WEBROOT", crate::acme::WEBROOT.into());
    set("IMAPS_PROXY_PORT", IMAPS_PROXY_PORT.to_string());
    set("SMTPS_PROXY_PORT", SMTPS_PROXY_PORT.to_string());
    set("HTTPS_PROXY_PORT", HTTPS_PROXY_PORT.to_string());
    set("MXDELIV_SMTP_PORT", MXDELIV_SMTP_PORT.to_string());
    set("NGINX_LISTEN_HTTP", layout.nginx_listen(config, 80));
    set("NGINX_LISTEN_HTTPS", layout.nginx_listen(config, 443));
    set("NGINX_WORKERS", layout.nginx_workers().into());
    set("NGINX_ERROR_LOG", layout.nginx_error_log());
    set("NGINX_ACCESS_LOG", layout.nginx_access_log());
    set("IROH_LOCATIONS", iroh_locations(config));
    set("VMAIL_UID", vmail.uid.to_string());
    set("VMAIL_GID", vmail.gid.to_string());
    set(
        "MILTER_OUTBOUND",
        postfix_milter_addr(&config.milter_outbound),
    );
    set(
        "MILTER_INBOUND",
        postfix_milter_addr(&config.milter_inbound),
    );
    // Mail Postfix makes itself goes to the internal listener on every relay: cleartext that
    // sendmail(1) would inject is refused, bounces pass (and are signed where there is DKIM).
    set(
        "NON_SMTPD_MILTERS",
        postfix_milter_addr(&config.milter_internal),
    );
    v
}

/// nginx's locations of the relay's own iroh relay (none when chatmail.ini's `iroh_relay`
/// names another): the WebSocket upgrade at `/relay` and the probes iroh clients send. The
/// headers are set anew (a location's `proxy_set_header` replaces the server's).
fn iroh_locations(config: &Config) -> String {
    if !config.deployment.enable_iroh_relay {
        return "        # (iroh_relay names another iroh relay: none here)".into();
    }
    let to = format!("http://127.0.0.1:{IROH_RELAY_PORT}");
    format!(
        "        # The iroh relay (chatmail-iroh-relay on loopback): its WebSocket, and the probes
        # iroh clients send to tell whether it works.
        location = /relay {{
            proxy_pass {to};
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection \"upgrade\";
            proxy_buffering off;
            proxy_read_timeout 300s;
            proxy_send_timeout 300s;
        }}
        location = /ping {{
            proxy_pass {to};
        }}
        location = /generate_204 {{
            proxy_pass {to};
        }}
"
    )
}

/// The operator's web folder (`www_folder`; relative to chatmail.ini's directory).
pub fn www_dir(config: &Config) -> String {
    let folder = config.deployment.www_folder.trim();
    if folder.is_empty() {
        return DEFAULT_WWW_DIR.into();
    }
    let dir = config.path.parent().unwrap_or(Path::new("/"));
    dir.join(folder).display().to_string()
}

/// Postfix's host name: the domain, or for an IP-only relay the reverse-pointer name of its
/// address (as the reference does).
pub fn myhostname(config: &Config) -> String {
    match config.ipv4_relay {
        Some(ip) => {
            let [a, b, c, d] = ip.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        None => config.mail_domain_bare.clone(),
    }
}

/// 70 % of the mailbox size in MiB (`350`, or `0.7` for a 1 MiB quota): what `chatmail-expire
/// quota` trims a mailbox to when Dovecot's quota warning fires at 75 %.
pub fn quota_target_mb(mb: u64) -> String {
    let tenths = mb * 7;
    if tenths.is_multiple_of(10) {
        (tenths / 10).to_string()
    } else {
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// A milter address as Postfix takes it: a socket below the queue directory is given
/// relative to it (`unix:chatmail/outbound.sock`), which works with and without chroot.
pub fn postfix_milter_addr(addr: &str) -> String {
    match addr
        .strip_prefix("unix:")
        .and_then(|p| Path::new(p).strip_prefix("/var/spool/postfix").ok())
    {
        Some(rel) => format!("unix:{}", rel.display()),
        None => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_values() {
        assert_eq!(quota_target_mb(500), "350");
        assert_eq!(quota_target_mb(1), "0.7");
        assert_eq!(quota_target_mb(2048), "1433.6");
        assert_eq!(
            postfix_milter_addr("unix:/var/spool/postfix/chatmail/outbound.sock"),
            "unix:chatmail/outbound.sock"
        );
        assert_eq!(postfix_milter_addr("unix:/run/m.sock"), "unix:/run/m.sock");
        assert_eq!(
            postfix_milter_addr("inet:127.0.0.1:8891"),
            "inet:127.0.0.1:8891"
        );
    }
}
