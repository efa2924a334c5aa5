//! What a `produce` run's crawls did, summed over its jobs (one crawl
//! without `--jobs`), and the summary it makes.

use super::fetcher::FetchStats;
use super::settings::ProduceConfig;
use super::writer::WriterStats;
use crate::crawl::frontier::{CrawlFrontier, Filtered, Finish};
use crate::error::Error;
use crate::run::signal::Signals;
use crate::run::summary::{counts_json, Summary};
use crate::run::tally::Tally;
use std::time::Instant;

crate::run::tally::tally!(WriterStats {
    pushed, duplicates, seen_before, batches, retries, retries_already_landed, spilled,
} first { spill_path, failure });
crate::run::tally::tally!(Filtered { offsite, duplicates, too_deep, frontier_full } max { max_depth_reached });

/// The run's crawls, summed.
#[derive(Default)]
pub struct Totals {
    pub fetched: FetchStats,
    pub written: WriterStats,
    pub filtered: Filtered,
    /// Distinct URLs queued, summed over the crawls.
    pub urls_seen: u64,
    /// Why the run ended, unless a failure or a signal says otherwise.
    pub finish: Option<Finish>,
    /// A failure outside the writer (the frontier, the job list, the heartbeat).
    pub failure: Option<Error>,
    /// `--jobs`: what became of the jobs.
    pub jobs: Option<JobStats>,
}

impl Totals {
    /// Adds one finished crawl over `frontier`.
    pub fn add(&mut self, f: FetchStats, w: WriterStats, frontier: &dyn CrawlFrontier) {
        self.fetched.tally(f);
        self.written.tally(w);
        self.filtered.tally(frontier.filtered());
        self.urls_seen += frontier.seen();
        self.failure = self.failure.take().or_else(|| frontier.take_failure());
    }

    /// The run summary, its exit code and its failure.
    pub fn summarize(
        self,
        cfg: &ProduceConfig,
        signals: &Signals,
        started: Instant,
        failures: &super::failures::Failures,
    ) -> Summary {
        let (fetched, mut written) = (self.fetched, self.written);
        let failure = written
            .failure
            .take()
            .or(self.failure)
            .or_else(|| fetched.panic.clone().map(Error::Internal));
        let reason = match (&failure, signals.exit()) {
            (Some(Error::Internal(_)), _) => Finish::InternalError,
            (Some(_), _) => Finish::RedisUnavailable,
            (None, Some(_)) => Finish::Stopped,
            (None, None) => self.finish.unwrap_or(Finish::Finished),
        };
        let exit = exit_code(cfg, signals, failure.is_some(), &fetched);
        let filtered = self.filtered;
        let mut sum = Summary::new("produce", exit);
        sum.finish(reason)
            .set("redis", crate::error::redact(&cfg.writer.redis.url))
            .set("key", cfg.writer.key.as_str());
        if let Some(min) = cfg.min_items {
            sum.set("min_items", min);
        }
        if reason == Finish::Stopped && cfg.jobs.is_none() {
            sum.set("resume", resume_hint(cfg.shared_frontier.as_deref()));
        }
        if let (Some(j), Some(stats)) = (&cfg.jobs, &self.jobs) {
            sum.set("jobs_key", j.key.as_str())
                .set("jobs_done", stats.done)
                .set("jobs_empty", stats.empty)
                .set("jobs_failed", stats.failed)
                .set("jobs_released", stats.released)
                .set("jobs_recovered", stats.recovered)
                .set("jobs_refused_private", stats.refused)
                .set("jobs_waiting_delayed", stats.waiting_delayed)
                .set("jobs_waiting_scheduled", stats.waiting_scheduled);
        }
        crawl_counts(&mut sum, &fetched, &written, self.urls_seen, cfg);
        failures.summarize(&mut sum);
        page_counts(&mut sum, &fetched, &filtered);
        sum.rates(
            started.elapsed(),
            &[("pages", fetched.pages), ("items", written.pushed)],
        );
        if let Some(path) = &written.spill_path {
            sum.set("spill_file", path.display().to_string());
        }
        warn_empty_fields(&fetched.fields, &cfg.spec);
        sum.failure = failure;
        sum
    }
}

/// The exit code: a signal's (unless a job worker serves until one), else
/// 3 past `--fail-on-errors` (an item without a required field counts like
/// a failed page) or under `--min-items`, else 0.
fn exit_code(
    cfg: &ProduceConfig,
    signals: &Signals,
    failed: bool,
    fetched: &FetchStats,
) -> crate::error::Exit {
    let failed_pages: u64 = fetched.errors.values().sum();
    // A job worker without --drain is a service: a signal is how it
    // normally stops (as for `consume`).
    let signalled = match &cfg.jobs {
        Some(j) if j.drain_after.is_none() => None,
        _ => signals.exit(),
    };
    // An item without a required field counts like a failed page.
    let mut exit = signalled.unwrap_or(
        cfg.limits
            .exit_for(failed_pages.saturating_add(fetched.items_rejected)),
    );
    if let (false, None, Some(min)) = (failed, signalled, cfg.min_items) {
        if fetched.items < min {
            crate::run::log::error(&format!(
                    "found {} items, fewer than --min-items {min} (did the site change its layout? check a page with `qpipe spec --try URL`); exit 3",
                    fetched.items
                ));
            exit = crate::error::Exit::Partial;
        }
    }
    exit
}

/// The crawl's counts, in the summary's order: pages, items, identity,
/// the writer's, responses, retries and errors.
fn crawl_counts(
    sum: &mut Summary,
    fetched: &FetchStats,
    written: &WriterStats,
    urls_seen: u64,
    cfg: &ProduceConfig,
) {
    let failed_pages: u64 = fetched.errors.values().sum();
    sum.set("pages_fetched", fetched.pages)
        .set("pages_failed", failed_pages)
        .set("pages_skipped", fetched.skipped.values().sum::<u64>())
        .set("urls_seen", urls_seen)
        .set("items_extracted", fetched.items)
        .set("items_rejected", fetched.items_rejected)
        .set("required_missing", counts_json(&fetched.required_missing))
        .set("item_identity", cfg.spec.identity.describe())
        .set("duplicates_dropped", written.duplicates)
        .set("seen_in_earlier_runs", written.seen_before);
    written.summarize(sum);
    sum.set(
        "responses_by_status",
        counts_json(&fetched.crawl.responses_by_status),
    )
    .set("retries", counts_json(&fetched.crawl.retries))
    .set("gave_up", counts_json(&fetched.crawl.gave_up))
    .set("errors", counts_json(&fetched.errors))
    .set("skipped", counts_json(&fetched.skipped));
}

/// What was cut, filtered or skipped on the pages, and how deep it went.
fn page_counts(sum: &mut Summary, fetched: &FetchStats, filtered: &Filtered) {
    sum.set("truncated", counts_json(&fetched.truncated))
        .set("elements_cut", fetched.elements_cut)
        .set("links_cut", fetched.links_cut)
        .set("links_repeated", fetched.links_repeated)
        .set("fields_empty", fields_empty(&fetched.fields))
        .set("nested_items_skipped", fetched.nested_items)
        .set("robots_forbidden", fetched.crawl.robots_forbidden)
        .set("offsite_filtered", filtered.offsite)
        .set("duplicate_urls_filtered", filtered.duplicates)
        .set("depth_filtered", filtered.too_deep)
        .set("frontier_full", filtered.frontier_full)
        .set("links_ignored", fetched.ignored_links)
        .set("links_filtered", fetched.links_filtered)
        .set("bad_json", fetched.bad_json)
        .set("pages_wrong_kind", fetched.wrong_kind)
        .set("forms_submitted", fetched.forms_submitted)
        .set("forms_cut", fetched.forms_cut)
        .set("forms_unsent", fetched.forms_unsent)
        .set("forms_missing", fetched.forms_missing)
        .set("pages_by_rule", counts_json(&fetched.pages_by_rule))
        .set("max_depth_reached", filtered.max_depth_reached);
}

/// How to go on with a crawl stopped by a signal.
fn resume_hint(shared: Option<&str>) -> String {
    match shared {
        Some(name) => format!(
            "run the same command again: the shared frontier {name:?} in Redis keeps every page not fetched yet, and no page or item is done twice (--reset-frontier starts over)"
        ),
        None => "cannot resume: this crawl's frontier was in memory; start crawls with --shared-frontier NAME to resume them by running the same command again (docs/production.md: Stopping and resuming)".into(),
    }
}

/// `{"field": items on which it was null, "" or []}`, every field.
fn fields_empty(fields: &[(String, u64, u64)]) -> serde_json::Value {
    serde_json::Value::Object(
        fields
            .iter()
            .map(|(name, _, empty)| (name.clone(), (*empty).into()))
            .collect(),
    )
}

/// A field that said nothing on every item is most likely a selector that
/// no longer matches (the site changed, or `item` does not contain it).
fn warn_empty_fields(fields: &[(String, u64, u64)], spec: &crate::crawl::spider::Spec) {
    for (name, have, empty) in fields {
        if *have > 0 && empty == have {
            crate::run::log::warn(&format!(
                "the field {name:?} ({}) was null or empty on all {have} items: it matched nothing (check it with `qpipe spec --try URL --spec FILE`; with an item selector, the field must be inside the item element)",
                spec.field_sources(name)
            ));
        }
    }
}

/// What became of the jobs this worker took.
#[derive(Debug, Default)]
pub struct JobStats {
    /// Crawled, every item pushed, acknowledged and counted in `J:done`.
    pub done: u64,
    /// Of those, jobs that fetched no page (refused, failed, off-domain).
    pub empty: u64,
    /// Not jobs (set aside in `J:dead`), crawls that failed (their job also
    /// counts as released when it goes back at exit), and jobs a recovery
    /// took back while this worker's heartbeat had lapsed.
    pub failed: u64,
    /// Put back on the list at exit (a signal, `--max-time`, a failure).
    pub released: u64,
    /// Jobs of dead workers this worker put back on the list.
    pub recovered: u64,
    /// Of the failed, jobs refused for a private address (set aside).
    pub refused: u64,
    /// At the end: jobs waiting out a retry delay (`J:delayed`).
    pub waiting_delayed: u64,
    /// At the end: jobs scheduled for later (`J:scheduled`).
    pub waiting_scheduled: u64,
}
