//! The samples the dashboard takes itself, per queue: length, dead letters
//! and the fleet's counts, the last `KEPT` of them, from which its charts
//! and the rates in and out are drawn.

use super::fleet::Snapshot;
use std::collections::{BTreeMap, VecDeque};

/// Samples kept per queue (at the default 5 s, ten minutes).
pub const KEPT: usize = 120;

/// One queue at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix milliseconds.
    pub at_ms: u64,
    pub length: u64,
    pub dead: u64,
    /// The fleet's counts, if the queue has them.
    pub pushed: Option<u64>,
    pub popped: Option<u64>,
}

/// Items per second in and out between two samples (`None` without counts,
/// or where they went back: the counts key was deleted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub at_ms: u64,
    pub pushed: Option<f64>,
    pub popped: Option<f64>,
}

/// Every queue's last samples.
#[derive(Debug, Default)]
pub struct History {
    queues: BTreeMap<String, VecDeque<Sample>>,
}

impl History {
    /// Records every queue of `snap`, taken at `at_ms`; queues no longer
    /// found are forgotten.
    pub fn record(&mut self, at_ms: u64, snap: &Snapshot) {
        self.queues
            .retain(|name, _| snap.queues.iter().any(|q| q.name == *name));
        for q in &snap.queues {
            let samples = self.queues.entry(q.name.clone()).or_default();
            if samples.len() == KEPT {
                samples.pop_front();
            }
            samples.push_back(Sample {
                at_ms,
                length: q.length,
                dead: q.dead,
                pushed: q.pushed,
                popped: q.popped,
            });
        }
    }

    /// The samples of queue `name`, oldest first.
    pub fn samples(&self, name: &str) -> Vec<Sample> {
        self.queues
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Rates between each pair of consecutive samples of queue `name`.
    pub fn rates(&self, name: &str) -> Vec<Rate> {
        let s = self.samples(name);
        s.windows(2)
            .map(|w| {
                let secs = w[1].at_ms.saturating_sub(w[0].at_ms) as f64 / 1000.0;
                let per = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (Some(a), Some(b)) if b >= a && secs > 0.0 => Some((b - a) as f64 / secs),
                    _ => None,
                };
                Rate {
                    at_ms: w[1].at_ms,
                    pushed: per(w[0].pushed, w[1].pushed),
                    popped: per(w[0].popped, w[1].popped),
                }
            })
            .collect()
    }

    /// The latest rate of queue `name`, if two samples with counts exist.
    pub fn latest(&self, name: &str) -> Option<Rate> {
        self.rates(name).pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::fleet::QueueState;

    fn snap(length: u64, pushed: Option<u64>, popped: Option<u64>) -> Snapshot {
        Snapshot {
            queues: vec![QueueState {
                name: "Q".into(),
                length,
                pushed,
                popped,
                ..QueueState::default()
            }],
            ..Snapshot::default()
        }
    }

    #[test]
    fn rates_come_from_the_counts_and_a_reset_shows_none() {
        let mut h = History::default();
        h.record(0, &snap(5, Some(100), Some(40)));
        h.record(2_000, &snap(7, Some(110), Some(48)));
        h.record(4_000, &snap(7, Some(3), Some(1)));
        let r = h.rates("Q");
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].pushed, r[0].popped), (Some(5.0), Some(4.0)));
        assert_eq!((r[1].pushed, r[1].popped), (None, None));
        assert_eq!(h.samples("Q").len(), 3);
        for i in 0..(KEPT as u64 + 10) {
            h.record(10_000 + i, &snap(i, None, None));
        }
        assert_eq!(h.samples("Q").len(), KEPT);
        h.record(1 << 40, &Snapshot::default());
        assert!(h.samples("Q").is_empty());
    }
}
