//! Crawl jobs at the edges: credentials in job URLs, jobs that fetch
//! nothing, and spilled jobs sent again.

mod common;

use common::jobs::{chains, enqueue, produce, JOBS, KEY};
use common::{qpipe, stats, Args, Redis};
use std::time::Duration;

#[test]
fn credentials_in_job_urls_are_refused_and_never_printed() {
    let redis = Redis::start();
    let url = redis.url();
    for (job, place) in [
        ("http://user:s3cretPW@127.0.0.1:1/a/1", "argument 2"),
        ("http://u:s3cretPW@[bad", "argument 2"),
    ] {
        let run = enqueue(&url, &["http://127.0.0.1:1/", job]);
        assert_eq!(run.code, 2, "{run}");
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
        assert!(
            run.stderr.starts_with(&format!("qpipe: {place}: ")),
            "{run}"
        );
        assert!(!run.stderr.contains("s3cretPW"), "{run}");
    }
    assert_eq!(redis.llen(JOBS), 0, "a job was pushed");

    // Jobs pushed by other means are set aside, and the logs hide them.
    let site = chains(1, Duration::ZERO);
    let with_user = site.base.replace("http://", "http://user:s3cretPW@");
    let json = format!(r#"{{"url": "{with_user}/a/1"}}"#);
    redis.lpush(JOBS, &[format!("{with_user}/a/1"), json]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = produce(&url, &st, &[]).drain(0.5).run(None);
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("s3cretPW"), "{run}");
    assert_eq!(
        run.stderr.matches("user name or password").count(),
        2,
        "{run}"
    );
    let s = stats(&st);
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_failed"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    assert_eq!(redis.llen(KEY), 0);
    assert_eq!(redis.llen(&format!("{JOBS}:dead")), 2);
}

#[test]
fn a_job_that_fetches_nothing_is_done_but_counted_as_empty() {
    let site = chains(1, Duration::ZERO);
    let redis = Redis::start();
    let url = redis.url();
    let (missing, good) = (
        format!("{}/nothing", site.base),
        format!("{}/a/1", site.base),
    );
    let run = enqueue(&url, &[&missing, &good]);
    assert_eq!(run.code, 0, "{run}");
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = produce(&url, &st, &[]).drain(0.5).run(None);
    let s = stats(&st);
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_empty"].as_u64()),
        (Some(2), Some(1)),
        "{s}"
    );
    let warned: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("no page was fetched"))
        .collect();
    assert_eq!(warned.len(), 1, "{run}");
    assert!(
        warned[0].contains("WARN") && warned[0].contains(&missing),
        "{run}"
    );
    assert_eq!(redis.llen(KEY), 2);
}

#[test]
fn spilled_jobs_are_sent_later_with_the_command_the_hint_names() {
    // Every write is refused (out of memory): the jobs go to a spill file.
    let full = Redis::start_with(&["--maxmemory", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let jobs = [
        "http://127.0.0.1:1/a/1",
        r#"{"url":"http://127.0.0.1:1/b/1","meta":{"k":1}}"#,
    ];
    let run = Args::new("enqueue")
        .opt("--redis-retry-secs", 0.5)
        .opt("--key", "J2")
        .redis(&full.url())
        .args(jobs)
        .run(Some(dir.path()));
    assert_ne!(run.code, 0, "{run}");
    let hint = run
        .stderr
        .split("send them later with: ")
        .nth(1)
        .and_then(|t| t.split(')').next())
        .unwrap_or_else(|| panic!("no hint: {run}"));
    let words: Vec<&str> = hint.split(' ').collect();
    assert_eq!(words[..4], ["qpipe", "enqueue", "--key", "J2"], "{run}");

    let redis = Redis::start();
    let url = redis.url();
    let mut again = vec![words[1], "--redis", &url];
    again.extend(&words[2..]);
    let run = qpipe(&again, Some(dir.path()));
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(redis.lrange("J2"), [jobs[1], jobs[0]]);
}
