//! The client's address, for limits per address: the peer of the TCP
//! connection, or, when that peer is a trusted proxy
//! (`PUSHGATE_TRUSTED_PROXIES`), the address the proxies recorded in
//! `X-Forwarded-For` (the rightmost one that is not itself a trusted proxy).
//! Anyone can write that header, so it is believed only from those proxies.

use std::net::IpAddr;

use axum::http::HeaderMap;

/// An address range in CIDR notation (`10.0.0.0/8`, `::1/128`, or one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed CIDR.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an address or CIDR range (e.g. 10.0.0.0/8)")]
pub struct CidrError(String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').map_or((s.trim(), None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, bits) = match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (u128::from(u32::from(n)), u128::from(u32::from(i)), 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        let mask = if host_bits >= 128 { 0 } else { !0u128 << host_bits };
        net & mask == ip & mask
    }
}

/// Parses a comma-separated list of CIDRs.
pub fn parse_list(list: &[String]) -> Result<Vec<Cidr>, CidrError> {
    list.iter().flat_map(|s| s.split(',')).filter(|s| !s.trim().is_empty()).map(str::parse).collect()
}

/// The client's address given the connection's `peer`.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let trusted_ip = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !trusted_ip(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded.into_iter().rev().find(|ip| !trusted_ip(*ip)).unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", xff.parse().expect("header"));
        h
    }

    #[test]
    fn ranges_contain_their_addresses() {
        let c: Cidr = "10.0.0.0/8".parse().expect("cidr");
        assert!(c.contains("10.1.2.3".parse().expect("ip")));
        assert!(!c.contains("11.0.0.1".parse().expect("ip")));
        assert!(c.contains("::ffff:10.0.0.1".parse().expect("ip")), "IPv4-mapped");
        let one: Cidr = "::1".parse().expect("cidr");
        assert!(one.contains("::1".parse().expect("ip")));
        let all: Cidr = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains("8.8.8.8".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = parse_list(&["127.0.0.1/32, 10.0.0.0/8".into()]).expect("list");
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(client_addr(stranger, &headers("1.2.3.4"), &trusted), stranger, "anyone can write the header");
        assert_eq!(
            client_addr(proxy, &headers("1.2.3.4, 10.0.0.7"), &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            client_addr(proxy, &headers("6.6.6.6, 1.2.3.4"), &trusted),
            "1.2.3.4".parse::<IpAddr>().expect("ip"),
            "the rightmost untrusted hop: earlier ones are the client's own words"
        );
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
