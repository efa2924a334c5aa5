//! End to end: demo site -> qpipe produce -> redis-server -> qpipe consume -> file.

mod common;

use common::{jsonl, site_quotes, stats, Args, Redis, Site};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

const KEY: &str = "DATA-PIPELINE-KEY";

fn produce(redis: &Redis, site: &Site, dir: &std::path::Path, extra: &[&str]) -> Value {
    let stats_path = dir.join("produce-stats.json");
    Args::produce(&redis.url(), &site.url)
        .stats_json(&stats_path)
        .args(extra)
        .run_expect(Some(dir), 0);
    stats(&stats_path)
}

fn consume(redis: &Redis, dir: &std::path::Path, out: &str, extra: &[&str]) -> Value {
    let stats_path = dir.join("consume-stats.json");
    Args::consume(&redis.url())
        .drain(0.5)
        .opt("--out", out)
        .stats_json(&stats_path)
        .args(extra)
        .run_expect(Some(dir), 0);
    stats(&stats_path)
}

/// The (quote, author, tags) identity of an item, ignoring which page it came from.
fn identity(v: &Value) -> String {
    format!("{}|{}|{}", v["quote"], v["author"], v["tags"])
}

#[test]
fn produce_then_consume_delivers_every_unique_quote_exactly_once() {
    let redis = Redis::start();
    let site = Site::start(1000);
    let dir = tempfile::tempdir().unwrap();
    let ps = produce(&redis, &site, dir.path(), &["--threads", "8"]);
    assert_eq!(ps["items_pushed"], 10_000, "{ps}");
    assert_eq!(ps["finish_reason"], "finished");
    assert_eq!(ps["pages_failed"], 0);
    // Tag pages repeat quotes from /page/N/: every repeat is dropped, not pushed.
    let extracted = ps["items_extracted"].as_u64().unwrap();
    assert!(extracted > 10_000, "tag pages should repeat quotes: {ps}");
    assert_eq!(
        ps["duplicates_dropped"].as_u64().unwrap(),
        extracted - 10_000
    );
    assert_eq!(redis.llen(KEY), 10_000);

    let out = dir.path().join("out.jsonl");
    let cs = consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &["--threads", "4"],
    );
    assert_eq!(cs["items_written"], 10_000, "{cs}");
    assert_eq!(cs["finish_reason"], "drained");
    assert_eq!(redis.llen(KEY), 0);

    let lines = jsonl(&out);
    assert_eq!(lines.len(), 10_000);
    let got: Vec<String> = lines
        .iter()
        .map(|v| v["quote"].as_str().unwrap().to_string())
        .collect();
    let got_set: BTreeSet<&String> = got.iter().collect();
    assert_eq!(got_set.len(), 10_000, "a quote reached the sink twice");
    let want = site_quotes(&site, 1000);
    assert_eq!(got_set, want.iter().collect::<BTreeSet<_>>());
    // Wire format: the Python project's field name first, then the rest.
    let keys: Vec<&String> = lines[0].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["quote", "author", "tags", "url"]);
}

#[test]
fn one_thread_and_eight_threads_produce_the_same_items() {
    let site = Site::start(60);
    let mut sets = Vec::new();
    for threads in ["1", "8"] {
        let redis = Redis::start();
        let dir = tempfile::tempdir().unwrap();
        let ps = produce(&redis, &site, dir.path(), &["--threads", threads]);
        assert_eq!(ps["items_pushed"], 600, "{ps}");
        let items: HashSet<String> = redis
            .lrange(KEY)
            .iter()
            .map(|s| identity(&serde_json::from_str(s).unwrap()))
            .collect();
        assert_eq!(items.len(), 600);
        sets.push(items);
    }
    assert_eq!(sets[0], sets[1]);
}

#[test]
fn consume_is_fifo() {
    let redis = Redis::start();
    let site = Site::start(20);
    let dir = tempfile::tempdir().unwrap();
    produce(&redis, &site, dir.path(), &["--threads", "4"]);
    // LPUSH adds at the head, so the oldest item is at the tail.
    let mut oldest_first = redis.lrange(KEY);
    oldest_first.reverse();
    assert_eq!(oldest_first.len(), 200);
    let out = dir.path().join("out.jsonl");
    consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &["--threads", "1", "--batch-size", "7"],
    );
    assert_eq!(common::lines(&out), oldest_first);
}

#[test]
fn byte_bounded_pops_keep_fifo_and_lose_nothing() {
    // Small items, then large ones: a pop sized by the small ones takes a
    // run that crosses --batch-bytes, and the surplus must go back in order.
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let oldest_first: Vec<String> = (0..300)
        .map(|i| {
            let pad = if i % 100 < 60 { 1 } else { 400 };
            format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(pad))
        })
        .collect();
    redis.lpush(KEY, &oldest_first);
    let out = dir.path().join("out.jsonl");
    let st = consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &[
            "--threads",
            "1",
            "--batch-size",
            "50",
            "--batch-bytes",
            "1000",
        ],
    );
    assert_eq!(st["items_written"], 300);
    assert_eq!(common::lines(&out), oldest_first);
    assert!(redis.lrange(KEY).is_empty());
}

/// Drains `items` with one thread at `--batch-bytes bytes` and returns how
/// many items each follow-up `RPOP key count` asked for, read from Redis's
/// own SLOWLOG (every command logged), oldest first.
fn rpop_counts(items: &[String], bytes: &str) -> Vec<u64> {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    redis.lpush(KEY, items);
    let _: () = redis.cmd(&["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    let _: () = redis.cmd(&["CONFIG", "SET", "slowlog-max-len", "100000"]);
    let out = dir.path().join("out.jsonl");
    let st = consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &[
            "--threads",
            "1",
            "--batch-size",
            "500",
            "--batch-bytes",
            bytes,
        ],
    );
    assert_eq!(st["items_written"], items.len() as u64);
    assert_eq!(common::lines(&out), items);
    let log: Vec<redis::Value> = redis.cmd(&["SLOWLOG", "GET", "100000"]);
    let mut counts: Vec<u64> = log
        .iter()
        .filter_map(|entry| {
            let redis::Value::Array(fields) = entry else {
                return None;
            };
            let redis::Value::Array(args) = &fields[3] else {
                return None;
            };
            let word = |i: usize| match args.get(i) {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            (word(0).eq_ignore_ascii_case("rpop") && word(1) == KEY)
                .then(|| word(2).parse().unwrap())
        })
        .collect();
    counts.reverse();
    counts
}

#[test]
fn pops_keep_to_batch_bytes_and_overshoot_only_on_larger_items() {
    // Items of 999 bytes at --batch-bytes 10000: after BRPOP's item, each
    // pop asks for the 9 that fit (10 items, 9,990 bytes), never more.
    let same: Vec<String> = (0..300)
        .map(|i| format!("{{\"n\":\"{i:03}\",\"p\":\"{}\"}}", "x".repeat(981)))
        .collect();
    assert!(same.iter().all(|s| s.len() == 999));
    let counts = rpop_counts(&same, "10000");
    assert_eq!(counts.len(), 30, "{counts:?}");
    assert!(counts.iter().all(|&n| n == 9), "{counts:?}");

    // One 99-byte item, then 200 of 999: the first round is sized by the
    // small item (100 fit at 99 bytes) and overshoots, by that one round;
    // every later pop is sized by the large items and keeps to the bound.
    let mut mixed = vec![format!("{{\"p\":\"{}\"}}", "y".repeat(91))];
    assert_eq!(mixed[0].len(), 99);
    mixed.extend(same[..200].iter().cloned());
    let counts = rpop_counts(&mixed, "10000");
    assert_eq!(counts[0], 100, "{counts:?}");
    assert_eq!(counts[1..], [9; 10], "{counts:?}");
}

#[test]
fn max_pages_is_honoured() {
    let redis = Redis::start();
    let site = Site::start(50);
    let dir = tempfile::tempdir().unwrap();
    let ps = produce(
        &redis,
        &site,
        dir.path(),
        &["--threads", "4", "--max-pages", "5"],
    );
    assert_eq!(ps["pages_fetched"], 5, "{ps}");
    assert_eq!(ps["finish_reason"], "max_pages");
    assert_eq!(redis.llen(KEY), ps["items_pushed"].as_u64().unwrap());
    assert!(ps["items_pushed"].as_u64().unwrap() <= 50);
}

#[test]
fn max_items_stops_consume_and_leaves_the_rest() {
    let redis = Redis::start();
    let site = Site::start(10);
    let dir = tempfile::tempdir().unwrap();
    produce(&redis, &site, dir.path(), &[]);
    let out = dir.path().join("out.jsonl");
    let cs = consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &["--threads", "4", "--max-items", "15"],
    );
    assert_eq!(cs["items_written"], 15, "{cs}");
    assert_eq!(cs["finish_reason"], "max_items");
    assert_eq!(jsonl(&out).len(), 15);
    assert_eq!(redis.llen(KEY), 85);
}

#[test]
fn consume_to_stdout_writes_items_and_summary_goes_to_stderr() {
    let redis = Redis::start();
    let site = Site::start(2);
    let dir = tempfile::tempdir().unwrap();
    produce(&redis, &site, dir.path(), &[]);
    let run = Args::consume(&redis.url())
        .drain(0.3)
        .run_expect(Some(dir.path()), 0);
    assert_eq!(run.stdout.lines().count(), 20, "{run}");
    assert!(
        run.stdout.lines().all(|l| l.starts_with("{\"quote\":")),
        "{run}"
    );
    assert!(run.stderr.contains("items_written            20"), "{run}");
}

/// Batching must not add latency: a lone item written while the writer idles
/// reaches Redis at once (generous bound; the benchmark measures speed).
#[test]
fn a_lone_item_reaches_redis_without_waiting_for_a_batch() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    let redis = Redis::start();
    let mut child = Args::new("push").redis(&redis.url()).spawn_with_stdin(None);
    let mut stdin = child.stdin.take().unwrap();
    // Connected (a client besides this query's own) and idle.
    common::eventually("push to connect", Duration::from_secs(10), || {
        let list: String = redis.cmd(&["CLIENT", "LIST"]);
        list.lines().any(|l| !l.contains("cmd=client"))
    });
    for n in 1..=3u64 {
        stdin
            .write_all(format!("{{\"n\":{n}}}\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        let sent = Instant::now();
        while redis.llen(KEY) < n {
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "item {n} never arrived"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let took = sent.elapsed();
        assert!(
            took < Duration::from_millis(250),
            "item {n} took {took:?} to reach Redis"
        );
        // Not a readiness wait: the writer must sit idle again, so the next
        // item arrives at an idle writer, the case under test.
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(stdin);
    let out = common::wait_bounded(child, Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the original Scrapy spider pushed (Python's json.dumps: spaces,
/// \u escapes) is drained unchanged, oldest first.
#[test]
fn drains_what_the_python_spider_pushed_byte_for_byte() {
    let redis = Redis::start();
    let python_items = [
        r#"{"quote": "\u201cThe world as we have created it is a process of our thinking.\u201d", "author": "Albert Einstein", "tags": ["change", "deep-thoughts"]}"#,
        r#"{"quote": "\u201cIt is our choices, Harry.\u201d", "author": "J.K. Rowling", "tags": []}"#,
    ];
    // The spider did one LPUSH per item, in crawl order.
    for item in python_items {
        redis.lpush(KEY, &[item]);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    consume(
        &redis,
        dir.path(),
        out.to_str().unwrap(),
        &["--threads", "1"],
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("{}\n{}\n", python_items[0], python_items[1])
    );
}
