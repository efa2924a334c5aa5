//! The crawl frontier: URLs still to fetch, the seen set, and exact termination.
//!
//! The crawl is over when the queue is empty *and* no fetcher holds a page,
//! because a busy fetcher can still add links. `complete` adds a page's links
//! and marks it done under one lock, so no URL can slip through that gap.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// Why the frontier stopped handing out URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every reachable page was fetched.
    Finished,
    /// `--max-pages` was reached.
    MaxPages,
    /// `--max-items` was reached.
    MaxItems,
    /// `--max-time` ran out.
    MaxTime,
    /// The stop flag was raised (signal, writer failure).
    Stopped,
}

impl Finish {
    /// The `finish_reason` written in stats.
    pub fn reason(self) -> &'static str {
        match self {
            Finish::Finished => "finished",
            Finish::MaxPages => "max_pages",
            Finish::MaxItems => "max_items",
            Finish::MaxTime => "max_time",
            Finish::Stopped => "shutdown",
        }
    }
}

/// Where and how far the crawl may go, and when it must end.
#[derive(Debug, Clone, Default)]
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

/// What `produce` needs from a frontier: in this process, or shared in Redis.
pub trait CrawlFrontier: Sync {
    /// Blocks until a URL is available (the caller is then busy with it) or
    /// the crawl ends. Returns the URL and its depth.
    fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)>;
    /// Marks a page at `depth` done, counting its `items` and adding its
    /// links at `depth + 1`, atomically. Returns how many links were new.
    fn complete(&self, page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize;
    /// Whether `url` may be crawled (checked again after redirects).
    fn allows(&self, url: &Url) -> bool;
    /// Why the crawl ended; `Finished` while it is still running.
    fn finish(&self) -> Finish;
    /// Link filtering counters so far.
    fn filtered(&self) -> Filtered;
    /// Distinct URLs ever queued (across processes, for a shared frontier).
    fn seen(&self) -> u64;
    /// Background upkeep until `done` (renewing leases); run on its own thread.
    fn maintain(&self, _done: &AtomicBool) {}
}

/// Link filtering counters, Scrapy-style.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filtered {
    /// Links to hosts outside the allowed domains.
    pub offsite: u64,
    /// Links already seen (after canonicalisation).
    pub duplicates: u64,
    /// Links deeper than `max_depth`.
    pub too_deep: u64,
    /// The deepest page fetched.
    pub max_depth_reached: u32,
}

struct State {
    queue: VecDeque<(Url, u32)>,
    /// 64-bit hashes of canonical URLs: a tenth of the memory of the strings.
    seen: HashSet<u64>,
    busy: usize,
    taken: u64,
    items: u64,
    filtered: Filtered,
    finish: Option<Finish>,
}

/// Shared by all fetchers; every method takes `&self`.
pub struct Frontier {
    state: Mutex<State>,
    wake: Condvar,
    bounds: Bounds,
}

/// Whether `host` is `domain` or a subdomain of it.
fn matches_domain(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len()
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

impl Frontier {
    /// A frontier seeded with `start` at depth 0. Empty `bounds.domains` means
    /// the start URLs' hosts.
    pub fn new(start: &[Url], bounds: Bounds) -> Frontier {
        let bounds = bounds.with_default_domains(start);
        let f = Frontier {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                seen: HashSet::new(),
                busy: 0,
                taken: 0,
                items: 0,
                filtered: Filtered::default(),
                finish: None,
            }),
            wake: Condvar::new(),
            bounds,
        };
        f.add(&mut f.lock(), start.iter().cloned(), 0);
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a fetcher panicked; the state is still consistent
        // because every mutation completes before any call that could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `url` is on an allowed domain (checked again after redirects).
    pub fn allows(&self, url: &Url) -> bool {
        self.bounds.allows(url)
    }

    fn add(&self, st: &mut State, links: impl Iterator<Item = Url>, depth: u32) -> usize {
        let mut added = 0;
        for u in links {
            if !self.allows(&u) {
                st.filtered.offsite += 1;
            } else if !st
                .seen
                .insert(crate::item::fingerprint(u.as_str().as_bytes()) as u64)
            {
                st.filtered.duplicates += 1;
            } else if self.bounds.max_depth.is_some_and(|m| depth > m) {
                st.filtered.too_deep += 1;
            } else {
                st.queue.push_back((u, depth));
                added += 1;
            }
        }
        added
    }

    /// Blocks until a URL is available (and marks the caller busy) or the
    /// crawl ends. Returns the URL and its depth.
    pub fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)> {
        let mut st = self.lock();
        loop {
            if st.finish.is_none() {
                st.finish = self.bounds.limit_reached(stop, st.taken, st.items);
            }
            if st.finish.is_some() {
                self.wake.notify_all();
                return None;
            }
            if let Some((u, depth)) = st.queue.pop_front() {
                st.busy += 1;
                st.taken += 1;
                st.filtered.max_depth_reached = st.filtered.max_depth_reached.max(depth);
                return Some((u, depth));
            }
            if st.busy == 0 {
                st.finish = Some(Finish::Finished);
                continue;
            }
            // Finite wait so a raised stop flag is noticed even with no wake-up.
            st = self
                .wake
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Marks a page at `depth` done, counting its `items` and adding its links
    /// at `depth + 1`, atomically. Returns how many links were new.
    pub fn complete(&self, links: impl Iterator<Item = Url>, depth: u32, items: u64) -> usize {
        let mut st = self.lock();
        st.items += items;
        let added = self.add(&mut st, links, depth + 1);
        st.busy -= 1;
        if st.busy == 0 && st.queue.is_empty() {
            // Possibly the end: every waiter must look.
            self.wake.notify_all();
        } else {
            // One waiter per new URL; waking all of them per page costs CPU.
            for _ in 0..added {
                self.wake.notify_one();
            }
        }
        added
    }

    /// Why the crawl ended; `Finished` while it is still running.
    pub fn finish(&self) -> Finish {
        self.lock().finish.unwrap_or(Finish::Finished)
    }

    /// Link filtering counters so far.
    pub fn filtered(&self) -> Filtered {
        self.lock().filtered
    }

    /// The number of distinct URLs ever queued.
    pub fn seen(&self) -> usize {
        self.lock().seen.len()
    }
}

impl CrawlFrontier for Frontier {
    fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)> {
        Frontier::next(self, stop)
    }
    fn complete(&self, _page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize {
        Frontier::complete(self, links.into_iter(), depth, items)
    }
    fn allows(&self, url: &Url) -> bool {
        Frontier::allows(self, url)
    }
    fn finish(&self) -> Finish {
        Frontier::finish(self)
    }
    fn filtered(&self) -> Filtered {
        Frontier::filtered(self)
    }
    fn seen(&self) -> u64 {
        Frontier::seen(self) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn unbounded() -> Bounds {
        Bounds::default()
    }

    #[test]
    fn ends_only_when_idle_and_empty() {
        let f = Frontier::new(&[u("http://h/")], unbounded());
        let stop = AtomicBool::new(false);
        assert_eq!(f.next(&stop), Some((u("http://h/"), 0)));
        // A busy page adds a new link, a duplicate of the start, and an off-site one.
        let added = f.complete(
            [u("http://h/2"), u("http://h/"), u("http://other/")].into_iter(),
            0,
            3,
        );
        assert_eq!(added, 1);
        assert_eq!(f.next(&stop), Some((u("http://h/2"), 1)));
        f.complete(std::iter::empty(), 1, 0);
        assert_eq!(f.next(&stop), None);
        assert_eq!(f.finish(), Finish::Finished);
        assert_eq!(f.seen(), 2);
        let fl = f.filtered();
        assert_eq!(
            (fl.offsite, fl.duplicates, fl.too_deep, fl.max_depth_reached),
            (1, 1, 0, 1)
        );
    }

    #[test]
    fn waiter_gets_link_added_by_busy_peer() {
        let f = Frontier::new(&[u("http://h/")], unbounded());
        let stop = AtomicBool::new(false);
        assert!(f.next(&stop).is_some());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| f.next(&stop));
            std::thread::sleep(Duration::from_millis(50));
            f.complete([u("http://h/late")].into_iter(), 0, 0);
            assert_eq!(waiter.join().unwrap(), Some((u("http://h/late"), 1)));
        });
    }

    #[test]
    fn limits_end_the_crawl_with_their_reason() {
        let stop = AtomicBool::new(false);
        let two = [u("http://h/1"), u("http://h/2")];
        let f = Frontier::new(
            &two,
            Bounds {
                max_pages: Some(1),
                ..unbounded()
            },
        );
        assert!(f.next(&stop).is_some());
        assert_eq!(f.next(&stop), None);
        assert_eq!(f.finish(), Finish::MaxPages);

        let f = Frontier::new(
            &two,
            Bounds {
                max_items: Some(5),
                ..unbounded()
            },
        );
        assert!(f.next(&stop).is_some());
        f.complete(std::iter::empty(), 0, 5);
        assert_eq!(f.next(&stop), None);
        assert_eq!(f.finish(), Finish::MaxItems);

        let t = Frontier::new(
            &two,
            Bounds {
                deadline: Some(Instant::now()),
                ..unbounded()
            },
        );
        assert_eq!(t.next(&stop), None);
        assert_eq!(t.finish(), Finish::MaxTime);

        let d = Frontier::new(
            &[u("http://h/")],
            Bounds {
                max_depth: Some(0),
                ..unbounded()
            },
        );
        assert!(d.next(&stop).is_some());
        assert_eq!(d.complete([u("http://h/deep")].into_iter(), 0, 0), 0);
        assert_eq!(d.filtered().too_deep, 1);

        let g = Frontier::new(&[u("http://h/1")], unbounded());
        stop.store(true, Ordering::Relaxed);
        assert_eq!(g.next(&stop), None);
        assert_eq!(g.finish(), Finish::Stopped);
    }

    #[test]
    fn allowed_domains_include_subdomains_only() {
        let f = Frontier::new(
            &[],
            Bounds {
                domains: vec!["example.com".into()],
                ..unbounded()
            },
        );
        assert!(f.allows(&u("http://example.com/")));
        assert!(f.allows(&u("https://www.example.com/x")));
        assert!(!f.allows(&u("http://badexample.com/")));
        assert!(!f.allows(&u("http://example.com.evil.org/")));
    }
}
