//! Crawl jobs: `qpipe enqueue`, `produce --jobs` (meta, per-job limits,
//! drain), and what a kill -9, a SIGTERM or a lost ack reply does to a job.

mod common;

use common::fixture::{html, Answer, Fixture};
use common::{eventually, finish, qpipe, signal, stats, Redis};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";
const JOBS: &str = "qpipe:jobs";

/// Chains of pages: `/NAME/K` (K = 1..=len) holds two quotes, `NAMEK one`
/// and `NAMEK two`, and links to `/NAME/K+1`; each answer waits `delay`.
fn chains(len: u32, delay: Duration) -> Fixture {
    Fixture::start(move |path, _| {
        let mut parts = path.trim_matches('/').split('/');
        let name = parts.next().unwrap_or("").to_string();
        let Some(k) = parts.next().and_then(|k| k.parse::<u32>().ok()) else {
            return Answer::Full(404, Vec::new(), Vec::new());
        };
        std::thread::sleep(delay);
        let next = match k < len {
            true => format!(
                r#"<li class="next"><a href="/{name}/{}">next</a></li>"#,
                k + 1
            ),
            false => String::new(),
        };
        let quote = |which: &str| {
            format!(
                r#"<div class="quote"><span class="text">{name}{k} {which}</span><small class="author">A</small></div>"#
            )
        };
        html(&format!("{}{}<ul>{next}</ul>", quote("one"), quote("two")))
    })
}

/// The quotes of pages `from..=to` of chain `name`, in page order.
fn chain_quotes(name: &str, from: u32, to: u32) -> Vec<String> {
    (from..=to)
        .flat_map(|k| [format!("{name}{k} one"), format!("{name}{k} two")])
        .collect()
}

/// `produce --jobs` against `redis`, with `extra` flags.
fn produce<'a>(url: &'a str, st: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["produce", "--redis", url, "--jobs", JOBS, "--ignore-robots"];
    args.extend(["--threads", "2", "--stats-json", st.to_str().unwrap()]);
    args.extend(extra);
    args
}

/// The items in the list, oldest first, as raw strings.
fn items(redis: &Redis) -> Vec<String> {
    let mut all = redis.lrange(KEY);
    all.reverse();
    all
}

fn quote_of(item: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(item).unwrap();
    v["quote"].as_str().unwrap().to_string()
}

#[test]
fn enqueue_checks_every_job_before_pushing_any() {
    let redis = Redis::start();
    let url = redis.url();
    let good = r#"{"url": "http://127.0.0.1:1/a/1", "meta": {"k": 1}}"#;
    let run = qpipe(
        &[
            "enqueue",
            "--redis",
            &url,
            "http://127.0.0.1:1/",
            good,
            "ftp://x/",
        ],
        None,
    );
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
    let run = qpipe(&["enqueue", "--redis", &url, file.to_str().unwrap()], None);
    assert_eq!(run.code, 2, "{run}");
    let want = format!(
        "qpipe: {} line 4: \"meta\" is not a JSON object",
        file.display()
    );
    assert!(run.stderr.starts_with(&want), "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert_eq!(redis.llen(JOBS), 0, "a job was pushed");

    let run = qpipe(
        &["enqueue", "--redis", &url, "http://127.0.0.1:1/", good],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    // LPUSH in the order given: the first is taken (RPOP side) first.
    assert_eq!(redis.lrange(JOBS), [good, "http://127.0.0.1:1/"]);

    let st = dir.path().join("s.json");
    let clash = produce(&url, &st, &["--shared-frontier", "f"]);
    let run = qpipe(&clash, None);
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
    let run = qpipe(&["enqueue", "--redis", &url, &a_job, &b_job, &c_job], None);
    assert_eq!(run.code, 0, "{run}");
    redis.lpush(JOBS, &["not a job"]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = qpipe(
        &produce(&url, &st, &["--drain", "--idle-timeout", "0.5"]),
        None,
    );
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
    assert_eq!(qpipe(&["enqueue", "--redis", &url, &a, &b], None).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let extra = ["--drain", "--idle-timeout", "0.5", "--max-depth", "1"];
    let run = qpipe(&produce(&url, &st, &extra), None);
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
    let run = qpipe(
        &produce(&url, &st, &["--drain", "--idle-timeout", "1"]),
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?} {run}"
    );

    let child = common::spawn(&produce(&url, &st, &[]), None);
    std::thread::sleep(Duration::from_millis(1500));
    let job = format!("{}/a/1", site.base);
    assert_eq!(qpipe(&["enqueue", "--redis", &url, &job], None).code, 0);
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

/// Every key of the job list but the list itself.
fn leftovers(redis: &Redis) -> Vec<String> {
    let mut keys: Vec<String> = redis.cmd(&["KEYS", &format!("{JOBS}:*")]);
    keys.sort();
    keys
}

/// Starts a worker on slow chain pages and waits until it has pushed the
/// first page of its job.
fn slow_worker(url: &str, st: &Path, extra: &[&str], redis: &Redis) -> Child {
    let child = common::spawn(&produce(url, st, extra), None);
    eventually("the job's first items", Duration::from_secs(20), || {
        redis.llen(KEY) >= 2
    });
    child
}

#[test]
fn a_job_of_a_worker_killed_with_kill_9_is_finished_by_another() {
    let site = chains(8, Duration::from_millis(300));
    let redis = Redis::start();
    let url = redis.url();
    let job = format!(r#"{{"url": "{}/s/1", "meta": {{"run": 1}}}}"#, site.base);
    assert_eq!(qpipe(&["enqueue", "--redis", &url, &job], None).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("a.json");
    let mut a = slow_worker(&url, &st, &["--heartbeat-ttl", "1"], &redis);
    a.kill().unwrap(); // SIGKILL: no cleanup at all
    a.wait().unwrap();
    let pushed_by_a = redis.llen(KEY);
    assert!(
        (2..16).contains(&pushed_by_a),
        "{pushed_by_a} items before the kill"
    );
    assert_eq!(
        redis.llen(JOBS),
        0,
        "the job is still held by the dead worker"
    );

    let st = dir.path().join("b.json");
    let extra = ["--drain", "--idle-timeout", "4", "--heartbeat-ttl", "1"];
    let run = qpipe(&produce(&url, &st, &extra), None);
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(
        (s["jobs_recovered"].as_u64(), s["jobs_done"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["items_pushed"], 16, "{s}");
    // Every item of the job, from B's whole crawl; before them, the items A
    // had pushed: duplicates, exactly that many (the README says so).
    let got: Vec<String> = items(&redis).iter().map(|i| quote_of(i)).collect();
    assert_eq!(got.len() as u64, pushed_by_a + 16);
    let (from_a, from_b) = got.split_at(pushed_by_a as usize);
    assert_eq!(from_b, chain_quotes("s", 1, 8));
    assert_eq!(from_a, &chain_quotes("s", 1, 8)[..from_a.len()]);
    assert_eq!(redis.cmd::<u64>(&["GET", &format!("{JOBS}:done")]), 1);
    assert_eq!(
        leftovers(&redis),
        [format!("{JOBS}:done")],
        "keys left behind"
    );
}

#[test]
fn sigterm_mid_job_puts_the_job_back() {
    let site = chains(8, Duration::from_millis(300));
    let redis = Redis::start();
    let url = redis.url();
    let job = format!(r#"{{"url": "{}/s/1", "meta": {{"run": 2}}}}"#, site.base);
    assert_eq!(qpipe(&["enqueue", "--redis", &url, &job], None).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let child = slow_worker(&url, &st, &["--drain"], &redis);
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 143, "{stderr}");
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "shutdown", "{s}");
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_released"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert!(s["items_pushed"].as_u64().unwrap() < 16, "{s}");
    assert_eq!(redis.lrange(JOBS), [job], "the job went back byte for byte");
    assert_eq!(
        leftovers(&redis),
        Vec::<String>::new(),
        "worker keys left behind"
    );
}

#[test]
fn a_lost_ack_reply_counts_the_job_once() {
    let site = chains(2, Duration::ZERO);
    let redis = Redis::start();
    let proxy = common::proxy::Proxy::start(&redis);
    proxy.cut(":done", 0, 1);
    let (a, b) = (format!("{}/a/1", site.base), format!("{}/b/1", site.base));
    assert_eq!(
        qpipe(&["enqueue", "--redis", &redis.url(), &a, &b], None).code,
        0
    );
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = proxy.url();
    let run = qpipe(
        &produce(&url, &st, &["--drain", "--idle-timeout", "0.5"]),
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(proxy.cuts(), 1, "{run}");
    let s = stats(&st);
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_failed"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    assert_eq!(redis.cmd::<u64>(&["GET", &format!("{JOBS}:done")]), 2);
    assert_eq!(redis.llen(KEY), 8);
    assert_eq!(
        leftovers(&redis),
        [format!("{JOBS}:done")],
        "keys left behind"
    );
}
