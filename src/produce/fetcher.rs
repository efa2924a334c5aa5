//! One fetcher thread of `produce`: take a URL from the frontier, get it
//! politely, scrape it, send its items to the writer, complete it. A panic
//! on one page completes that page and stops the run, never a hang.

use super::settings::ProduceConfig;
use super::writer::Parcel;
use crate::crawl::crawler::{CrawlCounts, Crawler};
use crate::crawl::fetch::{Failure, Reason};
use crate::crawl::frontier::{CrawlFrontier, Finish};
use crate::crawl::spider::{self, Scraped, Submission, MAX_FORM_DEPTH};
use crate::run::counters::Counters;
use crate::run::log;
use crate::run::summary::Counts;
use crate::run::tally::Tally;
use crossbeam_channel::Sender;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use url::Url;

/// What one fetcher thread did.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub pages: u64,
    pub items: u64,
    pub ignored_links: u64,
    pub errors: Counts,
    pub skipped: Counts,
    pub crawl: CrawlCounts,
    /// Pages cut by a cap, by cap (`nesting`, `links`).
    pub truncated: Counts,
    pub elements_cut: u64,
    pub links_cut: u64,
    /// Links repeated on their page (or to the page itself), not followed twice.
    pub links_repeated: u64,
    pub nested_items: u64,
    /// Links dropped by allow/deny/sitemap_follow.
    pub links_filtered: u64,
    /// JSON bodies and script captures that did not parse.
    pub bad_json: u64,
    /// Pages of another kind than their rule reads (HTML for a JSON rule).
    pub wrong_kind: u64,
    /// Pages read, by the rule that read them (`(sitemap)`, `(no rule)`).
    pub pages_by_rule: Counts,
    /// Per field: items that have it, and items on which it was empty.
    pub fields: Vec<(String, u64, u64)>,
    /// Items not pushed for lacking a required field.
    pub items_rejected: u64,
    /// Per required field: the items it was empty on.
    pub required_missing: Counts,
    /// Pages with rejected items (only the first few are named in the log).
    pub rejected_pages: u64,
    /// Form submissions sent (a rule's `submit`).
    pub forms_submitted: u64,
    /// Submissions dropped by a cap (per page, per chain, or its depth).
    pub forms_cut: u64,
    /// Submissions not sent because the run was stopping.
    pub forms_unsent: u64,
    /// Pages whose rule's `submit` found no form to send.
    pub forms_missing: u64,
    /// What the first panic on this thread said, if one happened.
    pub panic: Option<String>,
}

/// Counts and names the `left` form submissions of the page at `from` that
/// stay unsent because the crawl ended (`end`: a stop, or a budget its
/// answers count against: `--max-pages`, `--max-items`, `--max-time`).
/// (The per-page cap is kept by `queue_more`: the queue never holds more
/// than it can still send.)
fn forms_end(from: &Url, left: u64, end: Finish, stats: &mut FetchStats) {
    stats.forms_unsent += left;
    log::warn(&format!(
        "{from}: {left} form submissions not sent: the crawl ended ({})",
        end.name()
    ));
}

/// Submissions sent from one page taken from the frontier, chains included.
pub const MAX_FORMS_PER_PAGE: u64 = 100_000;

crate::run::tally::tally!(FetchStats {
    pages, items, ignored_links, errors, skipped, crawl, truncated, elements_cut, links_cut,
    links_repeated, nested_items, links_filtered, bad_json, wrong_kind, pages_by_rule, fields,
    items_rejected, required_missing, rejected_pages, forms_submitted, forms_cut, forms_unsent,
    forms_missing,
} first { panic });
crate::run::tally::tally!(CrawlCounts {
    responses_by_status,
    retries,
    gave_up,
    robots_forbidden
});

/// What one fetcher thread shares with the others.
pub struct Fetcher<'a> {
    pub cfg: &'a ProduceConfig,
    pub crawler: &'a Crawler<'a>,
    pub frontier: &'a dyn CrawlFrontier,
    pub tx: Sender<Parcel>,
    pub stop: &'a AtomicBool,
    pub live: &'a Counters,
    /// Test-only: panic on this fetcher's first page while set
    /// (`QPIPE_TEST_PANIC=fetch` arms the last fetcher, joined last).
    pub test_panic: AtomicBool,
    /// The crawl job's `meta`, carried by every item (`--jobs`).
    pub meta: Option<&'a str>,
    /// Where failed and skipped URLs are named.
    pub failures: &'a super::failures::Failures,
}

/// What became of one URL taken from the frontier.
enum Outcome {
    /// Fetched, or failed for good: complete it with these links (found on
    /// the page at the URL given, after redirects) and items.
    Done(Vec<Url>, u64, Option<Url>),
    /// Not fetched because the run is stopping: give it back.
    NotFetched,
}

impl Fetcher<'_> {
    /// Takes URLs until the frontier ends. A panic on one page completes that
    /// page, counts an `internal_panic` error and stops the run, so neither
    /// the frontier nor the other fetchers wait for this one forever.
    pub fn run(&self) -> FetchStats {
        // A panic outside the per-page work (in the frontier itself) still
        // stops the others, rather than leaving them waiting on this one.
        let _stop = StopOnPanic(self.stop);
        let mut stats = FetchStats::default();
        while let Some((url, depth, from)) = self.frontier.next_from(self.stop) {
            let from = from.as_deref();
            let page = catch_unwind(AssertUnwindSafe(|| self.page(&url, from, &mut stats)));
            match page {
                Ok(Outcome::Done(links, items, found_on)) => {
                    let on = found_on.as_ref().unwrap_or(&url);
                    self.frontier.complete_from(&url, on, links, depth, items);
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
    fn page(&self, url: &Url, from: Option<&str>, stats: &mut FetchStats) -> Outcome {
        let page = match self.crawler.get(url, &mut stats.crawl, self.stop) {
            Ok(page) => page,
            Err(f) if f.reason == Reason::Shutdown => return Outcome::NotFetched,
            Err(f) => {
                self.failures.record(url, &f, from);
                record(url, f, stats);
                return Outcome::Done(Vec::new(), 0, None);
            }
        };
        let (spec, caps) = (&self.cfg.spec, self.cfg.caps);
        let scraped = {
            let _parsing = super::parsing::take(page.page.body.len());
            spider::scrape_job(spec, caps, &page.page, &page.url, self.meta)
        };
        // Messages about the page name it where it was read (after redirects).
        let url = &page.url;
        if self.test_panic.swap(false, Ordering::Relaxed) {
            panic!("QPIPE_TEST_PANIC=fetch");
        }
        let mut n = scraped.items.len() as u64;
        self.count(url, &scraped, stats);
        let Scraped {
            items,
            mut links,
            submissions,
            ..
        } = scraped;
        self.send(items);
        if !submissions.is_empty() {
            let (more, stopped) = self.forms(url, submissions, &mut links, stats, n);
            n += more;
            // Its forms not all sent: the page goes back, so they are sent
            // by whoever takes it next (its items may come twice).
            if stopped {
                return Outcome::NotFetched;
            }
        }
        Outcome::Done(links, n, Some(page.url.clone()))
    }

    /// Hands items to the writer. It holds its receiver until every sender
    /// is gone, so this fails only if the writer panicked; nothing more can
    /// be saved then.
    fn send(&self, items: Vec<crate::queue::item::Item>) {
        if !items.is_empty() && self.tx.send(items).is_err() {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Sends the forms the page at `from` asked for, breadth first: each
    /// answer is read by the rule its `submit` names, its items go to the
    /// writer, its links join `links`, and the forms it asks for in turn
    /// are sent too, `MAX_FORM_DEPTH` answers deep at most. What is not
    /// sent (a cap, a budget the page's `page_items` and its answers count
    /// against, a stop) is counted and named. Returns the items found, and
    /// whether a stop left forms unsent.
    fn forms(
        &self,
        from: &Url,
        subs: Vec<Submission>,
        links: &mut Vec<Url>,
        stats: &mut FetchStats,
        page_items: u64,
    ) -> (u64, bool) {
        let (spec, caps) = (&self.cfg.spec, self.cfg.caps);
        let mut queue: VecDeque<(Url, Submission, u32)> =
            subs.into_iter().map(|s| (from.clone(), s, 1)).collect();
        let (mut sent, mut items) = (0u64, 0u64);
        let mut cuts = FormCuts::default();
        let mut stopped = false;
        while let Some((on, sub, depth)) = queue.pop_front() {
            let left = queue.len() as u64 + 1;
            if let Some(end) = self.frontier.take_extra(self.stop, page_items + items) {
                forms_end(from, left, end, stats);
                stopped = end == Finish::Stopped;
                break;
            }
            sent += 1;
            let got = match self.crawler.submit(&sub, &on, &mut stats.crawl, self.stop) {
                Ok(got) => got,
                Err(f) if f.reason == Reason::Shutdown => {
                    forms_end(from, left, Finish::Stopped, stats);
                    stopped = true;
                    break;
                }
                Err(mut f) => {
                    stats.forms_submitted += 1;
                    let verb = if sub.body.is_some() { "POST" } else { "GET" };
                    f.detail = format!("form {verb} ({}): {}", sub.label, f.detail);
                    self.failures.record(&sub.url, &f, Some(on.as_str()));
                    record(&sub.url, f, stats);
                    continue;
                }
            };
            stats.forms_submitted += 1;
            let scraped = {
                let _parsing = super::parsing::take(got.page.body.len());
                spider::scrape_by(
                    spec,
                    caps,
                    &got.page,
                    &got.url,
                    self.meta,
                    sub.rule.as_deref(),
                )
            };
            items += scraped.items.len() as u64;
            self.count(&got.url, &scraped, stats);
            let Scraped {
                items: found,
                links: more,
                submissions,
                ..
            } = scraped;
            self.send(found);
            links.extend(more);
            queue_more(&mut queue, submissions, &got.url, depth, sent, &mut cuts);
        }
        cuts.report(from, stats);
        (items, stopped)
    }

    /// Counts what the page at `url` gave (items, links, cuts, fields),
    /// naming the page where something was cut or rejected.
    fn count(&self, url: &Url, scraped: &Scraped, stats: &mut FetchStats) {
        let n = scraped.items.len() as u64;
        stats.pages += 1;
        self.live.pages.fetch_add(1, Ordering::Relaxed);
        self.live.items_extracted.fetch_add(n, Ordering::Relaxed);
        stats.items += n;
        stats.ignored_links += scraped.ignored_links;
        stats.nested_items += scraped.nested_items;
        stats.links_filtered += scraped.links_filtered;
        stats.bad_json += scraped.bad_json;
        if scraped.wrong_kind {
            stats.wrong_kind += 1;
            log::debug(&format!("{url}: not the kind of page its rule reads"));
        }
        let rule = match (&scraped.rule, scraped.sitemap) {
            (Some(name), _) => name.as_str(),
            (None, true) => "(sitemap)",
            (None, false) => "(no rule)",
        };
        *stats.pages_by_rule.entry(rule.into()).or_default() += 1;
        for (cap, cut) in [
            ("nesting", scraped.elements_cut),
            ("links", scraped.links_cut),
            ("items", scraped.items_cut),
        ] {
            if cut > 0 {
                log::debug(&format!("{url}: {cut} cut by the {cap} cap"));
                *stats.truncated.entry(cap.into()).or_default() += 1;
            }
        }
        if scraped.links_cut > 0 {
            // A page's links beyond the cap may be the only way to a part of
            // the site: say which page, not just a count.
            log::warn(&format!(
                "{url}: {} distinct links beyond --max-links-per-page {} were not followed (raise it if that page is an index)",
                scraped.links_cut, self.cfg.caps.max_links
            ));
        }
        if scraped.forms_cut > 0 {
            stats.forms_cut += scraped.forms_cut;
            log::warn(&format!(
                "{url}: {} form submissions beyond {} per page were not sent",
                scraped.forms_cut,
                spider::MAX_SUBMISSIONS_PER_PAGE
            ));
        }
        if let Some(problem) = &scraped.form_problem {
            stats.forms_missing += 1;
            log::warn(&format!("{url}: nothing submitted: {problem}"));
        }
        stats.elements_cut += scraped.elements_cut;
        stats.links_cut += scraped.links_cut;
        stats.links_repeated += scraped.links_repeated;
        stats.fields.tally(scraped.fields.clone());
        self.live
            .fields
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tally(scraped.fields.clone());
        self.count_rejected(url, scraped, stats);
    }

    /// Counts the items not pushed for lacking a required field, naming
    /// the first pages they were on.
    fn count_rejected(&self, url: &Url, scraped: &Scraped, stats: &mut FetchStats) {
        if scraped.items_rejected == 0 {
            return;
        }
        stats.items_rejected += scraped.items_rejected;
        self.live
            .items_rejected
            .fetch_add(scraped.items_rejected, Ordering::Relaxed);
        let missing: Vec<String> = scraped
            .required_missing
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name:?} on {n}"))
            .collect();
        for (name, n) in &scraped.required_missing {
            *stats.required_missing.entry(name.clone()).or_default() += n;
        }
        // Named for the first pages; then counted (the summary has the totals).
        if stats.rejected_pages < 10 {
            log::warn(&format!(
                "{url}: {} items not pushed: required field empty ({})",
                scraped.items_rejected,
                missing.join(", ")
            ));
        }
        stats.rejected_pages += 1;
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
pub struct StopOnPanic<'a>(pub &'a AtomicBool);

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

/// Form submissions a page's chain did not queue, by why; named in one
/// warning per page (a page can ask for many, and each answer for more).
#[derive(Default)]
struct FormCuts {
    too_deep: u64,
    over_cap: u64,
}

impl FormCuts {
    fn report(self, from: &Url, stats: &mut FetchStats) {
        stats.forms_cut += self.too_deep + self.over_cap;
        if self.too_deep > 0 {
            log::warn(&format!(
                "{from}: {} form submissions not sent: forms answered {MAX_FORM_DEPTH} deep already",
                self.too_deep
            ));
        }
        if self.over_cap > 0 {
            log::warn(&format!(
                "{from}: {} form submissions beyond {MAX_FORMS_PER_PAGE} per page were not sent",
                self.over_cap
            ));
        }
    }
}

/// Queues the forms an answer at `on` (at `depth`) asks for, unless forms are
/// answered `MAX_FORM_DEPTH` deep already; never more than the per-page cap
/// can still send (`sent` so far), so a page that multiplies its forms costs
/// bounded memory. What is not queued goes to `cuts`.
fn queue_more(
    queue: &mut VecDeque<(Url, Submission, u32)>,
    submissions: Vec<Submission>,
    on: &Url,
    depth: u32,
    sent: u64,
    cuts: &mut FormCuts,
) {
    let n = submissions.len() as u64;
    if depth >= MAX_FORM_DEPTH {
        cuts.too_deep += n;
        return;
    }
    let keep = n.min(MAX_FORMS_PER_PAGE.saturating_sub(sent + queue.len() as u64));
    cuts.over_cap += n - keep;
    queue.extend(
        submissions
            .into_iter()
            .take(keep as usize)
            .map(|s| (on.clone(), s, depth + 1)),
    );
}
