//! Name resolution for the session's agent, cached per `host:port`.
//!
//! ureq resolves the host of every request, before it looks for a pooled
//! connection, and with a timeout set its default resolver spawns a thread
//! per lookup to enforce it: a thread per page, even to an IP address. This
//! resolver answers IP literals directly and keeps each name's addresses
//! for `TTL`, so a crawl looks a host up about once a minute. Lookups that
//! do run still go through ureq's resolver, timeout and all. Every address
//! it gives is screened by `address` (the one place every request and
//! redirect hop passes), unless private addresses are allowed.

use super::address;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// How long a looked-up name's addresses are reused (as browsers cache DNS).
const TTL: Duration = Duration::from_secs(60);
/// Names kept at most; past this the cache starts over.
const MAX_NAMES: usize = 10_000;

/// ureq's resolver behind a per-`host:port` cache.
#[derive(Debug, Default)]
pub struct CachingResolver {
    inner: DefaultResolver,
    cache: Mutex<HashMap<String, (Instant, Vec<SocketAddr>)>>,
    /// `Some`: private addresses are refused, except for these hosts and
    /// ports (the configured proxies, which the user chose).
    guard: Option<Vec<(String, u16)>>,
}

impl CachingResolver {
    /// A resolver that refuses private addresses unless `guard` is `None`.
    pub fn guarded(guard: Option<Vec<(String, u16)>>) -> CachingResolver {
        CachingResolver {
            guard,
            ..CachingResolver::default()
        }
    }

    /// `found`, without its private addresses when guarded; an error naming
    /// the address when nothing public is left.
    fn screen(
        &self,
        host: &str,
        port: u16,
        found: ResolvedSocketAddrs,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let Some(exempt) = &self.guard else {
            return Ok(found);
        };
        if exempt
            .iter()
            .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
        {
            return Ok(found);
        }
        let public: Vec<SocketAddr> = found
            .iter()
            .filter(|a| !address::is_private(a.ip()))
            .copied()
            .collect();
        match (public.is_empty(), found.first()) {
            (true, Some(first)) => Err(ureq::Error::Io(address::refused(host, first.ip()))),
            _ => Ok(self.addrs(&public)),
        }
    }

    fn addrs(&self, list: &[SocketAddr]) -> ResolvedSocketAddrs {
        let mut out = self.empty();
        for a in list {
            out.push(*a);
        }
        out
    }
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let port = uri.port_u16().or(match uri.scheme_str() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        });
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'));
        let (Some(host), Some(port)) = (host, port) else {
            return self.inner.resolve(uri, config, timeout);
        };
        if let Some(ip) = host
            .parse::<IpAddr>()
            .ok()
            .or_else(|| address::test_resolve(host))
        {
            return self.screen(host, port, self.addrs(&[SocketAddr::new(ip, port)]));
        }
        let key = format!("{host}:{port}");
        let now = Instant::now();
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, list)) = cache.get(&key) {
                if now.duration_since(*at) < TTL {
                    return self.screen(host, port, self.addrs(list));
                }
            }
        }
        let found = self.inner.resolve(uri, config, timeout)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_NAMES {
                cache.clear();
            }
            cache.insert(key, (now, found.to_vec()));
        }
        self.screen(host, port, found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_cached_names_resolve_without_a_lookup() {
        let r = CachingResolver::default();
        let config = Config::default();
        let uri: Uri = "http://127.0.0.1:8080/a".parse().unwrap();
        let got = r.resolve(&uri, &config, NextTimeout::default()).unwrap();
        assert_eq!(&got[..], ["127.0.0.1:8080".parse().unwrap()]);
        let v6: Uri = "https://[::1]/".parse().unwrap();
        let got = r.resolve(&v6, &config, NextTimeout::default()).unwrap();
        assert_eq!(&got[..], ["[::1]:443".parse().unwrap()]);
        let name: Uri = "http://qpipe-cached.invalid:81/".parse().unwrap();
        let fixed = vec!["10.1.2.3:81".parse().unwrap()];
        r.cache.lock().unwrap().insert(
            "qpipe-cached.invalid:81".into(),
            (Instant::now(), fixed.clone()),
        );
        let got = r.resolve(&name, &config, NextTimeout::default()).unwrap();
        assert_eq!(got.to_vec(), fixed);
    }
}
