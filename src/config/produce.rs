//! `qpipe produce` settings: the spider spec and session, start URLs, crawl
//! bounds, politeness, dedup and the writer.

use super::{
    positive, seconds, threads, usage, writer, CrawlPolicy, JobsConfig, MonitorConfig,
    ProduceConfig, RunLimits, SeenConfig, WriterConfig,
};
use crate::config::cli::ProduceArgs;
use crate::crawl::fetch::HttpConfig;
use crate::crawl::frontier::Bounds;
use crate::crawl::hosts::Throttle;
use crate::crawl::origin::Origin;
use crate::crawl::session::address;
use crate::crawl::session::cache::{CacheConfig, Mode};
use crate::crawl::session::headers::{self, Headers};
use crate::crawl::session::login::LoginStep;
use crate::crawl::session::proxy::Proxies;
use crate::crawl::spec::{self, SpecFile};
use crate::crawl::spider::{PageCaps, Spec};
use crate::error::Error;
use crate::queue::dedup::{Dedup, Params};
use std::time::Duration;
use url::Url;

pub fn start_url(s: &str) -> Result<Url, Error> {
    let bad = |why: &str| {
        usage(format!(
            "invalid --start-url {s:?}: {why} (use an absolute http:// or https:// URL)"
        ))
    };
    let u = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(bad("not an http(s) URL with a host"));
    }
    Ok(u)
}

/// The spec's headers with `--header`s merged in; a name given twice on the
/// command line is an error (which one was meant?).
fn session_headers(spec: &[(String, String)], flags: &[String]) -> Result<Headers, Error> {
    let mut cli: Vec<(String, String)> = Vec::with_capacity(flags.len());
    for flag in flags {
        let (name, value) = headers::parse_flag(flag).map_err(usage)?;
        if cli.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            return Err(usage(format!(
                "--header {name} is given twice (give each header once)"
            )));
        }
        cli.push((name, value));
    }
    Ok(Headers::merge(spec, &cli))
}

/// Reads `--spec` (or the built-in spider) and moves it onto `--origin`.
pub fn load_spec(
    path: Option<&str>,
    origin: Option<&str>,
) -> Result<(SpecFile, Option<Origin>), Error> {
    let mut file = match path {
        Some(path) => {
            let text = spec::read("--spec", path).map_err(Error::Spec)?;
            spec::parse(&text, path).map_err(Error::Spec)?
        }
        None => spec::parse(spec::QUOTES, "built-in").map_err(Error::Spec)?,
    };
    let origin = origin.map(Origin::parse).transpose().map_err(usage)?;
    if let Some(o) = &origin {
        file.rebase(o);
    }
    Ok((file, origin))
}

/// The spec's login step (its variables read) and what every request
/// carries: headers (`--header` wins), the User-Agent and the proxies.
pub fn session(
    file: &SpecFile,
    spec_path: Option<&str>,
    header_flags: &[String],
    user_agent: Option<String>,
    proxy: Option<&str>,
) -> Result<(Option<LoginStep>, Headers, String, Proxies), Error> {
    let env = |name: &str| std::env::var(name).ok();
    let login = file
        .login
        .as_ref()
        .map(|l| l.resolve(&file.allowed_domains, &env))
        .transpose()
        .map_err(|m| usage(format!("spec {}: {m}", spec_path.unwrap_or("built-in"))))?;
    let mut headers = session_headers(&file.headers, header_flags)?;
    let user_agent = user_agent
        .or_else(|| headers.take("user-agent"))
        .unwrap_or_else(|| format!("qpipe/{}", env!("CARGO_PKG_VERSION")));
    let proxies = Proxies::new(proxy, &env).map_err(usage)?;
    Ok((login, headers, user_agent, proxies))
}

/// Validates `--dedup`, `--dedup-capacity` and `--dedup-error`.
pub fn dedup(kind: &str, capacity: Option<u64>, error: Option<f64>) -> Result<Dedup, Error> {
    match kind {
        "set" if capacity.is_some() || error.is_some() => Err(usage(
            "--dedup-capacity and --dedup-error need --dedup bloom".into(),
        )),
        "set" => Ok(Dedup::Set),
        "bloom" => Params::new(capacity.unwrap_or(10_000_000), error.unwrap_or(1e-6))
            .map(Dedup::Bloom)
            .map_err(usage),
        other => Err(usage(format!("--dedup {other:?} is neither set nor bloom"))),
    }
}

impl ProduceConfig {
    /// Validates `produce` arguments.
    pub fn from_args(a: ProduceArgs) -> Result<ProduceConfig, Error> {
        let threads = threads(a.threads)?;
        let (file, origin) = load_spec(a.spec.as_deref(), a.origin.as_deref())?;
        let jobs = JobsConfig::from_args(&a, &file.spider)?;
        let start = if jobs.is_some() {
            Vec::new()
        } else {
            pick_start_urls(&a.start_url, &file, origin.as_ref())?
        };
        let (limits, bounds) = check_bounds(&a, &file)?;
        let policy = set_politeness(&a, threads)?;
        let (login, headers, user_agent, proxies) = session(
            &file,
            a.spec.as_deref(),
            &a.header,
            a.user_agent.clone(),
            a.proxy.as_deref(),
        )?;
        let mut spec = file.spider;
        let id_field = check_id_field(a.id_field.clone(), &spec)?;
        let (dedup, seen) = check_seen(&a)?;
        let writer = build_writer(&a, seen, &dedup)?;
        if let Some(f) = id_field {
            spec.identity = crate::queue::item::Identity::Field(f);
        }
        let caps = PageCaps {
            max_nesting: positive(a.max_nesting, "--max-nesting")?,
            max_links: positive(a.max_links_per_page, "--max-links-per-page")?,
        };
        if a.min_items == Some(0) {
            return Err(usage(
                "--min-items must be at least 1 (leave it out for no minimum)".into(),
            ));
        }
        if a.failures.as_deref() == Some("") {
            return Err(usage("--failures needs a file name".into()));
        }
        let monitor = MonitorConfig::new(a.metrics.clone(), a.stats_every)?;
        let lease = seconds(a.lease_secs, "--lease-secs")?;
        let channel_capacity = positive(
            a.channel_capacity.unwrap_or(32 * threads),
            "--channel-capacity",
        )?;
        let mut http = build_http(&a, user_agent, headers, proxies)?;
        // A crawl that starts on a private address (an intranet, a test
        // server on loopback) may stay there; crawl jobs are untrusted
        // input, so only the flag lets them.
        http.allow_private = a.allow_private || start.iter().any(address::url_is_private);
        Ok(ProduceConfig {
            min_items: a.min_items,
            failures: a.failures.map(std::path::PathBuf::from),
            jobs: jobs.map(|j| j.on(&writer.redis)),
            caps,
            max_parse_bytes: positive(a.max_parse_bytes, "--max-parse-bytes")?,
            limits,
            monitor,
            writer,
            bounds,
            policy,
            lease,
            reset_frontier: a.reset_frontier,
            dedup,
            shared_frontier: a.shared_frontier,
            threads,
            start,
            spec,
            login,
            channel_capacity,
            http,
        })
    }
}

/// The crawl's start URLs: the `--start-url`s (moved onto `--origin`), else
/// the spec's `start_urls`.
fn pick_start_urls(
    flags: &[String],
    file: &SpecFile,
    origin: Option<&Origin>,
) -> Result<Vec<Url>, Error> {
    if !flags.is_empty() {
        flags
            .iter()
            .map(|s| {
                let u = start_url(s)?;
                Ok(origin.map_or_else(|| u.clone(), |o| o.rebase(&u)))
            })
            .collect()
    } else if !file.start_urls.is_empty() {
        Ok(file.start_urls.clone())
    } else {
        Err(usage(
            "no start URL: give --start-url, or start_urls in the spec".into(),
        ))
    }
}

/// The run's limits (`--lock`, `--max-time`, `--fail-on-errors`) and the
/// crawl's bounds (domains, depth, pages, items, queued URLs). The page and
/// item caps are checked first, then the limits, then `--max-queued-urls`.
fn check_bounds(a: &ProduceArgs, file: &SpecFile) -> Result<(RunLimits, Bounds), Error> {
    if a.max_pages == Some(0) || a.max_items == Some(0) {
        return Err(usage(
            "--max-pages and --max-items must be at least 1".into(),
        ));
    }
    let limits = RunLimits::new(a.lock.clone(), a.lock_ttl, a.max_time, a.fail_on_errors)?;
    let bounds = Bounds {
        domains: file.allowed_domains.clone(),
        max_depth: a.max_depth.or(file.max_depth),
        max_pages: a.max_pages,
        max_items: a.max_items,
        deadline: None,
        max_queued: positive(a.max_queued_urls, "--max-queued-urls")?,
    };
    Ok((limits, bounds))
}

/// The politeness policy: robots.txt, the delay and connections per host
/// (all threads unless `--per-host`), and the back-off between retries.
fn set_politeness(a: &ProduceArgs, threads: usize) -> Result<CrawlPolicy, Error> {
    Ok(CrawlPolicy {
        obey_robots: !a.ignore_robots,
        delay: Duration::from_millis(a.delay_ms),
        per_host: if a.per_host == 0 { threads } else { a.per_host },
        backoff: Duration::from_millis(a.retry_backoff_ms),
        throttle: throttle(a)?,
    })
}

/// `--auto-throttle` and its companions, checked.
fn throttle(a: &ProduceArgs) -> Result<Option<Throttle>, Error> {
    let defaults = a.auto_throttle_target == 1.0
        && a.auto_throttle_start_ms == 1000
        && a.auto_throttle_max_ms == 60_000;
    if !a.auto_throttle {
        return match defaults {
            true => Ok(None),
            false => Err(usage(
                "--auto-throttle-target, --auto-throttle-start-ms and --auto-throttle-max-ms need --auto-throttle".into(),
            )),
        };
    }
    if !(0.1..=100.0).contains(&a.auto_throttle_target) {
        return Err(usage(format!(
            "--auto-throttle-target {} is out of range (give 0.1 to 100 requests in flight per host)",
            a.auto_throttle_target
        )));
    }
    if a.auto_throttle_max_ms == 0 || a.auto_throttle_start_ms > a.auto_throttle_max_ms {
        return Err(usage(
            "--auto-throttle-max-ms must be above 0 and at least --auto-throttle-start-ms".into(),
        ));
    }
    Ok(Some(Throttle {
        target: a.auto_throttle_target,
        start: Duration::from_millis(a.auto_throttle_start_ms),
        max: Duration::from_millis(a.auto_throttle_max_ms),
    }))
}

/// Checks that `--id-field` names a field of the spider, or `url`.
fn check_id_field(field: Option<String>, spec: &Spec) -> Result<Option<String>, Error> {
    match field {
        Some(f) if f != "url" && !spec.field_names().contains(&f.as_str()) => {
            let names = spec.field_names();
            Err(usage(format!(
                "--id-field {f:?} is not a field of the spider (use one of {}, url)",
                names.join(", ")
            )))
        }
        other => Ok(other),
    }
}

/// Validates the dedup flags and `--seen-key`/`--seen-ttl`: how items are
/// deduplicated, and the seen set that skips items earlier runs pushed.
fn check_seen(a: &ProduceArgs) -> Result<(Dedup, Option<SeenConfig>), Error> {
    let dedup = dedup(&a.dedup, a.dedup_capacity, a.dedup_error)?;
    if dedup != Dedup::Set && a.seen_ttl.is_some() {
        return Err(usage(
            "--seen-ttl needs --dedup set (a Bloom filter cannot forget)".into(),
        ));
    }
    if dedup != Dedup::Set && a.shared_frontier.is_none() && a.seen_key.is_none() {
        return Err(usage(
            "--dedup bloom applies to --shared-frontier and --seen-key: give one of them".into(),
        ));
    }
    let seen = match (a.seen_key.clone(), a.seen_ttl) {
        (None, Some(_)) => return Err(usage("--seen-ttl needs --seen-key".into())),
        (None, None) => None,
        (Some(key), _) if key.is_empty() => return Err(usage("--seen-key needs a name".into())),
        (Some(key), ttl) => Some(SeenConfig {
            key,
            ttl: ttl
                .map(|d| seconds(d * 86_400.0, "--seen-ttl"))
                .transpose()?,
            dedup: dedup.clone(),
        }),
    };
    Ok((dedup, seen))
}

/// The Redis writer, skipping items in `seen` or, with a shared frontier
/// and no `--seen-key`, in the frontier's own item set.
fn build_writer(
    a: &ProduceArgs,
    seen: Option<SeenConfig>,
    dedup: &Dedup,
) -> Result<WriterConfig, Error> {
    let mut writer = writer(
        a.redis.clone(),
        a.tls_ca.clone(),
        a.key.clone(),
        a.shards,
        (a.batch_size, a.batch_bytes),
        a.redis_retry_secs,
        a.spill_dir.clone(),
    )?;
    writer.seen = seen;
    if a.reset_frontier && a.shared_frontier.is_none() {
        return Err(usage("--reset-frontier needs --shared-frontier".into()));
    }
    if let (Some(name), None) = (&a.shared_frontier, &writer.seen) {
        // Producers on other machines see the same quote on other pages:
        // deduplicate items across all of them, atomically in Redis.
        writer.seen = Some(SeenConfig {
            key: crate::queue::keys::frontier_items(name),
            ttl: None,
            dedup: dedup.clone(),
        });
    }
    Ok(writer)
}

/// The HTTP client's settings: the timeouts, the body cap, and what every
/// request carries.
fn build_http(
    a: &ProduceArgs,
    user_agent: String,
    headers: Headers,
    proxies: Proxies,
) -> Result<HttpConfig, Error> {
    Ok(HttpConfig {
        connect_timeout: seconds(a.connect_timeout, "--connect-timeout")?,
        read_timeout: seconds(a.read_timeout, "--read-timeout")?,
        total_timeout: seconds(a.timeout, "--timeout")?,
        max_body: a.max_body,
        user_agent,
        headers,
        proxies,
        allow_private: a.allow_private,
        cache: cache_config(
            a.http_cache.as_deref(),
            &a.http_cache_mode,
            a.http_cache_expiry,
        )?,
    })
}

/// `--http-cache`, `--http-cache-mode` and `--http-cache-expiry`, checked.
pub fn cache_config(
    dir: Option<&str>,
    mode: &str,
    expiry: u64,
) -> Result<Option<CacheConfig>, Error> {
    let mode = Mode::parse(mode).map_err(usage)?;
    let Some(dir) = dir else {
        if mode != Mode::Use || expiry != 0 {
            return Err(usage(
                "--http-cache-mode and --http-cache-expiry need --http-cache DIR".into(),
            ));
        }
        return Ok(None);
    };
    if dir.is_empty() {
        return Err(usage("--http-cache needs a directory".into()));
    }
    if mode != Mode::Use && expiry != 0 {
        return Err(usage(format!(
            "--http-cache-expiry applies to --http-cache-mode use only ({} {}; drop one of the two)",
            mode.name(),
            if mode == Mode::Replay { "answers from every entry, however old" } else { "fetches everything again" }
        )));
    }
    if mode == Mode::Replay && !std::path::Path::new(dir).is_dir() {
        return Err(usage(format!(
            "--http-cache {dir} is not a directory (replay needs a cache filled by an earlier run with --http-cache-mode use)"
        )));
    }
    Ok(Some(CacheConfig {
        dir: dir.into(),
        mode,
        expiry: (expiry > 0).then(|| std::time::Duration::from_secs(expiry)),
    }))
}
