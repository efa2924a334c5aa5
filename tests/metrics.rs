//! Watching a run: `--metrics` (scraped over HTTP and read by the reference
//! Prometheus parser), `/healthz`, `--stats-every` and SIGUSR1.

mod common;

use common::fixture::{html, redirect, Answer, Fixture};
use common::scrape::{get, scrape, Tail};
use common::{eventually, finish, lines, numbered, qpipe, signal, stats, Args, Redis};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn quotes(page: &str) -> String {
    (1..=2)
        .map(|i| format!("<div class=\"quote\"><span class=\"text\">{page} quote {i}</span></div>"))
        .collect()
}

/// `/` links to two pages, a redirect, a 404, an always-503 page, and
/// `/hold`, which answers only once `release` is raised (at most 60 s).
fn site(release: Arc<AtomicBool>) -> Fixture {
    Fixture::start(move |path, _| match path {
        "/" => html(
            "<ul class=\"sitemap\"><li><a href=\"/p/1\">1</a></li><li><a href=\"/p/2\">2</a></li>\
             <li><a href=\"/moved\">m</a></li><li><a href=\"/missing\">x</a></li>\
             <li><a href=\"/flaky\">f</a></li><li><a href=\"/hold\">h</a></li></ul>",
        ),
        "/moved" => redirect("/p/3"),
        "/missing" => Answer::Full(404, vec![], b"no".to_vec()),
        "/flaky" => Answer::Full(503, vec![], b"busy".to_vec()),
        "/hold" => {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !release.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            html(&quotes(path))
        }
        p if p.starts_with("/p/") => html(&quotes(p)),
        _ => Answer::Full(404, vec![], Vec::new()),
    })
}

/// SIGTERM to `child`, then asserts its exit code, failing with its log.
fn stop(child: Child, tail: &Tail, want: i32) {
    signal(&child, "-TERM");
    let (code, _) = finish(child);
    assert_eq!(code, want, "{}", tail.text());
}

#[test]
fn produce_metrics_and_stats_line_are_live_and_exact() {
    let redis = Redis::start();
    let release = Arc::new(AtomicBool::new(false));
    let fx = site(Arc::clone(&release));
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = redis.url();
    let start = format!("{}/", fx.base);
    let mut child = Args::produce(&url, &start)
        .arg("--ignore-robots")
        .threads(2)
        .opt("--retry-backoff-ms", 10)
        .opt("--metrics", "127.0.0.1:0")
        .opt("--stats-every", 1)
        .stats_json(&st)
        .spawn(Some(dir.path()));
    let tail = Tail::stderr(&mut child);
    let addr = tail.metrics_addr();
    // Everything but /hold: 4 pages (/, /p/1, /p/2, /p/3 after the
    // redirect), one 302, one 404, three 503s (3 attempts), 6 items.
    eventually("6 items pushed", Duration::from_secs(20), || {
        redis.llen(KEY) == 6
    });
    // The last 503 retry may still be under way when the items land.
    eventually("the scrape to catch up", Duration::from_secs(10), || {
        let now = scrape(&addr);
        now.value("qpipe_items_pushed_total") == 6.0
            && now.value("qpipe_pages_fetched_total{class=\"5xx\"}") == 3.0
    });
    let during = scrape(&addr);
    for (key, want) in [
        ("qpipe_pages_fetched_total{class=\"1xx\"}", 0.0),
        ("qpipe_pages_fetched_total{class=\"2xx\"}", 4.0),
        ("qpipe_pages_fetched_total{class=\"3xx\"}", 1.0),
        ("qpipe_pages_fetched_total{class=\"4xx\"}", 1.0),
        ("qpipe_pages_fetched_total{class=\"5xx\"}", 3.0),
        ("qpipe_pages_scraped_total", 4.0),
        ("qpipe_items_extracted_total", 6.0),
        ("qpipe_items_pushed_total", 6.0),
        ("qpipe_items_rejected_total", 0.0),
        // Extraction health per field: author and tags are empty on all 6.
        ("qpipe_field_empty_total{field=\"quote\"}", 0.0),
        ("qpipe_field_empty_total{field=\"author\"}", 6.0),
        ("qpipe_field_empty_total{field=\"tags\"}", 6.0),
        ("qpipe_field_items_total{field=\"quote\"}", 6.0),
        ("qpipe_queue_length", 6.0),
        ("qpipe_redis_up", 1.0),
        ("qpipe_redis_retries_total", 0.0),
        ("qpipe_redis_reconnects_total", 0.0),
        ("qpipe_lock_held", 0.0),
    ] {
        assert_eq!(during.value(key), want, "{key}:\n{}", during.text);
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        during.value(&format!("qpipe_build_info{{version=\"{version}\"}}")),
        1.0
    );
    assert_eq!(during.types["qpipe_pages_fetched"], "counter");
    assert_eq!(during.types["qpipe_queue_length"], "gauge");
    assert_eq!(during.types["qpipe_build_info"], "gauge");
    // --stats-every 1 logs the same counters while /hold is held.
    tail.line_with(
        "stats: pages_fetched_1xx=0 pages_fetched_2xx=4 pages_fetched_3xx=1 pages_fetched_4xx=1 \
         pages_fetched_5xx=3 pages_scraped=4 items_extracted=6 items_pushed=6 items_rejected=0 redis_retries=0 \
         redis_reconnects=0 lock_held=0",
        Duration::from_secs(5),
    );
    assert_eq!(get(&addr, "/healthz").0, 200);
    assert_eq!(get(&addr, "/nope").0, 404);

    release.store(true, Ordering::Relaxed);
    let (code, _) = finish(child);
    // The 404 and the 503s are failed pages: exit 3.
    assert_eq!(code, 3, "{}", tail.text());
    let s = stats(&st);
    assert_eq!(s["items_pushed"], 8, "{s}");
    assert_eq!(s["pages_fetched"], 5, "{s}");
    assert_eq!(
        s["responses_by_status"],
        serde_json::json!({"2xx": 5, "3xx": 1, "404": 1, "503": 3})
    );
}

#[test]
fn consume_metrics_count_every_item_and_the_lock() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    let mut child = Args::consume(&url)
        .threads(2)
        .batch_size(50)
        .opt("--lock", "nightly")
        .out(&out)
        .opt("--metrics", "127.0.0.1:0")
        .opt("--stats-every", 0)
        .spawn(None);
    let tail = Tail::stderr(&mut child);
    let addr = tail.metrics_addr();
    let before = scrape(&addr);
    assert_eq!(before.value("qpipe_items_popped_total"), 0.0);
    assert_eq!(before.value("qpipe_lock_held"), 1.0);
    assert_eq!(before.value("qpipe_queue_length"), 0.0);

    let mut items = numbered(300, 10);
    items.insert(100, "not json".into());
    items.insert(200, "{\"broken\":".into());
    redis.lpush(KEY, &items);
    eventually("300 lines written", Duration::from_secs(20), || {
        lines(&out).len() == 300
    });
    eventually(
        "the sink's count to catch up",
        Duration::from_secs(5),
        || scrape(&addr).value("qpipe_items_written_total") == 300.0,
    );
    let end = scrape(&addr);
    for (key, want) in [
        ("qpipe_items_popped_total", 302.0),
        ("qpipe_items_written_total", 300.0),
        ("qpipe_items_dead_total", 2.0),
        ("qpipe_queue_length", 0.0),
        ("qpipe_redis_up", 1.0),
        ("qpipe_redis_retries_total", 0.0),
        ("qpipe_redis_reconnects_total", 0.0),
        ("qpipe_lock_held", 1.0),
    ] {
        assert_eq!(end.value(key), want, "{key}:\n{}", end.text);
    }
    assert_eq!(end.types["qpipe_items_written"], "counter");
    assert!(!end.samples.contains_key("qpipe_items_pushed_total"));
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 2);

    // Two dead letters reach --fail-on-errors 1: exit 3.
    stop(child, &tail, 3);
    let summary = tail.text();
    let written = summary
        .lines()
        .find(|l| l.trim_start().starts_with("items_written "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>());
    assert_eq!(written, Some(vec!["items_written", "300"]), "{summary}");
}

#[test]
fn healthz_turns_503_once_redis_is_gone_and_scrapes_stay_quick() {
    let mut redis = Redis::start();
    let url = redis.url();
    let mut child = Args::consume(&url)
        .opt("--out", "/dev/null")
        .opt("--metrics", "127.0.0.1:0")
        .opt("--redis-retry-secs", 120)
        .spawn(None);
    let tail = Tail::stderr(&mut child);
    let addr = tail.metrics_addr();
    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_string()));
    redis.kill();
    let killed = Instant::now();
    let t = Instant::now();
    let down = scrape(&addr);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(down.value("qpipe_redis_up"), 0.0, "{}", down.text);
    assert!(!down.samples.contains_key("qpipe_queue_length"));
    eventually("/healthz 503", Duration::from_secs(20), || {
        let t = Instant::now();
        let (status, _) = get(&addr, "/healthz");
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        status == 503
    });
    // Not before the 10 s window has passed since Redis last answered.
    assert!(
        killed.elapsed() >= Duration::from_secs(9),
        "{:?}",
        killed.elapsed()
    );
    assert!(scrape(&addr).value("qpipe_redis_retries_total") > 0.0);
    stop(child, &tail, 0);
}

#[test]
fn sigusr1_logs_the_counters_once() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    let mut child = Args::consume(&url)
        .out(&out)
        .opt("--stats-every", 0)
        .spawn(None);
    let tail = Tail::stderr(&mut child);
    redis.lpush(KEY, &numbered(5, 3));
    eventually("5 lines written", Duration::from_secs(20), || {
        lines(&out).len() == 5
    });
    assert!(!tail.text().contains("stats:"), "{}", tail.text());
    signal(&child, "-USR1");
    tail.line_with(
        "stats: items_popped=5 items_written=5 items_dead=0 redis_retries=0 redis_reconnects=0 lock_held=0",
        Duration::from_secs(5),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(tail.text().matches("stats:").count(), 1, "{}", tail.text());
    stop(child, &tail, 0);
}

#[test]
fn help_documents_the_new_flags_and_bad_addresses_are_usage_errors() {
    for cmd in ["produce", "consume"] {
        let help = qpipe(&[cmd, "--help"], None);
        assert_eq!(help.code, 0, "{help}");
        assert!(help.stdout.contains("--metrics"), "{help}");
        assert!(help.stdout.contains("--stats-every"), "{help}");
        let flat = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("0 never (default 60 when stderr is not a terminal, else 0)"),
            "{help}"
        );
    }
    let bad = qpipe(&["consume", "--metrics", "nowhere"], None);
    assert_eq!(bad.code, 2, "{bad}");
    assert!(bad.stderr.contains("--metrics \"nowhere\""), "{bad}");
}
