//! One popper thread's loop: take batches from its sources in turn, set
//! poison aside, and hand the rest to the sink. Plus the state the poppers
//! share (budget, idle clock, first failure) and which shards each serves.
//! The threads themselves are spawned in `cmd::consume`.

use crate::consume::poison;
use crate::consume::settings::ConsumeConfig;
use crate::consume::source::BatchSource;
use crate::error::Error;
use crate::queue::batch::{Batch, Taken};
use crate::run::counters::Counters;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes popped but not yet written, as a multiple of `--batch-bytes`,
/// above which the poppers wait for the sink.
const IN_FLIGHT_BATCHES: u64 = 4;

/// State shared by the popper threads.
pub struct Shared<'a> {
    pub cfg: &'a ConsumeConfig,
    pub stop: &'a AtomicBool,
    pub started: Instant,
    /// Milliseconds since `started` when an item was last popped.
    pub last_item_ms: AtomicU64,
    /// Set once the list stayed empty for the idle timeout.
    pub drained: AtomicBool,
    /// Items still allowed by --max-items (u64::MAX without a limit).
    pub budget: AtomicU64,
    /// `--max-time` as an instant.
    pub deadline: Option<Instant>,
    /// Set once the deadline passed.
    pub timed_out: AtomicBool,
    /// Bytes popped and not yet settled by the sink.
    pub in_flight: AtomicU64,
    /// The run's live counters (popped, dead).
    pub live: &'a Counters,
    /// Who this process is in dead letters.
    pub consumer: String,
    /// The first failure of any thread.
    pub failure: Mutex<Option<Error>>,
    /// Items of dead consumers put back while the run went on (reliable).
    pub recovered: AtomicU64,
}

impl<'a> Shared<'a> {
    /// The poppers' shared state at the start of a run: the budget from
    /// `--max-items`, the deadline from `--max-time`; `consumer` names this
    /// process in dead letters.
    pub fn new(
        cfg: &'a ConsumeConfig,
        stop: &'a AtomicBool,
        started: Instant,
        live: &'a Counters,
        consumer: String,
    ) -> Shared<'a> {
        Shared {
            cfg,
            stop,
            started,
            last_item_ms: AtomicU64::new(0),
            drained: AtomicBool::new(false),
            budget: AtomicU64::new(cfg.max_items.unwrap_or(u64::MAX)),
            deadline: cfg.limits.max_time.map(|t| started + t),
            timed_out: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            live,
            consumer,
            failure: Mutex::new(None),
            recovered: AtomicU64::new(0),
        }
    }

    /// Milliseconds since the run started.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a failure that ends the run (the first one wins) and stops.
    pub fn fail(&self, e: Error) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What one popper thread did.
#[derive(Default)]
pub struct PopStats {
    /// Items popped from Redis.
    pub popped: u64,
    /// Items a popper put back itself (the run was ending).
    pub returned: u64,
    /// Items set aside as dead letters.
    pub dead: u64,
    /// Items rewritten onto one line.
    pub reformatted: u64,
}
crate::run::tally::tally!(PopStats {
    popped,
    returned,
    dead,
    reformatted
});

/// One popper: take a batch from its sources in turn, set poison aside, and
/// hand the rest to the sink.
pub fn pop_loop(
    mut sources: Vec<Box<dyn BatchSource>>,
    tx: &Sender<Batch>,
    sh: &Shared<'_>,
) -> PopStats {
    let mut stats = PopStats::default();
    let limit = IN_FLIGHT_BATCHES * sh.cfg.batch_bytes as u64;
    let mut turns = Turns::new(sources.len());
    while !sh.stop.load(Ordering::Relaxed) && !sh.drained.load(Ordering::Relaxed) {
        if sh.deadline.is_some_and(|d| Instant::now() >= d) {
            sh.timed_out.store(true, Ordering::Relaxed);
            break;
        }
        if sh.in_flight.load(Ordering::Relaxed) >= limit {
            // The sink is behind: popping more would only grow memory.
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let Some(i) = turns.pick() else {
            continue;
        };
        let src = &mut sources[i];
        let want = reserve(&sh.budget, sh.cfg.batch_size as u64);
        if want == 0 {
            break;
        }
        let batch = match src.take(want as usize, sh.cfg.batch_bytes) {
            Ok(Taken::Batch(b)) => b,
            Ok(Taken::RetryAt(t)) => {
                // An outage is not an empty queue: restart the idle clock.
                sh.budget.fetch_add(want, Ordering::Relaxed);
                sh.last_item_ms.fetch_max(sh.now_ms(), Ordering::Relaxed);
                turns.retry_at[i] = Some(t);
                continue;
            }
            Err(e) => {
                sh.budget.fetch_add(want, Ordering::Relaxed);
                if !matches!(e, Error::Stopped(_)) {
                    sh.fail(e);
                }
                break;
            }
        };
        if !hand_over(src.as_mut(), batch, want, tx, sh, &mut stats) {
            break;
        }
    }
    stats
}

/// Whose turn it is: the sources in turn, skipping those waiting out an
/// outage, so a dead cluster node does not slow the shards on the live ones.
struct Turns {
    next: usize,
    /// When each source may be tried again (Redis unavailable for it).
    retry_at: Vec<Option<Instant>>,
}

impl Turns {
    fn new(n: usize) -> Turns {
        Turns {
            next: 0,
            retry_at: vec![None; n],
        }
    }

    /// The next source that may be tried now; `None` after sleeping toward
    /// the soonest retry (at most 50 ms) when none may.
    fn pick(&mut self) -> Option<usize> {
        let n = self.retry_at.len();
        let now = Instant::now();
        let Some(i) = (0..n)
            .map(|k| (self.next + k) % n)
            .find(|&i| self.retry_at[i].is_none_or(|t| t <= now))
        else {
            let soonest = self.retry_at.iter().flatten().min().copied().unwrap_or(now);
            std::thread::sleep(
                soonest
                    .saturating_duration_since(now)
                    .min(Duration::from_millis(50)),
            );
            return None;
        };
        self.next = i + 1;
        self.retry_at[i] = None;
        Some(i)
    }
}

/// Settles a batch taken from `src` for `want` items: returns the unused
/// budget, keeps the idle clock, sets poison aside, and sends the rest to
/// the sink. False: the run ends (a failure, or the sink is gone), and the
/// batch's items are safe (in Redis, or put back).
fn hand_over(
    src: &mut dyn BatchSource,
    mut batch: Batch,
    want: u64,
    tx: &Sender<Batch>,
    sh: &Shared<'_>,
    stats: &mut PopStats,
) -> bool {
    let got = batch.items.len() as u64;
    sh.budget.fetch_add(want - got, Ordering::Relaxed);
    let now_ms = sh.now_ms();
    if got == 0 {
        if let Some(idle) = sh.cfg.drain_after {
            let last = sh.last_item_ms.load(Ordering::Relaxed);
            if now_ms.saturating_sub(last) >= idle.as_millis() as u64 {
                sh.drained.store(true, Ordering::Relaxed);
            }
        }
        return true;
    }
    sh.last_item_ms.fetch_max(now_ms, Ordering::Relaxed);
    stats.popped += got;
    sh.live.items_popped.fetch_add(got, Ordering::Relaxed);
    match poison::screen(
        src.queue(),
        &sh.consumer,
        &mut batch.items,
        sh.cfg.csv.as_deref(),
    ) {
        Ok(s) => {
            stats.dead += s.dead;
            sh.live.items_dead.fetch_add(s.dead, Ordering::Relaxed);
            stats.reformatted += s.reformatted;
        }
        // The batch is not sent: the items stay in Redis (reliable) or
        // go back below (BRPOP), and the run ends.
        Err(e) => {
            stats.returned += src.abandon(batch);
            sh.fail(e);
            return false;
        }
    }
    sh.in_flight.fetch_add(batch.bytes(), Ordering::Relaxed);
    if let Err(back) = tx.send(batch) {
        // The sink is gone (it panicked): make sure the items survive.
        stats.returned += src.abandon(back.into_inner());
        return false;
    }
    true
}

/// Takes up to `n` from the item budget; returns how many were granted.
fn reserve(budget: &AtomicU64, n: u64) -> u64 {
    let mut granted = 0;
    let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        granted = left.min(n);
        Some(left - granted)
    });
    granted
}

/// The shards thread `t` of `threads` serves: every shard has a thread, and
/// with more threads than shards, threads share shards.
pub fn assigned(t: usize, threads: usize, shards: usize) -> Vec<usize> {
    if threads >= shards {
        vec![t % shards]
    } else {
        (t..shards).step_by(threads).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_is_served() {
        assert_eq!(assigned(0, 4, 6), [0, 4]);
        assert_eq!(assigned(1, 4, 6), [1, 5]);
        assert_eq!(assigned(3, 4, 6), [3]);
        assert_eq!(assigned(5, 8, 3), [2]);
        let mut all: Vec<usize> = (0..4).flat_map(|t| assigned(t, 4, 6)).collect();
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4, 5]);
    }
}
