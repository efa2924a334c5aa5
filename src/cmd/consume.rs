//! `qpipe consume`: N popping threads (one connection each) -> one sink thread.
//!
//! ```text
//!  LPUSH ... key ... BRPOP/BLMOVE ─> popper 1 ─┐
//!                    BRPOP/BLMOVE ─> popper 2 ─┼─> bounded channel (batches) ─> sink (this thread)
//!                    BRPOP/BLMOVE ─> popper N ─┘                                  │ commit, then
//!                                                                                 └─ ack (reliable)
//! ```
//! Popped items are never dropped: if the sink fails, unwritten items go back
//! to the consuming end of the list, in order. Poison items go to `<key>:dead`.

use crate::backoff::Backoff;
use crate::config::ConsumeConfig;
use crate::error::Error;
use crate::log;
use crate::poison;
use crate::progress;
use crate::queue::Queue;
use crate::reliable::{self, Lease};
use crate::signal::Signals;
use crate::sink::{self, Batch, Sink};
use crate::summary::Summary;
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// State shared by the popper threads.
struct Shared<'a> {
    cfg: &'a ConsumeConfig,
    stop: &'a AtomicBool,
    started: Instant,
    /// Milliseconds since `started` when an item was last popped.
    last_item_ms: AtomicU64,
    /// Set once the list stayed empty for the idle timeout.
    drained: AtomicBool,
    /// Items still allowed by --max-items (u64::MAX without a limit).
    budget: AtomicU64,
    /// `--max-time` as an instant.
    deadline: Option<Instant>,
    /// Set once the deadline passed.
    timed_out: AtomicBool,
}

#[derive(Default)]
struct PopStats {
    popped: u64,
    dead: u64,
    reformatted: u64,
    reconnects: u64,
    failure: Option<Error>,
}

/// Pops until drained, budget spent, signal, or failure, and reports it.
pub fn run(cfg: &ConsumeConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut block = cfg.drain_after.map_or(Duration::from_secs(1), |idle| {
        idle.min(Duration::from_secs(1))
    });
    if cfg.reliable {
        // A blocked worker must still renew its heartbeat in time.
        block = block.min(Duration::from_secs(cfg.heartbeat_ttl).div_f64(3.0));
    }
    let keys = crate::conn::shard_keys(&cfg.key, cfg.shards, cfg.redis.is_cluster());
    let mut control = Queue::connect(&cfg.redis, &keys[0], block)?;
    let mut recovered = 0;
    if cfg.reliable {
        for key in &keys {
            recovered += reliable::recover(control.con(), key)
                .map_err(|e| Error::redis("cannot recover processing lists", &cfg.redis.url, &e))?;
        }
    }
    if recovered > 0 {
        log::info(&format!(
            "recovered {recovered} items from dead consumers' processing lists"
        ));
    }
    let mut sink = Sink::open(cfg.out.as_deref(), cfg.fsync)?;
    let mut workers: Vec<Vec<Source>> = Vec::with_capacity(cfg.threads);
    for t in 0..cfg.threads {
        let mine = assigned(t, cfg.threads, keys.len());
        // Each shard gets its share of the block time, so a round stays short.
        let each = block
            .div_f64(mine.len() as f64)
            .max(Duration::from_millis(50));
        let sources = mine
            .into_iter()
            .map(|i| {
                let q = Queue::connect(&cfg.redis, &keys[i], each)?;
                let lease = cfg.reliable.then(|| Lease::new(&keys[i], t));
                Ok(Source { q, lease })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        workers.push(sources);
    }
    let leases: Vec<Lease> = workers
        .iter()
        .flatten()
        .filter_map(|s| s.lease.clone())
        .collect();
    let shared = Shared {
        cfg,
        stop: &signals.stop,
        started,
        last_item_ms: AtomicU64::new(0),
        drained: AtomicBool::new(false),
        budget: AtomicU64::new(cfg.max_items.unwrap_or(u64::MAX)),
        deadline: cfg.limits.max_time.map(|t| started + t),
        timed_out: AtomicBool::new(false),
    };
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(cfg.threads * 4);

    let (written_now, done) = (AtomicU64::new(0), AtomicBool::new(false));
    let progress_queue = progress::wanted()
        .then(|| Queue::connect(&cfg.redis, &keys[0], block).ok())
        .flatten();
    let (pops, drained) = std::thread::scope(|s| {
        if let Some(pq) = progress_queue {
            s.spawn(|| progress::draw(&[("written", &written_now)], Some(pq), &done));
        }
        let poppers: Vec<_> = workers
            .into_iter()
            .map(|sources| {
                let (tx, shared) = (tx.clone(), &shared);
                s.spawn(move || pop_loop(sources, &tx, shared))
            })
            .collect();
        drop(tx);
        let acker = cfg.reliable.then_some(&mut control);
        let drained = sink::drain(&rx, &mut sink, acker, shared.stop, &written_now);
        let mut pops = PopStats::default();
        for p in poppers {
            let one = p.join().unwrap_or_else(|_| PopStats {
                failure: Some(Error::Internal(
                    "a popper thread panicked (please report this bug)".into(),
                )),
                ..PopStats::default()
            });
            pops.popped += one.popped;
            pops.dead += one.dead;
            pops.reformatted += one.reformatted;
            pops.reconnects += one.reconnects;
            pops.failure = pops.failure.or(one.failure);
        }
        done.store(true, Ordering::Relaxed);
        (pops, drained)
    });

    // Whatever did not become durable goes back to the list, in order.
    let returned = if cfg.reliable {
        release_leases(&mut control, &leases)
    } else {
        give_back(&mut control, &drained.unwritten)
    };
    let mut failure = pops.failure;
    if let Some(e) = drained.error {
        let out = cfg
            .out
            .as_ref()
            .map_or("stdout".into(), |p| p.display().to_string());
        failure = Some(Error::io(
            format!(
                "cannot write to {out} ({returned} popped items were put back on {})",
                cfg.key
            ),
            e,
        ));
    }
    let reason = if failure.is_some() {
        "error"
    } else if signals.exit().is_some() {
        "shutdown"
    } else if shared.drained.load(Ordering::Relaxed) {
        "drained"
    } else if shared.timed_out.load(Ordering::Relaxed) {
        "max_time"
    } else {
        "max_items"
    };
    // Without --drain a signal is the normal way to stop, so it is a success.
    let exit = match (signals.exit(), cfg.drain_after) {
        (Some(code), Some(_)) => code,
        _ => cfg.limits.exit_for(pops.dead),
    };
    let mut sum = Summary::new("consume", exit);
    sum.set("finish_reason", reason)
        .set("mode", if cfg.reliable { "reliable" } else { "brpop" })
        .set("redis", crate::error::redact(&cfg.redis.url))
        .set("key", cfg.key.as_str())
        .set("items_popped", pops.popped)
        .set("items_written", drained.written)
        .set("items_dead", pops.dead)
        .set("items_reformatted", pops.reformatted)
        .set("items_returned_to_queue", returned)
        .set("items_recovered", recovered)
        .set("ack_failures", drained.ack_failures)
        .set("redis_reconnects", pops.reconnects)
        .rates(started.elapsed(), &[("items", drained.written)]);
    // Throughput without the trailing --idle-timeout wait: start to last commit.
    let active = drained.last_commit.map_or(Duration::ZERO, |t| t - started);
    sum.set("active_secs", active.as_secs_f64()).set(
        "items_per_active_sec",
        (drained.written as f64 / active.as_secs_f64().max(0.001)).round(),
    );
    sum.failure = failure;
    Ok(sum)
}

/// One popper: take a batch (BRPOP + RPOP COUNT, or BLMOVE + moves into its
/// processing list), set poison aside, and hand the rest to the sink.
fn pop_loop(mut sources: Vec<Source>, tx: &Sender<Batch>, sh: &Shared<'_>) -> PopStats {
    let mut stats = PopStats::default();
    // Renew well inside the TTL; pops block at most a third of it.
    let beat_every = Duration::from_secs(sh.cfg.heartbeat_ttl).div_f64(3.0);
    let mut last_beat: Option<Instant> = None;
    let mut next = 0;
    while !sh.stop.load(Ordering::Relaxed) && !sh.drained.load(Ordering::Relaxed) {
        // Serve this thread's shards in turn.
        let n = sources.len();
        let Source { q, lease } = &mut sources[next % n];
        let (q, lease) = (q, lease.as_ref());
        next += 1;
        if sh.deadline.is_some_and(|d| Instant::now() >= d) {
            sh.timed_out.store(true, Ordering::Relaxed);
            break;
        }
        if lease.is_some() && last_beat.is_none_or(|t| t.elapsed() >= beat_every) {
            // A failed beat shows up as a failed pop just below.
            let beats = sources
                .iter_mut()
                .filter_map(|s| {
                    s.lease
                        .as_ref()
                        .map(|l| l.beat(s.q.con(), sh.cfg.heartbeat_ttl))
                })
                .all(|r| r.is_ok());
            if beats {
                last_beat = Some(Instant::now());
            }
            continue;
        }
        let want = reserve(&sh.budget, sh.cfg.batch_size as u64);
        if want == 0 {
            break;
        }
        let taken = match lease {
            Some(l) => {
                let (key, block) = (q.key.clone(), q.block_secs());
                reliable::take(q.con(), &key, l, want as usize, block)
            }
            None => q.pop(want as usize),
        };
        let items = match taken {
            Ok(items) => items,
            Err(e) => {
                sh.budget.fetch_add(want, Ordering::Relaxed);
                match reconnect(q, sh, &e) {
                    Ok(n) => {
                        stats.reconnects += n;
                        last_beat = None;
                        continue;
                    }
                    Err(fatal) => {
                        stats.failure = Some(fatal);
                        sh.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
        };
        sh.budget
            .fetch_add(want - items.len() as u64, Ordering::Relaxed);
        let now_ms = sh.started.elapsed().as_millis() as u64;
        if items.is_empty() {
            if let Some(idle) = sh.cfg.drain_after {
                let last = sh.last_item_ms.load(Ordering::Relaxed);
                if now_ms.saturating_sub(last) >= idle.as_millis() as u64 {
                    sh.drained.store(true, Ordering::Relaxed);
                }
            }
            continue;
        }
        sh.last_item_ms.fetch_max(now_ms, Ordering::Relaxed);
        stats.popped += items.len() as u64;
        let items = poison::screen(q, lease, items, &mut stats.dead, &mut stats.reformatted);
        if items.is_empty() {
            continue;
        }
        let batch = Batch {
            items,
            key: q.key.clone(),
            processing: lease.map(|l| l.processing.clone()),
        };
        if let Err(back) = tx.send(batch) {
            // The sink failed. Reliable mode: the items wait in the processing
            // list and are re-queued at exit. BRPOP mode: put them back now.
            let items = back.into_inner().items;
            if lease.is_none() {
                let key = q.key.clone();
                if let Err(e) = q.give_back(&key, &items) {
                    log::error(&format!(
                        "{} popped items could not be returned to Redis: {e}",
                        items.len()
                    ));
                }
            }
            break;
        }
    }
    stats
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

/// Reconnects with backoff until `--redis-retry-secs`; returns attempts made.
fn reconnect(q: &mut Queue, sh: &Shared<'_>, first: &redis::RedisError) -> Result<u64, Error> {
    log::warn(&format!(
        "lost Redis at {}: {first}; reconnecting",
        q.redacted_url()
    ));
    let deadline = Instant::now() + sh.cfg.retry_for;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempts = 0;
    loop {
        attempts += 1;
        match q.reconnect() {
            Ok(()) => {
                log::info(&format!("reconnected to {}", q.redacted_url()));
                return Ok(attempts);
            }
            Err(e) if Instant::now() >= deadline || sh.stop.load(Ordering::Relaxed) => {
                return Err(Error::redis(
                    "gave up reconnecting to Redis",
                    &q.redacted_url(),
                    &e,
                ));
            }
            Err(_) => std::thread::sleep(backoff.step()),
        }
    }
}

/// BRPOP mode: pushes unwritten items back to the consuming end of the
/// lists they came from, in order. Returns how many went back.
fn give_back(q: &mut Queue, batches: &[Batch]) -> u64 {
    let mut returned = 0;
    for b in batches {
        let result = q
            .give_back(&b.key, &b.items)
            .or_else(|_| q.reconnect().and_then(|()| q.give_back(&b.key, &b.items)));
        match result {
            Ok(()) => returned += b.items.len() as u64,
            Err(e) => log::error(&format!(
                "{} popped items could not be written nor returned to {}: {e}",
                b.items.len(),
                b.key
            )),
        }
    }
    returned
}

/// Reliable mode: re-queues whatever our processing lists still hold (not
/// durable, or not acknowledged), then drops our heartbeats.
fn release_leases(q: &mut Queue, leases: &[Lease]) -> u64 {
    let mut returned = 0;
    for l in leases {
        match reliable::requeue(q.con(), &l.list, &l.processing).and_then(|n| l.release(q.con()).map(|()| n)) {
            Ok(n) => returned += n,
            Err(e) => log::warn(&format!(
                "could not release {} ({e}); `qpipe recover` will re-queue its items once its heartbeat expires",
                l.processing
            )),
        }
    }
    returned
}

/// The shards thread `t` of `threads` serves: every shard has a thread, and
/// with more threads than shards, threads share shards.
fn assigned(t: usize, threads: usize, shards: usize) -> Vec<usize> {
    if threads >= shards {
        vec![t % shards]
    } else {
        (t..shards).step_by(threads).collect()
    }
}

/// One list a popper serves, with its connection and (reliable mode) lease.
struct Source {
    q: Queue,
    lease: Option<Lease>,
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
