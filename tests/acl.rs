//! Least privilege: every role runs under exactly the ACL rules that
//! docs/production.md gives (read from the file), and a rule taken away
//! ends the run at start, before any work, naming the command.

mod common;

use common::fixture::{html, Fixture};
use common::jobs::JOBS;
use common::{qpipe, Args, Redis};

const KEY: &str = "DATA-PIPELINE-KEY";

/// The `ACL SETUSER` lines of docs/production.md, `SEEN` as `S`.
fn documented_rules() -> Vec<String> {
    let doc = include_str!("../docs/production.md");
    let rules: Vec<String> = doc
        .lines()
        .filter(|l| l.starts_with("ACL SETUSER qpipe-"))
        .map(|l| l.replace("SEEN", "S"))
        .collect();
    assert_eq!(rules.len(), 4, "the four roles' rules");
    rules
}

/// Creates the four users on `redis` with the documented rules; the
/// password of each is its role's name.
fn create_users(redis: &Redis) {
    for rule in documented_rules() {
        let words: Vec<String> = rule
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                ">PASSWORD" => format!(">{}", rule.split_whitespace().nth(2).unwrap()),
                w => w.to_string(),
            })
            .collect();
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let _: () = redis.cmd(&[&["ACL"][..], &args].concat());
    }
}

fn url(redis: &Redis, role: &str) -> String {
    format!("redis://qpipe-{role}:qpipe-{role}@127.0.0.1:{}", redis.port)
}

fn site() -> Fixture {
    Fixture::start(|_, _| {
        html("<div class=quote><span class=text>a</span><small class=author>x</small></div>")
    })
}

#[test]
fn every_role_runs_under_exactly_the_documented_rules() {
    let redis = Redis::start_tcp_with(&[]);
    create_users(&redis);
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    Args::produce(&url(&redis, "producer"), &site.base)
        .arg("--ignore-robots")
        .opt("--seen-key", "S")
        .opt("--lock", "crawl")
        .run_expect(None, 0);
    assert_eq!(redis.llen(KEY), 1);
    Args::consume(&url(&redis, "consumer"))
        .arg("--reliable")
        .opt("--lock", "drain")
        .out(&out)
        .drain(0.3)
        .run_expect(None, 0);
    assert_eq!(common::lines(&out).len(), 1);
    redis.lpush(KEY, &["{\"n\":1}"]);
    Args::consume(&url(&redis, "consumer"))
        .out(&out)
        .drain(0.3)
        .run_expect(None, 0);
    assert_eq!(common::lines(&out).len(), 2);
    redis.lpush(JOBS, &[site.base.as_str()]);
    Args::new("produce")
        .redis(&url(&redis, "jobs"))
        .opt("--jobs", JOBS)
        .arg("--allow-private")
        .arg("--ignore-robots")
        .opt("--lock", "jobs")
        .drain(0.3)
        .run_expect(None, 0);
    assert_eq!(redis.llen(KEY), 1);
    // Dead letters: the consumer sets one aside, lists and re-queues it.
    redis.lpush(KEY, &["not json"]);
    Args::consume(&url(&redis, "consumer"))
        .out(&out)
        .drain(0.3)
        .run_expect(None, 3);
    let requeue = qpipe(
        &[
            "dead",
            "requeue",
            "--all",
            "--redis",
            &url(&redis, "consumer"),
        ],
        None,
    );
    assert_eq!(requeue.code, 0, "{requeue}");
    assert_eq!(
        redis.lrange(KEY).last().map(String::as_str),
        Some("not json")
    );
    let monitor = url(&redis, "monitor");
    for args in [
        &[
            "status",
            "--jobs",
            JOBS,
            "--seen-key",
            "S",
            "--lock",
            "crawl",
            "--keys",
        ][..],
        &["peek"][..],
        &["dead"][..],
    ] {
        let run = qpipe(&[args, &["--redis", &monitor]].concat(), None);
        assert_eq!(run.code, 0, "{run}");
    }
}

#[test]
fn a_missing_rule_ends_the_run_at_start_naming_the_command() {
    let redis = Redis::start_tcp_with(&[]);
    create_users(&redis);
    let site = site();
    let dir = tempfile::tempdir().unwrap();
    redis.lpush(KEY, &["{\"n\":1}"]);
    redis.lpush(JOBS, &[site.base.as_str()]);
    let take = |role: &str, rule: &str| {
        let _: () = redis.cmd(&["ACL", "SETUSER", &format!("qpipe-{role}"), rule]);
    };
    take("producer", "-lpush");
    let run = Args::produce(&url(&redis, "producer"), &site.base)
        .arg("--ignore-robots")
        .run_expect(None, 1);
    assert!(
        run.stderr.contains("may not run LPUSH DATA-PIPELINE-KEY"),
        "{run}"
    );
    assert_eq!(site.hits("/"), 0, "a page was fetched before the refusal");

    take("consumer", "-blmove");
    let run = Args::consume(&url(&redis, "consumer"))
        .arg("--reliable")
        .out(&dir.path().join("o.jsonl"))
        .drain(0.3)
        .run_expect(None, 1);
    assert!(
        run.stderr.contains("may not run BLMOVE DATA-PIPELINE-KEY"),
        "{run}"
    );
    assert_eq!(redis.llen(KEY), 1, "an item was taken before the refusal");

    take("jobs", "-incr");
    let run = Args::new("produce")
        .redis(&url(&redis, "jobs"))
        .opt("--jobs", JOBS)
        .arg("--allow-private")
        .drain(0.3)
        .run_expect(None, 1);
    assert!(
        run.stderr.contains("may not run INCR qpipe:jobs:done"),
        "{run}"
    );
    assert_eq!(redis.llen(JOBS), 1, "a job was taken before the refusal");

    take("producer", "+lpush");
    take("producer", "-pexpire");
    let run = Args::produce(&url(&redis, "producer"), &site.base)
        .opt("--lock", "crawl")
        .run_expect(None, 1);
    assert!(
        run.stderr.contains("may not run PEXPIRE qpipe:lock:crawl"),
        "{run}"
    );
    let stderr_lines = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("qpipe:"))
        .count();
    assert_eq!(stderr_lines, 1, "one line: {run}");
}

/// A job put back while its delay step is refused (an ACL changed under a
/// running worker, or Redis 6 where no check runs at start) stays held in
/// its list, for recovery: the put-back writes where the job goes before
/// it takes the job out of its list.
#[test]
fn a_refused_put_back_leaves_the_job_held_not_lost() {
    let redis = Redis::start_tcp_with(&[]);
    create_users(&redis);
    // A site of endless pages, fetched politely: the crawl is mid-way
    // when the signal comes, so the job goes back unfinished.
    let slow = Fixture::start(|path, _| {
        let n: u64 = path.trim_start_matches('/').parse().unwrap_or(0);
        html(&format!(
            "<div class=quote><span class=text>p{n}</span></div><a href=\"/{}\">next</a>",
            n + 1
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = common::write_file(dir.path(), "spec.json", common::FOLLOW_ALL_SPEC);
    redis.lpush(JOBS, &[slow.base.as_str()]);
    let child = Args::new("produce")
        .redis(&url(&redis, "jobs"))
        .opt("--jobs", JOBS)
        .path("--spec", &spec)
        .opt("--delay-ms", 300)
        .arg("--allow-private")
        .arg("--ignore-robots")
        .spawn(None);
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || slow.hits("/2") > 0),
        "the crawl never got going"
    );
    let _: () = redis.cmd(&["ACL", "SETUSER", "qpipe-jobs", "-zadd"]);
    common::signal(&child, "-TERM");
    let (_, stderr) = common::finish(child);
    assert!(
        stderr.contains("could not put this worker's job back"),
        "{stderr}"
    );
    let held: Vec<String> = redis.cmd(&["KEYS", &format!("{JOBS}:processing:*")]);
    let in_lists: u64 = held.iter().map(|k| redis.llen(k)).sum();
    let delayed: u64 = redis.cmd(&["ZCARD", &format!("{JOBS}:delayed")]);
    assert_eq!(
        (redis.llen(JOBS), delayed, in_lists),
        (0, 0, 1),
        "the job is lost"
    );
}
