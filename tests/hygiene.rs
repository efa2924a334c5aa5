//! Keyspace hygiene: a Redis that serves qpipe from cron for months must not
//! fill up with its leftovers. After many cron-style cycles of produce
//! (with --seen-key and --lock), consume --reliable --drain --lock, and
//! enqueue + produce --jobs --drain, the number of keys and the memory used
//! stop growing, and every key left is one the registry says is kept.

mod common;

use common::fixture::{html, Fixture};
use common::jobs::JOBS;
use common::{qpipe, Args, Redis};

const CYCLES: usize = 100;
const MEASURED_FROM: usize = 10;

fn used_memory(redis: &Redis) -> i64 {
    let info: String = redis.cmd(&["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

fn keys(redis: &Redis) -> Vec<String> {
    let mut k: Vec<String> = redis.cmd(&["KEYS", "*"]);
    k.sort();
    k
}

/// One cron cycle: a crawl, a drain, a job and its worker.
fn cycle(url: &str, site: &str, out: &std::path::Path, n: usize) {
    Args::new("produce")
        .redis(url)
        .start_url(site)
        .arg("--ignore-robots")
        .opt("--seen-key", "S")
        .opt("--lock", "crawl")
        .arg("-q")
        .run_expect(None, 0);
    Args::consume(url)
        .arg("--reliable")
        .opt("--lock", "drain")
        .out(out)
        .drain(0.1)
        .arg("-q")
        .run_expect(None, 0);
    let job = format!("{{\"url\":\"{site}\",\"meta\":{{\"cycle\":{n}}}}}");
    assert_eq!(qpipe(&["enqueue", "--redis", url, &job], None).code, 0);
    Args::new("produce")
        .redis(url)
        .opt("--jobs", JOBS)
        .arg("--allow-private")
        .arg("--ignore-robots")
        .drain(0.1)
        .arg("-q")
        .run_expect(None, 0);
}

#[test]
fn a_hundred_cron_cycles_leave_no_growing_keyspace() {
    let redis = Redis::start();
    let url = redis.url();
    let site = Fixture::start(|_, _| {
        html(r#"<div class=quote><span class=text>a</span><small class=author>x</small></div>"#)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let (mut keys_then, mut memory_then) = (Vec::new(), 0);
    for n in 1..=CYCLES {
        cycle(&url, &site.base, &out, n);
        if n == MEASURED_FROM {
            (keys_then, memory_then) = (keys(&redis), used_memory(&redis));
        }
    }
    let keys_now = keys(&redis);
    assert_eq!(
        keys_now, keys_then,
        "keys appeared or went between cycle {MEASURED_FROM} and {CYCLES}"
    );
    // What stays: the seen set, the job counter, the fleet's counts, and
    // the queue the last job worker filled (drained by the next cycle's
    // consumer).
    assert_eq!(
        keys_now,
        [
            "DATA-PIPELINE-KEY",
            "DATA-PIPELINE-KEY:stats",
            "S",
            &format!("{JOBS}:done")
        ]
    );
    // Every item counted in was counted out, or is still queued.
    let count = |f: &str| -> u64 { redis.cmd(&["HGET", "DATA-PIPELINE-KEY:stats", f]) };
    assert_eq!(count("in"), count("out") + redis.llen("DATA-PIPELINE-KEY"));
    assert!(count("in") >= CYCLES as u64);
    let grown = used_memory(&redis) - memory_then;
    assert!(
        grown < 64 * 1024,
        "used_memory grew by {grown} bytes over {} cycles",
        CYCLES - MEASURED_FROM
    );
    let done: String = redis.cmd(&["GET", &format!("{JOBS}:done")]);
    assert_eq!(done, CYCLES.to_string());
}
