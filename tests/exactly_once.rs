//! Exactly-once into a file across a restart: `consume --reliable --out F`
//! records each commit's batches in `F.qpipe-commits` before acknowledging
//! them, and a consumer restarted on F acknowledges what is already in it
//! instead of writing it again.

mod common;

use common::proxy::Proxy;
use common::{lines, numbered, signal, stats, wait_bounded, Args, Redis};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn wait_for_heartbeats_to_expire(redis: &Redis) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !redis
        .cmd::<Vec<String>>(&["KEYS", &format!("{KEY}:consumer:*")])
        .is_empty()
    {
        assert!(Instant::now() < deadline, "heartbeats never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `consume --reliable --out out` to the end on `url`; its summary.
fn restart(url: &str, out: &std::path::Path, st: &std::path::Path) -> serde_json::Value {
    Args::consume(url)
        .arg("--reliable")
        .drain(0.5)
        .out(out)
        .stats_json(st)
        .run_expect(None, 0);
    stats(st)
}

#[test]
fn an_ack_that_never_reached_redis_is_not_written_again_after_a_restart() {
    let redis = Redis::start_tcp_with(&[]);
    let items = numbered(5_000, 10);
    redis.lpush(KEY, &items);
    let proxy = Proxy::start(&redis);
    // The acknowledgement script's connection is held: Redis never runs it.
    proxy.hang_where("return #KEYS - 1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = Args::consume(&proxy.url())
        .arg("--reliable")
        .opt("--heartbeat-ttl", 2)
        .threads(2)
        .batch_size(50)
        .out(&out)
        .spawn(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&out).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Its ack is stuck; the batches it wrote are still held in Redis.
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-KILL");
    let _ = wait_bounded(child, Duration::from_secs(10));
    let written = lines(&out).len();
    assert!(written > 0 && written < 5_000, "{written}");
    wait_for_heartbeats_to_expire(&redis);
    let st = dir.path().join("st.json");
    let s = restart(&redis.url(), &out, &st);
    let all = lines(&out);
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (5_000, 5_000), "{s}");
    assert_eq!(distinct, items.iter().collect::<HashSet<_>>());
    assert_eq!(
        redis.keys_left(),
        Vec::<String>::new(),
        "left behind (the fleet's counts, KEY:stats, are kept)"
    );
}

#[test]
fn kill_9_at_any_moment_then_a_restart_writes_every_item_once() {
    for round in 0..3u64 {
        let redis = Redis::start();
        let items = numbered(30_000, 10);
        redis.lpush(KEY, &items);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let child = Args::consume(&redis.url())
            .arg("--reliable")
            .opt("--heartbeat-ttl", 2)
            .threads(4)
            .batch_size(5)
            .out(&out)
            .spawn(None);
        // A different moment each round: after the first write, plus 0, 40
        // or 80 ms.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "nothing was written");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(40 * round));
        signal(&child, "-KILL");
        let _ = wait_bounded(child, Duration::from_secs(10));
        wait_for_heartbeats_to_expire(&redis);
        let st = dir.path().join("st.json");
        let s = restart(&redis.url(), &out, &st);
        let all = lines(&out);
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(
            (all.len(), distinct.len()),
            (30_000, 30_000),
            "round {round}: {s}"
        );
    }
}

#[test]
fn without_the_commit_log_the_same_restart_is_at_least_once() {
    // The log deleted before the restart (an operator starting over): the
    // held batches come back whole, so the ones already written repeat.
    let redis = Redis::start_tcp_with(&[]);
    let items = numbered(2_000, 10);
    redis.lpush(KEY, &items);
    let proxy = Proxy::start(&redis);
    proxy.hang_where("return #KEYS - 1");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = Args::consume(&proxy.url())
        .arg("--reliable")
        .opt("--heartbeat-ttl", 2)
        .threads(1)
        .batch_size(50)
        .out(&out)
        .spawn(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(&out).is_empty() {
        assert!(Instant::now() < deadline, "nothing was written");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "-KILL");
    let _ = wait_bounded(child, Duration::from_secs(10));
    let written = lines(&out).len();
    std::fs::remove_file(dir.path().join("out.jsonl.qpipe-commits")).unwrap();
    wait_for_heartbeats_to_expire(&redis);
    let st = dir.path().join("st.json");
    restart(&redis.url(), &out, &st);
    let all = lines(&out);
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 2_000);
    assert_eq!(all.len(), 2_000 + written, "the written batches repeat");
}

/// Waits until `out` has `n` lines.
fn wait_lines(out: &std::path::Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines(out).len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} lines",
            lines(out).len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_second_consumer_on_the_same_file_exits_4_and_touches_nothing() {
    let redis = Redis::start();
    redis.lpush(KEY, &numbered(1_000, 10));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let first = Args::consume(&redis.url())
        .arg("--reliable")
        .threads(2)
        .out(&out)
        .spawn(None);
    wait_lines(&out, 1_000);
    let before = std::fs::read(&out).unwrap();
    // A second worker on the same file, reliable or not, is refused at
    // once: it would cut, settle or interleave the first one's writes.
    for reliable in [true, false] {
        let run = Args::consume(&redis.url())
            .arg_if(reliable, "--reliable")
            .drain(0.5)
            .out(&out)
            .run_expect(None, 4);
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
        assert!(
            run.stderr.contains("another qpipe consume is writing")
                && run.stderr.contains("give each its own --out"),
            "{run}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), before);
    }
    // The first one goes on, alone.
    let more: Vec<String> = (1_000..1_500)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"xxxxxxxxxx\"}}"))
        .collect();
    redis.lpush(KEY, &more);
    wait_lines(&out, 1_500);
    signal(&first, "-TERM");
    let done = wait_bounded(first, Duration::from_secs(15));
    assert_eq!(done.status.code(), Some(0));
    let all = lines(&out);
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (1_500, 1_500));
}

#[test]
fn a_run_that_keeps_no_log_deletes_the_one_it_found() {
    // reliable run, then a BRPOP run appending to the same file, then a
    // reliable run again: the third must not cut what the second wrote
    // back to the first one's last record.
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let log = dir.path().join("out.jsonl.qpipe-commits");
    let all: Vec<String> = numbered(1_800, 10);
    redis.lpush(KEY, &all[..1_000]);
    Args::consume(&redis.url())
        .arg("--reliable")
        .drain(0.3)
        .out(&out)
        .run_expect(None, 0);
    assert!(log.exists());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "a clean exit leaves one record"
    );
    redis.lpush(KEY, &all[1_000..1_500]);
    Args::consume(&redis.url())
        .drain(0.3)
        .out(&out)
        .run_expect(None, 0);
    assert!(!log.exists(), "a BRPOP run keeps no log");
    redis.lpush(KEY, &all[1_500..]);
    Args::consume(&redis.url())
        .arg("--reliable")
        .drain(0.3)
        .out(&out)
        .run_expect(None, 0);
    let got = lines(&out);
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!((got.len(), distinct.len()), (1_800, 1_800));
    assert_eq!(distinct, all.iter().collect::<HashSet<_>>());
}
