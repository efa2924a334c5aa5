//! Frontier behaviour end to end: leases given back on a graceful stop,
//! `--reset-frontier` with shards, and the depth check before the seen set.

mod common;

use common::fixture::{html, Fixture};
use common::{
    finish_expect, signal, site_quotes, stats, wait_bounded, wait_for_llen, Args, Redis, Site,
};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// A spec that reaches the demo site's pages only through its sitemap, so a
/// page given up on is a page whose 10 quotes are lost.
const SITEMAP_SPEC: &str =
    r#"{"item":"div.quote","fields":{"quote":"span.text"},"follow":["ul.sitemap a"]}"#;

fn quotes_in(redis: &Redis, keys: &[&str]) -> Vec<String> {
    keys.iter()
        .flat_map(|k| redis.lrange(k))
        .map(|s| {
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            v["quote"].as_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn sigterm_gives_unfetched_leases_back_to_the_shared_frontier() {
    let pages = 30;
    let site = Site::start(pages);
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.json");
    std::fs::write(&spec, SITEMAP_SPEC).unwrap();
    let (url, start) = (redis.url(), format!("{}pages/", site.url));
    let args = Args::produce(&url, &start)
        .path("--spec", &spec)
        .opt("--shared-frontier", "stop");
    // One request at a time, 100 ms apart: three of the four fetchers always
    // hold a leased URL while they wait for the host.
    let victim = args
        .clone()
        .threads(4)
        .opt("--per-host", 1)
        .opt("--delay-ms", 100)
        .spawn(None);
    wait_for_llen(&redis, KEY, 20, Duration::from_secs(30));
    signal(&victim, "-TERM");
    let out = wait_bounded(victim, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    let leased: u64 = redis::cmd("ZCARD")
        .arg("{stop}:leases")
        .query(&mut redis.con())
        .unwrap();
    assert_eq!(leased, 0, "a lease was left behind");
    let partial = redis.llen(KEY);
    assert!(partial < pages * 10, "the crawl ended before the signal");

    let run = args.threads(2).run_expect(None, 0);
    let got = quotes_in(&redis, &[KEY]);
    assert_eq!(got.len() as u64, pages * 10, "{run}");
    let want: HashSet<String> = site_quotes(&site, pages).into_iter().collect();
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), want);
}

#[test]
fn reset_frontier_clears_item_fingerprints_of_every_shard() {
    let pages = 20;
    let site = Site::start(pages);
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let crawl = |st: &str, extra: &[&str]| {
        let st = dir.path().join(st);
        Args::produce(&url, &site.url)
            .opt("--shared-frontier", "r")
            .shards(2)
            .stats_json(&st)
            .args(extra)
            .run_expect(None, 0);
        stats(&st)
    };
    let first = crawl("a.json", &[]);
    assert_eq!(first["items_pushed"], pages * 10, "{first}");
    let again = crawl("b.json", &["--reset-frontier"]);
    assert_eq!(again["items_pushed"], pages * 10, "{again}");
    assert_eq!(again["seen_in_earlier_runs"], 0, "{again}");
    let shards = ["{DATA-PIPELINE-KEY:0}", "{DATA-PIPELINE-KEY:1}"];
    assert_eq!(quotes_in(&redis, &shards).len() as u64, 2 * pages * 10);
}

#[test]
fn a_page_first_reached_too_deep_is_fetched_from_a_shorter_path() {
    let quote = |t: &str| format!("<div class=\"quote\"><span class=\"text\">{t}</span></div>");
    let x = quote("x");
    let site = Fixture::start(move |path, _| match path {
        "/" => html("<a href=\"/slow\">s</a><a href=\"/a1\">a</a>"),
        "/slow" => {
            // Long enough for the other fetcher to walk /a1 -> /a2 first.
            std::thread::sleep(Duration::from_millis(1000));
            html("<a href=\"/x\">x</a>")
        }
        "/a1" => html("<a href=\"/a2\">a</a>"),
        "/a2" => html("<a href=\"/x\">x</a>"),
        "/x" => html(&x),
        _ => html("none"),
    });
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = common::write_file(dir.path(), "s.json", common::FOLLOW_ALL_SPEC);
    let st = dir.path().join("st.json");
    let (url, start) = (redis.url(), format!("{}/", site.base));
    let run = Args::produce(&url, &start)
        .path("--spec", &spec)
        .opt("--max-depth", 2)
        .threads(2)
        .arg("--ignore-robots")
        .stats_json(&st)
        .run_expect(None, 0);
    assert_eq!(site.hits("/x"), 1, "{run}");
    let s = stats(&st);
    assert_eq!(s["pages_fetched"], 5, "{s}");
    assert_eq!(s["depth_filtered"], 1, "{s}");
    assert_eq!(s["items_pushed"], 1, "{s}");
    assert_eq!(quotes_in(&redis, &[KEY]), ["x"]);
}

#[test]
fn a_redis_outage_under_a_shared_frontier_honours_the_retry_budget() {
    let pages = 40;
    let site = Site::start(pages);
    let mut redis = Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("s.json");
    std::fs::write(&spec, SITEMAP_SPEC).unwrap();
    let st = dir.path().join("st.json");
    let (url, start) = (redis.url(), format!("{}pages/", site.url));
    let run = |retry: &str| {
        Args::produce(&url, &start)
            .path("--spec", &spec)
            .opt("--shared-frontier", "outage")
            .threads(2)
            .opt("--per-host", 1)
            .opt("--delay-ms", 50)
            .opt("--redis-retry-secs", retry)
            .stats_json(&st)
            .spawn(Some(dir.path()))
    };
    // Down for 6 s inside a 30 s budget: the crawl waits and finishes whole.
    let child = run("30");
    wait_for_llen(&redis, KEY, 50, Duration::from_secs(30));
    redis.kill();
    std::thread::sleep(Duration::from_secs(6));
    redis.restart();
    let stderr = finish_expect(child, 0);
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "finished", "{s}");
    let got: HashSet<String> = quotes_in(&redis, &[KEY]).into_iter().collect();
    assert_eq!(got.len(), 10 * pages as usize, "{stderr}");

    // Down for good with a 1 s budget: exit 1, redis_unavailable.
    let _: () = redis.cmd(&["FLUSHALL"]);
    let child = run("1");
    wait_for_llen(&redis, KEY, 50, Duration::from_secs(30));
    redis.kill();
    let started = Instant::now();
    let (code, stderr) = common::finish(child);
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stats(&st)["finish_reason"], "redis_unavailable", "{stderr}");
}

#[test]
fn a_lost_lease_reply_does_not_stall_the_shared_crawl() {
    let site = Site::start(5);
    let redis = Redis::start();
    let proxy = common::proxy::Proxy::start(&redis);
    // The lease script; its retry must get the same URL back.
    proxy.cut("ZRANGEBYSCORE", 2, 1);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    let url = proxy.url();
    let started = Instant::now();
    let run = Args::produce(&url, &site.url)
        .opt("--shared-frontier", "lost")
        .threads(2)
        .stats_json(&st)
        .run_expect(None, 0);
    assert_eq!(proxy.cuts(), 1, "{run}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stalled for {:?} (a lease held by no one waits out --lease-secs 120): {run}",
        started.elapsed()
    );
    assert_eq!(stats(&st)["items_pushed"], 50, "{run}");
}
