//! Where webhooks may be sent (SSRF guard): `http(s)` URLs without
//! credentials, to public addresses only, unless the private-address switch
//! is on (tests, on-premise). Names are checked when a URL is given and
//! again by the resolver of every send, so a name that later points inside
//! (DNS rebinding) reaches nothing: the connection only ever sees checked
//! addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// Longest URL taken.
const MAX_URL: usize = 2000;

/// Why a webhook URL is refused.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Not an absolute `http(s)` URL with a host, or over the length limit.
    #[error("url must be an absolute http or https URL ({0})")]
    Invalid(String),
    /// It names a loopback, private, link-local or otherwise internal address.
    #[error("url points at a non-public address ({0}); refused unless PUSHGATE_WEBHOOK_ALLOW_PRIVATE=true")]
    Private(IpAddr),
    /// Its host name does not resolve.
    #[error("url's host {0:?} does not resolve")]
    Unresolved(String),
}

/// Parses a webhook URL: `http` or `https`, a host, no user or password
/// (they would be stored and shown as the URL).
pub fn parse(url: &str) -> Result<Url, AddressError> {
    if url.len() > MAX_URL {
        return Err(AddressError::Invalid(format!("at most {MAX_URL} characters")));
    }
    let parsed = Url::parse(url).map_err(|e| AddressError::Invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(AddressError::Invalid(format!("scheme {:?}", parsed.scheme())));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(AddressError::Invalid("no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(AddressError::Invalid("credentials in the URL".into()));
    }
    Ok(parsed)
}

/// Checks where `url` leads now: its IP, or every address its name resolves to.
pub async fn check(url: &Url, allow_private: bool) -> Result<(), AddressError> {
    if allow_private {
        return Ok(());
    }
    let host = url.host_str().unwrap_or_default();
    if let Some(ip) = literal(url) {
        return refuse_private(ip);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|_| AddressError::Unresolved(host.to_string()))?.collect();
    if addrs.is_empty() {
        return Err(AddressError::Unresolved(host.to_string()));
    }
    addrs.iter().try_for_each(|a| refuse_private(a.ip()))
}

/// The IP of a URL whose host is one (no resolver is asked for those).
pub fn literal(url: &Url) -> Option<IpAddr> {
    // IPv6 hosts are written in brackets.
    url.host_str()?.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

fn refuse_private(ip: IpAddr) -> Result<(), AddressError> {
    if is_public(ip) {
        Ok(())
    } else {
        Err(AddressError::Private(ip))
    }
}

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, benchmarking, reserved.
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 (64:ff9b::/96) could reach IPv4 internals.
        || (first == 0x0064 && ip.segments()[1] == 0xff9b))
}

/// The resolver of webhook sends: the system's, keeping public addresses only.
#[derive(Clone, Copy, Debug)]
pub struct PublicResolver;

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.iter().copied().filter(|a| is_public(a.ip())).collect();
            match (public.is_empty(), addrs.first()) {
                (false, _) => Ok(Box::new(public.into_iter()) as Addrs),
                (true, Some(a)) => {
                    Err(Box::new(AddressError::Private(a.ip())) as Box<dyn std::error::Error + Send + Sync>)
                }
                (true, None) => {
                    Err(Box::new(AddressError::Unresolved(host)) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        let url = parse(url).expect("valid url");
        literal(&url).is_some_and(|ip| !is_public(ip))
    }

    #[test]
    fn internal_addresses_are_refused() {
        for url in [
            "http://127.0.0.1/x",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
        for url in ["https://8.8.8.8/hook", "http://[2606:4700::1111]/", "https://1.1.1.1:8443/"] {
            assert!(!refused(url), "{url} is public");
        }
    }

    #[test]
    fn only_plain_http_urls_are_taken() {
        for url in
            ["ftp://example.com/", "file:///etc/passwd", "example.com/hook", "https://user:pw@example.com/", "http://"]
        {
            assert!(parse(url).is_err(), "{url} must be refused");
        }
        assert!(parse("https://hooks.example.com/pushgate?x=1").is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_where_they_resolve() {
        let local = parse("http://localhost:9/hook").expect("valid");
        assert!(matches!(check(&local, false).await, Err(AddressError::Private(_))));
        assert!(check(&local, true).await.is_ok());
    }
}
