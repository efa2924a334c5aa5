//! `qpipe consume`: wires the consume stage (`crate::consume`) to a run:
//! connections, the lease (`--reliable`), the sink, the monitor; then N
//! popping threads (one connection each) -> one sink thread, and the
//! summary.
//!
//! Each popper pulls from `BatchSource`s (one per shard it serves); the mode lives
//! in the source, not in the loop. If the sink fails, the file is cut back to
//! its last commit and unwritten items go back to the consuming end of the
//! list (BRPOP) or stay in their processing lists until re-queued at exit
//! (reliable). BRPOP mode loses what a pop whose reply was lost had taken;
//! see docs/guarantees.md. Poison items go to `<key>:dead`.

use crate::config::ConsumeConfig;
use crate::consume::popper::Shared;
use crate::consume::sink::commits::{self, CommitLog};
use crate::consume::sink::Sink;
use crate::consume::source::put_back;
use crate::consume::totals::{summarize, End};
use crate::consume::{pump, sources_of, Stages};
use crate::error::Error;
use crate::queue::acl::{self, Needs};
use crate::queue::lease::{self, Lease};
use crate::queue::probe::Probe;
use crate::queue::Queue;
use crate::run::counters::{Counters, Side};
use crate::run::log;
use crate::run::monitor::Monitor;
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::summary::Summary;
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
    let monitor = Monitor::start(&cfg.monitor, || Probe::boxed(&cfg.redis, &keys))?
        .with_tally(crate::queue::stats::tally(&cfg.redis, &cfg.key)?);
    let live = Counters::new(Side::Consume);
    let connect = |key: &str, block: Duration| {
        Queue::connect_shard(&cfg.redis, key, &keys, block)
            .map(|q| q.retrying(cfg.retry_for, stop.clone()))
    };
    let mut control = connect(&keys[0], block)?;
    let consumer = cfg.reliable.then(|| Lease::new(&keys, cfg.heartbeat_ttl));
    let mut needs = Needs::default();
    for key in &keys {
        match &consumer {
            Some(me) => needs.holder(key, &me.id),
            None => needs.popper(key),
        };
    }
    acl::check(control.link(), &needs)?;
    // Before recovery: a previous run's batches that are already in --out
    // are acknowledged, not put back (`sink::commits`).
    let mut sink = open_sink(cfg, signals, &mut control)?;
    let recovered = match &consumer {
        Some(me) => me.start(control.link(), &lease::Items)?,
        None => 0,
    };
    if recovered > 0 {
        log::info(&format!(
            "recovered {recovered} items from dead consumers' processing lists"
        ));
    }
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

/// The sink: a command or endpoint, or the output file (with its commit
/// log, settled now, when `--reliable` writes to a regular file).
fn open_sink(cfg: &ConsumeConfig, signals: &Signals, control: &mut Queue) -> Result<Sink, Error> {
    if let Some(d) = &cfg.deliver {
        return Ok(Sink::deliver(d.clone(), Arc::clone(&signals.stop)));
    }
    if let Some(p) = &cfg.parts {
        return Ok(Sink::parts(p.clone())?.with_csv(cfg.csv.clone()));
    }
    let out = cfg.out.as_deref();
    let regular = out.is_some_and(|p| std::fs::metadata(p).map_or(true, |m| m.is_file()));
    let file = out.filter(|_| regular);
    // One consumer per file, before anything reads or cuts it.
    let lock = file.map(crate::consume::sink::lock_file).transpose()?;
    // A log left beside the file is settled by every run that writes it;
    // only a run that records (reliable, fsync) keeps one, so no log ever
    // lags behind its file.
    let records = cfg.reliable && cfg.fsync;
    let log = match file {
        Some(p) if records || commits::path_for(p).exists() => {
            Some(CommitLog::settle(p, control.link())?)
        }
        _ => None,
    };
    let log = match (log, records) {
        (Some(log), false) => {
            log.discard();
            None
        }
        (log, _) => log,
    };
    let sink = Sink::open(out, cfg.fsync)?
        .with_csv(cfg.csv.clone())
        .with_lock(lock);
    Ok(match log {
        Some(log) => sink.with_commits(log),
        None => sink,
    })
}
