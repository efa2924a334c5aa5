//! The crawl's bounds (`Bounds`: allowed domains, depth, page, item and
//! time budgets, the pending-URL bound) and the one link filter both
//! frontiers apply with them: scope, then depth, then the seen set (and the
//! pending-URL bound), in that order.
//!
//! The order matters: a link refused for depth must not be marked seen, or a
//! page first reached by a path that is too long is never fetched from a
//! shorter one found later.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use url::Url;

use super::Finish;

/// The default `--max-queued-urls`: about 50 MB of queued URLs at most.
const DEFAULT_MAX_QUEUED: usize = 1_000_000;

/// Where and how far the crawl may go, and when it must end.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Allowed domains; a host matches a domain or any subdomain of it.
    pub domains: Vec<String>,
    /// Links more than this many hops from a start URL are not followed.
    pub max_depth: Option<u32>,
    /// Page budget.
    pub max_pages: Option<u64>,
    /// Item budget (items extracted).
    pub max_items: Option<u64>,
    /// Wall-clock end.
    pub deadline: Option<Instant>,
    /// Most URLs waiting in the frontier; new links beyond it are dropped
    /// (counted as `frontier_full`) and not marked seen.
    pub max_queued: usize,
}

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            domains: Vec::new(),
            max_depth: None,
            max_pages: None,
            max_items: None,
            deadline: None,
            max_queued: DEFAULT_MAX_QUEUED,
        }
    }
}

impl Bounds {
    /// Fills in the default allowed domains: the start URLs' hosts.
    pub fn with_default_domains(mut self, start: &[Url]) -> Bounds {
        if self.domains.is_empty() {
            self.domains = start
                .iter()
                .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
                .collect();
        }
        self
    }

    /// Whether `url` is on an allowed domain.
    pub fn allows(&self, url: &Url) -> bool {
        url.host_str()
            .is_some_and(|h| self.domains.iter().any(|d| matches_domain(h, d)))
    }

    /// Why no more URLs may be handed out, if a limit or `stop` says so.
    pub fn limit_reached(&self, stop: &AtomicBool, taken: u64, items: u64) -> Option<Finish> {
        if stop.load(Ordering::Relaxed) {
            Some(Finish::Stopped)
        } else if self.max_pages.is_some_and(|m| taken >= m) {
            Some(Finish::MaxPages)
        } else if self.max_items.is_some_and(|m| items >= m) {
            Some(Finish::MaxItems)
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            Some(Finish::MaxTime)
        } else {
            None
        }
    }
}

/// Link filtering counters, Scrapy-style.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Links to hosts outside the allowed domains.
    pub offsite: u64,
    /// Links already seen (after canonicalisation).
    pub duplicates: u64,
    /// Links deeper than `max_depth`.
    pub too_deep: u64,
    /// New links dropped because `max_queued` URLs were already waiting.
    pub frontier_full: u64,
    /// The deepest page fetched.
    pub max_depth_reached: u32,
}

/// What a frontier's seen set says about a link that passed scope and depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before; the frontier has marked it seen and will queue it.
    New,
    /// Seen before.
    Duplicate,
    /// Not seen, but the queue is full: dropped, and not marked seen.
    Full,
}

/// The seen-set hash of a canonical URL (16 bytes, stable across builds).
pub fn url_hash(url: &Url) -> u128 {
    crate::queue::item::fingerprint(url.as_str().as_bytes())
}

/// Filters links found at `depth` (the links' own depth) in the one order
/// both frontiers share: scope, depth, then `seen`, which is asked only about
/// links that may be crawled. Counts every refusal in `fl`; returns the
/// links `seen` accepted, in page order.
pub fn filter(
    bounds: &Bounds,
    links: impl IntoIterator<Item = Url>,
    depth: u32,
    fl: &mut Filtered,
    mut seen: impl FnMut(&Url) -> Seen,
) -> Vec<Url> {
    let mut keep = Vec::new();
    for u in links {
        if !bounds.allows(&u) {
            fl.offsite += 1;
        } else if bounds.max_depth.is_some_and(|m| depth > m) {
            fl.too_deep += 1;
        } else {
            match seen(&u) {
                Seen::New => keep.push(u),
                Seen::Duplicate => fl.duplicates += 1,
                Seen::Full => fl.frontier_full += 1,
            }
        }
    }
    keep
}

/// Whether `host` is `domain` or a subdomain of it.
fn matches_domain(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn bounds(max_depth: Option<u32>) -> Bounds {
        Bounds {
            domains: vec!["h".into()],
            max_depth,
            ..Bounds::default()
        }
    }

    #[test]
    fn too_deep_links_are_never_marked_seen() {
        let b = bounds(Some(2));
        let mut seen = HashSet::new();
        let mut fl = Filtered::default();
        let mut mark = |x: &Url| {
            if seen.insert(url_hash(x)) {
                Seen::New
            } else {
                Seen::Duplicate
            }
        };
        // First reached too deep: refused, and not remembered...
        assert!(filter(&b, [u("http://h/x")], 3, &mut fl, &mut mark).is_empty());
        // ...so the shorter path later still gets it.
        assert_eq!(
            filter(&b, [u("http://h/x")], 2, &mut fl, &mut mark),
            [u("http://h/x")]
        );
        assert_eq!(filter(&b, [u("http://h/x")], 1, &mut fl, &mut mark), []);
        assert_eq!(
            fl,
            Filtered {
                too_deep: 1,
                duplicates: 1,
                ..Filtered::default()
            }
        );
    }

    #[test]
    fn scope_is_checked_first_and_seen_is_asked_only_about_crawlable_links() {
        let b = bounds(Some(0));
        let mut asked = 0;
        let mut fl = Filtered::default();
        let links = [u("http://other/"), u("http://h/deep"), u("http://sub.h/")];
        let kept = filter(&b, links, 0, &mut fl, |_| {
            asked += 1;
            Seen::Full
        });
        assert!(kept.is_empty());
        assert_eq!(asked, 2, "the off-site link never reaches the seen set");
        assert_eq!((fl.offsite, fl.frontier_full, fl.too_deep), (1, 2, 0));
    }

    #[test]
    fn allowed_domains_include_subdomains_only() {
        let b = Bounds {
            domains: vec!["example.com".into()],
            ..Bounds::default()
        };
        assert!(b.allows(&u("http://example.com/")));
        assert!(b.allows(&u("https://www.example.com/x")));
        assert!(!b.allows(&u("http://badexample.com/")));
        assert!(!b.allows(&u("http://example.com.evil.org/")));
    }
}
