//! Links found on a page: resolved (fragment dropped), deduplicated,
//! filtered by allow/deny, and capped per page. Every kind of page (HTML,
//! JSON, sitemap) adds its links here. The cap counts distinct URLs: a page
//! that links to itself (`#section`) or repeats a link (a menu on every
//! page, a "top" link per section) spends none of it on the repeats.

use super::{PageCaps, Scraped};
use regex::Regex;
use std::collections::{HashMap, HashSet};
use url::Url;

/// `allow`/`deny` regexes on absolute link URLs.
#[derive(Debug, Clone, Default)]
pub struct LinkFilter {
    /// If any are given, a link must match one of them.
    pub allow: Vec<Regex>,
    /// A link matching any of these is dropped.
    pub deny: Vec<Regex>,
}

impl LinkFilter {
    /// The filter that lets every link through.
    pub const NONE: LinkFilter = LinkFilter {
        allow: Vec::new(),
        deny: Vec::new(),
    };

    /// Whether `url` passes: allowed (if any allow is given) and not denied.
    pub fn passes(&self, url: &str) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|r| r.is_match(url)))
            && !self.deny.iter().any(|r| r.is_match(url))
    }
}

/// Resolves `href` against `base`; keeps only http(s), drops the fragment.
///
/// The `url` crate already lowercases scheme and host, drops default ports and
/// resolves `.`/`..`, which is the canonical form used for the seen set.
pub fn resolve(base: &Url, href: &str) -> Option<Url> {
    let mut u = base.join(href.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_fragment(None);
    Some(u)
}

/// Collects one page's links into its `Scraped`, within the link cap.
pub(super) struct PageLinks<'a> {
    /// Where links and counts go.
    pub out: &'a mut Scraped,
    caps: PageCaps,
    base: &'a Url,
    /// The spec-wide filter, then the rule's.
    pub filters: [&'a LinkFilter; 2],
    /// Every URL this page already linked to (and the page itself).
    seen: HashSet<Url>,
    /// Every href met on this page, trimmed and without its fragment:
    /// true if it resolved (a repeat is then counted without resolving it
    /// again: index pages link thousands of times to a few files, each
    /// with its own `#anchor`), false if it did not.
    hrefs: HashMap<Box<str>, bool>,
}

impl<'a> PageLinks<'a> {
    /// Links of a page at `base`, filtered by both `filters`.
    pub fn new(
        out: &'a mut Scraped,
        caps: PageCaps,
        base: &'a Url,
        filters: [&'a LinkFilter; 2],
    ) -> PageLinks<'a> {
        let mut seen = HashSet::new();
        let mut page = base.clone();
        page.set_fragment(None);
        seen.insert(page);
        PageLinks {
            out,
            caps,
            base,
            filters,
            seen,
            hrefs: HashMap::new(),
        }
    }

    /// Resolves and adds `href` if it passes the filters and the cap.
    pub fn add(&mut self, href: &str) {
        let filters = self.filters;
        self.add_if(href, |u| filters.iter().all(|f| f.passes(u.as_str())));
    }

    /// Resolves and adds `href` if `keep` says so, once per page, and
    /// within the cap (which counts distinct URLs only).
    pub fn add_if(&mut self, href: &str, keep: impl Fn(&Url) -> bool) {
        // The fragment is dropped after resolving, and nothing before a
        // `#` depends on what follows it: hrefs alike up to it are one URL.
        let trimmed = href.trim();
        let key = trimmed.split('#').next().unwrap_or(trimmed);
        match self.hrefs.get(key) {
            Some(true) => {
                self.out.links_repeated += 1;
                return;
            }
            Some(false) => {
                self.out.ignored_links += 1;
                return;
            }
            None => {}
        }
        let resolved = resolve(self.base, key);
        self.hrefs.insert(key.into(), resolved.is_some());
        let Some(u) = resolved else {
            self.out.ignored_links += 1;
            return;
        };
        if self.seen.contains(&u) {
            self.out.links_repeated += 1;
            return;
        }
        if !keep(&u) {
            self.out.links_filtered += 1;
            self.seen.insert(u);
            return;
        }
        if self.out.links.len() >= self.caps.max_links {
            self.out.links_cut += 1;
            self.seen.insert(u);
            return;
        }
        self.seen.insert(u.clone());
        self.out.links.push(u);
    }

    /// The page's URL.
    pub fn base(&self) -> &Url {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> Regex {
        Regex::new(s).unwrap()
    }

    #[test]
    fn allow_and_deny_filter_and_the_cap_counts() {
        let spec_wide = LinkFilter {
            allow: vec![re("/page/"), re("/tag/")],
            deny: vec![re("/tag/x/")],
        };
        let rule = LinkFilter {
            allow: vec![],
            deny: vec![re("page/3")],
        };
        let base = Url::parse("http://h/a/").unwrap();
        let mut out = Scraped::default();
        let caps = PageCaps {
            max_nesting: 10,
            max_links: 2,
        };
        let mut links = PageLinks::new(&mut out, caps, &base, [&spec_wide, &rule]);
        for href in [
            "/page/2/",
            "/tag/x/",
            "/page/3/",
            "/about",
            "mailto:a@b",
            "/tag/y/",
            "/page/4/",
        ] {
            links.add(href);
        }
        let got: Vec<&str> = out.links.iter().map(Url::as_str).collect();
        assert_eq!(got, ["http://h/page/2/", "http://h/tag/y/"]);
        assert_eq!(
            (out.links_filtered, out.ignored_links, out.links_cut),
            (3, 1, 1)
        );
    }

    #[test]
    fn hrefs_alike_up_to_their_fragment_resolve_once_and_count_the_same() {
        let base = Url::parse("http://h/docs/genindex.html").unwrap();
        let mut out = Scraped::default();
        let caps = PageCaps {
            max_nesting: 10,
            max_links: 10,
        };
        let none = LinkFilter::NONE;
        let mut links = PageLinks::new(&mut out, caps, &base, [&none; 2]);
        for href in [
            "os.html#os.getcwd",
            "os.html#os.path",
            " os.html ",
            "#top",
            "mailto:a@b#x",
            "mailto:a@b#y",
            "sys.html",
            "./os.html",
        ] {
            links.add(href);
        }
        let got: Vec<&str> = out.links.iter().map(Url::as_str).collect();
        assert_eq!(got, ["http://h/docs/os.html", "http://h/docs/sys.html"]);
        // Repeats: os.html twice by href, #top (the page), ./os.html by URL.
        assert_eq!((out.links_repeated, out.ignored_links), (4, 2));
    }

    #[test]
    fn resolve_canonicalises() {
        let base = Url::parse("http://H.example:80/a/b/").unwrap();
        assert_eq!(
            resolve(&base, "../c/./d#frag").unwrap().as_str(),
            "http://h.example/a/c/d"
        );
        assert_eq!(resolve(&base, "ftp://x/"), None);
        assert_eq!(resolve(&base, " javascript:alert(1)"), None);
    }
}
