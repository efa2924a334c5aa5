//! Which proxy a request goes through. `--proxy` serves every URL; otherwise
//! http:// URLs use `http_proxy`/`HTTP_PROXY` and https:// URLs use
//! `https_proxy`/`HTTPS_PROXY`, each falling back to `ALL_PROXY`, as curl
//! does. Hosts listed in `NO_PROXY` always go direct.
//!
//! ureq alone would take the first of ALL_PROXY, HTTPS_PROXY, HTTP_PROXY for
//! every scheme, so qpipe turns its environment lookup off and picks the proxy
//! per request here. Requests go through the proxy by CONNECT (ureq's only
//! mode), plain http:// ones too.

use std::fmt;
use std::net::IpAddr;
use url::{Host, Url};

/// One proxy, with its URL as it may be shown (user name and password
/// replaced by `***`).
#[derive(Clone)]
pub struct Proxy {
    proxy: ureq::Proxy,
    shown: String,
}

impl Proxy {
    /// The ureq proxy (it carries the credentials, if any).
    pub fn ureq(&self) -> &ureq::Proxy {
        &self.proxy
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The proxy for each URL scheme, and the hosts that bypass them.
#[derive(Clone, Default)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    bypass: Vec<String>,
}

impl fmt::Debug for Proxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &Option<Proxy>| p.as_ref().map(|p| p.shown.clone());
        f.debug_struct("Proxies")
            .field("http", &shown(&self.http))
            .field("https", &shown(&self.https))
            .field("bypass", &self.bypass)
            .finish()
    }
}

impl Proxies {
    /// Reads `--proxy` (if given) and the environment through `env`, which
    /// returns a variable's value (`std::env::var(..).ok()` in a run).
    pub fn new(
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Proxies, String> {
        // An empty variable counts as unset, as in curl.
        let var = |names: &[&'static str]| -> Option<(&'static str, String)> {
            names
                .iter()
                .find_map(|n| env(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        };
        let bypass = var(&["no_proxy", "NO_PROXY"])
            .map(|(_, v)| no_proxy_list(&v))
            .unwrap_or_default();
        if let Some(url) = flag {
            let p = parse(url).map_err(|why| format!("invalid --proxy {why}"))?;
            return Ok(Proxies {
                http: Some(p.clone()),
                https: Some(p),
                bypass,
            });
        }
        let from = |names: &[&'static str]| -> Result<Option<Proxy>, String> {
            match var(names) {
                None => Ok(None),
                Some((name, v)) => parse(&v).map(Some).map_err(|why| {
                    format!("invalid {name} {why} (fix or unset it, or give --proxy)")
                }),
            }
        };
        Ok(Proxies {
            http: from(&["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"])?,
            https: from(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])?,
            bypass,
        })
    }

    /// The proxies' hosts and ports: a crawl connects to these even when
    /// they are private addresses (the user chose them). Only the proxy's
    /// own port: a direct request to another port of that host (NO_PROXY,
    /// or http:// when only an https proxy is set) is screened as usual.
    pub fn hosts(&self) -> Vec<(String, u16)> {
        [&self.http, &self.https]
            .into_iter()
            .flatten()
            .map(|p| {
                let host = p.proxy.host();
                let host = host.trim_start_matches('[').trim_end_matches(']');
                (host.to_string(), p.proxy.port())
            })
            .collect()
    }

    /// The proxy for `url`, or `None` to connect directly.
    pub fn for_url(&self, url: &Url) -> Option<&Proxy> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        let host = url.host()?;
        (!self.bypass.iter().any(|entry| bypassed(entry, &host))).then_some(proxy)
    }
}

/// Parses a proxy URL; a missing scheme means http://. The error shows the
/// URL with its user name and password hidden.
fn parse(text: &str) -> Result<Proxy, String> {
    let text = text.trim();
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let shown = hide_userinfo(&full);
    let url = Url::parse(&full)
        .map_err(|e| format!("{shown:?}: {e} (use http://[user:pass@]host:port)"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{shown:?}: {} proxies are not supported (use an http:// or https:// proxy)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{shown:?}: no host (use http://[user:pass@]host:port)"
        ));
    }
    let proxy = ureq::Proxy::new(&full)
        .map_err(|e| format!("{shown:?}: {e} (use http://[user:pass@]host:port)"))?;
    Ok(Proxy { proxy, shown })
}

/// The URL with its user name and password each replaced by `***`: either
/// may be the credential (Zyte's API key is the user name). Unparsable input
/// with an `@` is hidden whole.
fn hide_userinfo(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) if url.contains('@') => "<a URL with credentials>".into(),
        Err(_) => url.to_string(),
    }
}

/// NO_PROXY entries, lowercased, with `*.` or `.` prefixes and ports dropped.
fn no_proxy_list(value: &str) -> Vec<String> {
    value
        .split([',', ' ', '\t'])
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = e.trim_start_matches("*.").trim_start_matches('.');
            let e = match e.strip_prefix('[') {
                // [::1] or [::1]:8080
                Some(v6) => v6.split(']').next().unwrap_or(v6),
                // host:port, but a bare IPv6 address or CIDR keeps its colons.
                None if e.matches(':').count() == 1 => e.split(':').next().unwrap_or(e),
                None => e,
            };
            e.to_string()
        })
        .collect()
}

/// Whether `host` matches one NO_PROXY entry: `*`, the host itself or a
/// domain it is under, an IP address, or an IP range in CIDR form.
fn bypassed(entry: &str, host: &Host<&str>) -> bool {
    if entry == "*" {
        return true;
    }
    let ip = match host {
        Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            return d == entry || d.ends_with(&format!(".{entry}"));
        }
        Host::Ipv4(a) => IpAddr::V4(*a),
        Host::Ipv6(a) => IpAddr::V6(*a),
    };
    match entry.split_once('/') {
        None => entry.parse::<IpAddr>().is_ok_and(|e| e == ip),
        Some((net, bits)) => match (net.parse::<IpAddr>(), bits.parse::<u32>()) {
            (Ok(IpAddr::V4(n)), Ok(b)) if b <= 32 => match ip {
                IpAddr::V4(a) => prefix(u32::from(a).into(), u32::from(n).into(), b, 32),
                IpAddr::V6(_) => false,
            },
            (Ok(IpAddr::V6(n)), Ok(b)) if b <= 128 => match ip {
                IpAddr::V6(a) => prefix(u128::from(a), u128::from(n), b, 128),
                IpAddr::V4(_) => false,
            },
            _ => false,
        },
    }
}

/// Whether the first `bits` of two `width`-bit addresses agree.
fn prefix(a: u128, b: u128, bits: u32, width: u32) -> bool {
    bits == 0 || (a ^ b) >> (width - bits) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn proxies(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<Proxies, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::new(flag, &|k| map.get(k).cloned())
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.for_url(&Url::parse(url).unwrap()).map(|p| p.to_string())
    }

    #[test]
    fn each_scheme_uses_its_own_variable() {
        let p = proxies(
            None,
            &[
                ("HTTP_PROXY", "http://h:1"),
                ("HTTPS_PROXY", "s:2"),
                ("ALL_PROXY", "http://a:3"),
            ],
        )
        .unwrap();
        assert_eq!(via(&p, "http://x/").as_deref(), Some("http://h:1/"));
        assert_eq!(via(&p, "https://x/").as_deref(), Some("http://s:2/"));
        let p = proxies(
            None,
            &[("ALL_PROXY", "http://a:3"), ("https_proxy", "http://l:4")],
        )
        .unwrap();
        assert_eq!(via(&p, "http://x/").as_deref(), Some("http://a:3/"));
        assert_eq!(via(&p, "https://x/").as_deref(), Some("http://l:4/"));
        let p = proxies(None, &[("HTTP_PROXY", "")]).unwrap();
        assert_eq!(via(&p, "http://x/"), None, "empty is unset");
    }

    #[test]
    fn the_flag_wins_and_no_proxy_still_applies() {
        let p = proxies(
            Some("http://u:s3cret@f:8080"),
            &[
                ("HTTP_PROXY", "http://h:1"),
                (
                    "NO_PROXY",
                    "internal.example, .corp,10.0.0.0/8,[::1],localhost:8080",
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            via(&p, "https://x/").as_deref(),
            Some("http://***:***@f:8080/")
        );
        assert_eq!(via(&p, "http://internal.example/"), None);
        assert_eq!(via(&p, "http://a.internal.example/"), None);
        assert!(via(&p, "http://notinternal.example/").is_some());
        assert_eq!(via(&p, "http://x.corp/"), None);
        assert_eq!(via(&p, "http://corp/"), None);
        assert_eq!(via(&p, "http://10.1.2.3/"), None);
        assert!(via(&p, "http://11.1.2.3/").is_some());
        assert_eq!(via(&p, "http://[::1]:9/"), None);
        assert_eq!(via(&p, "http://localhost:1/"), None);
        assert!(!format!("{p:?}").contains("s3cret"));
        let all = proxies(None, &[("http_proxy", "h:1"), ("no_proxy", "*")]).unwrap();
        assert_eq!(via(&all, "http://x/"), None);
    }

    #[test]
    fn a_key_held_in_the_user_name_is_hidden_everywhere() {
        // Zyte's form: the API key is the user name, the password is empty.
        let p = proxies(Some("http://SECRETAPIKEY:@127.0.0.1:18999"), &[]).unwrap();
        assert_eq!(
            via(&p, "http://x/").as_deref(),
            Some("http://***@127.0.0.1:18999/")
        );
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("SECRETAPIKEY") && shown.contains("http://***@127.0.0.1:18999/"),
            "{shown}"
        );
        let p = proxies(None, &[("HTTPS_PROXY", "SECRETAPIKEY@h:1")]).unwrap();
        assert_eq!(via(&p, "https://x/").as_deref(), Some("http://***@h:1/"));
        let e = proxies(Some("socks5://SECRETAPIKEY@h:1"), &[]).unwrap_err();
        assert!(e.starts_with("invalid --proxy \"socks5://***@h:1\""), "{e}");
        let e = proxies(Some("http://SECRETAPIKEY@"), &[]).unwrap_err();
        assert!(!e.contains("SECRETAPIKEY"), "{e}");
    }

    #[test]
    fn bad_proxies_are_named_and_passwords_hidden() {
        let e = proxies(Some("socks5://u:pw@h:1"), &[]).unwrap_err();
        assert!(
            e.starts_with(
                "invalid --proxy \"socks5://***:***@h:1\": socks5 proxies are not supported"
            ),
            "{e}"
        );
        let e = proxies(None, &[("HTTPS_PROXY", "http://u:pw@[bad")]).unwrap_err();
        assert!(e.starts_with("invalid HTTPS_PROXY "), "{e}");
        assert!(
            e.ends_with("(fix or unset it, or give --proxy)") && !e.contains("pw"),
            "{e}"
        );
        assert!(proxies(None, &[])
            .unwrap()
            .for_url(&Url::parse("http://x/").unwrap())
            .is_none());
    }
}
