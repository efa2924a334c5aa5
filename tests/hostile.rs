//! Pages a hostile site controls: deep nesting, items inside items, huge
//! link lists, a flood of new URLs. Each must cost time and memory near
//! linear in its size, and every cut is counted.

mod common;

use common::fixture::{html, Answer, Fixture};
use common::{stats, Args, Redis};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn quote(t: &str) -> String {
    format!("<div class=\"quote\"><span class=\"text\">{t}</span></div>")
}

/// 200,000 nested `<div>`s with a quote before, inside and after them.
fn deep_page() -> String {
    let n = 200_000;
    let mut s = quote("before");
    s.push_str(&"<div>".repeat(n));
    s.push_str(&quote("deep"));
    s.push_str(&"</div>".repeat(n));
    s.push_str(&quote("after"));
    s
}

/// 40,000 quotes, each inside the previous one.
fn nested_items_page() -> String {
    let n = 40_000;
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&format!(
            "<div class=\"quote\"><span class=\"text\">q{i}</span>"
        ));
    }
    s.push_str(&"</div>".repeat(n));
    s
}

fn links_page(n: usize) -> String {
    (0..n).map(|i| format!("<a href=\"/l{i}\">.</a>")).collect()
}

fn crawl(site: &Fixture, extra: &[&str]) -> (serde_json::Value, Redis, Duration) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = common::write_file(dir.path(), "s.json", common::FOLLOW_ALL_SPEC);
    let st = dir.path().join("st.json");
    let (url, start) = (redis.url(), format!("{}/", site.base));
    let args = Args::produce(&url, &start)
        .path("--spec", &spec)
        .arg("--ignore-robots")
        .threads(2)
        .stats_json(&st)
        .args(extra);
    let t0 = Instant::now();
    let run = args.run(None);
    let took = t0.elapsed();
    assert_eq!(run.code, 0, "{run}");
    (stats(&st), redis, took)
}

#[test]
fn deep_nesting_and_nested_items_are_cut_and_counted() {
    let (deep, nested) = (deep_page(), nested_items_page());
    let site = Fixture::start(move |path, _| match path {
        "/" => html("<a href=\"/deep\">d</a><a href=\"/nested\">n</a>"),
        "/deep" => html(&deep),
        "/nested" => html(&nested),
        _ => html("none"),
    });
    let (s, redis, took) = crawl(&site, &[]);
    // A hang guard only: the same pages took minutes of CPU before the cap.
    assert!(took < Duration::from_secs(45), "took {took:?}: {s}");
    assert_eq!(s["pages_fetched"], 3, "{s}");
    let mut got: Vec<String> = redis
        .lrange(KEY)
        .iter()
        .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap()["quote"].to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["\"after\"", "\"before\"", "\"q0\""], "{s}");
    assert_eq!(s["truncated"]["nesting"], 2, "{s}");
    // /deep: 200,000 divs + the deep quote's div and span, minus the 256 kept;
    // /nested: (40,000 - 256) quote divs and their spans, and the span of
    // the 256th (it would be element 257).
    assert_eq!(
        s["elements_cut"],
        (200_000 + 2 - 256) + (40_000 - 256) * 2 + 1,
        "{s}"
    );
    // The 255 kept quotes inside the outermost one are not items of their own.
    assert_eq!(s["nested_items_skipped"], 255, "{s}");
}

#[test]
fn links_per_page_and_queued_urls_are_capped_and_counted() {
    let many = links_page(200_000);
    let some = links_page(20);
    let site = Fixture::start(move |path, _| match path {
        "/" => html("<a href=\"/many\">m</a><a href=\"/some\">s</a>"),
        "/many" => html(&many),
        "/some" => html(&some),
        _ => html("none"),
    });
    let (s, _redis, took) = crawl(&site, &["--max-depth", "1"]);
    assert!(took < Duration::from_secs(45), "took {took:?}: {s}");
    assert_eq!(s["truncated"]["links"], 1, "{s}");
    assert_eq!(s["links_cut"], 190_000, "{s}");
    // The links that were kept are one hop too deep.
    assert_eq!(s["depth_filtered"], 10_020, "{s}");

    let (s, _redis, _) = crawl(
        &site,
        &[
            "--max-depth",
            "2",
            "--max-pages",
            "3",
            "--max-links-per-page",
            "30",
            "--max-queued-urls",
            "5",
        ],
    );
    assert_eq!(s["links_cut"], 199_970, "{s}");
    assert_eq!(s["finish_reason"], "max_pages", "{s}");
    assert_eq!(s["pages_fetched"], 3, "{s}");
}

#[test]
fn a_content_length_of_100_gb_allocates_nothing_for_it() {
    // With --max-body unbounded, the header alone once sized the buffer:
    // 100 GB aborted the process. Now the page reads what arrives, until
    // the whole-request timeout, and the crawl ends normally.
    let site = Fixture::start(|path, _| match path {
        "/" => html(
            r#"<ul class="sitemap"><li><a href="/huge">x</a></li></ul><div class="quote"><span class="text">q</span></div>"#,
        ),
        _ => Answer::Endless(100_000_000_000),
    });
    let redis = Redis::start();
    let start = format!("{}/", site.base);
    let run = Args::produce(&redis.url(), &start)
        .arg("--ignore-robots")
        .opt("--max-body", "18446744073709551615")
        .opt("--timeout", 1)
        .opt("--retry-backoff-ms", 1)
        .opt("--spec", "specs/quotes.json")
        .run_expect(Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))), 3);
    assert!(run.stderr.contains("timeout=1"), "{run}");
    assert_eq!(redis.llen("DATA-PIPELINE-KEY"), 1, "{run}");
}
