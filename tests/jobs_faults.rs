//! Crawl jobs through faults: a worker killed with kill -9 mid-job, a
//! SIGTERM or `--max-time` mid-job, and lost replies to a take and to an
//! acknowledgement.

mod common;

use common::jobs::{
    chain_quotes, chains, enqueue, items, leftovers, produce, quote_of, slow_worker, JOBS, KEY,
};
use common::{finish, signal, stats, Redis};
use std::time::Duration;

#[test]
fn a_job_of_a_worker_killed_with_kill_9_is_finished_by_another() {
    let site = chains(8, Duration::from_millis(300));
    let redis = Redis::start();
    let url = redis.url();
    let job = format!(r#"{{"url": "{}/s/1", "meta": {{"run": 1}}}}"#, site.base);
    assert_eq!(enqueue(&url, &[&job]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("a.json");
    let mut a = slow_worker(&url, &st, &["--heartbeat-ttl", "2"], &redis);
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
    let extra = ["--drain", "--idle-timeout", "4", "--heartbeat-ttl", "2"];
    let run = produce(&url, &st, &extra).run(None);
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
    assert_eq!(enqueue(&url, &[&job]).code, 0);
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
        [format!("{JOBS}:attempts")],
        "worker keys left behind"
    );
}

#[test]
fn lost_take_and_ack_replies_neither_lose_nor_double_count_a_job() {
    let site = chains(2, Duration::ZERO);
    let redis = Redis::start();
    let proxy = common::proxy::Proxy::start(&redis);
    // The first take's reply (the job goes back whole and is taken again),
    // then the first acknowledgement's (retried, counted once). The ACL
    // check at start names both commands first: it is skipped.
    proxy.cut("BLMOVE", 1, 1);
    proxy.cut(":done", 1, 1);
    let (a, b) = (format!("{}/a/1", site.base), format!("{}/b/1", site.base));
    assert_eq!(enqueue(&redis.url(), &[&a, &b]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = proxy.url();
    let run = produce(&url, &st, &[]).drain(0.5).run(None);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(proxy.cuts(), 2, "{run}");
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

#[test]
fn max_time_mid_job_puts_the_job_back_and_exits_0() {
    let site = chains(8, Duration::from_millis(300));
    let redis = Redis::start();
    let url = redis.url();
    let job = format!("{}/s/1", site.base);
    assert_eq!(enqueue(&url, &[&job]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = produce(&url, &st, &["--drain", "--max-time", "1"]).run(None);
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "max_time", "{s}");
    assert_eq!(
        (s["jobs_done"].as_u64(), s["jobs_released"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert_eq!(redis.lrange(JOBS), [job]);
    assert_eq!(
        leftovers(&redis),
        [format!("{JOBS}:attempts")],
        "worker keys left behind"
    );
}

#[test]
fn a_job_that_never_finishes_goes_behind_the_others_then_to_dead() {
    let site = chains(8, Duration::from_millis(300));
    let redis = Redis::start();
    let url = redis.url();
    let (long, short) = (format!("{}/s/1", site.base), format!("{}/t/8", site.base));
    assert_eq!(enqueue(&url, &[&long, &short]).code, 0);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let extra = ["--drain", "--max-time", "1", "--job-attempts", "1"];
    let run = produce(&url, &st, &extra).run(None);
    assert_eq!(run.code, 0, "{run}");
    // Behind the short job, which is taken next.
    assert_eq!(redis.lrange(JOBS), [long.clone(), short.clone()], "{run}");

    let run = produce(&url, &st, &extra).run(None);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(redis.llen(JOBS), 0, "{run}");
    assert_eq!(redis.cmd::<u64>(&["GET", &format!("{JOBS}:done")]), 1);
    let dead = redis.lrange(&format!("{JOBS}:dead"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].contains(&long) && dead[0].contains("--job-attempts"),
        "{dead:?}"
    );
    assert!(run.stderr.contains("set aside"), "{run}");
    let mut want = vec![format!("{JOBS}:dead"), format!("{JOBS}:done")];
    want.sort();
    assert_eq!(leftovers(&redis), want, "keys left behind");
}

#[test]
fn an_ack_that_fails_leaves_the_job_to_go_back() {
    let site = chains(1, Duration::ZERO);
    let redis = Redis::start();
    let url = redis.url();
    let job = format!("{}/a/1", site.base);
    assert_eq!(enqueue(&url, &[&job]).code, 0);
    // `J:done` of the wrong type: the ack script fails with WRONGTYPE.
    redis.lpush(&format!("{JOBS}:done"), &["x"]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let run = produce(&url, &st, &[]).drain(0.5).run(None);
    assert_ne!(run.code, 0, "{run}");
    assert!(run.stderr.contains("WRONGTYPE"), "{run}");
    assert_eq!(redis.lrange(JOBS), [job], "the job was lost: {run}");
}
