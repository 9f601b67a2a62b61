//! Which addresses a hook endpoint may reach: public ones, and what the
//! operator opened with `[hooks] allow_private_targets`. Checked when a hook is
//! created or changed, and again on every delivery against the addresses the
//! connection is made to (the delivery client resolves names through
//! [`CheckedResolver`], so a name that resolves differently later, DNS
//! rebinding, is refused too).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    allow: Vec<IpNet>,
}

/// A refused address: loopback, private, link-local, unspecified, ...
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Loopback, private, link-local, unspecified, shared, multicast and similar
/// non-public addresses.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || v6.is_multicast() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

impl TargetPolicy {
    pub fn new(allow: Vec<IpNet>) -> Self {
        TargetPolicy { allow }
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_private(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }

    fn check_all(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), Refused> {
        if addrs.is_empty() {
            return Err(Refused(format!("{host} resolves to no address")));
        }
        match addrs.iter().find(|a| !self.permits(a.ip())) {
            Some(bad) => Err(Refused(format!(
                "{host} resolves to {}, a loopback, private, link-local or unspecified address (see [hooks] allow_private_targets)",
                bad.ip()
            ))),
            None => Ok(()),
        }
    }

    /// Resolves `host` and checks every address.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
        let host_only = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host_only.parse::<IpAddr>() {
            let addrs = [SocketAddr::new(ip, port)];
            self.check_all(host, &addrs)?;
            return Ok(addrs.to_vec());
        }
        let addrs: Vec<SocketAddr> =
            tokio::net::lookup_host((host_only, port)).await.map_err(|e| Refused(format!("{host} does not resolve: {e}")))?.collect();
        self.check_all(host, &addrs)?;
        Ok(addrs)
    }

    /// Checks the host of an http(s) URL.
    pub async fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().ok_or_else(|| Refused("the URL has no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(80);
        self.resolve(host, port).await.map(|_| ())
    }
}

/// The delivery client's DNS: every address a name resolves to is checked,
/// and only checked addresses are handed to the connector.
pub struct CheckedResolver(pub Arc<TargetPolicy>);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs = policy.resolve(&host, 0).await.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        let none = TargetPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!none.permits(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1", "8.8.8.8"] {
            assert!(none.permits(ip.parse().unwrap()), "{ip}");
        }
        let lo = TargetPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(lo.permits("127.0.0.1".parse().unwrap()));
        assert!(!lo.permits("10.0.0.1".parse().unwrap()));
    }
}
