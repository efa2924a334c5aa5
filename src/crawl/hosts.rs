//! Per-host politeness: at most N requests in flight per host, a delay between
//! request starts, and Retry-After back-off. Blocking, with finite waits.
//!
//! With `--auto-throttle`, each host's delay follows its latency, as
//! Scrapy's AutoThrottle does: after each answer the delay moves halfway to
//! `latency / target` (never below it), so about `target` requests are in
//! flight; a 429, a 503 or a timeout doubles it; other errors never lower
//! it. It stays between the floor (`--delay-ms`, robots.txt's Crawl-delay)
//! and the maximum.
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
    /// When the last request started.
    started: Option<Instant>,
    /// AutoThrottle's delay for this host, once an answer was measured.
    throttle: Option<Duration>,
}

/// `--auto-throttle`'s settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Requests in flight per host to aim at.
    pub target: f64,
    /// The delay before a host's first answer.
    pub start: Duration,
    /// The longest delay.
    pub max: Duration,
}

/// What an answer says about the host's load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer (2xx, 3xx, 404...): the delay follows the latency.
    Answered,
    /// 429, 503 or a timeout: the host is overloaded; the delay doubles.
    Overloaded,
    /// Any other failure: the delay may grow, never shrink.
    Failed,
}

/// AutoThrottle's next delay after an answer that took `latency`.
pub fn next_delay(
    t: Throttle,
    current: Duration,
    latency: Duration,
    outcome: Outcome,
    floor: Duration,
) -> Duration {
    let new = match outcome {
        Outcome::Overloaded => (current * 2).max(latency).max(Duration::from_millis(100)),
        _ => {
            let target = latency.div_f64(t.target);
            ((current + target) / 2).max(target)
        }
    };
    let new = match outcome {
        Outcome::Failed => new.max(current),
        _ => new,
    };
    new.min(t.max).max(floor)
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
    throttle: Option<Throttle>,
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
            throttle: None,
        }
    }

    /// With `--auto-throttle`.
    pub fn with_throttle(mut self, throttle: Option<Throttle>) -> Hosts {
        self.throttle = throttle;
        self
    }

    /// The delay to keep after a request starts: `floor`, or AutoThrottle's
    /// if larger.
    fn delay_of(&self, slot: &Slot, floor: Duration) -> Duration {
        match self.throttle {
            Some(t) => slot.throttle.unwrap_or(t.start).max(floor),
            None => floor,
        }
    }

    /// Tells AutoThrottle how a request to `host` went; the host's new
    /// delay (`None` without `--auto-throttle`). The next start moves to
    /// the last start plus the new delay.
    pub fn observe(
        &self,
        host: &str,
        latency: Duration,
        outcome: Outcome,
        floor: Duration,
    ) -> Option<Duration> {
        let t = self.throttle?;
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = slots.get_mut(host)?;
        let current = self.delay_of(slot, floor);
        let new = next_delay(t, current, latency, outcome, floor);
        slot.throttle = Some(new);
        if let Some(started) = slot.started {
            slot.next_start = Some(started + new);
        }
        self.wake.notify_all();
        Some(new)
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
                    let delay = self.delay_of(slot, delay);
                    slot.in_flight += 1;
                    slot.started = Some(now);
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
    fn auto_throttle_follows_latency_within_its_bounds() {
        let t = Throttle {
            target: 1.0,
            start: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let ms = Duration::from_millis;
        let zero = Duration::ZERO;
        // Halfway to latency / target, never below it.
        assert_eq!(
            next_delay(t, ms(1000), ms(200), Outcome::Answered, zero),
            ms(600)
        );
        assert_eq!(
            next_delay(t, ms(100), ms(400), Outcome::Answered, zero),
            ms(400)
        );
        let t2 = Throttle { target: 2.0, ..t };
        assert_eq!(
            next_delay(t2, ms(100), ms(400), Outcome::Answered, zero),
            ms(200)
        );
        // Overload doubles; failures never lower it.
        assert_eq!(
            next_delay(t, ms(300), ms(50), Outcome::Overloaded, zero),
            ms(600)
        );
        assert_eq!(
            next_delay(t, ms(300), ms(50), Outcome::Failed, zero),
            ms(300)
        );
        // The floor (Crawl-delay) and the maximum.
        assert_eq!(
            next_delay(t, ms(300), ms(10), Outcome::Answered, ms(2000)),
            ms(2000)
        );
        assert_eq!(
            next_delay(t, ms(9000), ms(30_000), Outcome::Answered, zero),
            ms(10_000)
        );
        // Converges on a steady latency.
        let mut d = t.start;
        for _ in 0..20 {
            d = next_delay(t, d, ms(80), Outcome::Answered, zero);
        }
        assert!(d >= ms(80) && d < ms(81), "{d:?}");
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
