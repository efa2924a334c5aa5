//! `qpipe consume`: N BRPOP threads (one connection each) -> one sink thread.
//!
//! ```text
//!  LPUSH ... key ... BRPOP ─> popper 1 ─┐
//!                    BRPOP ─> popper 2 ─┼─> bounded channel (batches) ─> sink (this thread)
//!                    BRPOP ─> popper N ─┘
//! ```
//! Popped items are never dropped: if the sink fails, unwritten batches are
//! pushed back to the consuming end of the list, in order.

use crate::config::ConsumeConfig;
use crate::error::{Error, Exit};
use crate::log;
use crate::queue::Queue;
use crate::signal::Signals;
use crate::sink::Sink;
use crate::summary::Summary;
use crossbeam_channel::{Receiver, Sender};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Batch = Vec<Vec<u8>>;

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
}

#[derive(Default)]
struct PopStats {
    popped: u64,
    reconnects: u64,
    failure: Option<Error>,
}

/// Pops until drained, budget spent, signal, or failure, and reports it.
pub fn run(cfg: &ConsumeConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let block = cfg.drain_after.map_or(Duration::from_secs(1), |idle| {
        idle.min(Duration::from_secs(1))
    });
    let queues = (0..cfg.threads)
        .map(|_| Queue::connect(&cfg.redis, &cfg.key, block))
        .collect::<Result<Vec<_>, _>>()?;
    let mut sink = Sink::open(cfg.out.as_deref(), cfg.fsync)?;
    let shared = Shared {
        cfg,
        stop: &signals.stop,
        started,
        last_item_ms: AtomicU64::new(0),
        drained: AtomicBool::new(false),
        budget: AtomicU64::new(cfg.max_items.unwrap_or(u64::MAX)),
    };
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(cfg.threads * 4);

    let (pops, written, unwritten, sink_error) = std::thread::scope(|s| {
        let poppers: Vec<_> = queues
            .into_iter()
            .map(|q| {
                let (tx, shared) = (tx.clone(), &shared);
                s.spawn(move || pop_loop(q, &tx, shared))
            })
            .collect();
        drop(tx);
        let (written, unwritten, sink_error) = write_loop(&rx, &mut sink, shared.stop);
        let mut pops = PopStats::default();
        for p in poppers {
            let one = p.join().unwrap_or_else(|_| PopStats {
                failure: Some(Error::Internal(
                    "a popper thread panicked (please report this bug)".into(),
                )),
                ..PopStats::default()
            });
            pops.popped += one.popped;
            pops.reconnects += one.reconnects;
            pops.failure = pops.failure.or(one.failure);
        }
        (pops, written, unwritten, sink_error)
    });

    let mut failure = pops.failure;
    let mut returned = 0;
    if let Some(e) = sink_error {
        returned = return_unwritten(cfg, &unwritten, block);
        failure = Some(Error::io(
            format!(
                "cannot write to {} ({returned} popped items were pushed back to {})",
                cfg.out
                    .as_ref()
                    .map_or("stdout".into(), |p| p.display().to_string()),
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
    } else {
        "max_items"
    };
    // Without --drain a signal is the normal way to stop, so it is a success.
    let exit = match (signals.exit(), cfg.drain_after) {
        (Some(code), Some(_)) => code,
        _ => Exit::Ok,
    };
    let mut sum = Summary::new("consume", exit);
    sum.set("finish_reason", reason)
        .set("redis", crate::error::redact(&cfg.redis))
        .set("key", cfg.key.as_str())
        .set("items_popped", pops.popped)
        .set("items_written", written)
        .set("items_returned_to_queue", returned as u64)
        .set("redis_reconnects", pops.reconnects)
        .rates(started.elapsed(), &[("items", written)]);
    sum.failure = failure;
    Ok(sum)
}

/// One popper: BRPOP (+ RPOP COUNT) into batches for the sink.
fn pop_loop(mut q: Queue, tx: &Sender<Batch>, sh: &Shared<'_>) -> PopStats {
    let mut stats = PopStats::default();
    while !sh.stop.load(Ordering::Relaxed) && !sh.drained.load(Ordering::Relaxed) {
        let want = reserve(&sh.budget, sh.cfg.batch_size as u64);
        if want == 0 {
            break;
        }
        let items = match q.pop(want as usize) {
            Ok(items) => items,
            Err(e) => {
                sh.budget.fetch_add(want, Ordering::Relaxed);
                match reconnect(&mut q, sh, &e) {
                    Ok(n) => {
                        stats.reconnects += n;
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
        if let Err(back) = tx.send(items) {
            // The sink is gone (it failed): these items must not be lost.
            let items = back.into_inner();
            stats.popped -= items.len() as u64;
            if let Err(e) = q.give_back(&items) {
                log::error(&format!(
                    "{} popped items could not be returned to Redis: {e}",
                    items.len()
                ));
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
    let mut delay = Duration::from_millis(100);
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
            Err(_) => std::thread::sleep(delay),
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Batches held for commit at most; bounds memory and time-to-durable under load.
const MAX_UNCOMMITTED: usize = 64;

/// The sink thread: write batches, commit when nothing else is waiting.
///
/// Batches are kept until their commit (flush + fsync) succeeds. On a write or
/// commit error this raises `stop` and returns every item not known to be
/// durable, so the caller can give them back to Redis (at-least-once).
fn write_loop(
    rx: &Receiver<Batch>,
    sink: &mut Sink,
    stop: &AtomicBool,
) -> (u64, Batch, Option<std::io::Error>) {
    let mut written = 0u64;
    let mut uncommitted: Vec<Batch> = Vec::new();
    let mut failure = None;
    for batch in rx {
        if let Err(e) = sink.write(&batch) {
            uncommitted.push(batch);
            failure = Some(e);
            break;
        }
        uncommitted.push(batch);
        if rx.is_empty() || uncommitted.len() >= MAX_UNCOMMITTED {
            if let Err(e) = sink.commit() {
                failure = Some(e);
                break;
            }
            written += uncommitted.drain(..).map(|b| b.len() as u64).sum::<u64>();
        }
    }
    if failure.is_none() {
        match sink.commit() {
            Ok(()) => written += uncommitted.drain(..).map(|b| b.len() as u64).sum::<u64>(),
            Err(e) => failure = Some(e),
        }
    }
    if failure.is_some() {
        stop.store(true, Ordering::Relaxed);
    }
    // After a failure, drain what the poppers still send so none of it is lost.
    let rest = uncommitted.into_iter().chain(rx.iter()).flatten().collect();
    (written, rest, failure)
}

/// Pushes unwritten items back to the consuming end; returns how many made it.
fn return_unwritten(cfg: &ConsumeConfig, items: &[Vec<u8>], block: Duration) -> usize {
    if items.is_empty() {
        return 0;
    }
    let result = Queue::connect(&cfg.redis, &cfg.key, block).and_then(|mut q| {
        q.give_back(items)
            .map_err(|e| Error::redis("cannot return items", &cfg.redis, &e))
    });
    match result {
        Ok(()) => items.len(),
        Err(e) => {
            log::error(&format!(
                "{} popped items could not be written nor returned: {e}",
                items.len()
            ));
            0
        }
    }
}
