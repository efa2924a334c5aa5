//! Extraction health for unattended runs, on the demo site: a field that
//! matched nothing is named at the end, `required` fields hold items back
//! (exit 3), `--min-items` catches a run that found too few, one item per
//! page needs no `item`, and a link cap that cuts names the page.

mod common;

use common::{qpipe, stats, Args, Redis, Site};
use serde_json::{json, Value};
use std::path::Path;

const KEY: &str = "DATA-PIPELINE-KEY";

/// Runs `produce` over the first `pages` pages of `site` with `spec` (JSON
/// text, written to a file) and `extra` flags; returns exit code, stderr
/// and the stats line.
fn produce(site: &Site, redis: &Redis, spec: &Value, extra: &[&str]) -> (i32, String, Value) {
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stats_path = dir.path().join("stats.json");
    let run = Args::new("produce")
        .opt("--spec", spec_path.display())
        .start_url(&site.url)
        .redis(&redis.url())
        .opt("--stats-json", stats_path.display())
        .args(extra)
        .run(None);
    // A run refused at the start (exit 2) writes no stats.
    let s = if stats_path.exists() {
        stats(Path::new(&stats_path))
    } else {
        Value::Null
    };
    (run.code, run.stderr, s)
}

/// Quotes from pages 1 and 2 only (`next` followed once).
fn quotes_spec() -> Value {
    json!({
        "item": ".quote",
        "fields": {"quote": ".text", "missing": ".nope"},
        "follow": ["li.next a"],
        "max_depth": 1
    })
}

#[test]
fn a_field_that_matched_nothing_is_named_with_its_selector() {
    let site = Site::start(2);
    let redis = Redis::start();
    let (code, err, s) = produce(&site, &redis, &quotes_spec(), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["items_pushed"], 20, "{s}");
    assert_eq!(s["fields_empty"], json!({"quote": 0, "missing": 20}), "{s}");
    assert!(
        err.contains(
            "the field \"missing\" (css \".nope\") was null or empty on all 20 items: it matched nothing"
        ),
        "{err}"
    );
    assert!(!err.contains("the field \"quote\""), "{err}");
}

#[test]
fn required_fields_hold_items_back_and_make_the_run_exit_3() {
    let site = Site::start(2);
    let redis = Redis::start();
    let mut spec = quotes_spec();
    spec["required"] = json!(["missing"]);
    let (code, err, s) = produce(&site, &redis, &spec, &[]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(redis.llen(KEY), 0);
    assert_eq!(s["items_rejected"], 20, "{s}");
    assert_eq!(s["required_missing"], json!({"missing": 20}), "{s}");
    assert_eq!(s["items_extracted"], 0, "{s}");
    assert!(
        err.contains(&format!(
            "{}: 10 items not pushed: required field empty (\"missing\" on 10)",
            site.url
        )),
        "{err}"
    );
    // Under --fail-on-errors 0 they are still held back, and the run exits 0.
    let (code, err, s) = produce(&site, &redis, &spec, &["--fail-on-errors", "0"]);
    assert_eq!((code, s["items_rejected"].as_u64()), (0, Some(20)), "{err}");
    assert_eq!(redis.llen(KEY), 0);

    // A field present on every item holds nothing back.
    spec["required"] = json!(["quote"]);
    let (code, err, s) = produce(&site, &redis, &spec, &[]);
    assert_eq!((code, s["items_rejected"].as_u64()), (0, Some(0)), "{err}");
    assert_eq!(redis.llen(KEY), 20);

    // An unknown field is a spec error (exit 1, as every invalid spec), one line.
    spec["required"] = json!(["quote", "nope"]);
    let (code, err, _) = produce(&site, &redis, &spec, &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            "required[1]: \"nope\" is not a field of this spec (use one of quote, missing)"
        ),
        "{err}"
    );
}

#[test]
fn min_items_makes_a_thin_run_exit_3_with_one_line() {
    let site = Site::start(2);
    let redis = Redis::start();
    let spec = quotes_spec();
    let (code, err, s) = produce(&site, &redis, &spec, &["--min-items", "21"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(s["min_items"], 21, "{s}");
    assert_eq!(redis.llen(KEY), 20, "the items found are still pushed");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("fewer than --min-items"))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("found 20 items, fewer than --min-items 21"),
        "{err}"
    );
    let (code, err, _) = produce(&site, &redis, &spec, &["--min-items", "20"]);
    assert_eq!(code, 0, "{err}");
    let run = qpipe(&["produce", "--min-items", "0"], None);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("--min-items must be at least 1"),
        "{run}"
    );
}

#[test]
fn without_item_each_page_is_one_item_read_from_the_whole_document() {
    let site = Site::start(2);
    let redis = Redis::start();
    let spec = json!({
        "fields": {"title": "title", "first": ".quote .text", "authors": {"css": ".author", "all": true}},
        "follow": ["li.next a"],
        "max_depth": 1
    });
    let (code, err, s) = produce(&site, &redis, &spec, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(s["items_pushed"], 2, "{s}");
    let want = common::site_quotes(&site, 2);
    let mut items: Vec<Value> = redis
        .lrange(KEY)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    items.sort_by_key(|v| v["url"].as_str().unwrap().to_string());
    assert_eq!(items[0]["url"], site.url);
    assert_eq!(items[0]["title"], "Quotes to Scrape");
    assert_eq!(items[0]["first"], want[0].as_str());
    assert_eq!(items[0]["authors"].as_array().unwrap().len(), 10);
    assert_eq!(items[1]["url"], format!("{}page/2/", site.url));
    assert_eq!(items[1]["first"], want[10].as_str());
}

#[test]
fn a_link_cap_that_cuts_names_the_page() {
    let site = Site::start(2);
    let redis = Redis::start();
    let spec = json!({"item": ".quote", "fields": {"quote": ".text"}, "follow": ["a"]});
    let (code, err, s) = produce(
        &site,
        &redis,
        &spec,
        &["--max-links-per-page", "3", "--max-pages", "1"],
    );
    assert_eq!(code, 0, "{err}");
    let cut = s["links_cut"].as_u64().unwrap();
    assert!(cut > 0, "{s}");
    assert!(
        s["links_repeated"].as_u64().unwrap() > 0,
        "tags repeat: {s}"
    );
    assert!(
        err.contains(&format!(
            "{}: {cut} distinct links beyond --max-links-per-page 3 were not followed",
            site.url
        )),
        "{err}"
    );
}

/// Help speaks of items and specs; quotes only where it names the built-in spider.
#[test]
fn help_speaks_of_items_and_specs() {
    for args in [&["--help"][..], &["produce", "--help"]] {
        let run = qpipe(args, None);
        assert_eq!(run.code, 0, "{run}");
        assert!(!run.stdout.contains("per quote"), "{run}");
        assert!(
            run.stdout
                .contains("crawl a site with a spider spec and push its items"),
            "{run}"
        );
    }
    let run = qpipe(&["produce", "--help"], None);
    for flag in ["--min-items", "--failures", "--id-field"] {
        assert!(run.stdout.contains(flag), "{flag}: {run}");
    }
}

/// A failed URL is attributed to the page that holds the link, after
/// redirects, in the summary and in `--failures`, which has every record.
#[test]
fn a_failure_names_the_page_that_links_to_it_after_redirects() {
    use common::fixture::{html, redirect, Answer, Fixture};
    let site = Fixture::start(|path, _| match path {
        "/" => html("<a href=\"/r\">r</a><a href=\"/gone\">g</a>"),
        "/r" => redirect("/c"),
        "/c" => html("<p class=\"q\">c</p><a href=\"/missing\">m</a>"),
        "/robots.txt" => Answer::Full(404, vec![], Vec::new()),
        _ => Answer::Full(
            404,
            vec![("Content-Type", "text/html".into())],
            b"no".to_vec(),
        ),
    });
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let failures = dir.path().join("f.jsonl");
    let spec = json!({"fields": {"q": ".q"}, "follow": ["a"]});
    let f = failures.display().to_string();
    let start = format!("{}/", site.base.trim_end_matches('/'));
    let base = start.trim_end_matches('/').to_string();
    let spec_path = dir.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let stats_path = dir.path().join("s.json");
    let run = Args::new("produce")
        .opt("--spec", spec_path.display())
        .start_url(&start)
        .redis(&redis.url())
        .opt("--failures", &f)
        .opt("--stats-json", stats_path.display())
        .run_expect(None, 3);
    let s = stats(&stats_path);
    let mut named: Vec<(String, String)> = s["failed_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["url"].as_str().unwrap().to_string(),
                f["from"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            (format!("{base}/gone"), format!("{base}/")),
            (format!("{base}/missing"), format!("{base}/c")),
        ],
        "{run}"
    );
    let lines = common::jsonl(&failures);
    assert_eq!(lines.len(), 2, "{run}");
    assert!(lines
        .iter()
        .all(|l| l["status"] == 404 && l["skipped"] == false));
    assert!(
        run.stderr
            .contains(&format!("http_404 {base}/missing (linked from {base}/c)")),
        "{run}"
    );
}
