//! Crawl jobs retried later, not at once: a job that failed goes back after
//! a delay that doubles with its attempts (in Redis's clock); `enqueue
//! --in/--at` schedules jobs; any running worker, idle or not, moves due
//! jobs to the list, each once, even when a reply is lost.

mod common;

use common::fixture::{html, Fixture};
use common::jobs::JOBS;
use common::proxy::Proxy;
use common::{qpipe, Args, Redis};

const KEY: &str = "DATA-PIPELINE-KEY";

fn site() -> Fixture {
    Fixture::start(|_, _| {
        html("<div class=quote><span class=text>a</span><small class=author>x</small></div>")
    })
}

/// A job worker with a 2 s first retry delay.
fn worker(url: &str) -> Args {
    Args::new("produce")
        .redis(url)
        .opt("--jobs", JOBS)
        .arg("--allow-private")
        .arg("--ignore-robots")
        .opt("--job-backoff", 2)
}

/// Milliseconds until the only delayed job is due, in Redis's clock.
fn due_in_ms(redis: &Redis) -> i64 {
    let scores: Vec<String> = redis.cmd(&[
        "ZRANGE",
        &format!("{JOBS}:delayed"),
        "0",
        "-1",
        "WITHSCORES",
    ]);
    assert_eq!(scores.len(), 2, "one delayed job: {scores:?}");
    let at: i64 = scores[1].parse().unwrap();
    let (secs, micros): (i64, i64) = redis.cmd(&["TIME"]);
    at - (secs * 1000 + micros / 1000)
}

fn done(redis: &Redis) -> Option<String> {
    redis.cmd(&["GET", &format!("{JOBS}:done")])
}

#[test]
fn a_failed_job_is_retried_after_a_delay_that_doubles() {
    let redis = Redis::start();
    let url = redis.url();
    let site = site();
    redis.lpush(JOBS, &[site.base.as_str()]);
    // A crawl that fails (a panicking fetcher): the job is not acknowledged.
    let fail = || {
        let run = worker(&url)
            .threads(1)
            .drain(0.3)
            .run_env(None, &[("QPIPE_TEST_PANIC", "fetch")]);
        assert_eq!(run.code, 1, "{run}");
    };
    fail();
    assert_eq!(redis.llen(JOBS), 0, "went back at once");
    let first = due_in_ms(&redis);
    assert!(
        (1000..=2000).contains(&first),
        "first delay {first} ms, want about 2000"
    );
    // Make it due now; the next failure waits twice as long.
    let member: Vec<String> = redis.cmd(&["ZRANGE", &format!("{JOBS}:delayed"), "0", "0"]);
    let _: () = redis.cmd(&["ZADD", &format!("{JOBS}:delayed"), "0", &member[0]]);
    fail();
    let second = due_in_ms(&redis);
    assert!(
        (3000..=4000).contains(&second),
        "second delay {second} ms, want about 4000"
    );
    // A healthy worker, idle meanwhile, moves it when due and crawls it.
    let run = worker(&url).drain(6).run_expect(None, 0);
    assert_eq!(done(&redis).as_deref(), Some("1"), "{run}");
    assert_eq!(redis.llen(KEY), 1);
    let left: u64 = redis.cmd(&["ZCARD", &format!("{JOBS}:delayed")]);
    assert_eq!(left, 0);
}

#[test]
fn scheduled_jobs_wait_until_due_and_show_in_status() {
    let redis = Redis::start();
    let url = redis.url();
    let site = site();
    let later = format!("{}/later", site.base);
    let past = format!("{}/past", site.base);
    let run = qpipe(&["enqueue", "--redis", &url, "--in", "2s", &later], None);
    assert_eq!(run.code, 0, "{run}");
    let run = qpipe(
        &[
            "enqueue",
            "--redis",
            &url,
            "--at",
            "2020-01-01T00:00:00Z",
            &past,
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(redis.llen(JOBS), 0);
    let st = qpipe(&["status", "--redis", &url, "--jobs", JOBS, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert_eq!(
        (v["jobs_scheduled"].as_u64(), v["jobs_pending"].as_u64()),
        (Some(2), Some(0)),
        "{st}"
    );
    let run = worker(&url).drain(4).run_expect(None, 0);
    assert_eq!(done(&redis).as_deref(), Some("2"), "{run}");
    assert_eq!((site.hits("/later"), site.hits("/past")), (1, 1));
    // A --drain run ends with a job still scheduled, and says so.
    assert_eq!(
        qpipe(&["enqueue", "--redis", &url, "--in", "1h", &later], None).code,
        0
    );
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    worker(&url).stats_json(&st).drain(0.3).run_expect(None, 0);
    let s = common::stats(&st);
    assert_eq!(
        (
            s["jobs_waiting_scheduled"].as_u64(),
            s["jobs_done"].as_u64()
        ),
        (Some(1), Some(0)),
        "{s}"
    );
    let bad = qpipe(&["enqueue", "--redis", &url, "--in", "soon", &later], None);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("--in \"soon\" is not a delay"), "{bad}");
}

#[test]
fn a_lost_reply_while_moving_due_jobs_moves_each_once() {
    let redis = Redis::start();
    let site = site();
    let url = redis.url();
    for i in 0..3 {
        let job = format!("{}/{i}", site.base);
        assert_eq!(
            qpipe(&["enqueue", "--redis", &url, "--at", "1", &job], None).code,
            0
        );
    }
    let proxy = Proxy::start(&redis);
    // The move is one script; its reply is lost once, and it is retried.
    proxy.cut("moved = moved + 1", 0, 1);
    let run = worker(&proxy.url()).drain(1).run_expect(None, 0);
    assert_eq!(proxy.cuts(), 1, "the fault was never injected: {run}");
    assert_eq!(done(&redis).as_deref(), Some("3"), "{run}");
    for i in 0..3 {
        assert_eq!(site.hits(&format!("/{i}")), 1, "job {i} crawled once");
    }
}

/// `--jobs high,low`: the first list that has a job is taken from.
#[test]
fn jobs_are_taken_from_the_first_list_that_has_one() {
    let redis = Redis::start();
    let url = redis.url();
    let site = site();
    for (list, n) in [("low", 1), ("low", 2), ("high", 3)] {
        let job = format!(
            "{{\"url\":\"{}/{n}\",\"meta\":{{\"from\":\"{list}\"}}}}",
            site.base
        );
        let run = qpipe(&["enqueue", "--redis", &url, "--key", list, &job], None);
        assert_eq!(run.code, 0, "{run}");
    }
    Args::new("produce")
        .redis(&url)
        .opt("--jobs", "high,low")
        .arg("--allow-private")
        .arg("--ignore-robots")
        .threads(1)
        .drain(0.5)
        .run_expect(None, 0);
    // Items are pushed to the head: the first job's item is last.
    let order: Vec<String> = redis
        .lrange(KEY)
        .iter()
        .rev()
        .map(|i| {
            let v: serde_json::Value = serde_json::from_str(i).unwrap();
            v["meta"]["from"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(order, ["high", "low", "low"]);
    let done = |l: &str| redis.cmd::<Option<String>>(&["GET", &format!("{l}:done")]);
    assert_eq!(
        (done("high").as_deref(), done("low").as_deref()),
        (Some("1"), Some("2"))
    );
    let twice = qpipe(&["produce", "--redis", &url, "--jobs", "a,b,a"], None);
    assert_eq!(twice.code, 2, "{twice}");
    assert!(
        twice.stderr.contains("--jobs names the list \"a\" twice"),
        "{twice}"
    );
}
