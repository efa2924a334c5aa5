//! The command and HTTP sinks (`consume --exec`, `--post`): the README's
//! PostgreSQL recipe against a real PostgreSQL, ClickHouse over its HTTP
//! interface, and a loopback endpoint that fails in every way, with a batch
//! committed only when the other side took it.

mod common;

use common::collector::{Collector, Reply};
use common::postgres::Postgres;
use common::{numbered, signal, stats, wait_bounded, Args, Redis};
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// The loader script of the README's PostgreSQL recipe, and its table.
fn recipe(dir: &Path, pg: &Postgres) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("<!-- recipe: postgres -->")
        .nth(1)
        .and_then(|r| r.split("<!-- /recipe -->").next())
        .expect("the recipe in the README");
    let script: Vec<&str> = block
        .lines()
        .skip_while(|l| !l.starts_with("cat > load-items.sh"))
        .skip(1)
        .take_while(|l| *l != "SH")
        .collect();
    assert!(script.len() > 3, "{block}");
    std::fs::write(dir.join("load-items.sh"), script.join("\n") + "\n").unwrap();
    // The table, from the recipe's `# once:` comment lines.
    for line in block.lines().filter_map(|l| l.strip_prefix('#')) {
        let sql = line.trim();
        let sql = sql.strip_prefix("once:").unwrap_or(sql).trim();
        if sql.starts_with("CREATE") {
            pg.sql(sql);
        }
    }
    let exec = block
        .lines()
        .find_map(|l| l.split("--exec '").nth(1))
        .and_then(|r| r.strip_suffix('\''))
        .expect("the --exec command");
    exec.to_string()
}

fn seed(redis: &Redis, n: usize) -> Vec<String> {
    let items = numbered(n, 20);
    redis.lpush(KEY, &items);
    items
}

/// The items in PostgreSQL, as their `n`.
fn loaded(pg: &Postgres) -> (u64, HashSet<u64>) {
    let count: u64 = pg.sql("SELECT count(*) FROM items").parse().unwrap();
    let ns: HashSet<u64> = pg
        .sql("SELECT doc->>'n' FROM items")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    (count, ns)
}

fn consume_exec(redis: &Redis, exec: &str, st: &Path) -> Args {
    Args::consume(&redis.url())
        .arg("--reliable")
        .threads(2)
        .batch_size(100)
        .drain(0.5)
        .opt("--exec", exec)
        .stats_json(st)
}

#[test]
fn the_readme_recipe_loads_every_item_into_postgres_once() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let exec = recipe(dir.path(), &pg);
    let redis = Redis::start();
    seed(&redis, 3_000);
    let st = dir.path().join("st.json");
    let run = consume_exec(&redis, &exec, &st).run_env(Some(dir.path()), &[("PG_URL", &pg.url())]);
    assert_eq!(run.code, 0, "{run}");
    let (count, ns) = loaded(&pg);
    assert_eq!((count, ns.len()), (3_000, 3_000));
    assert_eq!(ns, (0..3_000).collect::<HashSet<u64>>());
    assert_eq!(stats(&st)["items_written"], 3_000);
    assert_eq!(
        redis.keys_left(),
        Vec::<String>::new(),
        "left behind (the fleet's counts, KEY:stats, are kept)"
    );
}

#[test]
fn a_loader_that_fails_once_then_hangs_after_committing_loads_every_item_once() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let exec = recipe(dir.path(), &pg);
    let redis = Redis::start();
    seed(&redis, 1_000);
    // First run: fails. Second: loads, then hangs past --sink-timeout (so
    // qpipe cannot know it committed). Then as the recipe.
    let wrapper = format!(
        "if mkdir failed 2>/dev/null; then exit 1; fi; \
         if mkdir hung 2>/dev/null; then {exec} && sleep 60; exit 0; fi; {exec}"
    );
    let st = dir.path().join("st.json");
    let run = consume_exec(&redis, &wrapper, &st)
        .opt("--sink-timeout", 2)
        .run_env(Some(dir.path()), &[("PG_URL", &pg.url())]);
    assert_eq!(run.code, 0, "{run}");
    assert!(run.stderr.contains("(exit status 1)"), "{run}");
    assert!(
        run.stderr
            .contains("no exit within --sink-timeout 2s; killed"),
        "{run}"
    );
    let (count, ns) = loaded(&pg);
    assert_eq!((count, ns.len()), (1_000, 1_000));
    let s = stats(&st);
    assert_eq!(
        (s["items_written"].as_u64(), s["sink_retries"].as_u64()),
        (Some(1_000), Some(2))
    );
}

#[test]
fn kill_9_mid_batch_then_a_restart_loads_every_item_once() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let exec = recipe(dir.path(), &pg);
    let redis = Redis::start();
    seed(&redis, 2_000);
    // The first batch loads, says so, and hangs: qpipe is killed with the
    // batch committed in PostgreSQL and not acknowledged in Redis.
    let wrapper = format!(
        "if mkdir first 2>/dev/null; then {exec} && echo $$ > loaded && sleep 60; fi; {exec}"
    );
    let st = dir.path().join("st.json");
    let pg_url = pg.url();
    let mut first = consume_exec(&redis, &wrapper, &st)
        .opt("--heartbeat-ttl", 2)
        .command();
    let child = first
        .current_dir(dir.path())
        .env("PG_URL", &pg_url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let loaded_file = dir.path().join("loaded");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&loaded_file).is_ok_and(|s| s.ends_with('\n')) {
        assert!(Instant::now() < deadline, "the first batch never loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, "-KILL");
    let _ = wait_bounded(child, Duration::from_secs(10));
    // The orphaned loader too (its own process group).
    let pid: i32 = std::fs::read_to_string(&loaded_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid > 1);
    // SAFETY: kill(2) on the loader's own process group (its sh leads it).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let before = loaded(&pg).0;
    assert!(
        before > 0 && before < 2_000,
        "{before} loaded before the kill"
    );
    // Restarted once the dead run's heartbeat (2 s) has expired, as cron
    // would: its held batches come back at start.
    std::thread::sleep(Duration::from_millis(2_500));
    let run = consume_exec(&redis, &exec, &st)
        .opt("--heartbeat-ttl", 2)
        .run_env(Some(dir.path()), &[("PG_URL", &pg_url)]);
    assert_eq!(run.code, 0, "{run}");
    let (count, ns) = loaded(&pg);
    assert_eq!((count, ns.len()), (2_000, 2_000));
    let s = common::jsonl(&st);
    let last = s.last().unwrap();
    assert!(last["items_recovered"].as_u64().unwrap() > 0, "{last}");
}

#[test]
fn a_batch_no_command_takes_goes_back_in_order_in_brpop_mode() {
    let redis = Redis::start();
    let items = seed(&redis, 250);
    let before = redis.lrange(KEY);
    let run = Args::consume(&redis.url())
        .threads(1)
        .batch_size(100)
        .drain(0.5)
        .opt("--exec", "cat > /dev/null; exit 4")
        .opt("--sink-retries", 1)
        .run_expect(None, 1);
    assert!(
        run.stderr
            .contains("failed 2 attempts (last: exit status 4)")
            && run.stderr.contains("popped items were put back"),
        "{run}"
    );
    // Compared by hand: a failed assert_eq would print 500 items.
    let after = redis.lrange(KEY);
    assert!(
        after == before,
        "order changed: the tail is now {:?}",
        after.last()
    );
    assert_eq!(items.len(), 250);
}

fn post(redis: &Redis, url: &str, extra: &[&str]) -> Args {
    Args::consume(&redis.url())
        .arg("--reliable")
        .threads(1)
        .batch_size(100)
        .drain(0.5)
        .opt("--post", url)
        .args(extra)
}

#[test]
fn post_retries_5xx_429_slow_and_dropped_answers_with_one_identity_per_batch() {
    let redis = Redis::start();
    let items = seed(&redis, 100);
    let sink = Collector::start(|n| match n {
        0 => Reply::Status(500, vec![], "Code: 1000. DB::Exception: boom\nmore".into()),
        1 => Reply::Status(429, vec![("Retry-After", "1".into())], String::new()),
        2 => Reply::Drop,
        3 => Reply::Slow(Duration::from_secs(5)),
        _ => Reply::Status(204, vec![], String::new()),
    });
    let run = post(
        &redis,
        &sink.url,
        &[
            "--sink-timeout",
            "2",
            "--gzip",
            "--header",
            "Authorization: Bearer t0ken",
        ],
    )
    .run_expect(None, 0);
    assert!(
        run.stderr
            .contains("HTTP 500: Code: 1000. DB::Exception: boom"),
        "{run}"
    );
    assert!(run.stderr.contains("HTTP 429"), "{run}");
    assert!(!run.stderr.contains("t0ken"), "{run}");
    let got = sink.got();
    assert_eq!(got.len(), 5, "{run}");
    let ids: HashSet<&str> = got
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "every try of one batch has one identity");
    for r in &got {
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(r.raw_len < r.body.len());
    }
    let lines: Vec<&str> = got[4].body.lines().collect();
    assert_eq!(lines.len(), 100);
    let mut want = items.clone();
    want.sort();
    let mut have: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    have.sort();
    assert_eq!(have, want);
    assert_eq!(
        redis.keys_left(),
        Vec::<String>::new(),
        "left behind (the fleet's counts, KEY:stats, are kept)"
    );
}

#[test]
fn post_stops_at_a_4xx_and_keeps_the_batch() {
    let redis = Redis::start();
    seed(&redis, 100);
    let sink = Collector::start(|_| Reply::Status(400, vec![], "Cannot parse input".into()));
    let run = post(&redis, &sink.url, &[]).run_expect(None, 1);
    assert_eq!(sink.got().len(), 1, "a 400 is not retried: {run}");
    assert!(
        run.stderr
            .contains("refused the batch: HTTP 400: Cannot parse input")
            && run.stderr.contains("100 items not committed were put back"),
        "{run}"
    );
    assert_eq!(redis.llen(KEY), 100);
}

#[test]
fn sink_flags_are_checked_before_anything_runs() {
    for (args, says) in [
        (&["--out", "x", "--exec", "true"][..], "give one sink"),
        (&["--post", "ftp://h/x"][..], "is not an http(s) URL"),
        (
            &["--post", "http://127.0.0.1:1/", "--header", "nocolon"][..],
            "is not \"Name: value\"",
        ),
        (
            &["--exec", "true", "--gzip"][..],
            "--header and --gzip go with --post",
        ),
        (
            &["--exec", "true", "--sink-timeout", "0"][..],
            "--sink-timeout 0 is not a usable number",
        ),
    ] {
        let run = Args::consume("redis://127.0.0.1:1")
            .args(args)
            .run_expect(None, 2);
        assert!(run.stderr.contains(says), "{run}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{run}");
    }
}

#[test]
fn post_loads_every_item_into_clickhouse_through_a_server_crash() {
    let mut ch = common::clickhouse::ClickHouse::start();
    ch.query("CREATE TABLE quotes (n UInt64, pad String) ENGINE = MergeTree ORDER BY n");
    let redis = Redis::start();
    seed(&redis, 20_000);
    let child = Args::consume(&redis.url())
        .arg("--reliable")
        .threads(2)
        .batch_size(200)
        .drain(1)
        .opt("--post", ch.insert_url("quotes"))
        .arg("--gzip")
        .spawn(None);
    let count = |ch: &common::clickhouse::ClickHouse| -> u64 {
        ch.query("SELECT count() FROM quotes")
            .trim()
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&ch) < 2_000 {
        assert!(Instant::now() < deadline, "nothing reached ClickHouse");
        std::thread::sleep(Duration::from_millis(20));
    }
    ch.kill();
    std::thread::sleep(Duration::from_millis(1_500));
    ch.restart();
    let out = wait_bounded(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("tried again in"),
        "the crash was not seen: {stderr}"
    );
    let distinct: u64 = ch
        .query("SELECT uniqExact(n) FROM quotes")
        .trim()
        .parse()
        .unwrap();
    let rows = count(&ch);
    eprintln!("{rows} rows, {distinct} distinct");
    assert_eq!(distinct, 20_000);
    // A batch ClickHouse took just before it died, and was sent again,
    // is the only source of duplicates (at-least-once).
    assert!(rows - distinct <= 2 * 200 * 64, "{rows} rows");
    assert_eq!(
        redis.keys_left(),
        Vec::<String>::new(),
        "left behind (the fleet's counts, KEY:stats, are kept)"
    );
}

/// Waits until `path` has at least `n` lines.
fn wait_file_lines(path: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(path).map_or(0, |s| s.lines().count()) < n {
        assert!(
            Instant::now() < deadline,
            "{} never reached {n} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_stops_a_hung_command_and_puts_its_batch_back_in_order() {
    let redis = Redis::start();
    seed(&redis, 300);
    let before = redis.lrange(KEY);
    let dir = tempfile::tempdir().unwrap();
    let pid = dir.path().join("pid");
    // The command records its pid and hangs well past any grace.
    let child = Args::consume(&redis.url())
        .threads(1)
        .batch_size(100)
        .drain(0.5)
        .opt(
            "--exec",
            format!("echo $$ > {}; exec sleep 60", pid.display()),
        )
        .spawn(None);
    wait_file_lines(&pid, 1);
    let t = Instant::now();
    signal(&child, "-TERM");
    let done = wait_bounded(child, Duration::from_secs(20));
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert_eq!(done.status.code(), Some(143), "{stderr}");
    assert!(
        took < Duration::from_secs(8),
        "stopped after {took:?}: {stderr}"
    );
    // The command's process group was killed.
    let sleeper = std::fs::read_to_string(&pid).unwrap().trim().to_string();
    assert!(
        !Path::new(&format!("/proc/{sleeper}")).exists(),
        "the command still runs: {stderr}"
    );
    let after = redis.lrange(KEY);
    assert!(
        after == before,
        "{} items, tail {:?}",
        after.len(),
        after.last()
    );
}

#[test]
fn sigterm_during_a_retry_wait_starts_no_new_try_and_keeps_the_batch() {
    let redis = Redis::start();
    let items = seed(&redis, 200);
    let dir = tempfile::tempdir().unwrap();
    let tries = dir.path().join("tries");
    // Fails at once; the second retry is 2 s after the first.
    let child = Args::consume(&redis.url())
        .arg("--reliable")
        .threads(1)
        .batch_size(200)
        .drain(0.5)
        .opt("--sink-retries", 5)
        .opt(
            "--exec",
            format!("echo $QPIPE_ATTEMPT >> {}; exit 1", tries.display()),
        )
        .spawn(None);
    wait_file_lines(&tries, 2);
    signal(&child, "-TERM");
    let done = wait_bounded(child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
    assert_eq!(done.status.code(), Some(143), "{stderr}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        std::fs::read_to_string(&tries).unwrap(),
        "1\n2\n",
        "{stderr}"
    );
    // Held in reliable mode, re-queued at exit: every item is back.
    let back: HashSet<String> = redis.lrange(KEY).into_iter().collect();
    assert_eq!(back, items.iter().cloned().collect::<HashSet<_>>());
    assert_eq!(redis.lrange(KEY).len(), 200);
}
