//! The cookie jar's limits, as browsers keep them: at most 180 cookies per
//! domain and 3000 in all, and a Cookie header of at most 6 KiB, the oldest
//! set evicted first. Without them a site that sets new cookies on every page
//! grows the header until it answers 431 and the crawl loses pages.
//!
//! ureq's jar stores and sends the cookies but does not say when each was
//! set, so `Ledger` keeps that, and `Pruner`, a middleware around every
//! request, records what each response set and evicts from the jar: the one
//! place the limits are applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use ureq::http::{header::SET_COOKIE, Request, Response};
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{Agent, Body, SendBody};
use url::Url;

/// How many cookies the jar keeps, and how large a Cookie header may grow.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cookies per domain (a host-only cookie's host, or a `Domain=`).
    pub per_domain: usize,
    /// Cookies in the jar.
    pub total: usize,
    /// Bytes of cookies one request may carry: under the 8 KiB per header
    /// line that common servers accept, leaving room for the other headers.
    pub header_bytes: usize,
}

impl Limits {
    /// Chrome's per-domain and total counts, and a header that fits servers'
    /// common 8 KiB limit.
    pub const BROWSER: Limits = Limits {
        per_domain: 180,
        total: 3000,
        header_bytes: 6 * 1024,
    };
}

/// A cookie as the jar names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The host of a host-only cookie, or its `Domain`.
    pub domain: String,
    /// Its path.
    pub path: String,
    /// Its name.
    pub name: String,
}

#[derive(Debug)]
struct Entry {
    /// When it was last set, as a sequence number.
    seq: u64,
    /// What it adds to a Cookie header (`name=value; `).
    bytes: usize,
    /// Sent to its domain's host only, not to its subdomains.
    host_only: bool,
    /// Given by the user (`Cookie` header): counted, never evicted.
    pinned: bool,
}

/// When each cookie in the jar was set, and what must go to keep the limits.
#[derive(Debug)]
pub struct Ledger {
    limits: Limits,
    next: u64,
    entries: HashMap<Key, Entry>,
}

impl Ledger {
    /// An empty ledger enforcing `limits`.
    pub fn new(limits: Limits) -> Ledger {
        Ledger {
            limits,
            next: 0,
            entries: HashMap::new(),
        }
    }

    /// Records a cookie the jar holds now; set again, it becomes the newest.
    pub fn record(&mut self, key: Key, value_len: usize, host_only: bool, pinned: bool) {
        self.next += 1;
        let entry = Entry {
            seq: self.next,
            bytes: key.name.len() + value_len + 3,
            host_only,
            pinned,
        };
        self.entries.insert(key, entry);
    }

    /// Keeps only the cookies for which `held` is true (the jar dropped the others).
    pub fn retain(&mut self, mut held: impl FnMut(&Key) -> bool) {
        self.entries.retain(|k, _| held(k));
    }

    /// Forgets the cookies that must go so that the limits hold and a
    /// request to `host` carries at most `header_bytes`, oldest first, and
    /// returns them. Cookies of any path count: a header to some path of
    /// `host` may carry them all.
    pub fn evict(&mut self, host: &str) -> Vec<Key> {
        let Limits {
            per_domain,
            total,
            header_bytes,
        } = self.limits;
        let mut gone = Vec::new();
        self.trim(&mut gone, |_, _| true, total, |_| 1);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in self.entries.keys() {
            *counts.entry(k.domain.as_str()).or_default() += 1;
        }
        let crowded: Vec<String> = counts
            .into_iter()
            .filter(|(_, n)| *n > per_domain)
            .map(|(d, _)| d.to_string())
            .collect();
        for d in crowded {
            self.trim(&mut gone, |k, _| k.domain == d, per_domain, |_| 1);
        }
        let sent = |k: &Key, e: &Entry| {
            host == k.domain
                || (!e.host_only
                    && host
                        .strip_suffix(k.domain.as_str())
                        .is_some_and(|rest| rest.ends_with('.')))
        };
        self.trim(&mut gone, sent, header_bytes, |e| e.bytes);
        gone
    }

    /// Evicts the oldest unpinned entries among those `within` until their
    /// summed `size` is at most `cap`.
    fn trim(
        &mut self,
        gone: &mut Vec<Key>,
        within: impl Fn(&Key, &Entry) -> bool,
        cap: usize,
        size: impl Fn(&Entry) -> usize,
    ) {
        let mut sum: usize = self
            .entries
            .iter()
            .filter(|(k, e)| within(k, e))
            .map(|(_, e)| size(e))
            .sum();
        if sum <= cap {
            return;
        }
        let mut oldest: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter(|(k, e)| within(k, e) && !e.pinned)
            .map(|(k, e)| (e.seq, k.clone()))
            .collect();
        oldest.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, key) in oldest {
            if sum <= cap {
                break;
            }
            if let Some(e) = self.entries.remove(&key) {
                sum -= size(&e);
                gone.push(key);
            }
        }
    }
}

/// The ledger and the agent whose jar it keeps within the limits.
pub struct Cap {
    ledger: Mutex<Ledger>,
    /// Weak: the agent holds the `Pruner` that holds this.
    agent: OnceLock<Weak<Agent>>,
}

impl Cap {
    /// A cap not yet attached to an agent.
    pub fn new(limits: Limits) -> Cap {
        Cap {
            ledger: Mutex::new(Ledger::new(limits)),
            agent: OnceLock::new(),
        }
    }

    /// Applies the cap to `agent`'s jar from now on.
    pub fn attach(&self, agent: &Arc<Agent>) {
        let _ = self.agent.set(Arc::downgrade(agent));
    }

    /// Puts the user's cookie `pair` (`name=value`) in the jar for `url`'s
    /// host; it counts toward the limits but is never evicted.
    pub fn insert_user(&self, url: &Url, pair: &str) {
        self.update(url, &[pair.to_string()], Insert::User);
    }

    /// Puts the cookies `set` by an answer from `url` that the HTTP cache
    /// gave (no request went through the jar) in the jar, as if it had.
    pub fn insert_cached(&self, url: &Url, set: &[String]) {
        self.update(url, set, Insert::Cached);
    }

    /// Records the cookies `set` by a response from `url` (the jar stored
    /// them already, unless `how` inserts them; none before a request),
    /// then evicts what the limits require.
    fn update(&self, url: &Url, set: &[String], how: Insert) {
        let Some(agent) = self.agent.get().and_then(Weak::upgrade) else {
            return;
        };
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        let mut jar = agent.cookie_jar_lock();
        for s in set {
            let Ok(c) = cookie_store::Cookie::parse(s.as_str(), url) else {
                continue;
            };
            if how != Insert::Stored {
                let Ok(uri) = url.as_str().parse::<ureq::http::Uri>() else {
                    continue;
                };
                let Ok(cookie) = ureq::Cookie::parse(s.to_string(), &uri) else {
                    continue;
                };
                let _ = jar.insert(cookie, &uri);
            }
            let key = Key {
                domain: String::from(&c.domain).to_ascii_lowercase(),
                path: String::from(&c.path),
                name: c.name().to_string(),
            };
            let host_only = matches!(c.domain, cookie_store::CookieDomain::HostOnly(_));
            match jar.get(&key.domain, &key.path, &key.name) {
                Some(held) => {
                    ledger.record(key, held.value().len(), host_only, how == Insert::User)
                }
                None => ledger.retain(|k| *k != key),
            }
        }
        if !set.is_empty() {
            // Expired, or deleted by a server.
            ledger.retain(|k| jar.get(&k.domain, &k.path, &k.name).is_some());
        }
        for k in ledger.evict(url.host_str().unwrap_or_default()) {
            jar.remove(&k.domain, &k.path, &k.name);
        }
    }
}

/// Where the cookies `Cap::update` records come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Insert {
    /// A response through the agent: the jar stored them already.
    Stored,
    /// The user's own: inserted, and never evicted.
    User,
    /// An answer from the HTTP cache: inserted.
    Cached,
}

/// The middleware that applies a `Cap` around every request.
pub struct Pruner(pub Arc<Cap>);

impl Middleware for Pruner {
    fn handle(
        &self,
        request: Request<SendBody>,
        next: MiddlewareNext,
    ) -> Result<Response<Body>, ureq::Error> {
        let url = Url::parse(&request.uri().to_string()).ok();
        // Before: other hosts may have set cookies this request would carry.
        if let Some(u) = &url {
            self.0.update(u, &[], Insert::Stored);
        }
        let response = next.handle(request)?;
        if let Some(u) = &url {
            let set: Vec<String> = response
                .headers()
                .get_all(SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            self.0.update(u, &set, Insert::Stored);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(domain: &str, name: &str) -> Key {
        Key {
            domain: domain.into(),
            path: "/".into(),
            name: name.into(),
        }
    }

    fn names(mut keys: Vec<Key>) -> Vec<String> {
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        keys.into_iter().map(|k| k.name).collect()
    }

    const SMALL: Limits = Limits {
        per_domain: 3,
        total: 5,
        header_bytes: 1000,
    };

    #[test]
    fn a_crowded_domain_loses_its_oldest_cookies() {
        let mut l = Ledger::new(SMALL);
        for n in ["a", "b", "c", "d"] {
            l.record(key("x.test", n), 1, true, false);
        }
        l.record(key("x.test", "a"), 1, true, false); // set again: newest
        l.record(key("y.test", "y"), 1, true, false);
        assert_eq!(names(l.evict("x.test")), ["b"]);
        assert_eq!(l.evict("x.test"), []);
        // The total: the oldest anywhere.
        for n in ["z1", "z2", "z3"] {
            l.record(key("z.test", n), 1, true, false);
        }
        assert_eq!(names(l.evict("z.test")), ["c", "d"]);
    }

    #[test]
    fn the_header_a_host_gets_stays_under_the_cap() {
        let mut l = Ledger::new(Limits {
            per_domain: 100,
            total: 100,
            header_bytes: 40,
        });
        // 1-letter names, 6-byte values: 10 bytes each in a header.
        l.record(key("shop.test", "w"), 6, false, false);
        l.record(key("www.shop.test", "h"), 6, true, false);
        l.record(key("api.shop.test", "o"), 6, true, false);
        l.record(key("www.shop.test", "u"), 6, true, true);
        l.record(key("shop.test", "x"), 6, false, false);
        // www gets w, h, u, x (40 bytes): nothing to evict; o is another host's.
        assert_eq!(l.evict("www.shop.test"), []);
        l.record(key("www.shop.test", "n"), 6, true, false);
        assert_eq!(names(l.evict("www.shop.test")), ["w"]);
        // The user's cookie is never evicted, even past the cap.
        l.record(key("www.shop.test", "big"), 100, true, true);
        assert_eq!(names(l.evict("www.shop.test")), ["h", "n", "x"]);
        assert_eq!(l.evict("www.shop.test"), []);
        // A host-only cookie is not sent to subdomains; a suffix must end at a dot.
        let mut l = Ledger::new(Limits {
            header_bytes: 10,
            ..SMALL
        });
        l.record(key("shop.test", "h"), 6, true, false);
        l.record(key("shop.test", "d"), 6, false, false);
        l.record(key("xshop.test", "e"), 6, false, false);
        assert_eq!(l.evict("a.shop.test"), []);
        assert_eq!(names(l.evict("shop.test")), ["h"]);
    }
}
