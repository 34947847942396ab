//! TURN for Delta Chat's calls: Debian's coturn with the TURN REST scheme. Setup makes the
//! secret once (`turn_secret_file`, root:chatmail-turn 0640: chatmail-pushnotify reads it
//! through that supplementary group to compute credentials) and renders coturn's
//! configuration with it (root:turnserver 0640: coturn has no option to read the secret
//! from a file of its own).

use std::net::IpAddr;
use std::path::Path;

use chatmail_common::config::Config;
use chatmail_common::invite::random_string;
use chatmail_common::turn_secret;

use crate::Error;
use crate::layout::Layout;
use crate::plan::{FileSpec, on_disk};
use crate::render::{Values, render};
use crate::system::group_id;
use crate::templates::TURNSERVER_CONF;

/// The UDP ports relayed media use (coturn's default range, as the reference's).
pub const MIN_PORT: u16 = 49152;
pub const MAX_PORT: u16 = 65535;
/// The TURN port announced to clients (UDP and TCP).
pub const PORT: u16 = 3478;
/// The group that may read the secret besides root: chatmail-pushnotify's.
pub const SECRET_GROUP: &str = "chatmail-turn";
/// coturn's user and group (Debian's package makes them).
pub const COTURN_GROUP: &str = "turnserver";

/// Characters of a new secret (no quoting needed in coturn's configuration).
const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_LEN: usize = 48;

/// Peers coturn never relays to (inclusive ranges): this network, private (RFC 1918), shared
/// (CGNAT), loopback, link-local, IETF protocol assignments, benchmarking, multicast and
/// everything above; for IPv6 unspecified and loopback, IPv4-mapped, NAT64, unique-local,
/// link-local and multicast (`0.0.0.0` and `::` themselves coturn refuses unless loopback
/// peers are allowed).
///
/// coturn's ranges have two quirks (`ioa_addr_in_range`): a bound of all zeros (`::`) matches
/// any address of either family, so `::` is never a bound here; and IPv6 bounds are compared
/// byte by byte, so every IPv6 range is a whole prefix (checked by a test), for which that
/// comparison is exact.
const DENIED_RANGES: &[(&str, &str)] = &[
    ("0.0.0.0", "0.255.255.255"),
    ("10.0.0.0", "10.255.255.255"),
    ("100.64.0.0", "100.127.255.255"),
    ("127.0.0.0", "127.255.255.255"),
    ("169.254.0.0", "169.254.255.255"),
    ("172.16.0.0", "172.31.255.255"),
    ("192.0.0.0", "192.0.0.255"),
    ("192.168.0.0", "192.168.255.255"),
    ("198.18.0.0", "198.19.255.255"),
    ("224.0.0.0", "255.255.255.255"),
    ("::1", "::1"),
    ("::ffff:0.0.0.0", "::ffff:255.255.255.255"),
    ("64:ff9b::", "64:ff9b::ffff:ffff"),
    ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"),
    ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
];

/// The secret file and coturn's configuration; nothing when `turn_secret_file` is empty (the
/// operator runs another TURN server, e.g. the reference's chatmail-turn).
pub fn plan(
    root: &Path,
    config: &Config,
    layout: Layout,
    values: &Values,
) -> Result<Vec<FileSpec>, Error> {
    let Some(secret_path) = &config.turn_secret_file else {
        return Ok(Vec::new());
    };
    let secret = match std::fs::read(on_disk(root, secret_path)) {
        Ok(bytes) => turn_secret::parse(&bytes).ok_or_else(|| {
            Error::Refused(format!(
                "{}: not a usable TURN secret (one line of at least {} printable characters); \
                 remove it and run setup again for a new one",
                secret_path.display(),
                turn_secret::MIN_LEN
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            random_string(SECRET_CHARS, SECRET_LEN).map_err(|e| Error::System {
                what: "TURN secret".into(),
                reason: e.to_string(),
            })?
        }
        Err(e) => return Err(Error::io(secret_path, e)),
    };
    let mut values = values.clone();
    values.insert("TURN_SECRET", secret.clone());
    values.insert("TURN_MIN_PORT", MIN_PORT.to_string());
    values.insert("TURN_MAX_PORT", MAX_PORT.to_string());
    values.insert("TURN_LISTEN", listen(layout));
    values.insert("TURN_LOG", log(layout));
    let own = crate::dns::addresses::all_of_this_machine();
    values.insert("TURN_DENIED_PEERS", denied_peers(&own));
    let conf = render(TURNSERVER_CONF.text, &values).map_err(|e| Error::Template {
        path: TURNSERVER_CONF.dest.into(),
        reason: e.to_string(),
    })?;
    let secret_gid = group_id(root, SECRET_GROUP)?;
    let coturn_gid = group_id(root, COTURN_GROUP)?;
    Ok(vec![
        FileSpec {
            owner: Some((0, secret_gid)),
            secret: true,
            ..FileSpec::new(secret_path, secret + "\n", 0o640)
        },
        FileSpec {
            owner: Some((0, coturn_gid)),
            secret: true,
            ..FileSpec::new(TURNSERVER_CONF.dest, conf, TURNSERVER_CONF.mode)
        },
    ])
}

/// Where coturn listens and relays from: every address on a server, loopback on the local
/// relay.
fn listen(layout: Layout) -> String {
    match layout {
        Layout::Systemd => "# (every address of the host)".into(),
        Layout::Local => "listening-ip=127.0.0.1\nrelay-ip=127.0.0.1".into(),
    }
}

/// The journal on a server (syslog, nothing on stdout); standard output on the local relay
/// (its log file).
fn log(layout: Layout) -> String {
    match layout {
        Layout::Systemd => "syslog\nno-stdout-log".into(),
        Layout::Local => "log-file=stdout".into(),
    }
}

/// `denied-peer-ip` lines: [`DENIED_RANGES`], then each of the host's own addresses.
pub fn denied_peers(own: &[IpAddr]) -> String {
    let mut lines: Vec<String> = DENIED_RANGES
        .iter()
        .map(|(from, to)| format!("denied-peer-ip={from}-{to}"))
        .collect();
    let mut own: Vec<IpAddr> = own.to_vec();
    own.sort();
    own.dedup();
    lines.extend(own.iter().map(|ip| format!("denied-peer-ip={ip}")));
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    #[test]
    fn denied_ranges_are_ranges() {
        for (from, to) in DENIED_RANGES {
            let (a, b): (IpAddr, IpAddr) = (from.parse().unwrap(), to.parse().unwrap());
            assert_eq!(a.is_ipv4(), b.is_ipv4(), "{from}-{to}");
            assert!(a <= b, "{from}-{to}");
        }
        // IPv6 ranges are whole prefixes, and never start at `::`.
        for (from, to) in DENIED_RANGES {
            let (Ok(a), Ok(b)) = (from.parse::<Ipv6Addr>(), to.parse::<Ipv6Addr>()) else {
                continue;
            };
            let (a, b) = (u128::from(a), u128::from(b));
            assert_ne!(a, 0, "{from}");
            let host_bits = (a ^ b).checked_ilog2().map_or(0, |i| i + 1);
            let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
            assert_eq!((a & mask, b | mask), (a, u128::MAX), "{from}-{to}");
            assert_eq!(a | !mask, b, "{from}-{to}");
        }
        let lines = denied_peers(&["203.0.113.7".parse().unwrap(), "::1".parse().unwrap()]);
        assert!(
            lines.contains("denied-peer-ip=10.0.0.0-10.255.255.255\n"),
            "{lines}"
        );
        assert!(
            lines.ends_with("denied-peer-ip=203.0.113.7\ndenied-peer-ip=::1"),
            "{lines}"
        );
    }
}
