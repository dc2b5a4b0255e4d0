//! The client behind a reverse proxy (`--proxy-headers`): which peers are
//! trusted to say who the client is, and what `X-Forwarded-For` and
//! `X-Forwarded-Proto` then say. Pure functions over addresses and header
//! values; the connection code decides when to ask.
//!
//! The rules are uvicorn's. Headers count only when the connection's peer is
//! trusted (`--forwarded-allow-ips`, default `127.0.0.1`). The client is then
//! the rightmost address in `X-Forwarded-For` that is not itself a trusted
//! proxy: entries to its left were written by whoever sent the request and
//! may be forged; entries to its right were appended by proxies we trust.
//! If every entry is trusted, the leftmost is the client. The scheme is
//! the last value of `X-Forwarded-Proto` (all its lines), the one the
//! nearest proxy set: `https` when it says so, else `http`.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// The peers whose forwarding headers are believed: addresses, networks
/// (`10.0.0.0/8`, `fd00::/8`) or everyone (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    everyone: bool,
    networks: Vec<Network>,
}

/// An address and how many of its leading bits a match must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy. An IPv4 address seen as IPv6
    /// (`::ffff:127.0.0.1`, on a socket bound to `::`) is the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.everyone || self.networks.iter().any(|n| n.contains(ip))
    }
}

impl Default for TrustedProxies {
    /// `127.0.0.1`, as uvicorn.
    fn default() -> TrustedProxies {
        TrustedProxies {
            everyone: false,
            networks: vec![Network { addr: IpAddr::from([127, 0, 0, 1]), prefix: 32 }],
        }
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    /// Parses a comma-separated list: `127.0.0.1, 10.0.0.0/8, ::1, *`.
    fn from_str(list: &str) -> Result<TrustedProxies, String> {
        let mut trusted = TrustedProxies { everyone: false, networks: Vec::new() };
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            if item == "*" {
                trusted.everyone = true;
                continue;
            }
            let (addr, prefix) = match item.split_once('/') {
                Some((addr, prefix)) => (addr, Some(prefix)),
                None => (item, None),
            };
            let addr: IpAddr = addr.parse().map_err(|_| {
                format!("{item:?} is not an IP address or network (e.g. 10.0.0.0/8)")
            })?;
            let addr = canonical(addr);
            let bits = if addr.is_ipv4() { 32 } else { 128 };
            let prefix =
                match prefix {
                    None => bits,
                    Some(p) => p.parse::<u8>().ok().filter(|&p| p <= bits).ok_or_else(|| {
                        format!("{item:?}: the prefix length must be 0 to {bits}")
                    })?,
                };
            trusted.networks.push(Network { addr, prefix });
        }
        if !trusted.everyone && trusted.networks.is_empty() {
            return Err("lists no address (use `*` to trust every peer)".into());
        }
        Ok(trusted)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> =
            self.networks.iter().map(|n| format!("{}/{}", n.addr, n.prefix)).collect();
        if self.everyone {
            items.push("*".into());
        }
        f.write_str(&items.join(","))
    }
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address; others unchanged.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Who sent a request and how, as the server believes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The client: the peer, or the address a trusted proxy named (port
    /// 0); `None` for a process on a Unix socket.
    pub(crate) client: Option<SocketAddr>,
    /// `"http"` or `"https"`.
    pub(crate) scheme: &'static str,
}

/// The origin of a request from `peer` whose `X-Forwarded-For` and
/// `X-Forwarded-Proto` header lines, in order, are `forwarded_for` and
/// `forwarded_proto`.
pub(crate) fn origin<'a>(
    peer: Option<SocketAddr>,
    trusted: &TrustedProxies,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    forwarded_proto: impl Iterator<Item = &'a [u8]>,
) -> Origin {
    let mut origin = Origin { client: peer, scheme: "http" };
    // A process on a Unix socket is trusted only by `*`: who may connect
    // is up to the socket file's permissions, not to an address.
    let peer_trusted = match peer {
        Some(peer) => trusted.contains(peer.ip()),
        None => trusted.everyone,
    };
    if !peer_trusted {
        return origin;
    }
    // Values to the left may come from the client; the last one is the
    // nearest (trusted) proxy's.
    let last_proto = forwarded_proto
        .flat_map(|value| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|value| !value.is_empty())
        .last();
    if last_proto.is_some_and(|proto| proto.eq_ignore_ascii_case(b"https")) {
        origin.scheme = "https";
    }
    // The client is the rightmost hop that is not a trusted proxy, else
    // the leftmost; each hop parsed as an address (`None`: not one).
    let mut first = None;
    let mut untrusted = None;
    let hops = forwarded_for
        .flat_map(|value| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|hop| !hop.is_empty());
    for hop in hops {
        let ip = parse_hop(hop);
        first.get_or_insert(ip);
        if !ip.is_some_and(|ip| trusted.contains(ip)) {
            untrusted = Some(ip);
        }
    }
    // A hop that is not an address (`unknown`, an obfuscated name) names no
    // client this server can report: the peer stays the client.
    if let Some(Some(ip)) = untrusted.or(first) {
        origin.client = Some(SocketAddr::new(canonical(ip), 0));
    }
    origin
}

/// An `X-Forwarded-For` entry as an address: `1.2.3.4`, `1.2.3.4:80`,
/// `2001:db8::1` or `[2001:db8::1]:80`.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    text.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40000))
    }

    fn client_of(peer_ip: &str, list: &str, xff: &[&str]) -> String {
        let none = std::iter::empty();
        let o = origin(peer(peer_ip), &trusted(list), xff.iter().map(|v| v.as_bytes()), none);
        o.client.unwrap().ip().to_string()
    }

    #[test]
    fn lists_take_addresses_networks_and_star() {
        let t = trusted("127.0.0.1, 10.0.0.0/8,fd00::/8");
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()));
        assert!(t.contains("fd12::1".parse().unwrap()));
        assert!(t.contains("::ffff:127.0.0.1".parse().unwrap()), "mapped IPv4");
        assert!(!t.contains("127.0.0.2".parse().unwrap()));
        assert!(trusted("*").contains("203.0.113.9".parse().unwrap()));
        assert!(trusted("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
        for bad in ["", "localhost", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(bad.parse::<TrustedProxies>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let list = "127.0.0.1, 10.0.0.0/8";
        assert_eq!(client_of("127.0.0.1", list, &["203.0.113.7"]), "203.0.113.7");
        assert_eq!(
            client_of("127.0.0.1", list, &["198.51.100.1, 203.0.113.7, 10.0.0.5"]),
            "203.0.113.7"
        );
        // A forged leftmost entry is passed over.
        assert_eq!(client_of("127.0.0.1", list, &["6.6.6.6", "203.0.113.7"]), "203.0.113.7");
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        assert_eq!(
            client_of("127.0.0.1", "127.0.0.1, 10.0.0.0/8", &["10.0.0.9, 10.0.0.5"]),
            "10.0.0.9"
        );
        assert_eq!(client_of("127.0.0.1", "*", &["6.6.6.6, 203.0.113.7"]), "6.6.6.6");
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let o = origin(
            peer("203.0.113.50"),
            &trusted("127.0.0.1"),
            [&b"1.2.3.4"[..]].into_iter(),
            [&b"https"[..]].into_iter(),
        );
        assert_eq!(o, Origin { client: peer("203.0.113.50"), scheme: "http" });
    }

    #[test]
    fn a_unix_socket_peer_is_trusted_only_by_star() {
        let xff = || [&b"203.0.113.7"[..]].into_iter();
        let o = origin(None, &trusted("127.0.0.1"), xff(), std::iter::empty());
        assert_eq!(o.client, None);
        let o = origin(None, &trusted("*"), xff(), std::iter::empty());
        assert_eq!(o.client, Some("203.0.113.7:0".parse().unwrap()));
    }

    #[test]
    fn hops_may_carry_ports_and_brackets() {
        assert_eq!(client_of("127.0.0.1", "127.0.0.1", &["203.0.113.7:5555"]), "203.0.113.7");
        assert_eq!(client_of("127.0.0.1", "127.0.0.1", &["[2001:db8::1]:443"]), "2001:db8::1");
        assert_eq!(client_of("127.0.0.1", "127.0.0.1", &["2001:db8::2"]), "2001:db8::2");
        // Not an address: the peer stays the client.
        assert_eq!(client_of("127.0.0.1", "127.0.0.1", &["unknown"]), "127.0.0.1");
    }

    #[test]
    fn the_scheme_is_the_nearest_proxys_and_https_only_when_it_says_so() {
        let t = trusted("127.0.0.1");
        let scheme = |lines: &[&'static str]| {
            let lines = lines.iter().map(|l| l.as_bytes());
            origin(peer("127.0.0.1"), &t, std::iter::empty(), lines).scheme
        };
        assert_eq!(scheme(&["https"]), "https");
        assert_eq!(scheme(&[" HTTPS "]), "https");
        assert_eq!(scheme(&["http"]), "http");
        assert_eq!(scheme(&["gopher"]), "http");
        // The client's own value comes first; the proxy's last.
        assert_eq!(scheme(&["https, http"]), "http");
        assert_eq!(scheme(&["https", "http"]), "http");
        assert_eq!(scheme(&["http", "https"]), "https");
    }
}
