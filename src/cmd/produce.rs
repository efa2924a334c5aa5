//! `qpipe produce`: N fetcher threads -> one bounded channel -> one Redis writer.
//!
//! ```text
//!  fetcher 1 ─┐
//!  fetcher 2 ─┼─> bounded channel (items) ─> writer thread ─> LPUSH key
//!  fetcher N ─┘        ^ backpressure                       (one connection)
//!      ^ next()/complete()
//!   Frontier (queue + seen set + busy count)
//! ```
//! Shutdown is by closing: fetchers return when the frontier ends, their
//! senders drop, and the writer's `recv` loop ends after the last item.

use crate::config::ProduceConfig;
use crate::error::Error;
use crate::fetch;
use crate::frontier::{Finish, Frontier};
use crate::log;
use crate::progress;
use crate::queue::Queue;
use crate::signal::Signals;
use crate::spider;
use crate::summary::{counts_json, merge, Counts, Summary};
use crate::writer::{self, Parcel, WriterStats};
use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one fetcher thread did.
#[derive(Debug, Default)]
struct FetchStats {
    pages: u64,
    items: u64,
    errors: Counts,
}

/// Runs the crawl to completion (or limit, or signal) and reports it.
pub fn run(cfg: &ProduceConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    // Connect before fetching anything: a bad Redis is a setup failure.
    let mut queue = Queue::connect(&cfg.writer.redis, &cfg.writer.key, Duration::from_secs(1))?;
    let agent = fetch::agent(&cfg.http);
    let deadline = cfg.limits.max_time.map(|t| started + t);
    let frontier = Frontier::new(&cfg.start, cfg.max_pages, deadline);
    let stop: &AtomicBool = &signals.stop;
    let (tx, rx) = crossbeam_channel::bounded::<Parcel>(cfg.channel_capacity);

    let (pages_now, pushed_now, done) =
        (AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
    let progress_queue = progress::wanted()
        .then(|| Queue::connect(&cfg.writer.redis, &cfg.writer.key, Duration::from_secs(1)).ok())
        .flatten();
    let (fetched, written) = std::thread::scope(|s| {
        if let Some(pq) = progress_queue {
            s.spawn(|| {
                progress::draw(
                    &[("pages", &pages_now), ("pushed", &pushed_now)],
                    Some(pq),
                    &done,
                )
            });
        }
        let writer = s.spawn(|| writer::write(&rx, &mut queue, &cfg.writer, stop, &pushed_now));
        let fetchers: Vec<_> = (0..cfg.threads)
            .map(|_| {
                let tx = tx.clone();
                let (agent, frontier, pages_now) = (&agent, &frontier, &pages_now);
                s.spawn(move || crawl(cfg, agent, frontier, &tx, stop, pages_now))
            })
            .collect();
        drop(tx);
        let mut total = FetchStats::default();
        for f in fetchers {
            let one = f.join().unwrap_or_else(|_| {
                stop.store(true, Ordering::Relaxed);
                let mut errors = Counts::new();
                errors.insert("internal_panic".into(), 1);
                FetchStats {
                    errors,
                    ..FetchStats::default()
                }
            });
            total.pages += one.pages;
            total.items += one.items;
            merge(&mut total.errors, one.errors);
        }
        let written = writer.join().unwrap_or_else(|_| WriterStats {
            failure: Some(panicked("writer")),
            ..WriterStats::default()
        });
        done.store(true, Ordering::Relaxed);
        (total, written)
    });

    let finish = frontier.finish();
    let reason = match (&written.failure, finish, signals.exit()) {
        (Some(_), _, _) => "redis_unavailable",
        (None, _, Some(_)) => "shutdown",
        (None, Finish::MaxPages, _) => "max_pages",
        (None, Finish::MaxTime, _) => "max_time",
        (None, Finish::Stopped, _) => "shutdown",
        (None, Finish::Finished, _) => "finished",
    };
    let failed_pages: u64 = fetched.errors.values().sum();
    let exit = signals.exit().unwrap_or(cfg.limits.exit_for(failed_pages));
    let mut sum = Summary::new("produce", exit);
    sum.set("finish_reason", reason)
        .set("redis", queue.redacted_url())
        .set("key", cfg.writer.key.as_str())
        .set("pages_fetched", fetched.pages)
        .set("pages_failed", failed_pages)
        .set("urls_seen", frontier.seen() as u64)
        .set("items_extracted", fetched.items)
        .set("items_pushed", written.pushed)
        .set("duplicates_dropped", written.duplicates)
        .set("seen_in_earlier_runs", written.seen_before)
        .set("items_spilled", written.spilled)
        .set("lpush_batches", written.batches)
        .set("redis_retries", written.retries)
        .set(
            "redis_retries_already_landed",
            written.retries_already_landed,
        )
        .set("errors", counts_json(&fetched.errors))
        .rates(
            started.elapsed(),
            &[("pages", fetched.pages), ("items", written.pushed)],
        );
    if let Some(path) = &written.spill_path {
        sum.set("spill_file", path.display().to_string());
    }
    sum.failure = written.failure;
    Ok(sum)
}

/// One fetcher: take a URL, fetch, scrape, send items, report links. Repeat.
fn crawl(
    cfg: &ProduceConfig,
    agent: &ureq::Agent,
    frontier: &Frontier,
    tx: &Sender<Parcel>,
    stop: &AtomicBool,
    pages_now: &AtomicU64,
) -> FetchStats {
    let mut stats = FetchStats::default();
    while let Some(url) = frontier.next(stop) {
        let page = fetch::fetch(agent, &url, cfg.http.max_body).and_then(|p| {
            if frontier.allows(&p.url) {
                Ok(p)
            } else {
                Err(fetch::Failure {
                    kind: "offsite_redirect".into(),
                    detail: format!("redirected off-site to {}", p.url),
                })
            }
        });
        let links = match page {
            Ok(page) => {
                let scraped = spider::scrape(&cfg.spec, &page.body, &page.url);
                stats.pages += 1;
                pages_now.fetch_add(1, Ordering::Relaxed);
                stats.items += scraped.items.len() as u64;
                // The writer holds its receiver until every sender is gone, so
                // this only fails if it panicked; nothing more can be saved then.
                if !scraped.items.is_empty() && tx.send(scraped.items).is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                scraped.links
            }
            Err(f) => {
                log::debug(&format!("{url}: {} ({})", f.kind, f.detail));
                *stats.errors.entry(f.kind).or_default() += 1;
                Vec::new()
            }
        };
        frontier.complete(links.into_iter());
    }
    stats
}

fn panicked(what: &str) -> Error {
    Error::Internal(format!("a {what} thread panicked (please report this bug)"))
}
