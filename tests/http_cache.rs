//! The HTTP cache (`--http-cache DIR`) and the spec diff that runs over it:
//! a cached crawl gives the same items as the live one, replay sends no
//! request (the server counts them), producers sharing a cache never read
//! a torn entry, and `spec --diff` counts what a spec change does.

mod common;

use common::web::{Req, Resp, Server};
use common::{stats, Args, Redis, Site};
use serde_json::Value;
use std::path::Path;

const KEY: &str = "DATA-PIPELINE-KEY";

fn quote(text: &str, tag: &str) -> String {
    format!(
        "<div class=quote><span class=text>{text}</span><small class=author>A {text}</small><a class=tag href=/t/{tag}>{tag}</a></div>"
    )
}

/// Six pages of two quotes, a tag page that redirects (301), one that is
/// gone (404), a PDF the crawl skips unread, and robots.txt: every kind of
/// answer the cache keeps.
fn site() -> Server {
    Server::start(|r: &Req| {
        let path = r.path.as_str();
        if path == "/robots.txt" {
            return Resp {
                code: 200,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: "User-agent: *\nAllow: /\n".into(),
            };
        }
        if path == "/t/old" {
            return Resp::redirect(301, "/p/3");
        }
        if path == "/t/gone" {
            return Resp::not_found();
        }
        if path == "/doc.pdf" {
            return Resp {
                code: 200,
                headers: vec![("Content-Type".into(), "application/pdf".into())],
                body: "%PDF-1.4".into(),
            };
        }
        let n: u32 = match path {
            "/" => 1,
            p => match p.strip_prefix("/p/").and_then(|n| n.parse().ok()) {
                Some(n) if (2..=6).contains(&n) => n,
                _ => return Resp::not_found(),
            },
        };
        let mut body = quote(&format!("q{n}a"), "old") + &quote(&format!("q{n}b"), "gone");
        if n == 1 {
            body.push_str("<a class=tag href=/doc.pdf>pdf</a>");
        }
        if n < 6 {
            body.push_str(&format!(
                "<li class=next><a href=/p/{}>next</a></li>",
                n + 1
            ));
        }
        Resp::html(&body)
    })
}

/// One `produce --threads 1` over `start` with the cache flags; its items
/// (sorted) and summary.
fn crawl(
    redis: &Redis,
    start: &str,
    cache: &Path,
    extra: &[&str],
    code: i32,
) -> (Vec<String>, Value) {
    redis.cmd::<i64>(&["DEL", KEY]);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st.json");
    Args::produce(&redis.url(), start)
        .threads(1)
        .path("--http-cache", cache)
        .args(extra)
        .stats_json(&st)
        .run_expect(None, code);
    let mut items = redis.lrange(KEY);
    items.sort();
    (items, stats(&st))
}

#[test]
fn a_cached_crawl_gives_the_same_items_and_replay_sends_no_request() {
    let redis = Redis::start();
    let web = site();
    let start = format!("{}/", web.base);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Live, filling the cache: 6 pages, robots.txt, the 301, the 404 and
    // the PDF.
    let (live, s) = crawl(&redis, &start, &cache, &[], 3);
    let fetched = web.requests().len();
    assert_eq!(fetched, 10, "{s}");
    assert_eq!(live.len(), 12, "{s}");
    // The redirect to /p/3 is answered from the cache: it was fetched.
    assert_eq!(s["http_cache_fetched"], 10, "{s}");
    assert_eq!(s["http_cache_hits"], 1, "{s}");
    assert_eq!(s["http_cache_stored"], 10, "{s}");
    assert_eq!(s["http_cache_entries"], 10, "{s}");
    assert_eq!(
        s["failed_urls"][0]["url"],
        format!("{}/t/gone", web.base),
        "{s}"
    );
    let pdf = format!("{}/doc.pdf", web.base);
    assert_eq!(s["skipped_urls"][0]["url"], pdf, "{s}");
    assert_eq!(s["skipped_urls"][0]["reason"], "not_html", "{s}");
    // Replay: byte-identical items, the same 404 and skip, and not one
    // request.
    let (replayed, s) = crawl(&redis, &start, &cache, &["--http-cache-mode", "replay"], 3);
    assert_eq!(replayed, live);
    assert_eq!(web.requests().len(), fetched, "replay sent a request");
    assert_eq!(s["http_cache_hits"], 11, "{s}");
    assert_eq!(s["http_cache_fetched"], 0, "{s}");
    assert_eq!(s["skipped_urls"][0]["url"], pdf, "{s}");
    assert_eq!(s["skipped_urls"][0]["reason"], "not_html", "{s}");
    assert_eq!(
        s["failed_urls"][0]["url"],
        format!("{}/t/gone", web.base),
        "{s}"
    );
    // Use mode answers everything from the cache too.
    let (again, s) = crawl(&redis, &start, &cache, &[], 3);
    assert_eq!(again, live);
    assert_eq!(web.requests().len(), fetched, "{s}");
    // Refresh fetches every request again, the redirect's target twice.
    let (refreshed, s) = crawl(&redis, &start, &cache, &["--http-cache-mode", "refresh"], 3);
    assert_eq!(refreshed, live);
    assert_eq!(web.requests().len(), fetched + 11, "{s}");
    assert_eq!(s["http_cache_stored"], 11, "{s}");
    // A page the cache lacks fails as such, named, without a request.
    let other = format!("{}/p/9", web.base);
    let (none, s) = crawl(&redis, &other, &cache, &["--http-cache-mode", "replay"], 3);
    assert!(none.is_empty());
    assert_eq!(s["failed_urls"][0]["url"], other, "{s}");
    assert_eq!(s["failed_urls"][0]["reason"], "not_in_cache", "{s}");
    assert_eq!(s["http_cache_not_in_cache"], 1, "{s}");
    assert_eq!(web.requests().len(), fetched + 11);
}

#[test]
fn cache_flags_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let run = Args::produce("redis://127.0.0.1:9", "http://127.0.0.1:9/")
        .path("--http-cache", &missing)
        .opt("--http-cache-mode", "replay")
        .run_expect(None, 2);
    assert!(run.stderr.contains("is not a directory"), "{run}");
    let run = Args::produce("redis://127.0.0.1:9", "http://127.0.0.1:9/")
        .opt("--http-cache-mode", "sometimes")
        .run_expect(None, 2);
    assert!(run.stderr.contains("use, replay, refresh"), "{run}");
    let run = Args::produce("redis://127.0.0.1:9", "http://127.0.0.1:9/")
        .opt("--http-cache-expiry", 60)
        .run_expect(None, 2);
    assert!(run.stderr.contains("need --http-cache DIR"), "{run}");
    // An expiry means nothing to replay (every entry answers) or refresh.
    for mode in ["replay", "refresh"] {
        let run = Args::produce("redis://127.0.0.1:9", "http://127.0.0.1:9/")
            .path("--http-cache", dir.path())
            .opt("--http-cache-mode", mode)
            .opt("--http-cache-expiry", 60)
            .run_expect(None, 2);
        assert!(
            run.stderr
                .contains("--http-cache-expiry applies to --http-cache-mode use only"),
            "{run}"
        );
    }
    let run = Args::new("spec")
        .arg("--diff")
        .arg("a.json")
        .run_expect(None, 2);
    assert!(run.stderr.contains("--diff needs two spec files"), "{run}");
}

#[test]
fn a_spoilt_entry_is_fetched_politely_and_a_bodiless_one_when_wanted() {
    let redis = Redis::start();
    let web = site();
    let start = format!("{}/", web.base);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (live, _) = crawl(&redis, &start, &cache, &[], 3);
    // Every entry spoilt: each request is sent again, --delay-ms apart
    // (a spoilt entry once skipped the host slot and its delay).
    let entries = common::walk(&cache);
    assert_eq!(entries.len(), 10);
    for e in &entries {
        std::fs::write(e, b"not gzip").unwrap();
    }
    let before = web.requests().len();
    let (again, s) = crawl(&redis, &start, &cache, &["--delay-ms", "150"], 3);
    assert_eq!(again, live);
    assert_eq!(s["http_cache_unreadable"], 10, "{s}");
    assert_eq!(s["http_cache_fetched"], 10, "{s}");
    let reqs = web.requests();
    let sent = &reqs[before..];
    assert_eq!(sent.len(), 10, "{s}");
    // robots.txt is fetched before the host's first page, as in any run.
    assert_eq!(sent[0].path, "/robots.txt");
    for pair in sent[1..].windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= std::time::Duration::from_millis(140),
            "{} then {} only {gap:?} apart",
            pair[0].path,
            pair[1].path
        );
    }
    // A page kept without its body (over --max-body then) is fetched when
    // a later run with a larger --max-body wants it, not failed.
    let small = dir.path().join("small");
    let (cut, s) = crawl(&redis, &start, &small, &["--max-body", "100"], 0);
    assert!(cut.is_empty(), "{s}");
    assert_eq!(s["skipped"]["body_too_large"], 1, "{s}");
    let (full, s) = crawl(&redis, &start, &small, &[], 3);
    assert_eq!(full, live, "{s}");
    assert_eq!(s["errors"].get("not_in_cache"), None, "{s}");
    // robots.txt and the redirect's target answered from the cache; the
    // bodiless page counted as fetched, not as a hit.
    assert_eq!(s["http_cache_hits"], 2, "{s}");
    assert_eq!(s["http_cache_fetched"], 9, "{s}");
}

#[test]
fn producers_sharing_a_cache_never_read_a_torn_entry() {
    let site = Site::start(150);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let redis = Redis::start();
    let (want, _) = crawl(&redis, &site.url, &cache, &[], 0);
    assert_eq!(want.len(), 1_500);
    // Two producers rewrite every entry while two replay it, at once.
    for round in 0..2 {
        let runs: Vec<(Redis, std::process::Child, std::path::PathBuf)> =
            ["refresh", "replay", "refresh", "replay"]
                .iter()
                .enumerate()
                .map(|(i, mode)| {
                    let r = Redis::start();
                    let st = dir.path().join(format!("st-{round}-{i}.json"));
                    let child = Args::produce(&r.url(), &site.url)
                        .threads(2)
                        .path("--http-cache", &cache)
                        .opt("--http-cache-mode", mode)
                        .stats_json(&st)
                        .spawn(None);
                    (r, child, st)
                })
                .collect();
        for (r, child, st) in runs {
            let out = common::wait_bounded(child, std::time::Duration::from_secs(60));
            let s = stats(&st);
            assert_eq!(out.status.code(), Some(0), "{s}");
            assert!(s.get("http_cache_unreadable").is_none(), "{s}");
            assert_eq!(s["pages_failed"], 0, "{s}");
            assert_eq!(r.llen(KEY), 1_500, "{s}");
        }
    }
    // No temporary file is left behind.
    let stray: Vec<_> = common::walk(&cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn spec_diff_counts_what_a_change_does_without_a_request() {
    let site = Site::start(20);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let redis = Redis::start();
    let (_, s) = crawl(&redis, &site.url, &cache, &[], 0);
    let pages = s["pages_fetched"].as_u64().unwrap();
    let extracted = s["items_extracted"].as_u64().unwrap();
    assert!(pages >= 20 && extracted >= 200, "{s}");
    drop(site);
    let spec = Args::new("spec").arg("--print").run_expect(None, 0).stdout;
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let old = write("old.json", &spec);
    let diff = |new: &str, code: i32| {
        Args::new("spec")
            .arg("--diff")
            .arg(&old)
            .arg(new)
            .path("--http-cache", &cache)
            .run_expect(None, code)
            .stdout
    };
    // The same spec: nothing changed, exit 0.
    let same = diff(&old, 0);
    assert!(
        same.contains(&format!(
            "# items: {extracted} before, {extracted} after: {extracted} unchanged, 0 changed, 0 added, 0 removed"
        )),
        "{same}"
    );
    assert!(same.contains("# no change"), "{same}");
    // Tags joined into one string: every item changes in that field only.
    let joined = spec.replace(r#""all": true}"#, r#""all": true, "join": ","}"#);
    assert_ne!(joined, spec);
    let out = diff(&write("joined.json", &joined), 3);
    assert!(
        out.contains(&format!(
            "0 unchanged, {extracted} changed, 0 added, 0 removed"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("# field tags: changed in {extracted} items")),
        "{out}"
    );
    assert!(!out.contains("# field quote"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("~ tags ")).count(),
        3,
        "{out}"
    );
    // Only the first quote of each page: the others are removed.
    let first = spec.replace(
        r#""item": "div.quote""#,
        r#""item": "div.quote:first-of-type""#,
    );
    assert_ne!(first, spec);
    let out = diff(&write("first.json", &first), 3);
    assert!(
        out.contains(&format!(
            "{pages} unchanged, 0 changed, 0 added, {} removed",
            extracted - pages
        )),
        "{out}"
    );
}

#[test]
fn spec_try_uses_the_cache_and_replays_without_a_request() {
    let web = site();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let page = format!("{}/p/2", web.base);
    let try_it = |mode: &str| {
        Args::new("spec")
            .opt("--try", &page)
            .path("--http-cache", &cache)
            .opt("--http-cache-mode", mode)
            .run_expect(None, 0)
            .stdout
    };
    let live = try_it("use");
    assert!(live.contains("# items: 2"), "{live}");
    assert_eq!(web.requests().len(), 1);
    assert_eq!(try_it("replay"), live);
    assert_eq!(try_it("use"), live);
    assert_eq!(web.requests().len(), 1, "the cache answered");
    let run = Args::new("spec")
        .opt("--try", format!("{}/p/4", web.base))
        .path("--http-cache", &cache)
        .opt("--http-cache-mode", "replay")
        .run_expect(None, 1);
    assert!(run.stderr.contains("is not in the HTTP cache"), "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert_eq!(web.requests().len(), 1);
}

#[test]
fn spec_diff_follows_a_form_s_redirect_and_reads_an_answer_either_way() {
    // Post/Redirect/Get: each POST /do answers 303 to /r/N.
    let web = Server::start(|r: &Req| {
        match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/") => Resp::html(
            "<form name=f method=post action=/do><select name=o><option>1</option><option>2</option><option>3</option></select></form>",
        ),
        ("POST", "/do") => Resp::redirect(303, &format!("/r/{}", r.form("o").unwrap_or_default())),
        ("GET", p) if p.starts_with("/r/") => Resp::html(&format!("<div class=r><p>r{}</p></div>", &p[3..])),
        _ => Resp::not_found(),
    }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let write = |name: &str, start_rule: &str, fields: &str| {
        let spec = format!(
            r#"{{"start_urls": ["{}/"], "rules": [{{"name": "start", "match": "/$"{start_rule}}}, {{"name": "res", "match": "/r/", "item": "div.r", "fields": {fields}}}]}}"#,
            web.base
        );
        common::write_file(dir.path(), name, &spec)
    };
    let submit = r#", "submit": {"form": "form[name=f]", "each": "o", "rule": "res"}"#;
    let old = write("old.json", submit, r#"{"t": "p"}"#);
    let changed = write("changed.json", submit, r#"{"t": "p", "u": "p"}"#);
    // No form: the same answers read as pages by their URL.
    let by_url = write(
        "by-url.json",
        r#", "item": "form", "fields": {"f": "select"}"#,
        r#"{"t": "p"}"#,
    );
    let redis = Redis::start();
    let (items, s) = crawl(
        &redis,
        &format!("{}/", web.base),
        &cache,
        &["--spec", old.to_str().unwrap()],
        0,
    );
    assert_eq!(items.len(), 3, "{s}");
    let diff = |new: &std::path::Path, code: i32| {
        let run = Args::new("spec")
            .arg("--diff")
            .arg(old.display())
            .arg(new.display())
            .path("--http-cache", &cache)
            .run_expect(None, code);
        run.stdout
    };
    let out = diff(&old, 0);
    assert!(out.contains("(1 pages read, 3 form answers)"), "{out}");
    assert!(
        out.contains("# items: 3 before, 3 after: 3 unchanged"),
        "{out}"
    );
    let out = diff(&changed, 3);
    assert!(out.contains("# field u: changed in 3 items"), "{out}");
    assert!(out.contains("/do (POST o=1) #1"), "{out}");
    // Read by the form in one spec and by URL in the other: the same items.
    let out = diff(&by_url, 3);
    assert!(
        out.contains("3 unchanged, 0 changed, 1 added, 0 removed"),
        "{out}"
    );
}
