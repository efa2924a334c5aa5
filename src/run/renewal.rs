//! "Renew every third of the TTL": the one loop behind the run lock, the
//! reliable consumer's heartbeats and the shared frontier's leases. A third
//! leaves two more chances before the TTL runs out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Calls `renew` every third of `ttl` until `done` is raised (checked every
/// 50 ms, so the owner never waits long to stop) or `renew` returns false.
pub fn renew_every_third(ttl: Duration, done: &AtomicBool, mut renew: impl FnMut() -> bool) {
    let every = ttl / 3;
    let mut next = Instant::now() + every;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50).min(every.max(Duration::from_millis(1))));
        if Instant::now() < next {
            continue;
        }
        if !renew() {
            return;
        }
        next = Instant::now() + every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn renews_at_a_third_of_the_ttl_and_stops_when_told() {
        let done = AtomicBool::new(false);
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                renew_every_third(Duration::from_millis(300), &done, || {
                    calls.fetch_add(1, Ordering::Relaxed) < 100
                })
            });
            std::thread::sleep(Duration::from_millis(550));
            done.store(true, Ordering::Relaxed);
        });
        // 100 ms apart: at 100..=500 ms, five renewals (one may slip on a busy machine).
        let n = calls.load(Ordering::Relaxed);
        assert!((4..=5).contains(&n), "{n} renewals");
        assert!(started.elapsed() < Duration::from_millis(800));
    }

    #[test]
    fn a_failed_renewal_ends_the_loop() {
        let done = AtomicBool::new(false);
        let calls = AtomicU32::new(0);
        renew_every_third(Duration::from_millis(30), &done, || {
            calls.fetch_add(1, Ordering::Relaxed);
            false
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }
}
