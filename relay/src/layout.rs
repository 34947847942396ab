//! Where the relay runs: a server under systemd, or the local test relay of
//! `packaging/relay` (loopback only, no systemd). The few settings that differ.

use chatmail_common::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A server: every address, logs to the journal (syslog), systemd units.
    Systemd,
    /// `packaging/relay up`: 127.0.0.1 only, log files in [`LOCAL_LOG_DIR`].
    Local,
}

/// The local relay's log files.
pub const LOCAL_LOG_DIR: &str = "/var/log/chatmail-relay";

impl Layout {
    /// Postfix `inet_interfaces`.
    pub fn inet_interfaces(self) -> &'static str {
        match self {
            Layout::Systemd => "all",
            Layout::Local => "127.0.0.1",
        }
    }

    /// Postfix `inet_protocols`.
    pub fn inet_protocols(self, config: &Config) -> &'static str {
        match self {
            Layout::Systemd if !config.deployment.disable_ipv6 => "all",
            _ => "ipv4",
        }
    }

    /// Postfix `mynetworks`: the machine itself.
    pub fn mynetworks(self, config: &Config) -> &'static str {
        match self {
            Layout::Systemd if !config.deployment.disable_ipv6 => "127.0.0.0/8 [::1]/128",
            _ => "127.0.0.0/8",
        }
    }

    /// Dovecot `listen`.
    pub fn dovecot_listen(self, config: &Config) -> &'static str {
        match self {
            Layout::Systemd if !config.deployment.disable_ipv6 => "*, ::",
            Layout::Systemd => "*",
            Layout::Local => "127.0.0.1",
        }
    }

    /// IMAP login processes kept ready (the reference's 10 on a server; a test relay shares
    /// its machine).
    pub fn imap_login_min_avail(self) -> u32 {
        match self {
            Layout::Systemd => 10,
            Layout::Local => 2,
        }
    }

    /// Postfix `maillog_file`: empty means syslog, i.e. the journal.
    pub fn postfix_log_file(self) -> String {
        match self {
            Layout::Systemd => String::new(),
            Layout::Local => format!("{LOCAL_LOG_DIR}/postfix.log"),
        }
    }

    /// Dovecot `log_path`.
    pub fn dovecot_log(self) -> String {
        match self {
            Layout::Systemd => "syslog".into(),
            Layout::Local => format!("{LOCAL_LOG_DIR}/dovecot.log"),
        }
    }
}
