//! Where callbacks may go.
//!
//! A callback URL comes from whoever made an async call, and a function can make one through
//! the function API: without a check, it could have skiff POST to skiff's own management API
//! on loopback and so deploy or scale functions. A callback may therefore not reach:
//!
//! - loopback (`127.0.0.0/8`, `::1`), link-local (`169.254.0.0/16`, `fe80::/10`, where
//!   cloud metadata services live), unspecified, multicast and broadcast addresses;
//! - the functions' network (its subnets and gateway, where the function API and the Lambda
//!   Runtime API listen);
//! - the daemon's own listeners (the address it listens on; on any local address when it
//!   listens on all of them);
//!
//! unless the operator allows the address explicitly (`--callback-allow CIDR`). The check is
//! made on the addresses a name resolves to, when the callback is sent (and once when the
//! call is made, to refuse a bad URL at once), so a name pointing at `127.0.0.1` is refused
//! too. IPv4 addresses written as IPv6 (`::ffff:127.0.0.1`) are checked as IPv4.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{addr} is {why}: callbacks may not go there (an operator can allow it with --callback-allow)"
)]
pub struct Refused {
    /// The address refused.
    pub addr: SocketAddr,
    /// What it is.
    pub why: &'static str,
}

/// The addresses callbacks may not reach, and those allowed anyway.
#[derive(Debug, Clone, Default)]
pub struct CallbackPolicy {
    allowed: Vec<IpNet>,
    /// The functions' network.
    networks: Vec<IpNet>,
    /// The functions' network gateway.
    gateways: Vec<IpAddr>,
    /// Listeners of the daemon on one address.
    listeners: Vec<SocketAddr>,
    /// Ports the daemon listens on at every local address, and those addresses.
    any_address_ports: Vec<u16>,
    local: Vec<IpAddr>,
}

/// The same address, IPv4 if it is an IPv4 address written as IPv6.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// What kind of address no callback may reach `ip` is, if it is one.
fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address")
            } else if v4.is_unspecified() || v4.octets()[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("a multicast or broadcast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unicast_link_local() {
                Some("a link-local address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

/// Whether the registry image `reference` names is on this host or a private network:
/// `localhost`, an address no callback may reach ([`special`], IPv4 written as IPv6
/// included), or a private one (IPv4 private ranges, IPv6 unique local). The engine would
/// reach such a registry from the daemon's host.
pub fn registry_is_local(reference: &str) -> bool {
    let registry = skiff_runtime::registry_of(reference);
    // The port, if any, follows the last colon; an IPv6 literal is in brackets.
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    match host.parse::<IpAddr>().map(canonical) {
        Ok(ip) if special(ip).is_some() => true,
        Ok(IpAddr::V4(v4)) => v4.is_private(),
        Ok(IpAddr::V6(v6)) => v6.is_unique_local(),
        Err(_) => false,
    }
}

impl CallbackPolicy {
    /// The policy of a daemon listening on `listeners`, whose functions' network has
    /// `subnets` and `gateway`, with the operator's `allowed` ranges.
    pub fn new(
        allowed: Vec<IpNet>,
        subnets: Vec<IpNet>,
        gateway: Option<IpAddr>,
        listeners: &[SocketAddr],
    ) -> Self {
        let mut policy = CallbackPolicy {
            allowed,
            networks: subnets,
            gateways: gateway.into_iter().collect(),
            ..CallbackPolicy::default()
        };
        for listener in listeners {
            if listener.ip().is_unspecified() {
                policy.any_address_ports.push(listener.port());
            } else {
                policy
                    .listeners
                    .push(SocketAddr::new(canonical(listener.ip()), listener.port()));
            }
        }
        if !policy.any_address_ports.is_empty() {
            policy.local = match if_addrs::get_if_addrs() {
                Ok(interfaces) => interfaces.iter().map(|i| canonical(i.ip())).collect(),
                Err(err) => {
                    tracing::warn!(%err, "cannot list this host's addresses for the callback check");
                    Vec::new()
                }
            };
        }
        policy
    }

    /// Whether a callback may be sent to `addr`.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refused> {
        let ip = canonical(addr.ip());
        let refuse = |why| Err(Refused { addr, why });
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if let Some(why) = special(ip) {
            return refuse(why);
        }
        if self.gateways.contains(&ip) {
            return refuse("skiff's address on the functions' network");
        }
        if self.networks.iter().any(|net| net.contains(&ip)) {
            return refuse("on the functions' network");
        }
        let own = SocketAddr::new(ip, addr.port());
        if self.listeners.contains(&own)
            || (self.any_address_ports.contains(&addr.port()) && self.local.contains(&ip))
        {
            return refuse("this skiff daemon's own listener");
        }
        Ok(())
    }

    /// The first of `addrs` a callback may go to, or why none may.
    pub fn pick(&self, addrs: impl IntoIterator<Item = SocketAddr>) -> Result<SocketAddr, String> {
        let mut refusals = Vec::new();
        for addr in addrs {
            match self.check(addr) {
                Ok(()) => return Ok(addr),
                Err(refused) => refusals.push(refused),
            }
        }
        match refusals.first() {
            Some(first) => Err(first.to_string()),
            None => Err("the name resolves to no address".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("socket address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("cidr")
    }

    fn policy(allowed: &[&str], listeners: &[&str]) -> CallbackPolicy {
        CallbackPolicy::new(
            allowed.iter().map(|a| net(a)).collect(),
            vec![net("172.18.0.0/16")],
            Some("172.18.0.1".parse().expect("ip")),
            &listeners.iter().map(|l| addr(l)).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn loopback_link_local_and_the_functions_network_are_refused() {
        let p = policy(&[], &["127.0.0.1:8080"]);
        for refused in [
            "127.0.0.1:8080",
            "127.0.0.53:80",
            "[::1]:80",
            "[::ffff:127.0.0.1]:8080",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "0.0.0.0:8080",
            "[::]:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "172.18.0.1:41123",
            "172.18.0.7:8080",
        ] {
            assert!(p.check(addr(refused)).is_err(), "{refused}");
        }
        for fine in ["93.184.216.34:80", "10.1.2.3:9000", "192.168.1.10:443"] {
            assert_eq!(p.check(addr(fine)), Ok(()), "{fine}");
        }
    }

    #[test]
    fn registries_on_this_host_or_a_private_network_are_local() {
        for local in [
            "127.0.0.1:5000/x",
            "localhost:5000/x",
            "localhost/x",
            "169.254.169.254/x:1",
            "10.1.2.3/x",
            "192.168.0.9:80/x",
            "[::1]:5000/x",
            "[::ffff:127.0.0.1]:5000/x",
            "[fd00::1]/x",
            "0.0.0.0/x",
        ] {
            assert!(registry_is_local(local), "{local}");
        }
        for remote in [
            "busybox",
            "registry.example.com/x",
            "8.8.8.8/x",
            "docker.io/library/x",
        ] {
            assert!(!registry_is_local(remote), "{remote}");
        }
    }

    #[test]
    fn the_daemons_own_listener_is_refused() {
        let p = policy(&[], &["10.0.0.5:8080"]);
        assert!(p.check(addr("10.0.0.5:8080")).is_err());
        assert_eq!(p.check(addr("10.0.0.5:9000")), Ok(()), "another port");
        // Listening on every address: each local address at that port is the daemon.
        let everywhere = CallbackPolicy {
            any_address_ports: vec![8080],
            local: vec!["10.0.0.5".parse().expect("ip")],
            ..CallbackPolicy::default()
        };
        assert!(everywhere.check(addr("10.0.0.5:8080")).is_err());
        assert_eq!(everywhere.check(addr("10.0.0.6:8080")), Ok(()));
    }

    #[test]
    fn an_operator_can_allow_a_range() {
        let p = policy(&["127.0.0.1/32", "172.18.5.0/24"], &["127.0.0.1:8080"]);
        assert_eq!(p.check(addr("127.0.0.1:9000")), Ok(()));
        assert_eq!(p.check(addr("[::ffff:127.0.0.1]:9000")), Ok(()));
        assert_eq!(p.check(addr("172.18.5.9:80")), Ok(()));
        assert!(p.check(addr("127.0.0.2:9000")).is_err());
        assert!(p.check(addr("172.18.0.1:80")).is_err());
    }

    #[test]
    fn pick_takes_the_first_allowed_address_or_says_why_none() {
        let p = policy(&[], &[]);
        assert_eq!(
            p.pick([addr("127.0.0.1:80"), addr("93.184.216.34:80")]),
            Ok(addr("93.184.216.34:80"))
        );
        let refused = p.pick([addr("127.0.0.1:80")]).expect_err("loopback");
        assert!(refused.contains("loopback"), "{refused}");
        assert!(p.pick([]).is_err());
    }
}
