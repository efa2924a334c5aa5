//! `qpipe produce`: N fetcher threads -> one bounded channel -> one Redis writer.
//!
//! ```text
//!  fetcher 1 ─┐
//!  fetcher 2 ─┼─> bounded channel (one parcel of items per page) ─> writer ─> LPUSH key
//!  fetcher N ─┘        ^ backpressure                            (one connection)
//!      ^ next()/complete()          ^ get(): robots, per-host slots, redirects, retries
//!   Frontier (queue + seen set + busy count)
//! ```
//! Shutdown is by closing: fetchers return when the frontier ends, their
//! senders drop, and the writer's `recv` loop ends after the last item.
//!
//! That is one crawl (`crawl`). Without `--jobs` a run is one crawl from the
//! start URLs. With `--jobs` (`jobs`), a run is one crawl per job taken from
//! a Redis list, each over its own frontier and with its own writer thread
//! on the same connections, so the job is acknowledged only once the
//! writer has pushed the job's last item and returned.

mod failures;
mod fetcher;
mod jobs;
mod totals;

use crate::cmd::monitor::Monitor;
use crate::config::ProduceConfig;
use crate::crawl::crawler::Crawler;
use crate::crawl::frontier::shared::{self as shared_frontier, SharedFrontier};
use crate::crawl::frontier::{Bounds, CrawlFrontier, Frontier};
use crate::crawl::hosts::Hosts;
use crate::crawl::robots::Robots;
use crate::crawl::session::{login, Session};
use crate::error::Error;
use crate::queue::writer::{self, Parcel, WriterStats};
use crate::queue::Queue;
use crate::run::counters::{Counters, Side};
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::summary::{Counts, Summary};
use failures::Failures;
use fetcher::{FetchStats, Fetcher, StopOnPanic};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use totals::Totals;

/// What every crawl of a run shares.
struct Kit<'a> {
    cfg: &'a ProduceConfig,
    /// One session (pool, cookie jar) for the whole run, logged in first.
    session: &'a Session,
    robots: Option<&'a Robots>,
    hosts: &'a Hosts,
    live: &'a Counters,
    signals: &'a Signals,
    /// `signals.stop`: raised by a signal, or by a thread that failed.
    stop: &'a AtomicBool,
    /// `--max-time`: the end of the whole run.
    deadline: Option<Instant>,
    /// Test-only hook: `fetch` or `writer` makes that thread panic, so tests
    /// can check that a panic ends the run with exit 1, not a hang.
    test_panic: &'a str,
    /// Every failed or skipped URL, named.
    failures: &'a Failures,
}

/// Runs the crawl (or the job worker) to its end, limit or signal, and reports it.
pub fn run(cfg: &ProduceConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let monitor = Monitor::start(&cfg.monitor, &cfg.writer.redis, &cfg.writer.shard_keys())?;
    let live = Counters::new(Side::Produce);
    // Reset before the writer opens (or creates) the seen keys it deletes.
    if let (Some(name), true) = (&cfg.shared_frontier, cfg.reset_frontier) {
        let items = cfg
            .writer
            .seen_sets(&crate::queue::keys::frontier_items(name));
        shared_frontier::reset(&cfg.writer.redis, name, &items)?;
    }
    let failures = Failures::open(cfg.failures.as_deref())?;
    // Connect before fetching anything: a bad Redis is a setup failure.
    let mut queues = cfg.writer.connect(&signals.stop)?;
    let mut cookie_urls = cfg.start.clone();
    cookie_urls.extend(cfg.login.iter().map(|l| l.login.url.clone()));
    let session = Session::new(&cfg.http, &cookie_urls);
    if let Some(step) = &cfg.login {
        login::log_in(&session, step, cfg.http.max_body, &signals.stop)?;
    }
    let robots = cfg
        .policy
        .obey_robots
        .then(|| Robots::new(&cfg.http.user_agent));
    let test_panic = std::env::var("QPIPE_TEST_PANIC").unwrap_or_default();
    let kit = Kit {
        cfg,
        session: &session,
        robots: robots.as_ref(),
        hosts: &Hosts::new(cfg.policy.per_host),
        live: &live,
        signals,
        stop: &signals.stop,
        deadline: cfg.limits.max_time.map(|t| started + t),
        test_panic: &test_panic,
        failures: &failures,
    };
    let done = AtomicBool::new(false);
    let progress_queue = progress::wanted()
        .then(|| Queue::connect(&cfg.writer.redis, &cfg.writer.key, Duration::from_secs(1)).ok())
        .flatten();
    let totals = std::thread::scope(|s| {
        if let Some(mut pq) = progress_queue {
            s.spawn(|| {
                progress::draw(
                    &[("pages", &live.pages), ("pushed", &live.items_pushed)],
                    move || pq.len().ok(),
                    &done,
                )
            });
        }
        monitor.spawn(s, &live, &done);
        let totals = match &cfg.jobs {
            Some(jc) => jobs::serve(&kit, jc, &mut queues),
            None => crawl_once(&kit, &mut queues),
        };
        done.store(true, Ordering::Relaxed);
        totals
    })?;
    Ok(totals.summarize(cfg, signals, started, &failures))
}

/// Without `--jobs`: one crawl from the start URLs, over a frontier in this
/// process or shared in Redis.
fn crawl_once(kit: &Kit<'_>, queues: &mut [Queue]) -> Result<Totals, Error> {
    let cfg = kit.cfg;
    let bounds = Bounds {
        deadline: kit.deadline,
        ..cfg.bounds.clone()
    };
    let frontier: Box<dyn CrawlFrontier> = match &cfg.shared_frontier {
        Some(name) => {
            let reach = shared_frontier::Reach {
                ep: cfg.writer.redis.clone(),
                retry_for: cfg.writer.retry_for,
                stop: std::sync::Arc::clone(&kit.signals.stop),
            };
            Box::new(SharedFrontier::join(
                reach, name, &cfg.start, bounds, cfg.lease, &cfg.dedup,
            )?)
        }
        None => Box::new(Frontier::new(&cfg.start, bounds)),
    };
    let (fetched, written) = crawl(kit, frontier.as_ref(), queues, None);
    let mut totals = Totals {
        finish: Some(frontier.finish()),
        ..Totals::default()
    };
    totals.add(fetched, written, frontier.as_ref());
    Ok(totals)
}

/// One crawl over `frontier`: fetcher threads and a writer thread on
/// `queues`, until the frontier ends and the writer has pushed (or spilled)
/// every item. Items carry `meta` (a job's) if given.
fn crawl(
    kit: &Kit<'_>,
    frontier: &dyn CrawlFrontier,
    queues: &mut [Queue],
    meta: Option<&str>,
) -> (FetchStats, WriterStats) {
    let (cfg, stop, live) = (kit.cfg, kit.stop, kit.live);
    let allowed = |u: &url::Url| frontier.allows(u);
    let crawler = Crawler {
        accept: cfg.spec.accept,
        session: kit.session,
        robots: kit.robots,
        hosts: kit.hosts,
        delay: cfg.policy.delay,
        max_body: cfg.http.max_body,
        backoff: cfg.policy.backoff,
        allowed: &allowed,
        live,
    };
    let (tx, rx) = crossbeam_channel::bounded::<Parcel>(cfg.channel_capacity);
    let test_panic = kit.test_panic;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| frontier.maintain(&done));
        let pushed = &live.items_pushed;
        // `rx` moves into the writer thread: if it panics, unwinding drops the
        // receiver, so fetchers blocked in `send` get an error, not a hang.
        let writer = s.spawn(move || {
            let _stop = StopOnPanic(stop);
            if test_panic == "writer" {
                panic!("QPIPE_TEST_PANIC=writer");
            }
            writer::write(&rx, queues, &cfg.writer, stop, pushed)
        });
        let fetchers: Vec<_> = (0..cfg.threads)
            .map(|i| {
                let fetcher = Fetcher {
                    cfg,
                    crawler: &crawler,
                    frontier,
                    tx: tx.clone(),
                    stop,
                    live,
                    test_panic: AtomicBool::new(test_panic == "fetch" && i + 1 == cfg.threads),
                    meta,
                    failures: kit.failures,
                };
                s.spawn(move || fetcher.run())
            })
            .collect();
        drop(tx);
        let mut total = FetchStats::default();
        for f in fetchers {
            total.merge(f.join().unwrap_or_else(|_| {
                stop.store(true, Ordering::Relaxed);
                let mut errors = Counts::new();
                errors.insert("internal_panic".into(), 1);
                FetchStats {
                    errors,
                    panic: Some("a fetcher thread panicked (please report this bug)".into()),
                    ..FetchStats::default()
                }
            }));
        }
        let written = writer.join().unwrap_or_else(|_| WriterStats {
            failure: Some(Error::Internal(
                "the writer thread panicked (please report this bug)".into(),
            )),
            ..WriterStats::default()
        });
        done.store(true, Ordering::Relaxed);
        (total, written)
    })
}
