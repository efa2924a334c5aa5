//! Per-host politeness: at most N requests in flight per host, a delay between
//! request starts, and Retry-After back-off. Blocking, with finite waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Slot {
    in_flight: usize,
    next_start: Option<Instant>,
}

/// Shared by all fetchers.
pub struct Hosts {
    slots: Mutex<HashMap<String, Slot>>,
    wake: Condvar,
    per_host: usize,
}

impl Hosts {
    /// `per_host` concurrent requests per host.
    pub fn new(per_host: usize) -> Hosts {
        Hosts {
            slots: Mutex::new(HashMap::new()),
            wake: Condvar::new(),
            per_host: per_host.max(1),
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
    }
}
