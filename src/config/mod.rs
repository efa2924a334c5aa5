//! Validated run settings. Each field is checked once here; workers take `&Config`.

use crate::config::cli::{ConsumeArgs, DemoSiteArgs, PushArgs};
use crate::consume::settings::{DeliverConfig, To};
use crate::consume::sink::parts::PartsConfig;
use crate::error::Error;
use crate::queue::conn::Endpoint;
use endpoint::endpoint;
use std::path::PathBuf;
use std::time::Duration;

pub mod cli;
mod dashboard;
mod endpoint;
mod job_flags;
mod monitor;
mod produce;
mod spec_diff;
mod try_page;

pub use crate::consume::settings::ConsumeConfig;
pub use crate::produce::settings::{
    CrawlPolicy, JobsConfig, ProduceConfig, SeenConfig, WriterConfig,
};
pub use crate::run::settings::{LockConfig, MonitorConfig, RunLimits};
pub use dashboard::DashboardConfig;
pub use job_flags::EnqueueConfig;
pub use produce::cache_config;
pub use produce::dedup;
pub use spec_diff::DiffConfig;
pub use try_page::TryConfig;

/// The default Redis when neither --redis nor REDIS_URL is given.
pub const DEFAULT_REDIS: &str = "redis://127.0.0.1:6379";
/// The most threads any command accepts.
const MAX_THREADS: usize = 512;

impl RunLimits {
    fn new(
        lock: Option<String>,
        lock_ttl: u64,
        max_time: Option<f64>,
        fail_on_errors: u64,
    ) -> Result<RunLimits, Error> {
        let lock = match lock {
            None => None,
            Some(name) if name.is_empty() => return Err(usage("--lock needs a name".into())),
            Some(name) => Some(LockConfig {
                name,
                ttl: seconds(lock_ttl as f64, "--lock-ttl")?,
            }),
        };
        Ok(RunLimits {
            lock,
            max_time: max_time.map(|t| seconds(t, "--max-time")).transpose()?,
            fail_on_errors,
        })
    }

    /// Exit 3 when `failures` reached the threshold.
    pub fn exit_for(&self, failures: u64) -> crate::error::Exit {
        if self.fail_on_errors > 0 && failures >= self.fail_on_errors {
            crate::error::Exit::Partial
        } else {
            crate::error::Exit::Ok
        }
    }
}

/// `qpipe push`.
#[derive(Debug, Clone)]
pub struct PushConfig {
    /// Input file; `None` is stdin.
    pub file: Option<PathBuf>,
    /// Redis writer settings.
    pub writer: WriterConfig,
}

/// A Redis list and nothing else (`recover`, `status`, `peek`).
#[derive(Debug, Clone)]
pub struct RedisTarget {
    /// Where Redis is.
    pub redis: Endpoint,
    /// The list key.
    pub key: String,
    /// Lists the queue is split into (`--shards`).
    pub shards: usize,
}

impl RedisTarget {
    /// Validates `--redis` (or REDIS_URL), `--tls-ca` and `--key`.
    pub fn new(
        redis: Option<String>,
        tls_ca: Option<String>,
        key: String,
        n: usize,
    ) -> Result<RedisTarget, Error> {
        Ok(RedisTarget {
            redis: endpoint(redis, tls_ca)?,
            key: non_empty_key(key)?,
            shards: shards(n)?,
        })
    }

    /// The shards' list keys.
    pub fn shard_keys(&self) -> Vec<String> {
        crate::queue::keys::shard_keys(&self.key, self.shards, self.redis.is_cluster())
    }
}

/// `qpipe status` and `qpipe peek`.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// The queue.
    pub target: RedisTarget,
    /// Also report this seen set's size.
    pub seen_key: Option<String>,
    /// Also report who holds this lock.
    pub lock: Option<String>,
    /// Also report this job list (hash-tagged on a cluster).
    pub jobs: Option<String>,
    /// Also list the queue's keys by the key registry (`--keys`).
    pub keys: bool,
    /// Print JSON instead of text.
    pub json: bool,
}

impl StatusConfig {
    /// Validates `status`/`peek` arguments.
    pub fn new(
        target: RedisTarget,
        seen_key: Option<String>,
        lock: Option<String>,
        jobs: Option<String>,
        json: bool,
    ) -> StatusConfig {
        let cluster = target.redis.is_cluster();
        StatusConfig {
            jobs: jobs.map(|j| crate::queue::keys::shard_keys(&j, 1, cluster).remove(0)),
            target,
            seen_key,
            lock,
            keys: false,
            json,
        }
    }
}

/// `qpipe demo-site`.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Listen address.
    pub addr: String,
    /// Number of /page/N/ pages.
    pub pages: u64,
    /// Most open client connections (one thread each).
    pub max_connections: usize,
    /// Write the site as static files here instead of serving it.
    pub export: Option<PathBuf>,
    /// Which demo site to serve.
    pub site: DemoKind,
    /// KiB of padding on each quotes list page.
    pub page_kb: usize,
    /// `--export` writes only the default quotes pages.
    pub default_only: bool,
}

/// The demo sites `demo-site --site` can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoKind {
    /// The quotes.toscrape.com look-alike and its variants.
    Quotes,
    /// The books.toscrape.com look-alike.
    Books,
}

/// `--heartbeat-ttl`: at least 2 s. A blocking take waits up to 1 s inside
/// Redis; a frozen holder's heartbeat must outlive that wait, or a recovery
/// could forget a batch list that the waiting take then fills.
fn heartbeat_ttl(n: u64) -> Result<u64, Error> {
    match n {
        0 | 1 => Err(usage(format!(
            "--heartbeat-ttl {n} is too short: at least 2 (a blocking take waits up to 1 s, and a heartbeat must outlive it)"
        ))),
        n => Ok(n),
    }
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

fn threads(n: usize) -> Result<usize, Error> {
    if n == 0 || n > MAX_THREADS {
        return Err(usage(format!(
            "--threads {n} is out of range (use 1 to {MAX_THREADS})"
        )));
    }
    Ok(n)
}

fn shards(n: usize) -> Result<usize, Error> {
    if n == 0 || n > 1024 {
        return Err(usage(format!(
            "--shards {n} is out of range (use 1 to 1024)"
        )));
    }
    Ok(n)
}

fn positive(n: usize, flag: &str) -> Result<usize, Error> {
    if n == 0 {
        return Err(usage(format!("{flag} must be at least 1")));
    }
    Ok(n)
}

fn seconds(s: f64, flag: &str) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(365 * 86_400))
        .ok_or_else(|| {
            usage(format!(
                "{flag} {s} is not a usable number of seconds (use e.g. 0.5 or 30)"
            ))
        })
}

fn writer(
    redis: Option<String>,
    tls_ca: Option<String>,
    key: String,
    n_shards: usize,
    batch: (usize, usize),
    retry: f64,
    spill_dir: String,
) -> Result<WriterConfig, Error> {
    let (batch_size, batch_bytes) = batch;
    Ok(WriterConfig {
        redis: endpoint(redis, tls_ca)?,
        key: non_empty_key(key)?,
        batch_size: positive(batch_size, "--batch-size")?,
        batch_bytes: positive(batch_bytes, "--batch-bytes")?,
        retry_for: seconds(retry, "--redis-retry-secs")?,
        spill_dir: writable_dir(spill_dir)?,
        seen: None,
        shards: shards(n_shards)?,
        resend: "push",
    })
}

/// Checks at start that the spill directory takes files, so a Redis outage
/// hours later does not find out the hard way.
fn writable_dir(dir: String) -> Result<PathBuf, Error> {
    let dir = PathBuf::from(dir);
    let probe = dir.join(format!(".qpipe-spill-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            usage(format!(
                "--spill-dir {} is not writable: {e} (create it, or choose a directory this user can write to)",
                dir.display()
            ))
        })?;
    Ok(dir)
}

fn non_empty_key(key: String) -> Result<String, Error> {
    if key.is_empty() {
        return Err(usage("--key must not be empty".into()));
    }
    Ok(key)
}

/// `--format` and `--fields`, checked: CSV needs fields and goes to files.
fn csv_of(a: &ConsumeArgs) -> Result<Option<Vec<String>>, Error> {
    match (a.format.as_str(), &a.fields) {
        ("jsonl", None) => Ok(None),
        ("jsonl", Some(_)) => Err(usage("--fields goes with --format csv".into())),
        ("csv", None) => Err(usage(
            "--format csv needs --fields, the columns in order (e.g. --fields quote,author,tags)"
                .into(),
        )),
        ("csv", Some(_)) if a.exec.is_some() || a.post.is_some() => Err(usage(
            "--format csv writes files (--out); --exec and --post take JSON Lines".into(),
        )),
        ("csv", Some(f)) => {
            let fields: Vec<String> = f.split(',').map(|s| s.trim().to_string()).collect();
            if fields.iter().any(String::is_empty) {
                return Err(usage(format!(
                    "--fields {f:?} has an empty name (e.g. --fields quote,author)"
                )));
            }
            Ok(Some(fields))
        }
        (other, _) => Err(usage(format!(
            "--format {other:?} is unknown (use jsonl or csv)"
        ))),
    }
}

/// Part files when `--out` is a template, with their flags checked.
fn parts_of(a: &ConsumeArgs, out: Option<&std::path::Path>) -> Result<Option<PartsConfig>, Error> {
    let template = out.filter(|o| crate::consume::sink::parts::is_template(o));
    let Some(template) = template else {
        if a.part_items.is_some() || a.on_publish.is_some() {
            return Err(usage(
                "--part-items and --on-publish need --out with a name template, e.g. --out 'out/quotes-{date}-{seq}.jsonl.gz'".into(),
            ));
        }
        return Ok(None);
    };
    crate::consume::sink::parts::check_template(template).map_err(|e| {
        usage(format!(
            "--out {} {e} (e.g. --out 'out/quotes-{{date}}-{{seq}}.jsonl.gz')",
            template.display()
        ))
    })?;
    if a.part_items == Some(0) || a.part_bytes == 0 {
        return Err(usage(
            "--part-items and --part-bytes must be at least 1".into(),
        ));
    }
    Ok(Some(PartsConfig {
        template: template.to_path_buf(),
        max_items: a.part_items,
        max_bytes: a.part_bytes,
        max_age: seconds(a.part_secs, "--part-secs")?,
        on_publish: a.on_publish.clone(),
        fsync: !a.no_fsync,
        header: None,
    }))
}

/// `--exec` / `--post` and their flags, checked: one sink only, a valid
/// http(s) URL, `Name: value` headers.
fn deliver_of(a: &ConsumeArgs) -> Result<Option<DeliverConfig>, Error> {
    let sinks = [a.out.is_some(), a.exec.is_some(), a.post.is_some()];
    if sinks.iter().filter(|s| **s).count() > 1 {
        return Err(usage(
            "give one sink: --out, --exec or --post (to do two things with a batch, --exec a script that does both)".into(),
        ));
    }
    if a.post.is_none() && (a.gzip || !a.header.is_empty()) {
        return Err(usage("--header and --gzip go with --post URL".into()));
    }
    let timeout = seconds(a.sink_timeout, "--sink-timeout")?;
    if a.sink_retries > 100 {
        return Err(usage(format!(
            "--sink-retries {} is out of range (use 0 to 100)",
            a.sink_retries
        )));
    }
    let to = match (&a.exec, &a.post) {
        (Some(cmd), _) if cmd.trim().is_empty() => {
            return Err(usage(
                "--exec needs a command, e.g. --exec 'psql \"$PG_URL\" ...'".into(),
            ))
        }
        (Some(cmd), _) => To::Exec(cmd.clone()),
        (_, Some(url)) => {
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(usage(format!(
                    "--post {} is not an http(s) URL (e.g. --post 'http://127.0.0.1:8123/?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow')",
                    crate::error::redact(url)
                )));
            }
            let mut headers = Vec::new();
            for h in &a.header {
                // A header name is an RFC 9110 token; a value has no
                // control characters (CR/LF would split the request).
                let token = |n: &str| {
                    !n.is_empty()
                        && n.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
                };
                let Some((name, value)) = h.split_once(':').filter(|(n, v)| {
                    token(n.trim()) && !v.bytes().any(|b| b.is_ascii_control() && b != b'\t')
                }) else {
                    return Err(usage(format!(
                        "--header {h:?} is not \"Name: value\" (e.g. --header 'Authorization: Bearer TOKEN')"
                    )));
                };
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            To::Post {
                url: url.clone(),
                headers,
                gzip: a.gzip,
            }
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(DeliverConfig {
        to,
        retries: a.sink_retries,
        timeout,
    }))
}

impl ConsumeConfig {
    /// Validates `consume` arguments.
    pub fn from_args(a: ConsumeArgs) -> Result<ConsumeConfig, Error> {
        let idle = seconds(a.idle_timeout, "--idle-timeout")?;
        if a.max_items == Some(0) {
            return Err(usage("--max-items must be at least 1".into()));
        }
        let deliver = deliver_of(&a)?;
        let out = a.out.clone().filter(|o| o != "-").map(PathBuf::from);
        let csv = csv_of(&a)?;
        let mut parts = parts_of(&a, out.as_deref())?;
        if let Some(p) = &mut parts {
            p.header = csv.as_deref().map(crate::consume::csv::header);
        }
        // Part files are not one file: no plain-file handling for them.
        let out = out.filter(|_| parts.is_none());
        let limits = RunLimits::new(a.lock, a.lock_ttl, a.max_time, a.fail_on_errors)?;
        Ok(ConsumeConfig {
            limits,
            monitor: MonitorConfig::new(a.metrics, a.stats_every)?,
            threads: threads(a.threads)?,
            redis: endpoint(a.redis, a.tls_ca)?,
            key: non_empty_key(a.key)?,
            fsync: out.is_some() && !a.no_fsync,
            out,
            parts,
            csv,
            deliver,
            drain_after: a.drain.then_some(idle),
            max_items: a.max_items,
            batch_size: positive(a.batch_size, "--batch-size")?,
            batch_bytes: positive(a.batch_bytes, "--batch-bytes")?,
            retry_for: seconds(a.redis_retry_secs, "--redis-retry-secs")?,
            reliable: a.reliable,
            shards: shards(a.shards)?,
            heartbeat_ttl: heartbeat_ttl(a.heartbeat_ttl)?,
        })
    }
}

impl PushConfig {
    /// Validates `push` arguments.
    pub fn from_args(a: PushArgs) -> Result<PushConfig, Error> {
        Ok(PushConfig {
            file: a.file.filter(|f| f != "-").map(PathBuf::from),
            writer: writer(
                a.redis,
                a.tls_ca,
                a.key,
                a.shards,
                (a.batch_size, a.batch_bytes),
                a.redis_retry_secs,
                ".".into(),
            )?,
        })
    }
}

impl DemoConfig {
    /// Validates `demo-site` arguments.
    pub fn from_args(a: DemoSiteArgs) -> Result<DemoConfig, Error> {
        if a.pages == 0 || a.pages > 10_000_000 {
            return Err(usage(format!(
                "--pages {} is out of range (use 1 to 10000000)",
                a.pages
            )));
        }
        if a.page_kb > 10_240 {
            return Err(usage(format!(
                "--page-kb {} is out of range (use 0 to 10240)",
                a.page_kb
            )));
        }
        Ok(DemoConfig {
            page_kb: a.page_kb,
            default_only: a.default_only,
            addr: a.addr,
            pages: a.pages,
            max_connections: positive(a.max_connections, "--max-connections")?,
            export: a.export.map(PathBuf::from),
            site: match a.site.as_str() {
                "quotes" => DemoKind::Quotes,
                "books" => DemoKind::Books,
                other => {
                    return Err(usage(format!(
                        "--site {other:?} is not a demo site (use quotes or books)"
                    )))
                }
            },
        })
    }
}

/// What `qpipe dead` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadAction {
    /// Print letters, a page at a time.
    List,
    /// Print one letter whole.
    Show,
    /// Move items back onto their list.
    Requeue,
    /// Delete letters.
    Delete,
}

/// `qpipe dead`.
#[derive(Debug, Clone)]
pub struct DeadConfig {
    /// The queue (or, with `jobs`, the Redis server).
    pub target: RedisTarget,
    /// A job list's dead jobs instead of the queue's dead items.
    pub jobs: Option<String>,
    /// What to do.
    pub action: DeadAction,
    /// Only letters whose reason starts with this.
    pub reason: Option<String>,
    /// One letter, by its index in `list`.
    pub index: Option<usize>,
    /// At most this many, oldest first.
    pub count: Option<usize>,
    /// List paging.
    pub offset: usize,
    /// List paging.
    pub limit: usize,
    /// Print JSON Lines.
    pub json: bool,
}

impl DeadConfig {
    /// Validates `qpipe dead`: a requeue or delete must say which letters.
    pub fn from_args(a: crate::config::cli::DeadArgs) -> Result<DeadConfig, Error> {
        let action = match a.action.as_str() {
            "list" => DeadAction::List,
            "show" => DeadAction::Show,
            "requeue" => DeadAction::Requeue,
            "delete" => DeadAction::Delete,
            other => {
                return Err(usage(format!(
                    "qpipe dead {other:?}: the action is list, show, requeue or delete"
                )))
            }
        };
        let picked = a.all || a.reason.is_some() || a.index.is_some() || a.count.is_some();
        if matches!(action, DeadAction::Requeue | DeadAction::Delete) && !picked {
            return Err(usage(format!(
                "qpipe dead {}: say which letters (--all, --reason TEXT, --count N or --index I; see qpipe dead list)",
                a.action
            )));
        }
        if action == DeadAction::Show && a.index.is_none() {
            return Err(usage(
                "qpipe dead show needs --index I (the index qpipe dead list prints)".into(),
            ));
        }
        if a.count == Some(0) {
            return Err(usage("--count must be at least 1".into()));
        }
        if a.index.is_some() && (a.all || a.count.is_some()) {
            return Err(usage(
                "--index picks one letter: leave out --all and --count".into(),
            ));
        }
        let target = RedisTarget::new(a.redis, a.tls_ca, a.key, a.shards)?;
        let cluster = target.redis.is_cluster();
        Ok(DeadConfig {
            jobs: a
                .jobs
                .map(|j| {
                    non_empty_key(j)
                        .map(|j| crate::queue::keys::shard_keys(&j, 1, cluster).remove(0))
                })
                .transpose()?,
            target,
            action,
            reason: a.reason,
            index: a.index,
            count: a.count,
            offset: a.offset,
            limit: a.limit,
            json: a.json,
        })
    }
}
