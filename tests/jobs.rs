//! Crawl jobs: `qpipe enqueue`, and `produce --jobs` with meta, per-job
//! limits, `--drain`, and as a service stopped by a signal.

mod common;

use common::jobs::{chain_quotes, chains, enqueue, items, leftovers, produce, quote_of, JOBS, KEY};
use common::{eventually, finish, qpipe, signal, stats, Redis};
use std::time::{Duration, Instant};

#[test]
fn enqueue_checks_every_job_before_pushing_any() {
    let redis = Redis::start();
    let url = redis.url();
    let good = r#"{"url": "http://127.0.0.1:1/a/1", "meta": {"k": 1}}"#;
    let run = enqueue(&url, &["http://127.0.0.1:1/", good, "ftp://x/"]);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(
        run.stderr,
        "qpipe: argument 3: \"ftp://x/\" is not an http(s) URL with a host (a job is an absolute http(s) URL or {\"url\": \"...\", \"meta\": {...}}); nothing was enqueued\n",
        "{run}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.txt");
    let lines =
        format!("http://127.0.0.1:1/b/1\n\n{good}\n{{\"url\": \"http://x/\", \"meta\": [1]}}\n");
    std::fs::write(&file, lines).unwrap();
    let run = enqueue(&url, &[file.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run}");
    let want = format!(
        "qpipe: {} line 4: \"meta\" is not a JSON object",
        file.display()
    );
    assert!(run.stderr.starts_with(&want), "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert_eq!(redis.llen(JOBS), 0, "a job was pushed");

    let run = enqueue(&url, &["http://127.0.0.1:1/", good]);
    assert_eq!(run.code, 0, "{run}");
    // LPUSH in the order given: the first is taken (RPOP side) first.
    assert_eq!(redis.lrange(JOBS), [good, "http://127.0.0.1:1/"]);

    let st = dir.path().join("s.json");
    let clash = produce(&url, &st, &["--shared-frontier", "f"]);
    let run = clash.run(None);
    assert_eq!(run.code, 2, "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stderr
            .contains("--jobs and --shared-frontier cannot be combined"),
        "{run}"
    );
}

#[test]
fn three_jobs_carry_their_meta_right_after_url() {
    let site = chains(5, Duration::ZERO);
    let redis = Redis::start();
    let url = redis.url();
    let b = &site.base;
    let a_job = format!(
        r#"{{"url": "{b}/a/1", "meta": {{"job": "a", "n": 12345678901234567890123456789}}}}"#
    );
    let b_job =
        format!(r#"{{"url":"{b}/b/3","meta":{{"job":"b","e":1e2,"deep":{{"x":[1, 2]}}}}}}"#);
    let c_job = format!("{b}/c/5");
    let run = enqueue(&url, &[&a_job, &b_job, &c_job]);
    assert_eq!(run.code, 0, "{run}");
    redis.lpush(JOBS, &["not a job"]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = produce(&url, &st, &[]).drain(0.5).run(None);
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "drained", "{s}");
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_failed"].as_u64()),
        (Some(3), Some(1)),
        "{s}"
    );
    assert_eq!(s["items_pushed"], 10 + 6 + 2, "{s}");

    let got = items(&redis);
    let meta_a = r#""meta":{"job":"a","n":12345678901234567890123456789}"#;
    let meta_b = r#""meta":{"job":"b","e":1e2,"deep":{"x":[1,2]}}"#;
    let mut want: Vec<String> = Vec::new();
    for (name, from, to, meta) in [
        ("a", 1, 5, Some(meta_a)),
        ("b", 3, 5, Some(meta_b)),
        ("c", 5, 5, None),
    ] {
        for (k, q) in (from..=to)
            .flat_map(|k| [k, k])
            .zip(chain_quotes(name, from, to))
        {
            let tail = meta.map(|m| format!(",{m}")).unwrap_or_default();
            want.push(format!(
                r#"{{"quote":"{q}","author":"A","tags":[],"url":"{b}/{name}/{k}"{tail}}}"#
            ));
        }
    }
    assert_eq!(got, want, "items, oldest first");

    let dead = redis.lrange(&format!("{JOBS}:dead"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0].contains(r#""item":"not a job""#), "{dead:?}");
    let run = qpipe(&["status", "--redis", &url, "--jobs", JOBS, "--json"], None);
    let st: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let counts: Vec<u64> = [
        "jobs_pending",
        "jobs_leased",
        "jobs_orphaned",
        "jobs_done",
        "jobs_dead",
    ]
    .iter()
    .map(|k| st[k].as_u64().unwrap())
    .collect();
    assert_eq!(counts, [0, 0, 0, 3, 1], "{run}");
}

#[test]
fn max_depth_counts_from_each_job_url() {
    let site = chains(5, Duration::ZERO);
    let redis = Redis::start();
    let url = redis.url();
    let (a, b) = (format!("{}/a/1", site.base), format!("{}/b/3", site.base));
    assert_eq!(enqueue(&url, &[&a, &b]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let extra = ["--drain", "--idle-timeout", "0.5", "--max-depth", "1"];
    let run = produce(&url, &st, &extra).run(None);
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(
        (s["jobs_done"].as_u64(), s["pages_fetched"].as_u64()),
        (Some(2), Some(4)),
        "{s}"
    );
    let mut want = chain_quotes("a", 1, 2);
    want.extend(chain_quotes("b", 3, 4));
    assert_eq!(
        items(&redis)
            .iter()
            .map(|i| quote_of(i))
            .collect::<Vec<_>>(),
        want
    );
}

#[test]
fn drain_ends_on_an_idle_list_and_a_service_runs_until_a_signal() {
    let site = chains(2, Duration::ZERO);
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let started = Instant::now();
    let run = produce(&url, &st, &[]).drain(1).run(None);
    assert_eq!(run.code, 0, "{run}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?} {run}"
    );

    let child = produce(&url, &st, &[]).spawn(None);
    std::thread::sleep(Duration::from_millis(1500));
    let job = format!("{}/a/1", site.base);
    assert_eq!(enqueue(&url, &[&job]).code, 0);
    eventually("the job to be done", Duration::from_secs(20), || {
        redis.cmd::<Option<u64>>(&["GET", &format!("{JOBS}:done")]) == Some(1)
    });
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "shutdown", "{s}");
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_released"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(redis.llen(KEY), 4);
    assert_eq!(
        leftovers(&redis),
        [format!("{JOBS}:done")],
        "worker keys left behind"
    );
}
