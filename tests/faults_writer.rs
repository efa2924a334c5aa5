//! The writer, the sink and the lock under faults: SIGTERM during an outage,
//! a replica or a full Redis, an unwritable spill directory, a full disk,
//! huge items, and a dropped lock connection.

mod common;

use common::{
    assert_all_delivered, eventually, finish, lines, numbered, signal, spilled, stats, Args, Redis,
};
use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// Log lines (timestamped), as opposed to the summary.
fn log_lines(stderr: &str) -> usize {
    stderr.lines().filter(|l| l.starts_with("20")).count()
}

#[test]
fn sigterm_during_an_outage_spills_at_once() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let mut child = Args::new("push")
        .redis(&url)
        .opt("--redis-retry-secs", 60)
        .spawn_with_stdin(Some(dir.path()));
    let mut stdin = child.stdin.take().unwrap();
    let all = numbered(5, 5);
    writeln!(stdin, "{}\n{}", all[0], all[1]).unwrap();
    eventually("the first items", Duration::from_secs(10), || {
        redis.llen(KEY) == 2
    });
    redis.kill();
    writeln!(stdin, "{}\n{}\n{}", all[2], all[3], all[4]).unwrap();
    drop(stdin);
    // Wait for the writer to start retrying, from its own log line.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    for _ in 0..20 {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        log.push_str(&line);
        if line.contains("retrying for up to 60s") {
            break;
        }
    }
    assert!(log.contains("retrying for up to 60s"), "{log}");
    signal(&child, "-TERM");
    let started = Instant::now();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?} after SIGTERM: {log}{rest}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(1), "{log}{rest}");
    assert_all_delivered(&spilled(dir.path()), &all[2..], &rest);
}

#[test]
fn a_replica_or_a_full_redis_makes_the_writer_spill_and_say_why() {
    let redis = Redis::start();
    let _: () = redis.cmd(&["REPLICAOF", "127.0.0.1", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    let all = numbered(3, 5);
    std::fs::write(&file, all.join("\n") + "\n").unwrap();
    let url = redis.url();
    let push = |url: &str, dir: &std::path::Path, extra: &[&str]| {
        Args::new("push")
            .arg(file.display())
            .redis(url)
            .args(extra)
            .run_expect(Some(dir), 1)
    };
    let run = push(&url, dir.path(), &[]);
    assert!(run.stderr.contains("read-only replica"), "{run}");
    assert!(log_lines(&run.stderr) < 4, "{run}");
    assert_all_delivered(&spilled(dir.path()), &all, &run.to_string());

    let redis = Redis::start();
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let run = push(&url, dir.path(), &["--redis-retry-secs", "1"]);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("stayed out of memory"), "{run}");
    assert!(log_lines(&run.stderr) < 4, "{run}");
    assert_all_delivered(&spilled(dir.path()), &all, &run.to_string());
}

#[test]
fn an_unwritable_spill_dir_is_refused_at_start() {
    let redis = Redis::start();
    let url = redis.url();
    let run = Args::new("produce")
        .redis(&url)
        .opt("--spill-dir", "/nonexistent/qpipe-spill")
        .start_url("http://127.0.0.1:9/")
        .run_expect(None, 2);
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stderr
            .starts_with("qpipe: --spill-dir /nonexistent/qpipe-spill is not writable"),
        "{run}"
    );
}

#[test]
fn a_full_disk_duplicates_nothing_in_both_modes() {
    for mode in ["", "--reliable"] {
        let redis = Redis::start();
        let all = numbered(4000, 60);
        redis.lpush(KEY, &all);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let url = redis.url();
        // Writes past 64 KiB fail with EFBIG, as on a full disk.
        let child = common::spawn_with_disk_of(
            64,
            &format!(
                "consume --redis {url} --drain --idle-timeout 0.5 --batch-size 50 --out {} {mode}",
                out.display()
            ),
        );
        let (code, stderr) = finish(child);
        assert_eq!(code, 1, "{mode}: {stderr}");
        assert!(stderr.contains("cannot write to"), "{mode}: {stderr}");
        let bytes = std::fs::read(&out).unwrap();
        assert!(
            bytes.len() <= 64 * 1024 && bytes.ends_with(b"\n"),
            "{mode}: torn"
        );
        let written = lines(&out);
        let left = redis.lrange(KEY);
        let both: Vec<&String> = written.iter().filter(|w| left.contains(w)).collect();
        assert!(both.is_empty(), "{mode}: {} items in both", both.len());
        let mut got = written.clone();
        got.extend(left);
        let dups = assert_all_delivered(&got, &all, &format!("{mode}: {stderr}"));
        assert_eq!(dups, 0, "{mode}");
        assert!(
            !written.is_empty(),
            "{mode}: nothing was written before the disk filled"
        );
    }
}

#[test]
fn huge_items_are_batched_by_bytes_and_memory_stays_bounded() {
    let redis = Redis::start();
    let big: Vec<String> = (0..24)
        .map(|i| format!("{{\"n\":{i},\"blob\":\"{}\"}}", "y".repeat(4 << 20)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    // In through `push`: 96 MB of input, a few 4 MB lines held at once.
    let file = dir.path().join("big.jsonl");
    std::fs::write(&file, big.join("\n") + "\n").unwrap();
    let pst = dir.path().join("p.json");
    let url = redis.url();
    Args::new("push")
        .arg(file.display())
        .redis(&url)
        .stats_json(&pst)
        .run_expect(None, 0);
    let p = stats(&pst);
    assert_eq!(p["items_pushed"], 24, "{p}");
    let rss = p["peak_rss_mb"].as_f64().unwrap();
    assert!(rss < 80.0, "push peak RSS {rss} MB: {p}");
    let out = dir.path().join("out.jsonl");
    let st = dir.path().join("s.json");
    Args::consume(&url)
        .threads(2)
        .opt("--batch-bytes", 1048576)
        .drain(0.5)
        .out(&out)
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(s["items_written"], 24, "{s}");
    // 96 MB went through; at most a few 4 MB items are held at once.
    let rss = s["peak_rss_mb"].as_f64().unwrap();
    assert!(rss < 64.0, "peak RSS {rss} MB: {s}");
    assert_eq!(lines(&out).len(), 24);
}

#[test]
fn the_lock_survives_a_dropped_connection_and_a_lost_lock_stops_the_run() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let child = Args::consume(&url)
        .opt("--lock", "nightly")
        .opt("--lock-ttl", 9)
        .stats_json(&st)
        .spawn(None);
    let holder = || redis.cmd::<Option<String>>(&["GET", "qpipe:lock:nightly"]);
    eventually("the lock is taken", Duration::from_secs(10), || {
        holder().is_some()
    });
    let token = holder();
    // Killed once the run is up (a popper blocks in BRPOP only after every
    // connection was opened), so the kill tests renewal, not start-up.
    eventually("a popper waits in BRPOP", Duration::from_secs(10), || {
        let info: String = redis.cmd(&["INFO", "clients"]);
        info.lines().any(|l| {
            l.strip_prefix("blocked_clients:")
                .is_some_and(|n| n.trim() != "0")
        })
    });
    let _: redis::Value = redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    // Past the TTL (a fixed wait on purpose: time must pass): only
    // renewals on a new connection keep it.
    std::thread::sleep(Duration::from_secs(10));
    if holder() != token {
        signal(&child, "-TERM");
        let (code, stderr) = finish(child);
        panic!("the lock was not renewed after CLIENT KILL (exit {code}):\n{stderr}");
    }
    Args::consume(&url)
        .opt("--lock", "nightly")
        .arg("--drain")
        .run_expect(None, 4);
    // Another run takes the lock (as if ours had expired): we must stop.
    let _: () = redis.cmd(&["SET", "qpipe:lock:nightly", "someone-else"]);
    let started = Instant::now();
    let (code, stderr) = finish(child);
    // Found at the next renewal, a third of the TTL later.
    assert!(started.elapsed() < Duration::from_secs(8), "{stderr}");
    assert_ne!(code, 0, "{stderr}");
    assert_eq!(stats(&st)["finish_reason"], "lock_lost", "{stderr}");
    assert_eq!(holder().as_deref(), Some("someone-else"));
}
