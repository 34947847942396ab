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

    /// nginx `listen` lines for `port` (indented for a server block).
    pub fn nginx_listen(self, config: &Config, port: u16) -> String {
        match self {
            Layout::Systemd if !config.deployment.disable_ipv6 => {
                format!("        listen {port};\n        listen [::]:{port};")
            }
            Layout::Systemd => format!("        listen {port};"),
            Layout::Local => format!("        listen 127.0.0.1:{port};"),
        }
    }

    /// nginx worker processes (one per core on a server).
    pub fn nginx_workers(self) -> &'static str {
        match self {
            Layout::Systemd => "auto",
            Layout::Local => "1",
        }
    }

    /// nginx `error_log`.
    pub fn nginx_error_log(self) -> String {
        match self {
            Layout::Systemd => "syslog:server=unix:/dev/log,nohostname warn".into(),
            Layout::Local => format!("{LOCAL_LOG_DIR}/nginx.log warn"),
        }
    }

    /// nginx `access_log`: none on a server (the relay keeps no record of who fetched what);
    /// a file on the local test relay.
    pub fn nginx_access_log(self) -> String {
        match self {
            Layout::Systemd => "off".into(),
            Layout::Local => format!("{LOCAL_LOG_DIR}/nginx-access.log"),
        }
    }

    /// Where the relay's binaries are: the package's, or those `packaging/relay` installs.
    pub fn bin_dir(self) -> &'static str {
        match self {
            Layout::Systemd => "/usr/bin",
            Layout::Local => "/usr/local/bin",
        }
    }
}
