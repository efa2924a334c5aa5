//! Crawl-job helpers: a fixture site of page chains, and the job worker's command line.

use super::fixture::{html, Answer, Fixture};
use super::{eventually, Args, Redis, Run};
use std::path::Path;
use std::process::Child;
use std::time::Duration;

pub const KEY: &str = "DATA-PIPELINE-KEY";
pub const JOBS: &str = "qpipe:jobs";

/// Chains of pages: `/NAME/K` (K = 1..=len) holds two quotes, `NAMEK one`
/// and `NAMEK two`, and links to `/NAME/K+1`; each answer waits `delay`.
pub fn chains(len: u32, delay: Duration) -> Fixture {
    Fixture::start(move |path, _| {
        let mut parts = path.trim_matches('/').split('/');
        let name = parts.next().unwrap_or("").to_string();
        let Some(k) = parts.next().and_then(|k| k.parse::<u32>().ok()) else {
            return Answer::Full(404, Vec::new(), Vec::new());
        };
        std::thread::sleep(delay);
        let next = match k < len {
            true => format!(
                r#"<li class="next"><a href="/{name}/{}">next</a></li>"#,
                k + 1
            ),
            false => String::new(),
        };
        let quote = |which: &str| {
            format!(
                r#"<div class="quote"><span class="text">{name}{k} {which}</span><small class="author">A</small></div>"#
            )
        };
        html(&format!("{}{}<ul>{next}</ul>", quote("one"), quote("two")))
    })
}

/// The quotes of pages `from..=to` of chain `name`, in page order.
pub fn chain_quotes(name: &str, from: u32, to: u32) -> Vec<String> {
    (from..=to)
        .flat_map(|k| [format!("{name}{k} one"), format!("{name}{k} two")])
        .collect()
}

/// `produce --jobs` against `redis`, with `extra` flags. The jobs point at
/// test servers on loopback, so the worker runs with `--allow-private`.
pub fn produce(url: &str, st: &Path, extra: &[&str]) -> Args {
    Args::new("produce")
        .redis(url)
        .opt("--jobs", JOBS)
        .arg("--allow-private")
        .arg("--ignore-robots")
        // Jobs put back go straight to the list, as these tests check
        // (tests/job_retries.rs covers the retry delay).
        .opt("--job-backoff", 0)
        .threads(2)
        .stats_json(st)
        .args(extra)
}

/// `qpipe enqueue --redis URL JOB...`, run to the end.
pub fn enqueue(url: &str, jobs: &[&str]) -> Run {
    Args::new("enqueue").redis(url).args(jobs).run(None)
}

/// The items in the list, oldest first, as raw strings.
pub fn items(redis: &Redis) -> Vec<String> {
    let mut all = redis.lrange(KEY);
    all.reverse();
    all
}

pub fn quote_of(item: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(item).unwrap();
    v["quote"].as_str().unwrap().to_string()
}

/// Every key of the job list but the list itself.
pub fn leftovers(redis: &Redis) -> Vec<String> {
    let mut keys: Vec<String> = redis.cmd(&["KEYS", &format!("{JOBS}:*")]);
    keys.sort();
    keys
}

/// Starts a worker on slow chain pages and waits until it has pushed the
/// first page of its job.
pub fn slow_worker(url: &str, st: &Path, extra: &[&str], redis: &Redis) -> Child {
    let child = produce(url, st, extra).spawn(None);
    eventually("the job's first items", Duration::from_secs(20), || {
        redis.llen(KEY) >= 2
    });
    child
}
