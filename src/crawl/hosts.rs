//! Per-host politeness: at most N requests in flight per host, a delay between
//! request starts, and Retry-After back-off. Blocking, with finite waits.
//!
//! The map of hosts is bounded (`MAX_HOSTS`), so a site with endless
//! subdomains cannot grow it without limit: see `Hosts::evict`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Slot {
    in_flight: usize,
    next_start: Option<Instant>,
}

/// Hosts tracked at once. A host with a request in flight is never forgotten,
/// and there are at most `--threads` of those.
pub const MAX_HOSTS: usize = 10_000;

/// Shared by all fetchers.
pub struct Hosts {
    slots: Mutex<HashMap<String, Slot>>,
    wake: Condvar,
    per_host: usize,
    max_hosts: usize,
}

impl Hosts {
    /// `per_host` concurrent requests per host, at most `MAX_HOSTS` hosts tracked.
    pub fn new(per_host: usize) -> Hosts {
        Hosts::with_cap(per_host, MAX_HOSTS)
    }

    fn with_cap(per_host: usize, max_hosts: usize) -> Hosts {
        Hosts {
            slots: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            per_host: per_host.max(1),
            max_hosts: max_hosts.max(2),
        }
    }

    /// Makes room for a new host once `max_hosts` are tracked. First it
    /// forgets hosts with nothing in flight and no delay pending (they hold
    /// no state). If that leaves the map over half full, it also forgets
    /// hosts that are only waiting out a delay: their next request may then
    /// start early. Hosts with a request in flight stay. Each eviction frees
    /// at least half the map, so the cost per new host stays constant.
    fn evict(&self, slots: &mut HashMap<String, Slot>) {
        let now = Instant::now();
        slots.retain(|_, s| s.in_flight > 0 || s.next_start.is_some_and(|t| t > now));
        if slots.len() > self.max_hosts / 2 {
            slots.retain(|_, s| s.in_flight > 0);
        }
    }

    /// Waits for a slot on `host` and for its next start time; the next
    /// request to it may start `delay` later. Returns false if `stop` rose.
    pub fn acquire(&self, host: &str, delay: Duration, stop: &AtomicBool) -> bool {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if slots.len() >= self.max_hosts && !slots.contains_key(host) {
                self.evict(&mut slots);
            }
            let slot = slots.entry(host.to_string()).or_default();
            let wait = match slot.next_start {
                Some(t) if t > now => t - now,
                _ if slot.in_flight >= self.per_host => Duration::from_millis(100),
                _ => {
                    slot.in_flight += 1;
                    slot.next_start = (!delay.is_zero()).then(|| now + delay);
                    return true;
                }
            };
            slots = self
                .wake
                .wait_timeout(slots, wait.min(Duration::from_millis(100)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Frees the slot; `back_off` (Retry-After) pushes the host's next start out.
    pub fn release(&self, host: &str, back_off: Option<Duration>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = slots.get_mut(host) {
            slot.in_flight = slot.in_flight.saturating_sub(1);
            if let Some(b) = back_off {
                let until = Instant::now() + b;
                slot.next_start = Some(slot.next_start.map_or(until, |t| t.max(until)));
            }
        }
        self.wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn tracked(h: &Hosts) -> usize {
        h.slots.lock().unwrap().len()
    }

    #[test]
    fn the_host_map_is_bounded_and_keeps_busy_hosts() {
        let stop = AtomicBool::new(false);
        let hosts = Hosts::with_cap(1, 4);
        // Four idle hosts fill the map; a fifth forgets them all.
        for h in ["a", "b", "c", "d"] {
            assert!(hosts.acquire(h, Duration::ZERO, &stop));
            hosts.release(h, None);
        }
        assert_eq!(tracked(&hosts), 4);
        assert!(hosts.acquire("e", Duration::ZERO, &stop));
        assert_eq!(tracked(&hosts), 1);
        // e is busy; f, g wait out a delay: idle ones go first, and with
        // the map then over half full, delayed ones too. e stays.
        for h in ["f", "g"] {
            assert!(hosts.acquire(h, Duration::from_secs(60), &stop));
            hosts.release(h, None);
        }
        assert!(hosts.acquire("h", Duration::ZERO, &stop));
        hosts.release("h", None);
        assert_eq!(tracked(&hosts), 4);
        assert!(hosts.acquire("i", Duration::ZERO, &stop));
        assert_eq!(tracked(&hosts), 2, "e (in flight) and i");
        hosts.release("e", None);
        hosts.release("i", None);
        // Two delayed hosts in a map of four: half full, so they are kept.
        for h in ["j", "k"] {
            assert!(hosts.acquire(h, Duration::from_secs(60), &stop));
            hosts.release(h, None);
        }
        assert_eq!(tracked(&hosts), 4);
        assert!(hosts.acquire("l", Duration::ZERO, &stop));
        assert_eq!(tracked(&hosts), 3, "j and k keep their delay; l is new");
    }

    #[test]
    fn delay_spaces_out_starts_and_limit_caps_concurrency() {
        let hosts = Hosts::new(1);
        let stop = AtomicBool::new(false);
        let t0 = Instant::now();
        assert!(hosts.acquire("h", Duration::from_millis(150), &stop));
        hosts.release("h", None);
        assert!(hosts.acquire("h", Duration::ZERO, &stop));
        assert!(t0.elapsed() >= Duration::from_millis(150));
        // The slot is taken: a stop ends the wait.
        stop.store(true, Ordering::Relaxed);
        assert!(!hosts.acquire("h", Duration::ZERO, &stop));
        assert!(hosts.acquire("other", Duration::ZERO, &AtomicBool::new(false)));

        // Eight fetchers, three "requests" each, on one host capped at three.
        const CAP: usize = 3;
        let hosts = Hosts::new(CAP);
        let stop = AtomicBool::new(false);
        let (in_flight, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..3 {
                        assert!(hosts.acquire("h", Duration::ZERO, &stop));
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        // The request: long enough for the others to pile up.
                        std::thread::sleep(Duration::from_millis(30));
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        hosts.release("h", None);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), CAP, "most requests in flight");
    }
}
