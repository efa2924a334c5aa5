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
    /// `--max-time` ran out.
    MaxTime,
    /// The stop flag was raised (signal, writer failure).
    Stopped,
}

struct State {
    queue: VecDeque<Url>,
    /// 64-bit hashes of canonical URLs: a tenth of the memory of the strings.
    seen: HashSet<u64>,
    busy: usize,
    taken: u64,
    finish: Option<Finish>,
}

/// Shared by all fetchers; every method takes `&self`.
pub struct Frontier {
    state: Mutex<State>,
    wake: Condvar,
    allowed_hosts: HashSet<String>,
    max_pages: Option<u64>,
    deadline: Option<Instant>,
}

impl Frontier {
    /// A frontier seeded with `start`; only links to `start`'s hosts are followed.
    /// After `max_pages` URLs, or at `deadline`, it hands out no more.
    pub fn new(start: &[Url], max_pages: Option<u64>, deadline: Option<Instant>) -> Frontier {
        let allowed_hosts = start
            .iter()
            .filter_map(|u| u.host_str().map(str::to_string))
            .collect();
        let f = Frontier {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                seen: HashSet::new(),
                busy: 0,
                taken: 0,
                finish: None,
            }),
            wake: Condvar::new(),
            allowed_hosts,
            max_pages,
            deadline,
        };
        f.add(&mut f.lock(), start.iter().cloned());
        f
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a fetcher panicked; the state is still consistent
        // because every mutation completes before any call that could panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `url` is on an allowed host (checked again after redirects).
    pub fn allows(&self, url: &Url) -> bool {
        url.host_str()
            .is_some_and(|h| self.allowed_hosts.contains(h))
    }

    fn add(&self, st: &mut State, links: impl Iterator<Item = Url>) -> usize {
        let mut added = 0;
        for u in links {
            if self.allows(&u)
                && st
                    .seen
                    .insert(crate::item::fingerprint(u.as_str().as_bytes()) as u64)
            {
                st.queue.push_back(u);
                added += 1;
            }
        }
        added
    }

    /// Blocks until a URL is available (and marks the caller busy) or the crawl ends.
    pub fn next(&self, stop: &AtomicBool) -> Option<Url> {
        let mut st = self.lock();
        loop {
            if st.finish.is_none() && stop.load(Ordering::Relaxed) {
                st.finish = Some(Finish::Stopped);
            }
            if st.finish.is_none() && self.max_pages.is_some_and(|m| st.taken >= m) {
                st.finish = Some(Finish::MaxPages);
            }
            if st.finish.is_none() && self.deadline.is_some_and(|d| Instant::now() >= d) {
                st.finish = Some(Finish::MaxTime);
            }
            if st.finish.is_some() {
                self.wake.notify_all();
                return None;
            }
            if let Some(u) = st.queue.pop_front() {
                st.busy += 1;
                st.taken += 1;
                return Some(u);
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

    /// Marks a page done and adds its links, atomically. Returns how many were new.
    pub fn complete(&self, links: impl Iterator<Item = Url>) -> usize {
        let mut st = self.lock();
        let added = self.add(&mut st, links);
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

    /// Links dropped because they were already seen or off-site are not counted
    /// here; this is the number of distinct URLs ever queued.
    pub fn seen(&self) -> usize {
        self.lock().seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn ends_only_when_idle_and_empty() {
        let f = Frontier::new(&[u("http://h/")], None, None);
        let stop = AtomicBool::new(false);
        assert_eq!(f.next(&stop), Some(u("http://h/")));
        // Busy page adds two links, one duplicate of the start, one off-site.
        let added = f.complete([u("http://h/2"), u("http://h/"), u("http://other/")].into_iter());
        assert_eq!(added, 1);
        assert_eq!(f.next(&stop), Some(u("http://h/2")));
        f.complete(std::iter::empty());
        assert_eq!(f.next(&stop), None);
        assert_eq!(f.finish(), Finish::Finished);
        assert_eq!(f.seen(), 2);
    }

    #[test]
    fn waiter_gets_link_added_by_busy_peer() {
        let f = Frontier::new(&[u("http://h/")], None, None);
        let stop = AtomicBool::new(false);
        let first = f.next(&stop);
        assert!(first.is_some());
        std::thread::scope(|s| {
            let waiter = s.spawn(|| f.next(&stop));
            std::thread::sleep(Duration::from_millis(50));
            f.complete([u("http://h/late")].into_iter());
            assert_eq!(waiter.join().unwrap(), Some(u("http://h/late")));
        });
    }

    #[test]
    fn max_pages_and_stop() {
        let f = Frontier::new(&[u("http://h/1"), u("http://h/2")], Some(1), None);
        let stop = AtomicBool::new(false);
        assert!(f.next(&stop).is_some());
        assert_eq!(f.next(&stop), None);
        assert_eq!(f.finish(), Finish::MaxPages);

        let t = Frontier::new(&[u("http://h/1")], None, Some(Instant::now()));
        assert_eq!(t.next(&stop), None);
        assert_eq!(t.finish(), Finish::MaxTime);

        let g = Frontier::new(&[u("http://h/1")], None, None);
        stop.store(true, Ordering::Relaxed);
        assert_eq!(g.next(&stop), None);
        assert_eq!(g.finish(), Finish::Stopped);
    }
}
