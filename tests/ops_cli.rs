//! Running qpipe as a service: closed pipes, named connections, secrets,
//! errors that name the cause, log rotation (SIGHUP), JSON logs.

mod common;

use common::{
    eventually, finish, finish_expect, lines, qpipe, qpipe_env, signal, spawn, Args, Redis, Site,
    QPIPE,
};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// Runs qpipe with stdout into a pipe whose reader reads one line and goes
/// away; returns the exit code and stderr.
fn into_closed_pipe(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(QPIPE)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here, as `head -1` exits.
    finish(child)
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    for args in [&["spec", "--print"][..], &["produce", "--help"][..]] {
        let (code, stderr) = into_closed_pipe(args);
        assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}");
    }
    let help = qpipe(&["--help"], None);
    assert!(
        help.stdout
            .contains("4 another run holds the --lock, or this run lost it"),
        "{help}"
    );
}

#[test]
fn every_connection_is_named_after_its_command_host_and_pid() {
    let redis = Redis::start();
    let url = redis.url();
    let child = spawn(&["consume", "--threads", "2", "--redis", &url], None);
    let name = format!("-{}", child.id());
    let named = || {
        let list: String = redis.cmd(&["CLIENT", "LIST"]);
        list.lines()
            .filter(|l| l.contains("name=qpipe-consume-") && l.contains(&name))
            .count()
    };
    // Two poppers and the control connection, at least.
    eventually("named connections", Duration::from_secs(10), || {
        named() >= 3
    });
    signal(&child, "-TERM");
    finish_expect(child, 0);
}

#[test]
fn rediscli_auth_supplies_the_password_and_a_password_in_argv_is_flagged() {
    let redis = Redis::start_tcp_with(&["--requirepass", "s3cret-pw"]);
    let bare = format!("redis://127.0.0.1:{}", redis.port);
    let run = qpipe_env(
        &["status", "--redis", &bare],
        None,
        &[("REDISCLI_AUTH", "s3cret-pw")],
    );
    assert_eq!(run.code, 0, "{run}");
    assert!(!run.stderr.contains("visible"), "{run}");
    let inline = format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port);
    let run = qpipe(&["status", "--redis", &inline], None);
    assert_eq!(run.code, 0, "{run}");
    assert!(
        run.stderr
            .contains("the password in --redis is visible to other users in `ps`"),
        "{run}"
    );
    assert!(!run.stderr.contains("s3cret-pw") && !run.stdout.contains("s3cret-pw"));
}

#[test]
fn errors_name_the_cause_on_one_line() {
    let site = Site::start(1);
    let http_port = site.url.trim_end_matches('/').rsplit(':').next().unwrap();
    let status = |url: String| Args::new("status").redis(&url).run(None);
    let run = status(format!("redis://127.0.0.1:{http_port}"));
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stderr
            .contains("does not answer as Redis (is this the right port?)"),
        "{run}"
    );

    let redis = Redis::start_tcp_with(&[]);
    let started = Instant::now();
    let run = status(format!("rediss://127.0.0.1:{}", redis.port));
    assert!(started.elapsed() < Duration::from_secs(8), "{run}");
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("no TLS handshake reply")
            && run.stderr.contains("use redis:// instead of rediss://"),
        "{run}"
    );

    let run = status(format!("redis://127.0.0.1:{}/99", redis.port));
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("the database index in the URL does not exist on this server")
            && !run.stderr.contains("is redis-server running"),
        "{run}"
    );
}

#[test]
fn sighup_reopens_the_output_after_rotation() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (out, rotated) = (dir.path().join("out.jsonl"), dir.path().join("out.1"));
    let url = redis.url();
    let child = Args::consume(&url).out(&out).spawn(None);
    let first = common::numbered(10, 5);
    redis.lpush(KEY, &first);
    eventually("first items", Duration::from_secs(10), || {
        lines(&out).len() == 10
    });
    std::fs::rename(&out, &rotated).unwrap();
    signal(&child, "-HUP");
    eventually("a new file", Duration::from_secs(10), || out.exists());
    let second = common::numbered(20, 5);
    redis.lpush(KEY, &second[10..]);
    eventually("second items", Duration::from_secs(10), || {
        lines(&out).len() == 10
    });
    signal(&child, "-TERM");
    let stderr = finish_expect(child, 0);
    // Several poppers may interleave batches: compare as sets.
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(lines(&rotated)), sorted(first), "{stderr}");
    assert_eq!(
        sorted(lines(&out)),
        sorted(second[10..].to_vec()),
        "{stderr}"
    );
}

#[test]
fn json_logs_make_every_stderr_line_an_object() {
    let redis = Redis::start();
    redis.lpush(KEY, &["{\"a\":1}", "not json"]);
    let url = redis.url();
    // The dead letter makes it exit 3 and log a warning.
    let run = Args::new("consume")
        .opt("--log-format", "json")
        .drain(0.3)
        .redis(&url)
        .opt("--out", "/dev/null")
        .run_expect(None, 3);
    let objects: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}\n{run}")))
        .collect();
    assert!(objects.iter().any(|o| o["level"] == "warn"), "{run}");
    let summary = objects
        .iter()
        .find(|o| o["msg"] == "summary")
        .expect("a summary object");
    assert_eq!(summary["summary"]["items_written"], 1, "{run}");
    for o in &objects {
        assert!(o["ts"].is_string() && o["level"].is_string(), "{o}");
    }
    let bad = qpipe(&["consume", "--log-format", "xml", "--redis", &url], None);
    assert_eq!(bad.code, 2, "{bad}");
}

#[test]
fn a_closed_or_null_stdout_as_the_sink_is_warned_about() {
    let redis = Redis::start();
    redis.lpush(KEY, &common::numbered(3, 5));
    let url = redis.url();
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("exec >&-; exec {QPIPE} consume --drain --idle-timeout 0.3 --redis {url}"),
        ])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("stdout is /dev/null (or was closed): every item consumed is discarded"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_are_json_too_with_log_format_json() {
    let run = qpipe(&["consume", "--bogus", "--log-format", "json"], None);
    assert_eq!(run.code, 2, "{run}");
    let v: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("one JSON line");
    assert_eq!(v["level"], "error", "{run}");
    assert!(v["msg"].as_str().unwrap().contains("--bogus"), "{run}");
}

/// `status --keys` names every key qpipe made for the queue, by the key
/// registry, and nothing else: not a key that merely starts with the
/// queue's name, nor one of a key whose name has glob characters.
#[test]
fn status_keys_lists_the_queues_keys_by_the_registry() {
    let redis = Redis::start();
    let url = redis.url();
    let key = "Q*[1]";
    redis.lpush(key, &["{\"a\":1}", "{\"a\":2}"]);
    redis.lpush(&format!("{key}:dead"), &["x"]);
    let _: () = redis.cmd(&["SET", &format!("{key}:consumer:h:1:0badcafe"), "t"]);
    let _: () = redis.cmd(&["SADD", &format!("{key}:consumers"), "h:1:0badcafe"]);
    // Not qpipe's: a longer name, an unknown suffix, a glob's other match.
    for other in ["Q*[1]X", "Q*[1]:other", "Qa1"] {
        let _: () = redis.cmd(&["SET", other, "1"]);
    }
    let run = qpipe(
        &["status", "--redis", &url, "--key", key, "--keys", "--json"],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("one JSON object");
    let keys = v["keys"].as_object().expect("keys");
    let names: Vec<&str> = keys.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "Q*[1]",
            "Q*[1]:consumer:h:1:0badcafe",
            "Q*[1]:consumers",
            "Q*[1]:dead"
        ],
        "{run}"
    );
    let pattern = |k: &str| {
        keys[k]
            .as_str()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(pattern("Q*[1]"), "KEY");
    assert_eq!(pattern("Q*[1]:dead"), "KEY:dead");
    assert_eq!(pattern("Q*[1]:consumer:h:1:0badcafe"), "KEY:consumer:ID");
    assert!(keys["Q*[1]:dead"]
        .as_str()
        .unwrap()
        .contains("`qpipe dead` lists, re-queues and deletes them"));
    // Without --keys the summary has no key list.
    let plain = qpipe(&["status", "--redis", &url, "--key", key, "--json"], None);
    assert!(!plain.stdout.contains("\"keys\""), "{plain}");

    // A job list, a seen key (set and Bloom parameters) and a lock, each by
    // its own registry row; a queue's look-alike job keys are not taken.
    redis.lpush("J", &["http://example.com/"]);
    for (k, v) in [
        ("J:done", "3"),
        ("qpipe:lock:L", "tok"),
        ("Q*[1]:done", "1"),
    ] {
        let _: () = redis.cmd(&["SET", k, v]);
    }
    let _: () = redis.cmd(&["ZADD", "S", "1", "m"]);
    let _: () = redis.cmd(&["HSET", "S:bloom", "m", "1"]);
    let args = [
        "status",
        "--redis",
        &url,
        "--key",
        key,
        "--jobs",
        "J",
        "--seen-key",
        "S",
    ];
    let run = qpipe(
        &[&args[..], &["--lock", "L", "--keys", "--json"]].concat(),
        None,
    );
    let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).expect("JSON");
    let pattern = |k: &str| {
        v["keys"][k]
            .as_str()
            .unwrap_or_else(|| panic!("{k} not listed: {run}"))
            .split(" (")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(pattern("J"), "J");
    assert_eq!(pattern("J:done"), "J:done");
    assert_eq!(pattern("S"), "SEEN or {KEY:i}:seen:SEEN");
    assert_eq!(
        pattern("S:bloom"),
        "SEEN:bloom, SEEN:bloom:N, SEEN:bloom:bf"
    );
    assert_eq!(pattern("qpipe:lock:L"), "qpipe:lock:LOCK");
    assert!(v["keys"].get("Q*[1]:done").is_none(), "{run}");
    assert_eq!(v["keys_found"], 9, "{run}");
    // As text: a line a key, name then its row.
    let text = qpipe(&[&args[..], &["--lock", "L", "--keys"]].concat(), None);
    let listed: Vec<&str> = text.stdout.lines().filter(|l| l.contains('\t')).collect();
    assert_eq!(listed.len(), 9, "{text}");
    assert!(listed.contains(&"J:done\tJ:done (string (counter); kept): acknowledged jobs, INCR per job; safe to delete (the count restarts)"), "{text}");
}
