//! Which addresses a crawl may connect to. Pages, redirects, robots.txt and
//! crawl jobs are input from outside: without a guard, a page could make
//! qpipe fetch a port on its own host, a cloud metadata address
//! (169.254.169.254), or Redis itself, and what it fetched would become
//! items anyone with queue access can read. So a crawl connects only to
//! public addresses, checked on the address each name resolves to (at every
//! request and redirect hop, in the session's resolver), unless its start
//! URL is itself private or `--allow-private` is given.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs};
use url::Url;

/// Test hooks, read once, for tests that need a "public" site on this
/// machine: `QPIPE_TEST_RESOLVE=name=ip,...` answers those names (as
/// curl's --resolve does) and `QPIPE_TEST_PUBLIC=ip,...` counts those
/// addresses as public.
struct TestHooks {
    resolve: Vec<(String, IpAddr)>,
    public: Vec<IpAddr>,
}

fn hooks() -> &'static TestHooks {
    static HOOKS: std::sync::OnceLock<TestHooks> = std::sync::OnceLock::new();
    HOOKS.get_or_init(|| {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let resolve = var("QPIPE_TEST_RESOLVE")
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .filter_map(|(n, ip)| Some((n.to_ascii_lowercase(), ip.parse().ok()?)))
            .collect();
        let public = var("QPIPE_TEST_PUBLIC")
            .split(',')
            .filter_map(|ip| ip.parse().ok())
            .collect();
        TestHooks { resolve, public }
    })
}

/// The address a test hook gives `host`, if any.
pub fn test_resolve(host: &str) -> Option<IpAddr> {
    let host = host.to_ascii_lowercase();
    hooks()
        .resolve
        .iter()
        .find(|(n, _)| *n == host)
        .map(|(_, ip)| *ip)
}

/// Loopback, private, link-local, shared (CGNAT), unspecified, broadcast
/// or multicast: an address a crawl of the public web has no business with.
pub fn is_private(ip: IpAddr) -> bool {
    if hooks().public.contains(&ip) {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => private_v4(v4),
            None => private_v6(v6),
        },
    }
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated) or NAT64 (`64:ff9b::/96`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(tail),
        // `::` and `::1` are IPv6's own unspecified and loopback.
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => Some(tail),
        _ => None,
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // 100.64.0.0/10: carrier-grade NAT, shared address space.
        || (a == 100 && (64..128).contains(&b))
        // 198.18.0.0/15: benchmarking; 240.0.0.0/4: reserved.
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240
}

fn private_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // fc00::/7 unique local, fe80::/10 link-local, fec0::/10 site-local.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0
}

/// Whether `url`'s host is, or resolves to, a private address (a name that
/// does not resolve is not: its fetch fails on its own).
pub fn url_is_private(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Some(ip) = host.parse::<IpAddr>().ok().or_else(|| test_resolve(host)) {
        return is_private(ip);
    }
    let port = url.port_or_known_default().unwrap_or(80);
    (host, port)
        .to_socket_addrs()
        .is_ok_and(|mut addrs| addrs.any(|a| is_private(a.ip())))
}

/// The error a refused connection gets: `exchange::transport` reads it as
/// `Reason::PrivateAddress`.
pub fn refused(host: &str, ip: IpAddr) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{host} is a private address ({ip}); qpipe crawls only public addresses unless the start URL is private or --allow-private is given"),
    )
}

/// Whether `e` is `refused`'s error.
pub fn is_refusal(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied
        && e.to_string().contains("qpipe crawls only public addresses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_v4_and_v6() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_by_literal_and_by_name() {
        let private = |u: &str| url_is_private(&Url::parse(u).unwrap());
        assert!(private("http://127.0.0.1:6379/"));
        assert!(private("http://[::1]:8080/"));
        assert!(private("http://localhost/"));
        assert!(!private("http://93.184.216.34/"));
        assert!(!private("http://qpipe-no-such-host.invalid/"));
        let e = refused("h", "10.0.0.1".parse().unwrap());
        assert!(is_refusal(&e));
        assert!(!is_refusal(&std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "x"
        )));
    }
}
