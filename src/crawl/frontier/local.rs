//! The in-process frontier: URLs still to fetch, the seen set, and exact
//! termination.
//!
//! The crawl is over when no URL is pending *and* no fetcher holds a page,
//! because a busy fetcher can still add links. `complete` adds a page's links
//! and marks it done under one lock, so no URL can slip through that gap.

use super::pending::{PendingUrls, Queued};
use super::{bounds, url_hash, Bounds, CrawlFrontier, Filtered, Finish, Seen};
use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use url::Url;

/// How long a waiting `next` sleeps before it re-checks without a wake-up.
const POLL: Duration = Duration::from_millis(100);

struct State {
    /// URLs to fetch, front-coded: about 30 bytes each (see `pending`).
    pending: PendingUrls,
    /// 64-bit hashes of canonical URLs, about 15 bytes each with the table's
    /// slack. Two distinct URLs collide (and the second is skipped as seen)
    /// with odds of n / 2^64 per URL: 3e-12 at 50 million URLs.
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

impl Frontier {
    /// A frontier seeded with `start` at depth 0. Empty `bounds.domains` means
    /// the start URLs' hosts.
    pub fn new(start: &[Url], bounds: Bounds) -> Frontier {
        let bounds = bounds.with_default_domains(start);
        let f = Frontier {
            state: Mutex::new(State {
                pending: PendingUrls::default(),
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
        f.add(&mut f.lock(), start.to_vec(), 0, None);
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

    fn add(&self, st: &mut State, links: Vec<Url>, depth: u32, from: Option<&str>) -> usize {
        let mut room = self.bounds.max_queued.saturating_sub(st.pending.len());
        let State { seen, filtered, .. } = st;
        let keep = bounds::filter(&self.bounds, links, depth, filtered, |u| {
            // Checked before the queue bound, so a duplicate counts as a
            // duplicate even when the queue is full.
            let h = url_hash(u) as u64;
            if seen.contains(&h) {
                Seen::Duplicate
            } else if room == 0 {
                Seen::Full
            } else {
                room -= 1;
                seen.insert(h);
                Seen::New
            }
        });
        let added = keep.len();
        for u in &keep {
            st.pending.push(u, depth, from);
        }
        added
    }

    /// Blocks until a URL is available (and marks the caller busy) or the
    /// crawl ends. Returns the URL and its depth.
    pub fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)> {
        self.next_from(stop).map(|(u, depth, _)| (u, depth))
    }

    /// `next`, with the page that linked to the URL (none for a start URL).
    pub fn next_from(&self, stop: &AtomicBool) -> Option<Queued> {
        let mut st = self.lock();
        loop {
            if st.finish.is_none() {
                st.finish = self.bounds.limit_reached(stop, st.taken, st.items);
            }
            if st.finish.is_some() {
                self.wake.notify_all();
                return None;
            }
            if let Some((u, depth, from)) = st.pending.pop() {
                st.busy += 1;
                st.taken += 1;
                st.filtered.max_depth_reached = st.filtered.max_depth_reached.max(depth);
                return Some((u, depth, from));
            }
            if st.busy == 0 {
                st.finish = Some(Finish::Finished);
                continue;
            }
            // Finite wait so a raised stop flag is noticed even with no wake-up.
            st = self
                .wake
                .wait_timeout(st, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Marks a page at `depth` done, counting its `items` and adding its links
    /// at `depth + 1` (found on `page`), atomically. Returns how many links
    /// were new.
    pub fn complete(&self, page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize {
        let mut st = self.lock();
        st.items += items;
        let added = self.add(&mut st, links, depth + 1, Some(page.as_str()));
        st.busy = st.busy.saturating_sub(1);
        if st.busy == 0 && st.pending.is_empty() {
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

    /// Gives back a taken page: it is pending again, first in line.
    pub fn release(&self, page: &Url, depth: u32) {
        let mut st = self.lock();
        st.pending.push_front(page.clone(), depth, None);
        st.taken = st.taken.saturating_sub(1);
        st.busy = st.busy.saturating_sub(1);
        self.wake.notify_all();
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
    fn next_from(&self, stop: &AtomicBool) -> Option<Queued> {
        Frontier::next_from(self, stop)
    }
    fn complete(&self, page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize {
        Frontier::complete(self, page, links, depth, items)
    }
    fn complete_from(
        &self,
        _page: &Url,
        found_on: &Url,
        links: Vec<Url>,
        depth: u32,
        items: u64,
    ) -> usize {
        Frontier::complete(self, found_on, links, depth, items)
    }
    fn release(&self, page: &Url, depth: u32) {
        Frontier::release(self, page, depth)
    }
    fn allows(&self, url: &Url) -> bool {
        Frontier::allows(self, url)
    }
    fn finish(&self) -> Finish {
        Frontier::finish(self)
    }
    fn take_extra(&self, stop: &AtomicBool, items: u64) -> Option<Finish> {
        let mut st = self.lock();
        if st.finish.is_none() {
            st.finish = self.bounds.limit_reached(stop, st.taken, st.items + items);
        }
        match st.finish {
            Some(f) => {
                self.wake.notify_all();
                Some(f)
            }
            None => {
                st.taken += 1;
                None
            }
        }
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
    use std::sync::atomic::Ordering;
    use std::time::Instant;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn unbounded() -> Bounds {
        Bounds::default()
    }

    #[test]
    fn a_url_comes_with_the_page_that_linked_to_it() {
        let stop = AtomicBool::new(false);
        let f = Frontier::new(&[u("http://h/")], unbounded());
        assert_eq!(f.next_from(&stop), Some((u("http://h/"), 0, None)));
        f.complete(
            &u("http://h/"),
            vec![u("http://h/a"), u("http://h/b")],
            0,
            0,
        );
        let a = f.next_from(&stop).unwrap();
        assert_eq!(a, (u("http://h/a"), 1, Some("http://h/".into())));
        f.complete(&a.0, vec![u("http://h/c")], 1, 0);
        assert_eq!(
            f.next_from(&stop),
            Some((u("http://h/b"), 1, Some("http://h/".into())))
        );
        assert_eq!(
            f.next_from(&stop),
            Some((u("http://h/c"), 2, Some("http://h/a".into())))
        );
    }

    #[test]
    fn ends_only_when_idle_and_empty() {
        let f = Frontier::new(&[u("http://h/")], unbounded());
        let stop = AtomicBool::new(false);
        assert_eq!(f.next(&stop), Some((u("http://h/"), 0)));
        // A busy page adds a new link, a duplicate of the start, and an off-site one.
        let added = f.complete(
            &u("http://h/"),
            vec![u("http://h/2"), u("http://h/"), u("http://other/")],
            0,
            3,
        );
        assert_eq!(added, 1);
        assert_eq!(f.next(&stop), Some((u("http://h/2"), 1)));
        f.complete(&u("http://h/"), Vec::new(), 1, 0);
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
    fn a_waiter_is_woken_by_the_link_a_busy_peer_adds() {
        let f = Frontier::new(&[u("http://h/")], unbounded());
        let stop = AtomicBool::new(false);
        let mut page = f.next(&stop).unwrap();
        // Each round a waiter parks in `next` and the busy page adds one link.
        // Only the notify wakes it well before its POLL timeout would.
        for round in 0..5 {
            let late = u(&format!("http://h/late{round}"));
            let waiting = AtomicBool::new(false);
            let (got, took) = std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    waiting.store(true, Ordering::SeqCst);
                    let got = f.next(&stop);
                    (got, Instant::now())
                });
                let deadline = Instant::now() + Duration::from_secs(5);
                while !waiting.load(Ordering::SeqCst) {
                    assert!(Instant::now() < deadline, "the waiter never started");
                    std::thread::yield_now();
                }
                // Nothing shows that a thread is parked on a Condvar; from
                // `waiting` it is a few instructions away. Had it not parked,
                // it would find the link at once: the round passes, never fails.
                std::thread::sleep(POLL / 5);
                let added = Instant::now();
                f.complete(&u("http://h/"), vec![late.clone()], page.1, 0);
                let (got, woke) = waiter.join().unwrap();
                (got, woke - added)
            });
            assert_eq!(got, Some((late, page.1 + 1)), "round {round}");
            // Without the notify the waiter wakes at its timeout, 80 ms later.
            assert!(
                took < POLL / 2,
                "round {round}: woken after {took:?}, by the timeout and not by the notify"
            );
            page = got.unwrap();
        }
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
        f.complete(&u("http://h/"), Vec::new(), 0, 5);
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
        assert_eq!(
            d.complete(&u("http://h/"), vec![u("http://h/deep")], 0, 0),
            0
        );
        assert_eq!(d.filtered().too_deep, 1);

        let g = Frontier::new(&[u("http://h/1")], unbounded());
        stop.store(true, Ordering::Relaxed);
        assert_eq!(g.next(&stop), None);
        assert_eq!(g.finish(), Finish::Stopped);
    }

    #[test]
    fn a_link_first_found_too_deep_is_fetched_from_a_shorter_path() {
        let stop = AtomicBool::new(false);
        let f = Frontier::new(
            &[u("http://h/")],
            Bounds {
                max_depth: Some(2),
                ..unbounded()
            },
        );
        assert!(f.next(&stop).is_some());
        f.complete(
            &u("http://h/"),
            vec![u("http://h/slow"), u("http://h/a1")],
            0,
            0,
        );
        let slow = f.next(&stop).unwrap();
        let a1 = f.next(&stop).unwrap();
        assert_eq!(
            f.complete(&u("http://h/"), vec![u("http://h/a2")], a1.1, 0),
            1
        );
        let a2 = f.next(&stop).unwrap();
        // /x via the long path is depth 3: refused.
        assert_eq!(
            f.complete(&u("http://h/"), vec![u("http://h/x")], a2.1, 0),
            0
        );
        // /x via the short path is depth 2: queued.
        assert_eq!(
            f.complete(&u("http://h/"), vec![u("http://h/x")], slow.1, 0),
            1
        );
        assert_eq!(f.next(&stop), Some((u("http://h/x"), 2)));
        assert_eq!(f.filtered().too_deep, 1);
    }

    #[test]
    fn the_queue_bound_drops_new_links_and_counts_them() {
        let stop = AtomicBool::new(false);
        let f = Frontier::new(
            &[u("http://h/")],
            Bounds {
                max_queued: 3,
                ..unbounded()
            },
        );
        assert!(f.next(&stop).is_some());
        let links: Vec<Url> = (0..10).map(|i| u(&format!("http://h/{i}"))).collect();
        // 3 fit; 7 are dropped; one duplicate of a queued link is a duplicate.
        let mut with_dup = links.clone();
        with_dup.push(u("http://h/0"));
        assert_eq!(f.complete(&u("http://h/"), with_dup, 0, 0), 3);
        let fl = f.filtered();
        assert_eq!((fl.frontier_full, fl.duplicates), (7, 1));
        assert_eq!(f.seen(), 4, "dropped links are not marked seen");
        // Once there is room again, a dropped link can be queued.
        assert_eq!(f.next(&stop), Some((u("http://h/0"), 1)));
        assert_eq!(f.complete(&u("http://h/"), links[3..5].to_vec(), 1, 0), 1);
        assert_eq!(f.filtered().frontier_full, 8);
        assert_eq!(f.seen(), 5);
    }

    #[test]
    fn a_released_page_is_handed_out_again() {
        let stop = AtomicBool::new(false);
        let f = Frontier::new(&[u("http://h/a"), u("http://h/b")], unbounded());
        let a = f.next(&stop).unwrap();
        f.release(&a.0, a.1);
        assert_eq!(f.next(&stop), Some((u("http://h/a"), 0)));
    }
}
