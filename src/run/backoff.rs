//! Retry delays: capped exponential back-off with jitter, shared by the Redis
//! writer, the consumers' reconnects and the crawler's HTTP retries.

use std::time::Duration;

/// A growing delay: `first`, then doubling up to `max`, each scaled by jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first` and never exceeds `max` (before jitter).
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first, max }
    }

    /// The delay to wait now; the following one is twice as long.
    pub fn step(&mut self) -> Duration {
        let d = jitter(self.next);
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Scales `d` by a factor in [0.5, 1.5), so many clients don't retry in lockstep.
pub fn jitter(d: Duration) -> Duration {
    // A real random source: clock nanoseconds are constant on clocks with
    // microsecond resolution, and would put clients back in lockstep.
    d.mul_f64(0.5 + fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(300));
        let steps: Vec<Duration> = (0..4).map(|_| b.step()).collect();
        let bounds = [(50, 150), (100, 300), (150, 450), (150, 450)];
        for (s, (lo, hi)) in steps.iter().zip(bounds) {
            assert!(
                *s >= Duration::from_millis(lo) && *s < Duration::from_millis(hi),
                "{steps:?}"
            );
        }
    }
}
