//! The configuration templates, built into the binary (one copy: `relay/templates/`).
//! Placeholders are `{{NAME}}` ([`crate::render`]).

/// One file the relay writes from a template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// Where it goes (absolute).
    pub dest: &'static str,
    pub text: &'static str,
    pub mode: u32,
}

macro_rules! template {
    ($dest:literal, $src:literal) => {
        template!($dest, $src, 0o644)
    };
    ($dest:literal, $src:literal, $mode:literal) => {
        Template {
            dest: $dest,
            text: include_str!(concat!("../templates/", $src)),
            mode: $mode,
        }
    };
}

/// Postfix's and nginx's configuration of a relay, and its web files.
pub const CONFIG_FILES: &[Template] = &[
    template!("/etc/postfix/main.cf", "postfix/main.cf"),
    template!("/etc/postfix/master.cf", "postfix/master.cf"),
    template!("/etc/postfix/login_map", "postfix/login_map"),
    template!(
        "/etc/postfix/lmtp_header_cleanup",
        "postfix/lmtp_header_cleanup"
    ),
    template!(
        "/etc/postfix/submission_header_cleanup",
        "postfix/submission_header_cleanup"
    ),
    template!("/etc/postfix/tls_policy", "postfix/tls_policy"),
    template!("/etc/nginx/nginx.conf", "nginx/nginx.conf"),
    template!(
        "/var/lib/chatmail-relay/www/autoconfig.xml",
        "www/autoconfig.xml"
    ),
];

/// Dovecot 2.3's configuration (Debian 12).
pub const DOVECOT_2_3_FILES: &[Template] = &[
    template!("/etc/dovecot/dovecot.conf", "dovecot/dovecot.conf"),
    template!("/etc/dovecot/auth.conf", "dovecot/auth.conf", 0o640),
    template!(
        "/etc/dovecot/push_notification.lua",
        "dovecot/push_notification.lua"
    ),
    template!(
        "/etc/dovecot/chatmail.d/expire.conf",
        "dovecot/chatmail.d/expire.conf"
    ),
    template!(
        "/etc/dovecot/chatmail.d/pushnotify.conf",
        "dovecot/chatmail.d/pushnotify.conf"
    ),
];

/// Dovecot 2.4's configuration (Debian 13): one file in the new syntax, and the Lua passdb and
/// userdb that replace 2.3's dict passdb and userdb (auth.conf).
pub const DOVECOT_2_4_FILES: &[Template] = &[
    template!("/etc/dovecot/dovecot.conf", "dovecot24/dovecot.conf"),
    template!(
        "/etc/dovecot/chatmail-auth.lua",
        "dovecot24/chatmail-auth.lua"
    ),
    template!(
        "/etc/dovecot/push_notification.lua",
        "dovecot/push_notification.lua"
    ),
];

/// With `tls_external_cert_and_key` on a server: Postfix and Dovecot reload when the
/// operator's certificate or key changes (a systemd path unit watches them).
pub const EXTERNAL_TLS_UNITS: &[Template] = &[
    template!(
        "/etc/systemd/system/chatmail-relay-tls-reload.path",
        "systemd/chatmail-relay-tls-reload.path"
    ),
    template!(
        "/etc/systemd/system/chatmail-relay-tls-reload.service",
        "systemd/chatmail-relay-tls-reload.service"
    ),
];

/// coturn's configuration (TURN for calls): it holds the TURN secret, so it is rendered apart
/// from the other files (`turn.rs`).
pub const TURNSERVER_CONF: Template = template!(
    "/etc/chatmail/turnserver.conf",
    "coturn/turnserver.conf",
    0o640
);

/// The path unit of [`EXTERNAL_TLS_UNITS`].
pub const EXTERNAL_TLS_PATH_UNIT: &str = "chatmail-relay-tls-reload.path";

/// `chatmail.ini` as `init` writes it.
pub const CHATMAIL_INI: &str = include_str!("../templates/chatmail.ini");

/// What every file we render says in its first lines: a file without it is not ours.
pub const MARKER: &str = "chatmail-relay";
