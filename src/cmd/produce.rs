//! `qpipe produce`: wires the produce stage (`crate::produce`) to a run:
//! Redis connections, the monitor, the login, robots.txt and per-host
//! slots, then one crawl from the start URLs or (`--jobs`) one crawl per
//! job, and the summary.
//!
//! Without `--jobs` a run is one crawl from the start URLs. With `--jobs`
//! (`produce::job_worker`), a run is one crawl per job taken from a Redis
//! list, each over its own frontier and with its own writer thread on the
//! same connections, so the job is acknowledged only once the writer has
//! pushed the job's last item and returned.

use crate::config::ProduceConfig;
use crate::crawl::frontier::shared::{self as shared_frontier, SharedFrontier};
use crate::crawl::frontier::{Bounds, CrawlFrontier, Frontier};
use crate::crawl::hosts::Hosts;
use crate::crawl::robots::Robots;
use crate::crawl::session::{login, Session};
use crate::error::Error;
use crate::produce::failures::Failures;
use crate::produce::totals::Totals;
use crate::produce::{crawl, job_worker, Kit};
use crate::queue::probe::Probe;
use crate::queue::Queue;
use crate::run::counters::{Counters, Side};
use crate::run::monitor::Monitor;
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs the crawl (or the job worker) to its end, limit or signal, and reports it.
pub fn run(cfg: &ProduceConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let monitor = Monitor::start(&cfg.monitor, || {
        Probe::boxed(&cfg.writer.redis, &cfg.writer.shard_keys())
    })?
    .with_tally(crate::queue::stats::tally(
        &cfg.writer.redis,
        &cfg.writer.key,
    )?);
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
    let session = Session::new(&cfg.http, &cookie_urls).map_err(Error::Usage)?;
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
        hosts: &Hosts::new(cfg.policy.per_host).with_throttle(cfg.policy.throttle),
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
            Some(jc) => job_worker::serve(&kit, jc, &mut queues),
            None => crawl_once(&kit, &mut queues),
        };
        done.store(true, Ordering::Relaxed);
        totals
    })?;
    let mut sum = totals.summarize(cfg, signals, started, &failures);
    if let Some(cache) = session.cache() {
        cache.summarize(&mut sum);
    }
    if cfg.policy.throttle.is_some() {
        let delays = live.host_delays.lock().unwrap_or_else(|p| p.into_inner());
        let map: serde_json::Map<String, serde_json::Value> = delays
            .iter()
            .map(|(h, ms)| (h.clone(), (*ms).into()))
            .collect();
        sum.set("auto_throttle_delay_ms", serde_json::Value::Object(map));
    }
    Ok(sum)
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
