//! `--dedup bloom`: Bloom filters in Redis for seen URLs and items. No false
//! negatives and a false-positive rate near P (through `qpipe bench`, which
//! runs the crawl's own check-and-add Lua), parameters that must match, a
//! shared crawl that fetches every page once, and lost replies.

mod common;

use common::cluster::Cluster;
use common::proxy::Proxy;
use common::{qpipe, stats, Args, Redis, Site};
use std::collections::HashSet;
use std::path::Path;

const KEY: &str = "DATA-PIPELINE-KEY";
/// A filter so sparse for these tests' few hundred URLs that a false
/// positive (a page wrongly skipped) has odds below 1e-12.
const BLOOM: [&str; 6] = [
    "--dedup",
    "bloom",
    "--dedup-capacity",
    "10000",
    "--dedup-error",
    "0.000001",
];

fn bench(redis: &Redis, extra: &[&str]) -> serde_json::Value {
    let url = redis.url();
    let mut args = vec!["bench", "dedup", "--redis", &url, "--key", "fp"];
    args.extend_from_slice(&["--dedup", "bloom", "--dedup-capacity", "20000"]);
    args.extend_from_slice(&["--dedup-error", "0.01"]);
    args.extend_from_slice(extra);
    let run = qpipe(&args, None);
    assert_eq!(run.code, 0, "{run}");
    serde_json::from_str(run.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {run}"))
}

#[test]
fn a_bloom_filter_has_no_false_negatives_and_about_p_false_positives() {
    let redis = Redis::start();
    let added = bench(&redis, &["--count", "20000"]);
    // The bits Rust computes for a fingerprint are the bits the Lua set.
    assert_eq!(added["bits_unset"], 0, "{added}");
    assert_eq!(added["bits_checked"], 1000 * 7, "{added}");
    let present = bench(&redis, &["--count", "20000", "--probe"]);
    assert_eq!(present["present"], 20_000, "a false negative: {present}");
    // 20,000 fingerprints never added: P = 0.01 expects 200 false positives.
    let fresh = bench(
        &redis,
        &["--count", "20000", "--from", "1000000", "--probe"],
    );
    let fp = fresh["present"].as_u64().unwrap();
    assert!(
        (200 / 3..=200 * 3).contains(&fp),
        "{fp} false positives in 20,000, expected about 200: {fresh}"
    );
    // A filter at capacity costs about 1.2 bytes per fingerprint at P = 0.01.
    assert!(
        added["bytes_per_fingerprint"].as_f64().unwrap() < 1.3,
        "{added}"
    );
}

fn produce(redis_url: &str, site: &Site, name: &str, st: &Path, extra: &[&str]) -> common::Run {
    Args::produce(redis_url, &site.url)
        .opt("--shared-frontier", name)
        .threads(2)
        .stats_json(st)
        .args(extra)
        .run(None)
}

#[test]
fn a_filter_made_with_other_parameters_or_the_other_kind_is_refused() {
    let site = Site::start(3);
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = redis.url();
    let small = ["--dedup", "bloom", "--dedup-capacity", "1000"];
    let run = produce(&url, &site, "p", &st, &small);
    assert_eq!(run.code, 0, "{run}");
    let other = ["--dedup", "bloom", "--dedup-capacity", "2000"];
    let run = produce(&url, &site, "p", &st, &other);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run}");
    assert!(
        run.stderr.contains(
            "was made with --dedup-capacity 1000 --dedup-error 0.000001, not 2000 and 0.000001"
        ),
        "{run}"
    );
    let run = produce(&url, &site, "p", &st, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr
            .contains("is a Bloom filter: run with --dedup bloom --dedup-capacity 1000"),
        "{run}"
    );
    // A crawl started with sets refuses a filter: it would fetch everything again.
    let run = produce(&url, &site, "q", &st, &[]);
    assert_eq!(run.code, 0, "{run}");
    let run = produce(&url, &site, "q", &st, &small);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("made with --dedup set"), "{run}");
    // Flags that make no sense together are refused before Redis is asked.
    for bad in [
        &["--dedup-capacity", "5"][..],
        &["--dedup", "bloom", "--seen-key", "k", "--seen-ttl", "1"][..],
        &["--dedup", "bloom", "--dedup-error", "1.5"][..],
        &["--dedup", "cuckoo"][..],
    ] {
        let run = produce(&url, &site, "r", &st, bad);
        assert_eq!(run.code, 2, "{run}");
    }
}

#[test]
fn a_filter_that_does_not_fit_in_maxmemory_is_refused_at_start() {
    let site = Site::start(3);
    let redis = Redis::start_with(&["--maxmemory", "20mb"]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    // The default capacity takes 36 MB per filter.
    let run = produce(&redis.url(), &site, "m", &st, &["--dedup", "bloom"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("past its maxmemory"), "{run}");
    let keys: Vec<String> = redis.cmd(&["KEYS", "*"]);
    assert!(keys.is_empty(), "nothing was created: {keys:?}");
    let run = produce(&redis.url(), &site, "m", &st, &BLOOM);
    assert_eq!(run.code, 0, "{run}");
}

/// Pages a one-process crawl of `site` fetches (the reference).
fn reference_pages(site: &Site, dir: &Path) -> u64 {
    let redis = Redis::start();
    let st = dir.join("ref.json");
    Args::produce(&redis.url(), &site.url)
        .stats_json(&st)
        .run_expect(None, 0);
    stats(&st)["pages_fetched"].as_u64().unwrap()
}

fn distinct_quotes(redis: &Redis) -> (usize, usize) {
    let all = redis.lrange(KEY);
    let quotes: HashSet<String> = all
        .iter()
        .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap()["quote"].to_string())
        .collect();
    (all.len(), quotes.len())
}

#[test]
fn two_producers_with_bloom_dedup_fetch_each_page_once() {
    let site = Site::start(100);
    let dir = tempfile::tempdir().unwrap();
    let pages = reference_pages(&site, dir.path());
    let redis = Redis::start();
    let url = redis.url();
    let st: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("{i}.json")))
        .collect();
    let runs: Vec<common::Run> = std::thread::scope(|s| {
        let handles: Vec<_> = st
            .iter()
            .map(|p| s.spawn(|| produce(&url, &site, "b", p, &BLOOM)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code, 0, "{run}");
    }
    let fetched: u64 = st
        .iter()
        .map(|p| stats(p)["pages_fetched"].as_u64().unwrap())
        .sum();
    assert_eq!(fetched, pages, "pages fetched across producers");
    assert_eq!(
        distinct_quotes(&redis),
        (1000, 1000),
        "exactly the site's quotes"
    );
    let count: u64 = redis.cmd(&["HGET", "{b}:seen:bloom", "count"]);
    assert_eq!(count, pages, "every page's URL was added once");
    let count: u64 = redis.cmd(&["HGET", "{b}:items:bloom", "count"]);
    assert_eq!(count, 1000);
    assert_eq!(redis.llen("{b}:frontier"), 0);
    // --reset-frontier deletes the filters too: the crawl starts again.
    let again = dir.path().join("again.json");
    let run = produce(
        &url,
        &site,
        "b",
        &again,
        &[&BLOOM[..], &["--reset-frontier"]].concat(),
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(stats(&again)["pages_fetched"].as_u64().unwrap(), pages);
    assert_eq!(stats(&again)["items_pushed"], 1000);
}

#[test]
fn lost_replies_to_the_bloom_scripts_lose_and_repeat_nothing() {
    let site = Site::start(50);
    let dir = tempfile::tempdir().unwrap();
    let pages = reference_pages(&site, dir.path());
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    // A page's completion (check-and-add of its links, and their push) runs
    // on Redis, and its reply is lost; so does one batch of items.
    proxy.cut("verdicts", 3, 1);
    proxy.cut("unpack(new", 1, 1);
    let st = dir.path().join("s.json");
    let run = produce(&proxy.url(), &site, "l", &st, &BLOOM);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(proxy.cuts(), 2, "the faults were not injected: {run}");
    let s = stats(&st);
    assert_eq!(s["pages_fetched"].as_u64().unwrap(), pages, "{s}");
    assert_eq!(s["redis_retries_already_landed"], 1, "{s}");
    assert_eq!(distinct_quotes(&redis), (500, 500), "{s}");
    assert_eq!(redis.llen("{l}:frontier"), 0);
}

#[test]
fn bloom_filters_work_on_a_redis_cluster_with_shards() {
    let cluster = Cluster::start(3, 0, &[]);
    let site = Site::start(30);
    let dir = tempfile::tempdir().unwrap();
    let pages = reference_pages(&site, dir.path());
    let url = format!("redis+cluster://127.0.0.1:{}", cluster.ports[0]);
    let st = dir.path().join("s.json");
    let shards = [&BLOOM[..], &["--shards", "3"]].concat();
    // Every script names the filter's keys, all under one hash tag: a key
    // in another slot would fail with CROSSSLOT.
    let run = produce(&url, &site, "cl", &st, &shards);
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(s["pages_fetched"].as_u64().unwrap(), pages, "{s}");
    assert_eq!(s["items_pushed"], 300, "{s}");
    assert_eq!(s["urls_seen"].as_u64().unwrap(), pages, "{s}");
    // A second run finds the crawl done and every item seen.
    let run = produce(&url, &site, "cl", &st, &shards);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(stats(&st)["pages_fetched"], 0);
}
