//! The addresses the relay's domain points at: given with `--ip`, or this machine's public
//! ones, as `ip -j addr show scope global` lists them (no lookup outside the machine).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

/// Public IPv4 and IPv6 addresses, each list sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

impl Addresses {
    /// Exactly `ips` (the operator knows best: no filtering).
    pub fn given(ips: &[IpAddr]) -> Addresses {
        let mut out = Addresses::default();
        for ip in ips {
            match ip {
                IpAddr::V4(a) => out.v4.push(*a),
                IpAddr::V6(a) => out.v6.push(*a),
            }
        }
        out.v4.sort();
        out.v4.dedup();
        out.v6.sort();
        out.v6.dedup();
        out
    }

    /// This machine's public addresses; none when `ip` cannot tell (the records then say to
    /// give `--ip`).
    pub fn of_this_machine() -> Addresses {
        let listed = Command::new("ip")
            .args(["-j", "addr", "show", "scope", "global"])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| interface_addresses(&String::from_utf8_lossy(&out.stdout)))
            .unwrap_or_default();
        let public: Vec<IpAddr> = listed.into_iter().filter(is_public).collect();
        Addresses::given(&public)
    }
}

/// Every address of this machine's interfaces, whatever its scope (coturn's peers must not
/// be any of them); none when `ip` cannot tell.
pub fn all_of_this_machine() -> Vec<IpAddr> {
    Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| interface_addresses(&String::from_utf8_lossy(&out.stdout)))
        .unwrap_or_default()
}

/// The stable addresses in `ip -j addr` output: temporary (privacy), deprecated and
/// not yet confirmed IPv6 addresses are left out, as is anything unparsable.
fn interface_addresses(json: &str) -> Vec<IpAddr> {
    let Ok(serde_json::Value::Array(interfaces)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    let flagged =
        |a: &serde_json::Value, flag: &str| a.get(flag).and_then(|v| v.as_bool()) == Some(true);
    interfaces
        .iter()
        .filter_map(|i| i.get("addr_info")?.as_array())
        .flatten()
        .filter(|a| {
            !["temporary", "deprecated", "tentative", "dadfailed"]
                .iter()
                .any(|f| flagged(a, f))
        })
        .filter_map(|a| a.get("local")?.as_str()?.parse().ok())
        .collect()
}

/// Reachable from the Internet: not private, shared (CGNAT), loopback, link-local,
/// documentation, benchmarking, reserved or multicast; for IPv6 only global unicast
/// (2000::/3) outside the documentation prefix.
pub fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let [b0, b1, ..] = a.octets();
            !(a.is_private()
                || a.is_loopback()
                || a.is_link_local()
                || a.is_documentation()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || b0 == 0
                || b0 >= 240
                || (b0 == 100 && (64..128).contains(&b1))
                || (b0 == 198 && (18..20).contains(&b1)))
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            s[0] & 0xe000 == 0x2000 && !(s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_json_and_keeps_public_stable_addresses() {
        let json = r#"[{"ifname":"lo","addr_info":[]},
            {"ifname":"eth0","addr_info":[
              {"family":"inet","local":"93.184.215.14","prefixlen":24,"scope":"global"},
              {"family":"inet","local":"10.0.0.5","prefixlen":8,"scope":"global"},
              {"family":"inet6","local":"2a01:4f8::1","prefixlen":64,"scope":"global"},
              {"family":"inet6","local":"2a01:4f8::abcd","scope":"global","temporary":true},
              {"family":"inet6","local":"2a01:4f8::dead","scope":"global","deprecated":true},
              {"family":"inet6","local":"fd00::2","prefixlen":64,"scope":"global"},
              {}]}]"#;
        let listed = interface_addresses(json);
        assert_eq!(listed.len(), 4, "{listed:?}");
        let public: Vec<IpAddr> = listed.into_iter().filter(is_public).collect();
        let a = Addresses::given(&public);
        assert_eq!(a.v4, vec![Ipv4Addr::new(93, 184, 215, 14)]);
        assert_eq!(a.v6, vec!["2a01:4f8::1".parse::<Ipv6Addr>().unwrap()]);
        assert!(interface_addresses("not json").is_empty());
    }

    #[test]
    fn only_internet_addresses_are_public() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "192.0.2.2",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "fe80::1",
            "fd00::2",
            "2001:db8::1",
        ] {
            assert!(!is_public(&private.parse().unwrap()), "{private}");
        }
        for public in ["1.1.1.1", "100.128.0.1", "2a01:4f8::1"] {
            assert!(is_public(&public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn given_addresses_are_sorted_and_unique() {
        let ips: Vec<IpAddr> = ["2a01::1", "5.6.7.8", "1.2.3.4", "5.6.7.8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let a = Addresses::given(&ips);
        assert_eq!(
            a.v4,
            vec![Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)]
        );
        assert_eq!(a.v6.len(), 1);
    }
}
