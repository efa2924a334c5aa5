//! `qpipe consume`: N popping threads (one connection each) -> one sink thread.
//!
//! ```text
//!  LPUSH ... key ... BRPOP/BLMOVE ─> popper 1 ─┐
//!                    BRPOP/BLMOVE ─> popper 2 ─┼─> bounded channel (batches) ─> sink (this thread)
//!                    BRPOP/BLMOVE ─> popper N ─┘                                  │ commit, then
//!                                                 heartbeat thread (reliable)      └─ ack (reliable)
//! ```
//! Each popper pulls from `BatchSource`s (one per shard it serves); the mode lives
//! in the source, not in the loop. If the sink fails, the file is cut back to
//! its last commit and unwritten items go back to the consuming end of the
//! list (BRPOP) or stay in their processing lists until re-queued at exit
//! (reliable). BRPOP mode loses what a pop whose reply was lost had taken;
//! see docs/guarantees.md. Poison items go to `<key>:dead`.

use crate::cmd::monitor::Monitor;
use crate::config::ConsumeConfig;
use crate::consume::popper::{assigned, pop_loop, PopStats, Shared};
use crate::consume::sink::{self, Drained, Sink};
use crate::consume::source::{self, BatchSource, BrpopSource};
use crate::error::Error;
use crate::queue::batch::Batch;
use crate::queue::lease::{self, Lease};
use crate::queue::link::Link;
use crate::queue::reliable::Reliable;
use crate::queue::Queue;
use crate::run::counters::{Counters, Side};
use crate::run::log;
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::summary::{Finish, Summary};
use crate::run::tally::Tally;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pops until drained, budget spent, signal, or failure, and reports it.
pub fn run(cfg: &ConsumeConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let block = cfg.drain_after.map_or(Duration::from_secs(1), |idle| {
        idle.min(Duration::from_secs(1))
    });
    let stop = Some(Arc::clone(&signals.stop));
    let keys = crate::queue::keys::shard_keys(&cfg.key, cfg.shards, cfg.redis.is_cluster());
    let monitor = Monitor::start(&cfg.monitor, &cfg.redis, &keys)?;
    let live = Counters::new(Side::Consume);
    let connect = |key: &str, block: Duration| {
        Queue::connect_shard(&cfg.redis, key, &keys, block)
            .map(|q| q.retrying(cfg.retry_for, stop.clone()))
    };
    let mut control = connect(&keys[0], block)?;
    let consumer = cfg.reliable.then(|| Lease::new(&keys, cfg.heartbeat_ttl));
    let recovered = match &consumer {
        Some(me) => me.start(control.link(), &lease::Items)?,
        None => 0,
    };
    if recovered > 0 {
        log::info(&format!(
            "recovered {recovered} items from dead consumers' processing lists"
        ));
    }
    let mut sink = Sink::open(cfg.out.as_deref(), cfg.fsync)?;
    let workers = (0..cfg.threads)
        .map(|t| sources_of(t, cfg, consumer.as_ref(), block, &keys, &connect))
        .collect::<Result<Vec<_>, Error>>()?;
    let beats = match &consumer {
        Some(_) => Some(lease::heartbeat_link(
            &cfg.redis,
            cfg.retry_for,
            stop.clone(),
        )?),
        None => None,
    };
    let id = consumer
        .as_ref()
        .map_or_else(|| format!("pid {}", std::process::id()), |c| c.id.clone());
    let shared = Shared::new(cfg, &signals.stop, started, &live, id);
    let progress_queue = progress::wanted()
        .then(|| Queue::connect(&cfg.redis, &keys[0], block).ok())
        .flatten();
    let stages = Stages {
        workers,
        sink: &mut sink,
        control: &mut control,
        lease: consumer.as_ref().zip(beats),
        monitor,
        progress_queue,
    };
    let (pops, drained) = pump(stages, &shared, signals);
    // Whatever did not become durable goes back to the list, in order. The
    // stop flag may be up (a signal, the sink's failure): this gets its own
    // short budget so popped items are not abandoned at the first blip.
    let stopping = signals.exit().is_some();
    let returned = put_back(cfg, &keys, consumer.as_ref(), &drained.unwritten, stopping);
    let end = End {
        reconnects: control.link().reconnects,
        recovered,
        returned,
        started,
    };
    Ok(summarize(cfg, signals, shared, pops, drained, end))
}

/// The sources popper thread `t` takes from: one per shard it serves, each
/// on its own connection, reliable batches or plain BRPOP.
fn sources_of(
    t: usize,
    cfg: &ConsumeConfig,
    consumer: Option<&Lease>,
    block: Duration,
    keys: &[String],
    connect: &dyn Fn(&str, Duration) -> Result<Queue, Error>,
) -> Result<Vec<Box<dyn BatchSource>>, Error> {
    let mine = assigned(t, cfg.threads, keys.len());
    // Each shard gets its share of the block time, so a round stays short.
    let each = block
        .div_f64(mine.len() as f64)
        .max(Duration::from_millis(50));
    mine.into_iter()
        .map(|i| {
            let q = connect(&keys[i], each)?;
            Ok(match consumer {
                Some(me) => Box::new(Reliable::new(q, me, t)) as Box<dyn BatchSource>,
                None => Box::new(BrpopSource::new(q)) as Box<dyn BatchSource>,
            })
        })
        .collect()
}

/// What `pump` runs: the poppers' sources, the sink, and the watchers.
struct Stages<'a> {
    workers: Vec<Vec<Box<dyn BatchSource>>>,
    sink: &'a mut Sink,
    /// Acknowledges reliable batches (and is the run's control connection).
    control: &'a mut Queue,
    /// The reliable lease and its heartbeat link.
    lease: Option<(&'a Lease, Link)>,
    monitor: Monitor,
    progress_queue: Option<Queue>,
}

/// Runs the popper threads, the heartbeat and the watchers beside the sink
/// (on this thread) until the poppers end and the sink has drained them.
fn pump(st: Stages<'_>, shared: &Shared<'_>, signals: &Signals) -> (PopStats, Drained) {
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(shared.cfg.threads * 4);
    let done = AtomicBool::new(false);
    let live = shared.live;
    let Stages {
        workers,
        sink,
        control,
        lease,
        monitor,
        progress_queue,
    } = st;
    std::thread::scope(|s| {
        if let Some(mut pq) = progress_queue {
            s.spawn(|| {
                progress::draw(
                    &[("written", &live.items_written)],
                    move || pq.len().ok(),
                    &done,
                )
            });
        }
        monitor.spawn(s, live, &done);
        let acker = lease.is_some().then_some(control.link());
        if let Some((me, mut link)) = lease {
            let done = &done;
            s.spawn(move || me.keep_alive(&mut link, done, |e| shared.fail(e)));
        }
        let poppers: Vec<_> = workers
            .into_iter()
            .map(|sources| {
                let tx = tx.clone();
                s.spawn(move || pop_loop(sources, &tx, shared))
            })
            .collect();
        drop(tx);
        let flags = sink::Flags {
            stop: shared.stop,
            reopen: &signals.hup,
        };
        let drained = sink::drain(
            &rx,
            sink,
            acker,
            &flags,
            &live.items_written,
            &shared.in_flight,
        );
        let mut pops = PopStats::default();
        for p in poppers {
            match p.join() {
                Ok(one) => pops.tally(one),
                Err(_) => shared.fail(Error::Internal(
                    "a popper thread panicked (please report this bug)".into(),
                )),
            }
        }
        done.store(true, Ordering::Relaxed);
        (pops, drained)
    })
}

/// What the run learnt after its threads ended.
struct End {
    reconnects: u64,
    recovered: u64,
    returned: u64,
    started: Instant,
}

/// The run's summary: why it ended, its exit code, and its counts.
fn summarize(
    cfg: &ConsumeConfig,
    signals: &Signals,
    shared: Shared<'_>,
    pops: PopStats,
    drained: Drained,
    end: End,
) -> Summary {
    let failure = failure_of(cfg, &shared, drained.ack_error, drained.error, end.returned);
    let reason = if let Some(f) = &failure {
        match f {
            Error::Redis { .. } => Finish::RedisUnavailable,
            Error::Internal(_) => Finish::InternalError,
            _ => Finish::Error,
        }
    } else if signals.exit().is_some() {
        Finish::Stopped
    } else if shared.drained.load(Ordering::Relaxed) {
        Finish::Drained
    } else if shared.timed_out.load(Ordering::Relaxed) {
        Finish::MaxTime
    } else {
        Finish::MaxItems
    };
    // Without --drain a signal is the normal way to stop, so it is a success.
    let exit = match (signals.exit(), cfg.drain_after) {
        (Some(code), Some(_)) => code,
        _ => cfg.limits.exit_for(pops.dead),
    };
    let mut sum = Summary::new("consume", exit);
    sum.finish(reason)
        .set("mode", if cfg.reliable { "reliable" } else { "brpop" })
        .set("redis", crate::error::redact(&cfg.redis.url))
        .set("key", cfg.key.as_str())
        .set("items_popped", pops.popped)
        .set("items_written", drained.written)
        .set("items_dead", pops.dead)
        .set("items_reformatted", pops.reformatted)
        .set("items_returned_to_queue", end.returned + pops.returned)
        .set("items_recovered", end.recovered)
        .set("ack_failures", drained.ack_failures)
        .set("redis_reconnects", end.reconnects)
        .rates(end.started.elapsed(), &[("items", drained.written)]);
    // Throughput without the trailing --idle-timeout wait: start to last commit.
    let active = drained
        .last_commit
        .map_or(Duration::ZERO, |t| t - end.started);
    sum.set("active_secs", active.as_secs_f64()).set(
        "items_per_active_sec",
        (drained.written as f64 / active.as_secs_f64().max(0.001)).round(),
    );
    sum.failure = failure;
    sum
}

/// The failure that ended the run: the sink's (naming what went back) over
/// an acknowledgement's over the first thread's.
fn failure_of(
    cfg: &ConsumeConfig,
    shared: &Shared<'_>,
    ack_error: Option<Error>,
    sink_error: Option<std::io::Error>,
    returned: u64,
) -> Option<Error> {
    let mut failure = shared.failure.lock().ok().and_then(|mut f| f.take());
    if let Some(e) = ack_error {
        failure = failure.or(Some(e));
    }
    if let Some(e) = sink_error {
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
    failure
}

/// At exit: re-queues what this consumer still holds (reliable), or pushes
/// back the batches the sink did not write (BRPOP). The stop flag may be up
/// (a signal, the sink's failure), so this gets its own short retry budget
/// rather than abandoning popped items at the first blip; after a signal it
/// is short enough to exit within a kill grace period. Returns how many
/// items went back.
fn put_back(
    cfg: &ConsumeConfig,
    keys: &[String],
    consumer: Option<&Lease>,
    unwritten: &[Batch],
    stopping: bool,
) -> u64 {
    if consumer.is_none() && unwritten.is_empty() {
        return 0;
    }
    let mut q = match lease::exit_link(&cfg.redis, cfg.retry_for, stopping) {
        Ok(l) => Queue::over(l.with_shards(keys), &keys[0], Duration::ZERO),
        Err(e) => {
            match consumer {
                Some(_) => log::warn(&format!(
                    "could not release this consumer's batches ({e}); `qpipe recover` re-queues them once its heartbeat expires"
                )),
                None => log::error(&format!(
                    "{} popped items could not be written nor put back ({e}); they are lost",
                    unwritten.iter().map(|b| b.items.len()).sum::<usize>()
                )),
            }
            return 0;
        }
    };
    match consumer {
        Some(me) => {
            // Batches the sink did not write are named here, so they go back
            // even if a racing `recover` dropped their registration.
            let mut n = 0;
            for b in unwritten {
                if let Some(a) = &b.ack {
                    n += lease::requeue_batch(q.link(), &b.key, &a.set, &a.list).unwrap_or(0);
                }
            }
            let (m, failure) = me.release(q.link(), &lease::Items);
            let n = n + m;
            if let Some(e) = failure {
                log::warn(&format!(
                    "could not release all of this consumer's batches ({e}); `qpipe recover` re-queues the rest once its heartbeat expires"
                ));
            }
            n
        }
        None => unwritten.iter().map(|b| source::give_back(&mut q, b)).sum(),
    }
}
