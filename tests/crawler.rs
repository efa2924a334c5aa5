//! Crawler fidelity: spec files, and a hostile site served by the test itself.

mod common;

use common::fixture::{html, redirect, Answer, Fixture};
use common::{qpipe, stats, Args, Redis, Site};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn items(redis: &Redis) -> Vec<serde_json::Value> {
    let mut v: Vec<serde_json::Value> = redis
        .lrange(KEY)
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    v.reverse(); // oldest first
    v
}

fn spec_path(name: &str) -> String {
    format!("{}/specs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `produce --spec SPEC --start-url START --redis REDIS`.
fn spec_crawl(spec: impl std::fmt::Display, start: &str, redis: &str) -> Args {
    Args::new("produce")
        .opt("--spec", spec)
        .start_url(start)
        .redis(redis)
}

#[test]
fn quotes_example_spec_crawls_the_demo_site() {
    let redis = Redis::start();
    let site = Site::start(10);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    spec_crawl(spec_path("quotes.json"), &site.url, &redis.url())
        .stats_json(&st)
        .run_expect(None, 0);
    assert_eq!(stats(&st)["items_pushed"], 100);
    assert_eq!(redis.llen(KEY), 100);
}

/// A two-page catalogue in books.toscrape.com's layout.
fn books_site() -> Fixture {
    Fixture::start(|path, _| {
        let book = |n: u32, stars: &str, stock: bool| {
            format!(
                r#"<article class="product_pod"><h3><a href="catalogue/book-{n}/index.html" title="Book &quot;{n}&quot;">Book {n}...</a></h3>
                <p class="star-rating {stars}"></p><div class="product_price"><p class="price_color">£{n}.99</p>
                <p class="instock availability">{}</p></div></article>"#,
                if stock { "In stock" } else { "Out of stock" }
            )
        };
        match path {
            "/" => html(&format!(
                "<ol class=row>{}{}{}</ol><ul class=pager><li class=next><a href=\"page-2.html\">next</a></li></ul>",
                book(1, "Three", true),
                book(2, "One", false),
                book(3, "Five", true)
            )),
            "/page-2.html" => html(&format!("<ol>{}{}{}</ol>", book(4, "Two", true), book(5, "Four", true), book(6, "One", true))),
            _ => Answer::Full(404, vec![], b"nope".to_vec()),
        }
    })
}

#[test]
fn books_example_spec_extracts_attributes_and_text() {
    let redis = Redis::start();
    let site = books_site();
    let run = spec_crawl(
        spec_path("books.json"),
        &format!("{}/", site.base),
        &redis.url(),
    )
    .run_expect(None, 0);
    let got = items(&redis);
    assert_eq!(got.len(), 6, "{run}");
    let first = &got[0];
    assert_eq!(first["title"], "Book \"1\"");
    assert_eq!(first["price"], "£1.99");
    assert_eq!(first["rating"], "star-rating Three");
    assert_eq!(first["link"], "catalogue/book-1/index.html");
    assert_eq!(first["in_stock"], "In stock");
    assert_eq!(got[1]["in_stock"], "Out of stock");
    assert_eq!(first["url"], format!("{}/", site.base));
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["title", "price", "rating", "link", "in_stock", "url"]
    );
}

#[test]
fn bad_specs_fail_before_any_fetch_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let site = books_site();
    let cases = [
        ("{\"item\": \"div\",", "invalid JSON"),
        (
            r#"{"item":"div","fields":{"a":"b"},"colour":1}"#,
            "colour: unknown key",
        ),
        (
            r#"{"item":"div","fields":{"a":{"css":"p..x"}}}"#,
            "fields.a.css: invalid CSS selector \"p..x\"",
        ),
        (
            r#"{"item":"div","fields":{}}"#,
            "fields: needs at least one field",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&path, text).unwrap();
        let run = spec_crawl(path.display(), &site.base, "redis://127.0.0.1:1").run_expect(None, 1);
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
        assert!(run.stderr.contains(needle), "missing {needle:?}\n{run}");
        let check = qpipe(&["spec", "--check", path.to_str().unwrap()], None);
        assert_eq!(check.code, 1, "{check}");
    }
    assert_eq!(site.hits("/"), 0, "a bad spec must fail before fetching");
    let missing = qpipe(&["produce", "--spec", "/nonexistent/spec.json"], None);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(
        missing
            .stderr
            .contains("cannot read --spec /nonexistent/spec.json"),
        "{missing}"
    );
    let ok = qpipe(&["spec", "--check", &spec_path("books.json")], None);
    assert_eq!(ok.code, 0, "{ok}");
    assert!(
        ok.stdout.contains("title, price, rating, link, in_stock"),
        "{ok}"
    );
}

#[test]
fn spec_print_round_trips() {
    let run = qpipe(&["spec", "--print"], None);
    assert_eq!(run.code, 0, "{run}");
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["item"], "div.quote");
    assert_eq!(
        run.stdout,
        std::fs::read_to_string(spec_path("quotes.json")).unwrap()
    );
}

fn quote(text: &str) -> String {
    format!("<div class=\"quote\"><span class=\"text\">{text}</span></div>")
}

/// One path per hostile case, linked from `/`.
fn hostile_site() -> Fixture {
    Fixture::start(|path, nth| {
        match path {
        "/" => html(&format!(
            "{}<a href=/flaky>1</a><a href=/throttled>2</a><a href=/loop-a>3</a><a href=/away>4</a>\
             <a href=/huge>5</a><a href=/image.png>6</a><a href=/broken>7</a><a href=/latin1>8</a>\
             <a href=/private/secret>9</a><a href=/trickle>10</a><a href=/links>11</a>",
            quote("index-ok")
        )),
        "/robots.txt" => Answer::Full(200, vec![("Content-Type", "text/plain".into())], b"User-agent: *\nDisallow: /private/\n".to_vec()),
        "/flaky" if nth <= 2 => Answer::Full(500, vec![], b"oops".to_vec()),
        "/flaky" => html(&quote("flaky-ok")),
        "/throttled" if nth == 1 => Answer::Full(429, vec![("Retry-After", "1".into())], Vec::new()),
        "/throttled" => html(&quote("throttled-ok")),
        "/loop-a" => redirect("/loop-b"),
        "/loop-b" => redirect("/loop-a"),
        "/away" => redirect("http://localhost:1/elsewhere"),
        "/huge" => Answer::Endless(50 * 1024 * 1024),
        "/image.png" => Answer::Full(200, vec![("Content-Type", "image/png".into())], vec![0x89, b'P', b'N', b'G']),
        "/broken" => html("<html><body><div class=\"quote\"><span class=\"text\">broken-ok</span><div><p>unclosed"),
        "/latin1" => Answer::Full(200, vec![("Content-Type", "text/html; charset=ISO-8859-1".into())], b"<div class=\"quote\"><span class=\"text\">caf\xe9</span></div>".to_vec()),
        "/trickle" => Answer::Trickle,
        "/links" => html("<a href=\"frag#section\">a</a><a href=\"./sub/../frag\">b</a><a href=\"mailto:x@y.z\">c</a><a href=\"javascript:void(0)\">d</a>"),
        "/frag" => html(&quote("frag-ok")),
        _ => Answer::Full(404, vec![], b"no".to_vec()),
    }
    })
}

#[test]
fn hostile_site_exact_counters_and_items() {
    let redis = Redis::start();
    let site = hostile_site();
    let dir = tempfile::tempdir().unwrap();
    let spec = common::write_file(dir.path(), "hostile.json", common::FOLLOW_ALL_SPEC);
    let st = dir.path().join("s.json");
    let started = Instant::now();
    let run = spec_crawl(spec.display(), &format!("{}/", site.base), &redis.url())
        .threads(4)
        .opt("--timeout", 1)
        .opt("--retry-backoff-ms", 20)
        .opt("--max-body", 1000000)
        .opt("--max-time", 30)
        .stats_json(&st)
        .run(None);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // Two URLs failed for good (the loop and the trickle): exit 3.
    assert_eq!(run.code, 3, "{run}");
    let s = stats(&st);
    let obj = |k: &str| s[k].clone();
    assert_eq!(
        obj("retries"),
        serde_json::json!({"http_429": 1, "http_500": 2, "timeout": 2}),
        "{s}"
    );
    assert_eq!(obj("gave_up"), serde_json::json!({"timeout": 1}), "{s}");
    assert_eq!(
        obj("errors"),
        serde_json::json!({"redirect_loop": 1, "timeout": 1}),
        "{s}"
    );
    assert_eq!(
        obj("skipped"),
        serde_json::json!({"body_too_large": 1, "not_html": 1, "offsite_redirect": 1, "robots_forbidden": 1}),
        "{s}"
    );
    assert_eq!(
        obj("responses_by_status"),
        serde_json::json!({"2xx": 7, "3xx": 3, "429": 1, "500": 2}),
        "{s}"
    );
    assert_eq!(s["robots_forbidden"], 1);
    assert_eq!(s["links_ignored"], 2, "mailto: and javascript:");
    assert_eq!(
        s["links_repeated"], 1,
        "frag#section and ./sub/../frag are one URL on one page"
    );
    assert_eq!(s["duplicate_urls_filtered"], 0, "{s}");
    assert_eq!(s["pages_fetched"], 7, "{s}");
    assert_eq!(s["max_depth_reached"], 2);
    assert_eq!(s["finish_reason"], "finished");
    let mut quotes: Vec<String> = items(&redis)
        .iter()
        .map(|v| v["quote"].as_str().unwrap().to_string())
        .collect();
    quotes.sort();
    assert_eq!(
        quotes,
        [
            "broken-ok",
            "café",
            "flaky-ok",
            "frag-ok",
            "index-ok",
            "throttled-ok"
        ]
    );
    assert_eq!(site.hits("/private/secret"), 0, "robots.txt was not obeyed");
    assert_eq!(site.hits("/frag"), 1);
    assert_eq!(site.hits("/flaky"), 3);
}

#[test]
fn ignore_robots_fetches_disallowed_paths_and_max_depth_limits() {
    let redis = Redis::start();
    let site = hostile_site();
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("h.json");
    std::fs::write(
        &spec,
        r#"{"item":"div.quote","fields":{"quote":"span.text"},"follow":["a"],"max_depth":0}"#,
    )
    .unwrap();
    let st = dir.path().join("s.json");
    // /private/secret is a 404 here, fetched because robots are ignored.
    spec_crawl(
        spec.display(),
        &format!("{}/private/secret", site.base),
        &redis.url(),
    )
    .arg("--ignore-robots")
    .stats_json(&st)
    .run_expect(None, 3);
    assert_eq!(site.hits("/private/secret"), 1);
    assert_eq!(site.hits("/robots.txt"), 0);
    spec_crawl(spec.display(), &format!("{}/", site.base), &redis.url())
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(
        (s["pages_fetched"].as_u64(), s["depth_filtered"].as_u64()),
        (Some(1), Some(11)),
        "{s}"
    );
}

#[test]
fn delay_spaces_requests_to_one_host() {
    let redis = Redis::start();
    let site = Site::start(3);
    let started = Instant::now();
    Args::produce(&redis.url(), &site.url)
        .opt("--delay-ms", 300)
        .opt("--max-pages", 4)
        .run_expect(None, 0);
    // robots.txt plus 4 pages: at least 3 gaps of 300 ms between page starts.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn max_items_ends_the_crawl_after_pushing_everything_extracted() {
    let redis = Redis::start();
    let site = Site::start(100);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("s.json");
    Args::produce(&redis.url(), &site.url)
        .threads(1)
        .opt("--max-items", 25)
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(s["finish_reason"], "max_items");
    // One thread: pages of 10 are taken until 25 are extracted, so 3 pages.
    assert_eq!(s["items_extracted"], 30, "{s}");
    assert_eq!(redis.llen(KEY), s["items_pushed"].as_u64().unwrap());
}
