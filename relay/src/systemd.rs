//! Starting the relay's units on a systemd host.

use crate::Error;

/// The package's sockets (the daemons start behind them), timers and services.
pub const SOCKETS: &[&str] = &[
    "chatmail-doveauth.socket",
    "chatmail-pushnotify.socket",
    "chatmail-milter-outbound.socket",
    "chatmail-milter-inbound.socket",
    "chatmail-milter-internal.socket",
    "chatmail-web.socket",
];
pub const TIMERS: &[&str] = &[
    "chatmail-expire.timer",
    "chatmail-fsreport.timer",
    "chatmail-relay-certs.timer",
];
pub const SERVICES: &[&str] = &[
    "chatmail-doveauth.service",
    "chatmail-pushnotify.service",
    "chatmail-milter.service",
    "chatmail-web.service",
];
/// Debian's units of the two mail servers.
pub const POSTFIX: &str = "postfix.service";
pub const DOVECOT: &str = "dovecot.service";
/// Debian's unit of the web server in front of port 80 and 443.
pub const NGINX: &str = "nginx.service";
/// Debian's unit of coturn, TURN for calls (the package's drop-in points it at the
/// configuration setup writes, and keeps it from starting without one).
pub const COTURN: &str = "coturn.service";
/// The package's iroh relay: enabled while chatmail.ini's `iroh_relay` names no other.
pub const IROH_RELAY: &str = "chatmail-iroh-relay.service";

/// Runs `systemctl ARGS`.
pub fn systemctl(args: &[&str]) -> Result<(), Error> {
    crate::command::run("systemctl", args)
}

/// What changed in this run, so that only what needs it restarts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Restart {
    /// The operator's certificate (tls_external_cert_and_key): its path unit runs.
    pub external_tls: bool,
    pub daemons: bool,
    pub postfix: bool,
    pub dovecot: bool,
    pub nginx: bool,
    /// coturn runs (`turn_secret_file` is set) ...
    pub turn: bool,
    /// ... and its configuration changed.
    pub turn_changed: bool,
    /// The relay runs its own iroh relay.
    pub iroh: bool,
}

/// Enables and starts every unit; restarts those whose configuration changed.
pub fn start(restart: Restart) -> Result<(), Error> {
    systemctl(&["daemon-reload"])?;
    let mut enable = vec!["enable", "--now", "--quiet"];
    enable.extend(SOCKETS);
    enable.extend(TIMERS);
    systemctl(&enable)?;
    let mut services = vec![if restart.daemons { "restart" } else { "start" }];
    services.extend(SERVICES);
    systemctl(&services)?;
    systemctl(&["enable", "--quiet", DOVECOT, POSTFIX, NGINX])?;
    if restart.turn {
        systemctl(&["enable", "--quiet", COTURN])?;
        systemctl(&[
            if restart.turn_changed {
                "restart"
            } else {
                "start"
            },
            COTURN,
        ])?;
    }
    if restart.iroh {
        systemctl(&["enable", "--quiet", IROH_RELAY])?;
        systemctl(&[
            if restart.daemons { "restart" } else { "start" },
            IROH_RELAY,
        ])?;
    } else {
        systemctl(&["disable", "--now", "--quiet", IROH_RELAY])?;
    }
    let path_unit = crate::templates::EXTERNAL_TLS_PATH_UNIT;
    if restart.external_tls {
        systemctl(&["enable", "--now", "--quiet", path_unit])?;
    } else {
        // A relay that used the operator's certificate before: its watch stops (a unit
        // that was never there is no error).
        let _ = systemctl(&["disable", "--now", "--quiet", path_unit]);
    }
    // Dovecot first: Postfix delivers to it and authenticates through it.
    // nginx last: port 443 hands connections to both.
    for (unit, changed) in [
        (DOVECOT, restart.dovecot),
        (POSTFIX, restart.postfix),
        (NGINX, restart.nginx),
    ] {
        systemctl(&[if changed { "restart" } else { "start" }, unit])?;
    }
    Ok(())
}
