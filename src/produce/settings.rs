//! Settings of the produce stage, validated once by `config` from the
//! command line: the crawl, its writer, and `--jobs`.

use crate::crawl::fetch::HttpConfig;
use crate::crawl::frontier::Bounds;
use crate::crawl::session::login::LoginStep;
use crate::crawl::spider::{PageCaps, Spec};
use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::dedup::{Dedup, Exact, Filter};
use crate::queue::job_list::JobRequeue;
use crate::queue::lease::Lease;
use crate::run::settings::{MonitorConfig, RunLimits};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// `qpipe produce`.
#[derive(Debug, Clone)]
pub struct ProduceConfig {
    /// Fetcher threads.
    pub threads: usize,
    /// Crawl roots.
    pub start: Vec<Url>,
    /// The spider.
    pub spec: Spec,
    /// Allowed domains, depth, page and item budgets (the deadline is set at start).
    pub bounds: Bounds,
    /// Politeness and retries.
    pub policy: CrawlPolicy,
    /// Nesting and link caps applied to every page.
    pub caps: PageCaps,
    /// Most page bytes parsed at once over all fetchers (`--max-parse-bytes`).
    pub max_parse_bytes: usize,
    /// Crawl with other processes through this Redis frontier.
    pub shared_frontier: Option<String>,
    /// How the shared frontier's seen URLs (and item fingerprints) are kept.
    pub dedup: Dedup,
    /// Delete the shared frontier first (start a new crawl).
    pub reset_frontier: bool,
    /// How long a taken URL stays leased before others may take it.
    pub lease: Duration,
    /// Bounded channel size between fetchers and the writer, in pages of items.
    pub channel_capacity: usize,
    /// HTTP client settings.
    pub http: HttpConfig,
    /// Redis writer settings.
    pub writer: WriterConfig,
    /// Lock, time budget, failure threshold.
    pub limits: RunLimits,
    /// `--metrics` and `--stats-every`.
    pub monitor: MonitorConfig,
    /// The spec's `login`, its variables read: run once before the crawl.
    pub login: Option<LoginStep>,
    /// `--jobs`: crawl jobs taken from a Redis list instead of `start`.
    pub jobs: Option<JobsConfig>,
    /// `--min-items`: fewer items pushed is exit 3.
    pub min_items: Option<u64>,
    /// `--failures`: every failed or skipped URL, as JSON Lines.
    pub failures: Option<std::path::PathBuf>,
}

/// How politely `produce` crawls.
#[derive(Debug, Clone)]
pub struct CrawlPolicy {
    /// Obey robots.txt (and its Crawl-delay).
    pub obey_robots: bool,
    /// Minimum time between request starts to one host.
    pub delay: Duration,
    /// Concurrent requests per host.
    pub per_host: usize,
    /// Base of the exponential retry back-off.
    pub backoff: Duration,
    /// `--auto-throttle`, if on.
    pub throttle: Option<crate::crawl::hosts::Throttle>,
}

/// Settings shared by every command that writes to Redis.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Where Redis is (the URL may hold a password: print only via `error::redact`).
    pub redis: Endpoint,
    /// The list key.
    pub key: String,
    /// Most items per LPUSH.
    pub batch_size: usize,
    /// Most bytes in one LPUSH (one larger item still goes alone).
    pub batch_bytes: usize,
    /// How long to retry Redis in an outage before spilling.
    pub retry_for: Duration,
    /// Where the spill file goes if Redis stays down.
    pub spill_dir: PathBuf,
    /// Cross-run deduplication (`--seen-key`), if on.
    pub seen: Option<SeenConfig>,
    /// Lists the queue is split into (`--shards`).
    pub shards: usize,
    /// The subcommand that sends a spill file later: `push` for items,
    /// `enqueue` for crawl jobs (`push` cannot read bare-URL lines).
    pub resend: &'static str,
}

impl WriterConfig {
    /// The shards' list keys (the plain key when unsharded on one server).
    pub fn shard_keys(&self) -> Vec<String> {
        crate::queue::keys::shard_keys(&self.key, self.shards, self.redis.is_cluster())
    }

    /// The seen set named `seen` of each shard, in shard order.
    pub fn seen_sets(&self, seen: &str) -> Vec<String> {
        crate::queue::keys::seen_sets(seen, &self.shard_keys(), self.redis.is_cluster())
    }

    /// One writer connection per shard, retrying outages for `retry_for`
    /// unless `stop` is raised (then the writer spills at once).
    pub fn connect(
        &self,
        stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Vec<crate::queue::Queue>, Error> {
        let keys = self.shard_keys();
        let seen = self.seen.as_ref().map(|s| (s, self.seen_sets(&s.key)));
        let mut needs = crate::queue::acl::Needs::default();
        let replicated = self.redis.is_cluster() || self.redis.is_sentinel();
        for k in &keys {
            needs.writer(k, replicated);
        }
        keys.iter()
            .enumerate()
            .map(|(i, k)| {
                let mut q = crate::queue::Queue::connect_shard(
                    &self.redis,
                    k,
                    &keys,
                    Duration::from_secs(1),
                )?
                .retrying(self.retry_for, Some(std::sync::Arc::clone(stop)));
                if i == 0 {
                    crate::queue::acl::check(q.link(), &needs)?;
                }
                if let Some((s, sets)) = &seen {
                    // Each shard's seen key holds that shard's share of the items.
                    let want = s.dedup.share(keys.len());
                    let filter = Filter::open(q.link(), &sets[i], Exact::Zset, &want)?;
                    q = q.with_seen(filter);
                }
                Ok(q)
            })
            .collect()
    }
}

/// `--seen-key`: fingerprints of pushed items kept in Redis across runs.
#[derive(Debug, Clone)]
pub struct SeenConfig {
    /// The sorted set (member: 16-byte fingerprint, score: first-pushed
    /// time), or the name its Bloom filters are kept next to.
    pub key: String,
    /// Fingerprints older than this are forgotten (and may be pushed again).
    pub ttl: Option<Duration>,
    /// A sorted set, or Bloom filters next to `key` (`--dedup`).
    pub dedup: Dedup,
}

/// `produce --jobs`: take crawl jobs from a Redis list.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// The job list (hash-tagged on a cluster, so its scripts stay in one
    /// slot); the first of `lists`.
    pub key: String,
    /// Every job list, in priority order (`--jobs high,default,low`).
    pub lists: Vec<String>,
    /// How long the list must stay empty to end a `--drain` run; `None`: run
    /// until a signal.
    pub drain_after: Option<Duration>,
    /// Seconds the worker's heartbeat lives; a dead worker's job goes back
    /// to the list after it.
    pub heartbeat_ttl: u64,
    /// How often a job may go back (stopped, failed, its worker died)
    /// before it is set aside in `J:dead`.
    pub attempts: u64,
    /// The first retry delay of a job put back (0: at once).
    pub backoff: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
}

impl JobsConfig {
    /// How this worker puts jobs back.
    pub fn requeue(&self, me: &Lease) -> JobRequeue {
        JobRequeue {
            attempts: self.attempts,
            worker: me.id.clone(),
            backoff: self.backoff,
            backoff_max: self.backoff_max,
        }
    }

    /// The job list's name on `redis`: hash-tagged on a cluster.
    pub fn on(mut self, redis: &Endpoint) -> JobsConfig {
        let tag = |l: &String| crate::queue::keys::shard_keys(l, 1, redis.is_cluster()).remove(0);
        self.lists = self.lists.iter().map(tag).collect();
        self.key = self.lists[0].clone();
        self
    }
}
