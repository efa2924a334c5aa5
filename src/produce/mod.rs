//! The produce stage: fetcher threads (`fetcher`) feed one bounded channel
//! that one writer thread (`writer`) drains into Redis. `crawl` runs one
//! crawl over a frontier; `job_worker` runs one crawl per job taken from a
//! Redis list (`produce --jobs`). `totals` adds up what the crawls did for
//! the summary, and `failures` names every failed or skipped URL. `lines`
//! is the input stage of `push`: JSON Lines from a file or stdin.
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

pub mod failures;
pub mod fetcher;
pub mod job_worker;
pub mod lines;
pub mod parsing;
pub mod settings;
pub mod spill;
pub mod totals;
pub mod writer;

use crate::crawl::crawler::Crawler;
use crate::crawl::frontier::CrawlFrontier;
use crate::crawl::hosts::Hosts;
use crate::crawl::robots::Robots;
use crate::crawl::session::Session;
use crate::error::Error;
use crate::queue::Queue;
use crate::run::counters::Counters;
use crate::run::signal::Signals;
use crate::run::summary::Counts;
use crate::run::tally::Tally;
use failures::Failures;
use fetcher::{FetchStats, Fetcher, StopOnPanic};
use settings::ProduceConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use writer::{Parcel, WriterStats};

/// What every crawl of a run shares.
pub struct Kit<'a> {
    pub cfg: &'a ProduceConfig,
    /// One session (pool, cookie jar) for the whole run, logged in first.
    pub session: &'a Session,
    pub robots: Option<&'a Robots>,
    pub hosts: &'a Hosts,
    pub live: &'a Counters,
    pub signals: &'a Signals,
    /// `signals.stop`: raised by a signal, or by a thread that failed.
    pub stop: &'a AtomicBool,
    /// `--max-time`: the end of the whole run.
    pub deadline: Option<Instant>,
    /// Test-only hook: `fetch` or `writer` makes that thread panic, so tests
    /// can check that a panic ends the run with exit 1, not a hang.
    pub test_panic: &'a str,
    /// Every failed or skipped URL, named.
    pub failures: &'a Failures,
}

/// One crawl over `frontier`: fetcher threads and a writer thread on
/// `queues`, until the frontier ends and the writer has pushed (or spilled)
/// every item. Items carry `meta` (a job's) if given.
pub fn crawl(
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
            total.tally(f.join().unwrap_or_else(|_| {
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
