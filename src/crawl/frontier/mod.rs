//! The crawl frontier: what to fetch next, and when the crawl is over. Two
//! kinds implement `CrawlFrontier`: `local` (in this process, its URLs kept
//! compactly by `pending`) and `shared` (in Redis, for many producers, with
//! its Lua in `scripts` and a cache of links known seen in `recent`). Both
//! filter links with `bounds`.

mod bounds;
pub mod local;
mod pending;
mod recent;
mod scripts;
pub mod shared;

pub use crate::run::summary::Finish;
pub use bounds::{filter, url_hash, Bounds, Filtered, Seen};
pub use local::Frontier;
pub use pending::Queued;

use std::sync::atomic::AtomicBool;
use url::Url;

/// What `produce` needs from a frontier: in this process, or shared in Redis.
pub trait CrawlFrontier: Sync {
    /// Blocks until a URL is available (the caller is then busy with it) or
    /// the crawl ends. Returns the URL and its depth.
    fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)>;
    /// `next`, with the page that linked to the URL where the frontier
    /// knows it (the shared frontier does not keep it: none).
    fn next_from(&self, stop: &AtomicBool) -> Option<Queued> {
        self.next(stop).map(|(u, depth)| (u, depth, None))
    }
    /// Marks a page at `depth` done, counting its `items` and adding its
    /// links at `depth + 1`, atomically. Returns how many links were new.
    fn complete(&self, page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize;
    /// `complete`, where the links were found on `found_on` (the page's URL
    /// after redirects), which is named as their referrer where kept.
    fn complete_from(
        &self,
        page: &Url,
        _found_on: &Url,
        links: Vec<Url>,
        depth: u32,
        items: u64,
    ) -> usize {
        self.complete(page, links, depth, items)
    }
    /// Takes one more page than the frontier handed out (a form's answer,
    /// fetched on the way to completing a page) if the budgets allow, with
    /// `items` found since that page was taken not yet counted. If a budget
    /// or `stop` says no, the crawl ends for the reason returned (and with
    /// `Stopped` the page should be given back).
    fn take_extra(&self, stop: &AtomicBool, items: u64) -> Option<Finish>;
    /// Gives back a page at `depth` that was taken but not fetched (the run
    /// is stopping), so this or another process fetches it later.
    fn release(&self, page: &Url, depth: u32);
    /// Whether `url` may be crawled (checked again after redirects).
    fn allows(&self, url: &Url) -> bool;
    /// Why the crawl ended; `Finished` while it is still running.
    fn finish(&self) -> Finish;
    /// Link filtering counters so far.
    fn filtered(&self) -> Filtered;
    /// Distinct URLs ever queued (across processes, for a shared frontier).
    fn seen(&self) -> u64;
    /// Background upkeep until `done` (renewing leases); run on its own thread.
    fn maintain(&self, _done: &AtomicBool) {}
    /// Why the frontier failed, if it did (taken once).
    fn take_failure(&self) -> Option<crate::error::Error> {
        None
    }
}
