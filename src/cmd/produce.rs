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

use crate::cmd::monitor::Monitor;
use crate::config::ProduceConfig;
use crate::crawl::crawler::{CrawlCounts, Crawler};
use crate::crawl::fetch::{self, Failure, Reason};
use crate::crawl::frontier::shared::{self as shared_frontier, SharedFrontier};
use crate::crawl::frontier::{Bounds, CrawlFrontier, Frontier};
use crate::crawl::hosts::Hosts;
use crate::crawl::robots::Robots;
use crate::crawl::spider;
use crate::error::Error;
use crate::queue::writer::{self, Parcel, WriterStats};
use crate::queue::Queue;
use crate::run::counters::{Counters, Side};
use crate::run::log;
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::summary::{counts_json, merge, Counts, Finish, Summary};
use crossbeam_channel::Sender;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use url::Url;

/// What one fetcher thread did.
#[derive(Debug, Default)]
struct FetchStats {
    pages: u64,
    items: u64,
    ignored_links: u64,
    errors: Counts,
    skipped: Counts,
    crawl: CrawlCounts,
    /// Pages cut by a cap, by cap (`nesting`, `links`).
    truncated: Counts,
    elements_cut: u64,
    links_cut: u64,
    nested_items: u64,
    /// What the first panic on this thread said, if one happened.
    panic: Option<String>,
}

impl FetchStats {
    fn merge(&mut self, o: FetchStats) {
        self.pages += o.pages;
        self.items += o.items;
        self.ignored_links += o.ignored_links;
        merge(&mut self.errors, o.errors);
        merge(&mut self.skipped, o.skipped);
        merge(
            &mut self.crawl.responses_by_status,
            o.crawl.responses_by_status,
        );
        merge(&mut self.crawl.retries, o.crawl.retries);
        merge(&mut self.crawl.gave_up, o.crawl.gave_up);
        self.crawl.robots_forbidden += o.crawl.robots_forbidden;
        merge(&mut self.truncated, o.truncated);
        self.elements_cut += o.elements_cut;
        self.links_cut += o.links_cut;
        self.nested_items += o.nested_items;
        self.panic = self.panic.take().or(o.panic);
    }
}

/// Runs the crawl to completion (or limit, or signal) and reports it.
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
    // Connect before fetching anything: a bad Redis is a setup failure.
    let mut queues = cfg.writer.connect(&signals.stop)?;
    let agent = fetch::agent(&cfg.http);
    let bounds = Bounds {
        deadline: cfg.limits.max_time.map(|t| started + t),
        ..cfg.bounds.clone()
    };
    let frontier: Box<dyn CrawlFrontier> = match &cfg.shared_frontier {
        Some(name) => {
            let reach = shared_frontier::Reach {
                ep: cfg.writer.redis.clone(),
                retry_for: cfg.writer.retry_for,
                stop: std::sync::Arc::clone(&signals.stop),
            };
            Box::new(SharedFrontier::join(
                reach, name, &cfg.start, bounds, cfg.lease, &cfg.dedup,
            )?)
        }
        None => Box::new(Frontier::new(&cfg.start, bounds)),
    };
    let frontier = frontier.as_ref();
    let robots = cfg
        .policy
        .obey_robots
        .then(|| Robots::new(&cfg.http.user_agent));
    let hosts = Hosts::new(cfg.policy.per_host);
    let allowed = |u: &url::Url| frontier.allows(u);
    let crawler = Crawler {
        agent: &agent,
        robots: robots.as_ref(),
        hosts: &hosts,
        delay: cfg.policy.delay,
        max_body: cfg.http.max_body,
        backoff: cfg.policy.backoff,
        allowed: &allowed,
        live: &live,
    };
    let stop: &AtomicBool = &signals.stop;
    let (tx, rx) = crossbeam_channel::bounded::<Parcel>(cfg.channel_capacity);
    // Test-only hook, read once: `fetch` or `writer` makes that thread panic,
    // so tests can check that a panic ends the run with exit 1, not a hang.
    let test_panic = std::env::var("QPIPE_TEST_PANIC").unwrap_or_default();
    let test_panic = test_panic.as_str();

    let done = AtomicBool::new(false);
    let progress_queue = progress::wanted()
        .then(|| Queue::connect(&cfg.writer.redis, &cfg.writer.key, Duration::from_secs(1)).ok())
        .flatten();
    let (fetched, mut written) = std::thread::scope(|s| {
        if let Some(mut pq) = progress_queue {
            s.spawn(|| {
                progress::draw(
                    &[("pages", &live.pages), ("pushed", &live.items_pushed)],
                    move || pq.len().ok(),
                    &done,
                )
            });
        }
        s.spawn(|| frontier.maintain(&done));
        monitor.spawn(s, &live, &done);
        let (queues, pushed) = (&mut queues, &live.items_pushed);
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
                    live: &live,
                    test_panic: AtomicBool::new(test_panic == "fetch" && i + 1 == cfg.threads),
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
    });

    let failure = written
        .failure
        .take()
        .or_else(|| frontier.take_failure())
        .or_else(|| fetched.panic.clone().map(Error::Internal));
    let reason = match (&failure, signals.exit()) {
        (Some(Error::Internal(_)), _) => Finish::InternalError,
        (Some(_), _) => Finish::RedisUnavailable,
        (None, Some(_)) => Finish::Stopped,
        (None, None) => frontier.finish(),
    };
    let failed_pages: u64 = fetched.errors.values().sum();
    let exit = signals.exit().unwrap_or(cfg.limits.exit_for(failed_pages));
    let filtered = frontier.filtered();
    let mut sum = Summary::new("produce", exit);
    sum.finish(reason)
        .set("redis", crate::error::redact(&cfg.writer.redis.url))
        .set("key", cfg.writer.key.as_str())
        .set("pages_fetched", fetched.pages)
        .set("pages_failed", failed_pages)
        .set("pages_skipped", fetched.skipped.values().sum::<u64>())
        .set("urls_seen", frontier.seen())
        .set("items_extracted", fetched.items)
        .set("duplicates_dropped", written.duplicates)
        .set("seen_in_earlier_runs", written.seen_before);
    written.summarize(&mut sum);
    sum.set(
        "responses_by_status",
        counts_json(&fetched.crawl.responses_by_status),
    )
    .set("retries", counts_json(&fetched.crawl.retries))
    .set("gave_up", counts_json(&fetched.crawl.gave_up))
    .set("errors", counts_json(&fetched.errors))
    .set("skipped", counts_json(&fetched.skipped))
    .set("truncated", counts_json(&fetched.truncated))
    .set("elements_cut", fetched.elements_cut)
    .set("links_cut", fetched.links_cut)
    .set("nested_items_skipped", fetched.nested_items)
    .set("robots_forbidden", fetched.crawl.robots_forbidden)
    .set("offsite_filtered", filtered.offsite)
    .set("duplicate_urls_filtered", filtered.duplicates)
    .set("depth_filtered", filtered.too_deep)
    .set("frontier_full", filtered.frontier_full)
    .set("links_ignored", fetched.ignored_links)
    .set("max_depth_reached", filtered.max_depth_reached)
    .rates(
        started.elapsed(),
        &[("pages", fetched.pages), ("items", written.pushed)],
    );
    if let Some(path) = &written.spill_path {
        sum.set("spill_file", path.display().to_string());
    }
    sum.failure = failure;
    Ok(sum)
}

/// What one fetcher thread shares with the others.
struct Fetcher<'a> {
    cfg: &'a ProduceConfig,
    crawler: &'a Crawler<'a>,
    frontier: &'a dyn CrawlFrontier,
    tx: Sender<Parcel>,
    stop: &'a AtomicBool,
    live: &'a Counters,
    /// Test-only: panic on this fetcher's first page while set
    /// (`QPIPE_TEST_PANIC=fetch` arms the last fetcher, joined last).
    test_panic: AtomicBool,
}

/// What became of one URL taken from the frontier.
enum Outcome {
    /// Fetched, or failed for good: complete it with these links and items.
    Done(Vec<Url>, u64),
    /// Not fetched because the run is stopping: give it back.
    NotFetched,
}

impl Fetcher<'_> {
    /// Takes URLs until the frontier ends. A panic on one page completes that
    /// page, counts an `internal_panic` error and stops the run, so neither
    /// the frontier nor the other fetchers wait for this one forever.
    fn run(&self) -> FetchStats {
        // A panic outside the per-page work (in the frontier itself) still
        // stops the others, rather than leaving them waiting on this one.
        let _stop = StopOnPanic(self.stop);
        let mut stats = FetchStats::default();
        while let Some((url, depth)) = self.frontier.next(self.stop) {
            let page = catch_unwind(AssertUnwindSafe(|| self.page(&url, &mut stats)));
            match page {
                Ok(Outcome::Done(links, items)) => {
                    self.frontier.complete(&url, links, depth, items);
                }
                Ok(Outcome::NotFetched) => self.frontier.release(&url, depth),
                Err(cause) => {
                    self.stop.store(true, Ordering::Relaxed);
                    *stats.errors.entry("internal_panic".into()).or_default() += 1;
                    let why = panic_text(cause.as_ref());
                    log::error(&format!("a fetcher panicked on {url}: {why}"));
                    stats.panic.get_or_insert_with(|| {
                        format!("a fetcher panicked on {url}: {why} (please report this bug)")
                    });
                    self.frontier.complete(&url, Vec::new(), depth, 0);
                }
            }
        }
        stats
    }

    /// Gets one page politely, scrapes it and sends its items.
    fn page(&self, url: &Url, stats: &mut FetchStats) -> Outcome {
        let page = match self.crawler.get(url, &mut stats.crawl, self.stop) {
            Ok(page) => page,
            Err(f) if f.reason == Reason::Shutdown => return Outcome::NotFetched,
            Err(f) => {
                record(url, f, stats);
                return Outcome::Done(Vec::new(), 0);
            }
        };
        let scraped = spider::scrape(&self.cfg.spec, self.cfg.caps, &page.body, &page.url);
        if self.test_panic.swap(false, Ordering::Relaxed) {
            panic!("QPIPE_TEST_PANIC=fetch");
        }
        stats.pages += 1;
        self.live.pages.fetch_add(1, Ordering::Relaxed);
        let n = scraped.items.len() as u64;
        self.live.items_extracted.fetch_add(n, Ordering::Relaxed);
        stats.items += n;
        stats.ignored_links += scraped.ignored_links;
        stats.nested_items += scraped.nested_items;
        for (cap, cut) in [
            ("nesting", scraped.elements_cut),
            ("links", scraped.links_cut),
        ] {
            if cut > 0 {
                log::debug(&format!("{url}: {cut} cut by the {cap} cap"));
                *stats.truncated.entry(cap.into()).or_default() += 1;
            }
        }
        stats.elements_cut += scraped.elements_cut;
        stats.links_cut += scraped.links_cut;
        // The writer holds its receiver until every sender is gone, so this
        // fails only if the writer panicked; nothing more can be saved then.
        if n > 0 && self.tx.send(scraped.items).is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
        Outcome::Done(scraped.links, n)
    }
}

/// The message a panic carried, if it was a string.
fn panic_text(cause: &(dyn std::any::Any + Send)) -> String {
    cause
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// Raises the stop flag if the thread holding it unwinds.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

fn record(url: &url::Url, f: Failure, stats: &mut FetchStats) {
    let name = f.reason.name();
    let counter = if f.reason.is_skip() {
        log::debug(&format!("{url}: skipped, {name} ({})", f.detail));
        &mut stats.skipped
    } else {
        log::debug(&format!("{url}: {name} ({})", f.detail));
        &mut stats.errors
    };
    *counter.entry(name).or_default() += 1;
}
