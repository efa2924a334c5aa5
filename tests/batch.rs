//! Cron-friendly runs: locks, time limits, incremental crawls, status, peek.

mod common;

use common::{eventually, qpipe, stats, wait_bounded, Args, Redis, Site, QPIPE};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn lock_holder(redis: &Redis, name: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(format!("qpipe:lock:{name}"))
        .query(&mut redis.con())
        .unwrap()
}

#[test]
fn a_second_run_with_the_same_lock_exits_4_at_once() {
    let redis = Redis::start();
    let site = Site::start(100_000);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let st = dir.path().join("a.json");
    let first = Args::produce(&url, &site.url)
        .opt("--lock", "nightly")
        .opt("--max-time", 2)
        .stats_json(&st)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually(
        "the first run to take the lock",
        Duration::from_secs(10),
        || lock_holder(&redis, "nightly").is_some(),
    );
    let started = Instant::now();
    let second = Args::produce(&url, &site.url)
        .opt("--lock", "nightly")
        .run_expect(None, 4);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the locked-out run waited"
    );
    assert_eq!(second.stderr.lines().count(), 1, "{second}");
    assert!(
        second
            .stderr
            .contains("another run holds the lock \"nightly\""),
        "{second}"
    );
    let out = wait_bounded(first, Duration::from_secs(30));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "max_time");
    assert_eq!(
        redis.llen(KEY),
        s["items_pushed"].as_u64().unwrap(),
        "only the first run pushed"
    );
    assert_eq!(
        lock_holder(&redis, "nightly"),
        None,
        "the lock was not released"
    );
}

#[test]
fn a_crashed_holders_lock_expires_after_its_ttl() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let mut holder = Args::consume(&url)
        .opt("--lock", "drain")
        .opt("--lock-ttl", 1)
        .out(&dir.path().join("o.jsonl"))
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    eventually("the lock", Duration::from_secs(10), || {
        lock_holder(&redis, "drain").is_some()
    });
    holder.kill().unwrap(); // SIGKILL: no release
    holder.wait().unwrap();
    let locked = Args::consume(&url).opt("--lock", "drain").drain(0.1);
    locked.run_expect(None, 4);
    eventually("the lock to expire", Duration::from_secs(5), || {
        lock_holder(&redis, "drain").is_none()
    });
    locked.run_expect(None, 0);
}

#[test]
fn max_time_ends_a_long_crawl_in_time_with_nothing_lost() {
    let redis = Redis::start();
    let site = Site::start(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let started = Instant::now();
    let run = Args::produce(&redis.url(), &site.url)
        .opt("--max-time", 1.5)
        .stats_json(&st)
        .run(None);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{run}");
    assert!(
        took < Duration::from_secs(6),
        "took {took:?} for --max-time 1.5"
    );
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "max_time");
    let pushed = s["items_pushed"].as_u64().unwrap();
    assert!(pushed > 0);
    assert_eq!(
        pushed + s["duplicates_dropped"].as_u64().unwrap(),
        s["items_extracted"].as_u64().unwrap()
    );
    assert_eq!(redis.llen(KEY), pushed);
}

#[test]
fn max_time_ends_a_consume_worker() {
    let redis = Redis::start();
    let run = Args::consume(&redis.url())
        .opt("--max-time", 0.5)
        .opt("--stats-json", "-")
        .run_expect(None, 0);
    let s: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(s["finish_reason"], "max_time");
}

#[test]
fn incremental_crawl_pushes_only_new_items() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = redis.url();
    let crawl = |pages: u64| {
        let site = Site::start(pages);
        Args::produce(&url, &site.url)
            .opt("--seen-key", "quotes:seen")
            .opt("--seen-ttl", 30)
            .stats_json(&st)
            .run_expect(None, 0);
        stats(&st)
    };
    // (items_pushed, seen_in_earlier_runs) of a crawl of `pages` pages.
    let crawl_counts = |pages: u64, pushed: u64, seen: u64| {
        let s = crawl(pages);
        assert_eq!(
            (
                s["items_pushed"].as_u64(),
                s["seen_in_earlier_runs"].as_u64()
            ),
            (Some(pushed), Some(seen)),
            "{s}"
        );
    };
    crawl_counts(20, 200, 0);
    crawl_counts(20, 0, 200);
    // The site grows by 5 pages: exactly their 50 quotes are new.
    crawl_counts(25, 50, 200);
    assert_eq!(redis.llen(KEY), 250);
    let seen: u64 = redis::cmd("ZCARD")
        .arg("quotes:seen")
        .query(&mut redis.con())
        .unwrap();
    assert_eq!(seen, 250);
    // The stats file is a history: one JSON line per run.
    assert_eq!(std::fs::read_to_string(&st).unwrap().lines().count(), 3);
}

#[test]
fn id_field_url_keeps_one_item_per_page() {
    let redis = Redis::start();
    let site = Site::start(5);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    Args::produce(&redis.url(), &site.url)
        .opt("--id-field", "url")
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(s["items_pushed"], s["pages_fetched"], "{s}");
    let bad = qpipe(
        &["produce", "--redis", &redis.url(), "--id-field", "nope"],
        None,
    );
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("--id-field \"nope\" is not a field of the spider (use one of quote, author, tags, url)"), "{bad}");
}

#[test]
fn fail_on_errors_sets_the_threshold_for_exit_3() {
    let redis = Redis::start();
    let site = Site::start(2);
    let missing = format!("{}page/999/", site.url);
    let url = redis.url();
    let base = Args::produce(&url, &site.url).start_url(&missing);
    base.clone().opt("--fail-on-errors", 2).run_expect(None, 0);
    base.clone().opt("--fail-on-errors", 0).run_expect(None, 0);
    base.run_expect(None, 3);
}

#[test]
fn status_json_reports_exact_numbers() {
    let redis = Redis::start();
    let url = redis.url();
    // 5 queued, 2 dead letters, a dead worker holding 3, a live worker holding 1, a live idle worker.
    redis.lpush(KEY, &["1", "2", "3", "4", "5"]);
    redis.lpush(&format!("{KEY}:dead"), &["{}", "{}"]);
    redis.lpush(&format!("{KEY}:processing:h:1:0"), &["a", "b", "c"]);
    redis.lpush(&format!("{KEY}:processing:h:2:0"), &["d"]);
    for c in ["h:2:0", "h:2:1"] {
        let heartbeat = format!("{KEY}:consumer:{c}");
        let _: () = redis.cmd(&["SET", &heartbeat, "t", "EX", "60"]);
    }
    let consumers = format!("{KEY}:consumers");
    let _: () = redis.cmd(&["SADD", &consumers, "h:1:0", "h:2:0", "h:2:1"]);
    let _: () = redis.cmd(&["ZADD", "seen", "1", "a", "1", "b"]);
    let _: () = redis.cmd(&["SET", "qpipe:lock:nightly", "box:42:t"]);
    let run = Args::new("status")
        .arg("--json")
        .redis(&url)
        .opt("--seen-key", "seen")
        .opt("--lock", "nightly")
        .run_expect(None, 0);
    let s: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    for (k, v) in [
        ("queue_length", 5),
        ("dead_letters", 2),
        ("live_consumers", 2),
        ("processing_lists", 2),
        ("processing_items", 4),
        ("orphaned_items", 3),
        ("seen_set_size", 2),
    ] {
        assert_eq!(s[k], v, "{k} in {s}");
    }
    assert_eq!(s["lock_holder"], "box:42:t");
    // Text form goes to stdout too.
    let run = qpipe(&["status", "--redis", &url], None);
    assert!(run.stdout.contains("queue_length      5"), "{run}");
}

#[test]
fn peek_shows_the_next_items_oldest_first_without_popping() {
    let redis = Redis::start();
    redis.lpush(KEY, &["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    let run = qpipe(&["peek", "2", "--redis", &redis.url()], None);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(run.stdout, "{\"n\":1}\n{\"n\":2}\n");
    assert_eq!(redis.llen(KEY), 3);
}

#[test]
fn progress_line_only_on_a_terminal_and_log_levels() {
    let redis = Redis::start();
    let site = Site::start(30);
    let url = redis.url();
    // Under script(1) stderr is a terminal: the progress line is drawn.
    let cmd = format!(
        "{QPIPE} produce --redis {url} --start-url {} --threads 1 --delay-ms 60 -q",
        site.url
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{tty}");
    assert!(
        tty.contains("\x1b[2K") && tty.contains(" pushed "),
        "no progress line:\n{tty}"
    );
    // Not a terminal: no progress line, and -q hides INFO/WARN but keeps the summary.
    redis::cmd("DEL")
        .arg(KEY)
        .query::<()>(&mut redis.con())
        .unwrap();
    let run = Args::produce(&url, &site.url).arg("-q").run_expect(None, 0);
    assert!(!run.stderr.contains("\x1b[2K"), "{run}");
    assert!(
        !run.stderr.contains(" INFO ") && !run.stderr.contains(" WARN "),
        "{run}"
    );
    assert!(run.stderr.contains("qpipe produce summary:"), "{run}");
    // -v logs each failed page with an RFC 3339 timestamp and a level.
    let missing = format!("{}page/999/", site.url);
    let run = Args::produce(&url, &missing).arg("-v").run_expect(None, 3);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("http_404"))
        .expect("a debug line");
    assert!(
        line.len() > 25 && &line[4..5] == "-" && &line[10..11] == "T" && line.contains("Z DEBUG "),
        "{line}"
    );
}
