//! Shutdown and outages: SIGTERM mid-run, Redis dying or restarting mid-crawl.

mod common;

use common::{eventually, finish, jsonl, lines, signal, stats, wait_for_lines, Args, Redis, Site};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

const KEY: &str = "DATA-PIPELINE-KEY";

/// Waits until the producer has pushed something: it is crawling.
fn wait_pushing(redis: &Redis) {
    eventually("the first items in Redis", Duration::from_secs(20), || {
        redis.llen(KEY) > 0
    });
}

/// Starts `produce` from `site` into `redis` with 2 threads, in `dir`, its
/// stats in `dir/s.json` (returned), `extra` flags last; returns once it is
/// pushing.
fn start_crawl(redis: &Redis, site: &Site, dir: &Path, extra: &[&str]) -> (Child, PathBuf) {
    let st = dir.join("s.json");
    let child = Args::produce(&redis.url(), &site.url)
        .threads(2)
        .stats_json(&st)
        .args(extra)
        .spawn(Some(dir));
    wait_pushing(redis);
    (child, st)
}

#[test]
fn sigterm_to_produce_pushes_everything_extracted_and_exits_143() {
    let redis = Redis::start();
    let site = Site::start(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (child, st) = start_crawl(&redis, &site, dir.path(), &[]);
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 143, "{stderr}");
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "shutdown", "{s}");
    let pushed = s["items_pushed"].as_u64().unwrap();
    assert!(pushed > 0 && pushed < 1_000_000, "{s}");
    let extracted = s["items_extracted"].as_u64().unwrap();
    assert_eq!(
        pushed + s["duplicates_dropped"].as_u64().unwrap(),
        extracted,
        "{s}"
    );
    assert_eq!(redis.llen(KEY), pushed);
}

#[test]
fn sigterm_to_consume_writes_everything_popped() {
    let redis = Redis::start();
    let items: Vec<String> = (0..20_000)
        .map(|i| format!("{{\"quote\":\"q{i}\"}}"))
        .collect();
    redis.lpush(KEY, &items);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    // A slow sink (fsync per batch, tiny batches) so the signal lands mid-drain.
    let child = Args::consume(&url)
        .threads(4)
        .batch_size(3)
        .out(&out)
        .spawn(Some(dir.path()));
    eventually("the first written items", Duration::from_secs(20), || {
        !lines(&out).is_empty()
    });
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    // Without --drain a signal is the normal stop: exit 0.
    assert_eq!(code, 0, "{stderr}");
    let written = jsonl(&out).len() as u64;
    let left = redis.llen(KEY);
    assert!(written > 0, "{stderr}");
    assert_eq!(
        written + left,
        20_000,
        "popped items went missing\n{stderr}"
    );
}

#[test]
fn second_sigint_exits_at_once_with_130() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    // A worker blocked in BRPOP on an empty list.
    let child = Args::consume(&url).drain(30).spawn(Some(dir.path()));
    eventually(
        "the worker blocked in BRPOP",
        Duration::from_secs(20),
        || {
            redis
                .cmd::<String>(&["CLIENT", "LIST"])
                .contains("cmd=brpop")
        },
    );
    signal(&child, "-INT");
    // Not a readiness wait: standard signals do not queue, so a second INT
    // sent before the first is delivered would merge with it.
    std::thread::sleep(Duration::from_millis(50));
    signal(&child, "-INT");
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
}

#[test]
fn redis_down_for_good_spills_every_unsent_item() {
    let mut redis = Redis::start();
    let site = Site::start(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (child, st) = start_crawl(&redis, &site, dir.path(), &["--redis-retry-secs", "1"]);
    redis.kill();
    let (code, stderr) = finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unsent items saved to"), "{stderr}");
    assert!(
        stderr.lines().last().unwrap().starts_with(
            "qpipe: gave up trying to push a batch after 1s: Redis stayed unreachable"
        ),
        "{stderr}"
    );
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "redis_unavailable", "{s}");
    let spill = s["spill_file"].as_str().unwrap();
    let spilled = jsonl(&dir.path().join(spill)).len() as u64;
    assert_eq!(spilled, s["items_spilled"].as_u64().unwrap());
    assert!(spilled > 0, "{s}");
    let unique = s["items_extracted"].as_u64().unwrap() - s["duplicates_dropped"].as_u64().unwrap();
    assert_eq!(s["items_pushed"].as_u64().unwrap() + spilled, unique, "{s}");
}

#[test]
fn redis_restart_mid_crawl_loses_nothing() {
    let mut redis = Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let site = Site::start(1000);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let (child, st) = start_crawl(&redis, &site, dir.path(), &[]);
    redis.kill();
    // Not a readiness wait: the outage lasts a while, so the producer's
    // pushes and frontier calls fail and have to be retried.
    std::thread::sleep(Duration::from_millis(300));
    redis.restart();
    let (code, stderr) = finish(child);
    let len: u64 = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .and_then(|mut c| redis::cmd("LLEN").arg(KEY).query(&mut c))
        .unwrap();
    assert_eq!(code, 0, "{stderr}");
    let s = stats(&st);
    assert!(
        s["redis_retries"].as_u64().unwrap() > 0,
        "the restart went unnoticed: {s}"
    );
    assert_eq!(s["items_pushed"], 10_000, "{s}");
    assert_eq!(len, 10_000, "{s}");
}

#[test]
fn consumer_survives_a_redis_restart() {
    let mut redis = Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = redis.url();
    let first: Vec<String> = (0..500).map(|i| format!("{{\"n\":{i}}}")).collect();
    redis.lpush(KEY, &first);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = Args::consume(&url)
        .threads(2)
        .out(&out)
        .spawn(Some(dir.path()));
    wait_for_lines(&out, 500, Duration::from_secs(20));
    redis.kill();
    // Not a readiness wait: the outage lasts a while, so the consumer's
    // BRPOPs fail and it has to reconnect.
    std::thread::sleep(Duration::from_millis(500));
    redis.restart();
    let second: Vec<String> = (500..1000).map(|i| format!("{{\"n\":{i}}}")).collect();
    redis.lpush(KEY, &second);
    wait_for_lines(&out, 1000, Duration::from_secs(20));
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("answers again after"), "{stderr}");
    let got: std::collections::HashSet<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(got.len(), 1000);
}
