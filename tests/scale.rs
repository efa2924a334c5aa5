//! Scale-out: several producer processes on one shared frontier, several
//! consumer processes on one queue, and (in cluster.rs) Redis Cluster.

mod common;

use common::{stats, wait_bounded, Redis, Site};
use std::collections::HashSet;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";
const TWO: [&str; 2] = ["--threads", "2"];

/// A spec for fixture sites: one item per `div.quote`, every link followed.
fn spec_file(dir: &Path) -> std::path::PathBuf {
    let spec = dir.join("s.json");
    std::fs::write(
        &spec,
        r#"{"item":"div.quote","fields":{"quote":"span.text"},"follow":["a"]}"#,
    )
    .unwrap();
    spec
}

fn spawn(args: &[&str]) -> Child {
    common::spawn(args, None)
}

fn finish(child: Child) {
    let out = wait_bounded(child, Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A producer on shared frontier `name`, crawling from `start`.
fn producer(redis: &Redis, start: &str, name: &str, st: &Path, extra: &[&str]) -> Child {
    let url = redis.url();
    let mut args = vec![
        "produce",
        "--redis",
        &url,
        "--start-url",
        start,
        "--shared-frontier",
        name,
    ];
    args.extend(["--stats-json", st.to_str().unwrap()]);
    args.extend_from_slice(extra);
    spawn(&args)
}

fn distinct_quotes(redis: &Redis) -> (usize, usize) {
    let all = redis.lrange(KEY);
    let quotes: HashSet<String> = all
        .iter()
        .map(|s| serde_json::from_str::<serde_json::Value>(s).unwrap()["quote"].to_string())
        .collect();
    (all.len(), quotes.len())
}

#[test]
fn three_producers_share_one_crawl_without_fetching_a_page_twice() {
    let site = Site::start(500);
    let dir = tempfile::tempdir().unwrap();
    // Reference: the same crawl in one process.
    let reference = Redis::start();
    let rs = dir.path().join("ref.json");
    let run = common::qpipe(
        &[
            "produce",
            "--redis",
            &reference.url(),
            "--start-url",
            &site.url,
            "--stats-json",
            rs.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    let site_pages = stats(&rs)["pages_fetched"].as_u64().unwrap();

    let redis = Redis::start();
    let paths: Vec<_> = (0..3)
        .map(|i| dir.path().join(format!("p{i}.json")))
        .collect();
    let children: Vec<Child> = paths
        .iter()
        .map(|p| producer(&redis, &site.url, "crawl", p, &TWO))
        .collect();
    children.into_iter().for_each(finish);
    let fetched: u64 = paths
        .iter()
        .map(|p| stats(p)["pages_fetched"].as_u64().unwrap())
        .sum();
    assert_eq!(fetched, site_pages, "pages fetched across producers");
    for p in &paths {
        assert_eq!(stats(p)["finish_reason"], "finished");
    }
    assert_eq!(
        distinct_quotes(&redis),
        (5000, 5000),
        "exactly the site's unique quotes"
    );
    let seen: u64 = redis::cmd("SCARD")
        .arg("{crawl}:seen")
        .query(&mut redis.con())
        .unwrap();
    assert_eq!(seen, site_pages);
    assert_eq!(redis.llen("{crawl}:frontier"), 0);

    // A producer joining a finished crawl fetches nothing and exits 0.
    let late = dir.path().join("late.json");
    finish(producer(&redis, &site.url, "crawl", &late, &TWO));
    assert_eq!(stats(&late)["pages_fetched"], 0);
    // --reset-frontier starts the crawl again (items are deduplicated anew too).
    let again = dir.path().join("again.json");
    finish(producer(
        &redis,
        &site.url,
        "crawl",
        &again,
        &[&TWO[..], &["--reset-frontier"]].concat(),
    ));
    assert_eq!(stats(&again)["pages_fetched"].as_u64().unwrap(), site_pages);
    assert_eq!(stats(&again)["items_pushed"], 5000);
}

#[test]
fn a_killed_producer_loses_no_page() {
    use common::fixture::{html, Fixture};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    const PAGES: usize = 300;
    // "/" links to /slow first, so the victim's one fetcher takes it second.
    // The first fetch of /slow hangs until the test opens the gate, so the
    // victim is killed while it holds that page's lease.
    let gate = Arc::new(AtomicBool::new(false));
    let open = Arc::clone(&gate);
    let site = Fixture::start(move |path, nth| {
        let quote = |q: &str| {
            html(&format!(
                "<div class=\"quote\"><span class=\"text\">{q}</span></div>"
            ))
        };
        match path {
            "/" => {
                let links: String = (0..PAGES)
                    .map(|i| format!("<a href=\"/p/{i}\">{i}</a>"))
                    .collect();
                html(&format!("<a href=\"/slow\">slow</a>{links}"))
            }
            "/slow" => {
                let started = Instant::now();
                while nth == 1
                    && !open.load(Ordering::Relaxed)
                    && started.elapsed() < Duration::from_secs(30)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                quote("slow")
            }
            p => quote(p),
        }
    });
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_file(dir.path());
    let start = format!("{}/", site.base);
    let fixture = [
        "--spec",
        spec.to_str().unwrap(),
        "--ignore-robots",
        "--lease-secs",
        "1",
    ];
    let mut victim = producer(
        &redis,
        &start,
        "k",
        &dir.path().join("v.json"),
        &[&fixture[..], &["--threads", "1"]].concat(),
    );
    let slow = format!("1 {}/slow", site.base);
    let leases = || -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg("{k}:leases")
            .arg(0)
            .arg(-1)
            .query(&mut redis.con())
            .unwrap()
    };
    common::eventually("the victim to fetch /slow", Duration::from_secs(20), || {
        site.hits("/slow") == 1
    });
    assert_eq!(leases(), vec![slow.clone()], "the victim's one lease");
    let paths: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("o{i}.json")))
        .collect();
    let others: Vec<Child> = paths
        .iter()
        .map(|p| {
            producer(
                &redis,
                &start,
                "k",
                p,
                &[&fixture[..], &["--threads", "2"]].concat(),
            )
        })
        .collect();
    let fetched = || {
        (0..PAGES)
            .filter(|i| site.hits(&format!("/p/{i}")) > 0)
            .count()
    };
    common::eventually("the others to crawl", Duration::from_secs(20), || {
        fetched() >= 10
    });
    victim.kill().unwrap(); // SIGKILL: its lease must expire and come back
    victim.wait().unwrap();
    // Renewed until the kill, so no one else has taken it yet.
    assert!(
        leases().contains(&slow),
        "the victim held no lease on /slow when killed: {:?}",
        leases()
    );
    assert_eq!(
        site.hits("/slow"),
        1,
        "/slow was fetched again before the kill"
    );
    gate.store(true, Ordering::Relaxed);
    others.into_iter().for_each(finish);
    assert_eq!(
        site.hits("/slow"),
        2,
        "the killed producer's page was not fetched exactly once more"
    );
    assert_eq!(site.hits("/"), 1);
    for i in 0..PAGES {
        assert_eq!(site.hits(&format!("/p/{i}")), 1, "/p/{i}");
    }
    let by_others: u64 = paths
        .iter()
        .map(|p| stats(p)["pages_fetched"].as_u64().unwrap())
        .sum();
    assert_eq!(
        by_others,
        PAGES as u64 + 1,
        "every page but / was fetched by the survivors, /slow included"
    );
    assert_eq!(distinct_quotes(&redis), (PAGES + 1, PAGES + 1));
    assert_eq!(leases(), Vec::<String>::new());
    assert_eq!(redis.llen("{k}:frontier"), 0);
}

#[test]
fn four_consumer_processes_drain_one_queue_exactly_once() {
    let redis = Redis::start();
    let items: Vec<String> = (0..40_000).map(|i| format!("{{\"n\":{i}}}")).collect();
    redis.lpush(KEY, &items);
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let outs: Vec<_> = (0..4)
        .map(|i| dir.path().join(format!("c{i}.jsonl")))
        .collect();
    let children: Vec<Child> = outs
        .iter()
        .map(|o| {
            spawn(&[
                "consume",
                "--redis",
                &url,
                "--drain",
                "--idle-timeout",
                "0.5",
                "--batch-size",
                "50",
                "--out",
                o.to_str().unwrap(),
            ])
        })
        .collect();
    children.into_iter().for_each(finish);
    let mut all: Vec<String> = Vec::new();
    let mut nonempty = 0;
    for o in &outs {
        let lines: Vec<String> = std::fs::read_to_string(o)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        nonempty += usize::from(!lines.is_empty());
        all.extend(lines);
    }
    assert_eq!(all.len(), 40_000, "an item was lost or duplicated");
    assert_eq!(
        all.iter().collect::<HashSet<_>>(),
        items.iter().collect::<HashSet<_>>()
    );
    assert!(nonempty >= 2, "the work was not shared");
    assert_eq!(redis.llen(KEY), 0);
}

#[test]
fn a_slow_page_keeps_its_lease_and_is_fetched_once() {
    use common::fixture::{html, Fixture};
    let site = Fixture::start(|path, _| match path {
        "/" => html("<a href=\"/slow\">s</a><a href=\"/fast\">f</a>"),
        "/slow" => {
            // Three lease periods: without renewal another producer takes it.
            std::thread::sleep(Duration::from_millis(3000));
            html("<div class=\"quote\"><span class=\"text\">slow-ok</span></div>")
        }
        _ => html("<div class=\"quote\"><span class=\"text\">fast-ok</span></div>"),
    });
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_file(dir.path());
    let url = redis.url();
    let start = format!("{}/", site.base);
    let args = [
        "produce",
        "--redis",
        &url,
        "--start-url",
        &start,
        "--spec",
        spec.to_str().unwrap(),
        "--shared-frontier",
        "slow",
        "--lease-secs",
        "1",
        "--threads",
        "1",
        "--ignore-robots",
    ];
    let a = spawn(&args);
    // B joins while A is loading /slow and holds its lease.
    common::eventually("A to fetch /slow", Duration::from_secs(20), || {
        site.hits("/slow") == 1
    });
    let b = spawn(&args);
    finish(a);
    finish(b);
    assert_eq!(site.hits("/slow"), 1, "the slow page was fetched twice");
    assert_eq!(site.hits("/fast"), 1);
    assert_eq!(redis.llen(KEY), 2);
}
