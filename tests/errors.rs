//! Bad input: one-line errors, documented exit codes, no panics, no lost items.

mod common;

use common::{qpipe, qpipe_env, stats, Args, Redis, Site};

/// Asserts a one-line `qpipe: ...` error containing `needle`, and no panic.
/// (A password given in `--redis` adds its one warning line about `ps`.)
fn assert_one_line_error(run: &common::Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "{run}");
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.contains("is visible to other users in `ps`"))
        .collect();
    assert_eq!(lines.len(), 1, "expected one stderr line\n{run}");
    assert!(lines[0].starts_with("qpipe: "), "{run}");
    assert!(lines[0].contains(needle), "missing {needle:?}\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn unreachable_redis_is_exit_1_and_hides_the_password() {
    // A port nothing should listen on: no server is started on it, so there
    // is no bind to race for (only a stranger binding it meanwhile could
    // interfere, and that shows in the error message asserted below).
    let port = common::free_port();
    let url = format!("redis://alice:hunter2@127.0.0.1:{port}/0");
    for cmd in ["produce", "consume"] {
        let run = qpipe(&[cmd, "--redis", &url], None);
        assert_one_line_error(
            &run,
            1,
            &format!("cannot reach Redis at redis://alice:***@127.0.0.1:{port}/0"),
        );
        assert!(run.stderr.contains("is redis-server running?"), "{run}");
        assert!(!run.stderr.contains("hunter2"), "{run}");
    }
}

#[test]
fn redis_url_from_environment_is_used_and_redacted() {
    // Nothing listens here either (see above).
    let port = common::free_port();
    let url = format!("redis://:sekrit@127.0.0.1:{port}");
    let run = qpipe_env(&["consume", "--drain"], None, &[("REDIS_URL", &url)]);
    assert_one_line_error(&run, 1, &format!("redis://:***@127.0.0.1:{port}"));
    assert!(!run.stderr.contains("sekrit"), "{run}");
}

#[test]
fn invalid_redis_url_is_usage_error() {
    let run = qpipe(&["produce", "--redis", "http://a:pw@host/"], None);
    assert_one_line_error(&run, 2, "invalid Redis URL");
    assert!(!run.stderr.contains("pw@"), "{run}");
}

#[test]
fn bad_thread_counts_are_usage_errors() {
    for (cmd, n) in [
        ("produce", "0"),
        ("produce", "100000"),
        ("consume", "0"),
        ("consume", "513"),
    ] {
        let run = qpipe(&[cmd, "--threads", n], None);
        assert_one_line_error(
            &run,
            2,
            &format!("--threads {n} is out of range (use 1 to 512)"),
        );
    }
    let run = qpipe(&["produce", "--threads", "many"], None);
    assert_eq!(run.code, 2, "{run}");
}

#[test]
fn invalid_start_url_is_usage_error() {
    for bad in ["not a url", "ftp://example.com/", "mailto:x@y"] {
        let run = qpipe(&["produce", "--start-url", bad], None);
        assert_one_line_error(&run, 2, "invalid --start-url");
    }
}

#[test]
fn unknown_flag_is_usage_error() {
    let run = qpipe(&["consume", "--frobnicate"], None);
    assert_one_line_error(&run, 2, "Unrecognized argument: --frobnicate");
}

#[test]
fn wrong_key_type_is_reported_before_any_work() {
    let redis = Redis::start();
    redis::cmd("SET")
        .arg("K")
        .arg("a string")
        .query::<()>(&mut redis.con())
        .unwrap();
    let url = redis.url();
    for args in [
        Args::new("produce")
            .redis(&url)
            .opt("--key", "K")
            .start_url("http://127.0.0.1:9/"),
        Args::consume(&url).opt("--key", "K").arg("--drain"),
        Args::new("push").redis(&url).opt("--key", "K"),
    ] {
        let run = args.run(None);
        assert_one_line_error(&run, 2, "Redis key \"K\" holds a string, not a list");
    }
}

#[test]
fn unwritable_out_pops_nothing() {
    let redis = Redis::start();
    redis.lpush(
        "DATA-PIPELINE-KEY",
        &["{\"quote\":\"a\"}", "{\"quote\":\"b\"}"],
    );
    let run = Args::consume(&redis.url())
        .arg("--drain")
        .opt("--out", "/nonexistent-dir/out.jsonl")
        .run(None);
    assert_one_line_error(&run, 1, "cannot open --out /nonexistent-dir/out.jsonl");
    assert_eq!(redis.llen("DATA-PIPELINE-KEY"), 2);
}

#[test]
fn push_skips_invalid_lines_by_number_and_exits_3() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        "{\"quote\":\"one\"}\n\nnot json\n{\"quote\":\"two\"}\r\n[1,2]\n",
    )
    .unwrap();
    let st = dir.path().join("s.json");
    let run = Args::new("push")
        .arg(file.display())
        .redis(&redis.url())
        .stats_json(&st)
        .run_expect(None, 3);
    assert!(
        run.stderr
            .contains("line 3: invalid JSON: expected ident at line 1 column 2, skipped"),
        "{run}"
    );
    let s = stats(&st);
    assert_eq!(
        (
            s["lines"].as_u64(),
            s["blank_lines"].as_u64(),
            s["invalid_lines"].as_u64(),
            s["items_pushed"].as_u64()
        ),
        (Some(5), Some(1), Some(1), Some(3))
    );
    // Pushed in file order: the first line is the oldest, popped first.
    let out = dir.path().join("out.jsonl");
    Args::new("consume")
        .threads(1)
        .redis(&redis.url())
        .drain(0.2)
        .out(&out)
        .run_expect(None, 0);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "{\"quote\":\"one\"}\n{\"quote\":\"two\"}\n[1,2]\n"
    );
}

#[test]
fn missing_push_file_is_exit_1() {
    let redis = Redis::start();
    let run = qpipe(
        &["push", "/nonexistent/x.jsonl", "--redis", &redis.url()],
        None,
    );
    assert_one_line_error(&run, 1, "cannot read /nonexistent/x.jsonl");
}

#[test]
fn failed_pages_give_exit_3_and_are_counted() {
    let redis = Redis::start();
    let site = Site::start(3);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    // One good start page and one that 404s.
    let missing = format!("{}page/999/", site.url);
    Args::produce(&redis.url(), &site.url)
        .start_url(&missing)
        .stats_json(&st)
        .run_expect(None, 3);
    let s = stats(&st);
    assert_eq!(s["errors"]["http_404"], 1, "{s}");
    assert_eq!(s["pages_failed"], 1);
    assert_eq!(s["items_pushed"], 30);
    assert_eq!(redis.llen("DATA-PIPELINE-KEY"), 30);
}

#[test]
fn out_to_a_pipe_works_without_fsync() {
    let redis = Redis::start();
    redis.lpush("DATA-PIPELINE-KEY", &["{\"n\":1}", "{\"n\":2}"]);
    // /dev/stdout is the test's pipe here: fsync is EINVAL, the data still flows.
    let run = Args::new("consume")
        .threads(1)
        .redis(&redis.url())
        .drain(0.2)
        .opt("--out", "/dev/stdout")
        .run_expect(None, 0);
    assert_eq!(run.stdout, "{\"n\":1}\n{\"n\":2}\n");
}
