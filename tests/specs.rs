//! The specs shipped in `specs/`, each run by `qpipe produce --origin` against
//! the matching variant of `qpipe demo-site`: exact counts and values.

mod common;

use common::{qpipe, qpipe_env, site_quotes, stats, Redis, Site};
use serde_json::Value;
use std::collections::BTreeSet;

const KEY: &str = "DATA-PIPELINE-KEY";

/// Runs `produce` with `spec` (a path, or JSON text written to a file)
/// moved onto `site`, and returns the pushed items in push order.
fn crawl(site: &Site, spec: &str, env: &[(&str, &str)]) -> (Vec<Value>, Value) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let path = if spec.starts_with('{') {
        let p = dir.path().join("spec.json");
        std::fs::write(&p, spec).unwrap();
        p
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(spec)
    };
    let st = dir.path().join("stats.json");
    let run = qpipe_env(
        &[
            "produce",
            "--spec",
            path.to_str().unwrap(),
            "--origin",
            &site.url,
            "--redis",
            &redis.url(),
            "--stats-json",
            st.to_str().unwrap(),
        ],
        None,
        env,
    );
    assert_eq!(run.code, 0, "{spec}: {run}");
    let mut raw = redis.lrange(KEY);
    raw.reverse();
    let items = raw
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    (items, stats(&st))
}

/// The keys of an item, in order.
fn keys(item: &Value) -> Vec<&str> {
    item.as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect()
}

/// `(quote, author, tags)` of every item, sorted.
fn triples(items: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = items
        .iter()
        .map(|i| {
            (
                i["quote"].as_str().unwrap().to_string(),
                i["author"].as_str().unwrap().to_string(),
                i["tags"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The default pages, crawled by pagination only: the reference every
/// variant must match, itself checked against a string-search oracle.
fn reference(site: &Site) -> Vec<(String, String, String)> {
    let spec = r#"{"start_urls": ["http://x/"], "item": "div.quote",
        "fields": {"quote": "span.text", "author": "small.author",
                   "tags": {"css": "a.tag", "all": true}},
        "follow": ["li.next a"]}"#;
    let (items, _) = crawl(site, spec, &[]);
    let quotes: BTreeSet<String> = items
        .iter()
        .map(|i| i["quote"].as_str().unwrap().to_string())
        .collect();
    let oracle: BTreeSet<String> = site_quotes(site, 10).into_iter().collect();
    assert_eq!((items.len(), quotes.len()), (100, 100));
    assert_eq!(quotes, oracle);
    triples(&items)
}

#[test]
fn api_js_and_tableful_specs_yield_the_default_pages_quotes_exactly() {
    let site = Site::start(10);
    let want = reference(&site);
    for spec in [
        "specs/toscrape-api.json",
        "specs/toscrape-js.json",
        "specs/toscrape-tableful.json",
    ] {
        let (items, st) = crawl(&site, spec, &[]);
        assert_eq!(items.len(), 100, "{spec}");
        assert_eq!(st["pages_fetched"], 10, "{spec}: {st}");
        for i in &items {
            assert_eq!(keys(i), ["quote", "author", "tags", "url"], "{spec}: {i}");
        }
        assert_eq!(triples(&items), want, "{spec}");
    }
}

#[test]
fn login_spec_logs_in_and_adds_absolute_goodreads_links() {
    let site = Site::start(10);
    let env = [("QUOTES_PASSWORD", "s3cret-pw")];
    let (items, _) = crawl(&site, "specs/toscrape-login.json", &env);
    assert_eq!(items.len(), 100);
    for i in &items {
        assert_eq!(keys(i), ["quote", "author", "tags", "goodreads", "url"]);
        let link = i["goodreads"].as_str().unwrap_or_else(|| panic!("{i}"));
        assert!(link.starts_with("http://goodreads.com/author/show/"), "{i}");
    }
    let einstein = items.iter().find(|i| i["author"] == "Albert Einstein");
    assert_eq!(
        einstein.unwrap()["goodreads"],
        "http://goodreads.com/author/show/9810.Albert_Einstein"
    );
    // The same spec without its login step sees no Goodreads link at all.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/toscrape-login.json"),
    )
    .unwrap();
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    spec.as_object_mut().unwrap().remove("login");
    let (items, _) = crawl(&site, &spec.to_string(), &[]);
    assert_eq!(items.len(), 100);
    assert!(items.iter().all(|i| i["goodreads"].is_null()));
}

#[test]
fn authors_spec_reads_every_author_page_once() {
    let site = Site::start(10);
    let (items, st) = crawl(&site, "specs/toscrape-authors.json", &[]);
    assert_eq!(items.len(), 16, "{st}");
    let names: BTreeSet<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 16);
    let twain = items.iter().find(|i| i["name"] == "Mark Twain").unwrap();
    let url = format!("{}author/Mark-Twain/", site.url);
    assert_eq!(
        twain,
        &serde_json::json!({
            "name": "Mark Twain",
            "born_date": "October 8, 1881",
            "born_location": "Steventon Rectory, Hampshire, The United Kingdom",
            "description": "Mark Twain is author number 10 of the qpipe demo site. Every quote here is generated.",
            "url": url,
            "kind": "author"
        })
    );
    assert_eq!(st["pages_by_rule"]["author"], 16, "{st}");
    assert_eq!(st["pages_by_rule"]["list"], 10, "{st}");
}

#[test]
fn books_specs_read_the_list_and_every_detail_page() {
    let site = Site::start_with(&["--site", "books"]);
    let (list, _) = crawl(&site, "specs/books.json", &[]);
    assert_eq!(list.len(), 50);
    let (books, st) = crawl(&site, "specs/books-details.json", &[]);
    assert_eq!(books.len(), 50, "{st}");
    let upcs: BTreeSet<&str> = books.iter().map(|b| b["upc"].as_str().unwrap()).collect();
    assert_eq!(upcs.len(), 50);
    let first = books
        .iter()
        .find(|b| b["title"] == "The Silent Garden")
        .unwrap();
    assert_eq!(
        first,
        &serde_json::json!({
            "title": "The Silent Garden",
            "price": "£10.00",
            "rating": "One",
            "in_stock": "1",
            "upc": "d8ff1237cb034e81",
            "description": "The Silent Garden is book 1 of the 50 in the qpipe demo catalogue & ships at once.",
            "url": format!("{}catalogue/the-silent-garden_1000/index.html", site.url),
            "kind": "book"
        })
    );
}

#[test]
fn sitemaps_from_robots_txt_reach_every_page_and_author() {
    let site = Site::start(10);
    let spec = r#"{"sitemap_urls": ["http://x/robots.txt"], "rule_field": "kind",
        "rules": [
          {"name": "author", "match": "/author/", "item": "div.author-details",
           "fields": {"name": "h3.author-title"}},
          {"name": "quotes", "match": "/page/", "item": "div.quote",
           "fields": {"quote": "span.text"}}]}"#;
    let (items, st) = crawl(&site, spec, &[]);
    let count = |k: &str| items.iter().filter(|i| i["kind"] == k).count();
    assert_eq!((count("author"), count("quotes")), (16, 100), "{st}");
    // robots.txt, the index, the page urlset and the gzipped author urlset.
    assert_eq!(st["pages_by_rule"]["(sitemap)"], 4, "{st}");
}

#[test]
fn spec_try_prints_the_rule_items_and_links_of_one_page() {
    let site = Site::start(3);
    let page = format!("{}author/Mark-Twain/", site.url);
    let run = qpipe_env(
        &[
            "spec",
            "--try",
            &page,
            "--spec",
            "specs/toscrape-authors.json",
            "--origin",
            &site.url,
        ],
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..3],
        [
            format!("# page: {page}").as_str(),
            "# rule: \"author\"",
            "# items: 1"
        ]
    );
    let item: Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(
        (item["name"].as_str(), item["kind"].as_str()),
        (Some("Mark Twain"), Some("author"))
    );
    assert_eq!(
        lines[4],
        "# links followed: 0 distinct (0 off-site, 0 dropped by allow/deny, 0 not http, \
         0 repeats of a link already listed or of this page, 0 beyond --max-links-per-page)"
    );
    assert_eq!(lines.len(), 5, "{run}");

    // The built-in spider on the last list page: 10 items, and the tag links
    // it would follow (no next page), none of them off-site.
    let run = qpipe_env(
        &["spec", "--try", &format!("{}page/3/", site.url)],
        None,
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    let items = run.stdout.lines().filter(|l| l.starts_with('{')).count();
    let links: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("http"))
        .collect();
    assert_eq!(items, 10, "{run}");
    assert!(
        run.stdout.contains("# rule: \"default\"\n# items: 10\n"),
        "{run}"
    );
    assert!(
        !links.is_empty() && links.iter().all(|l| l.contains("/tag/")),
        "{run}"
    );
    // Links are listed once each; the repeats (a tag on several quotes) are
    // counted on the summary line, not listed.
    let distinct: std::collections::HashSet<&&str> = links.iter().collect();
    assert_eq!(distinct.len(), links.len(), "{run}");
    let summary = run
        .stdout
        .lines()
        .find(|l| l.starts_with("# links followed: "))
        .unwrap();
    assert!(
        summary.starts_with(&format!("# links followed: {} distinct", links.len())),
        "{run}"
    );
    let repeats: usize = summary
        .split(", ")
        .find(|p| p.contains("repeats"))
        .and_then(|p| p.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(repeats > 0, "page 3 repeats tags across quotes: {run}");

    // A page that fails is one line on stderr and exit 1; misuse is exit 2.
    let run = qpipe_env(&["spec", "--try", &format!("{}nope", site.url)], None, &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("cannot try") && run.stderr.contains("http_404"),
        "{run}"
    );
    let run = qpipe_env(&["spec", "--spec", "specs/quotes.json"], None, &[]);
    assert_eq!(run.code, 2, "{run}");
    let run = qpipe_env(&["spec", "--try", "ftp://x/"], None, &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("invalid --try"), "{run}");
}

#[test]
fn spec_modes_are_exclusive_and_try_urls_with_credentials_are_refused() {
    // --print, --check, --try and --diff are four modes: two at once is exit 2, one line.
    for args in [
        &["spec", "--print", "--try", "http://127.0.0.1:9/"][..],
        &[
            "spec",
            "--check",
            "specs/quotes.json",
            "--try",
            "http://127.0.0.1:9/",
        ],
        &["spec", "--print", "--check", "specs/quotes.json"],
        &[
            "spec",
            "--try",
            "http://127.0.0.1:9/",
            "--diff",
            "specs/quotes.json",
            "specs/quotes.json",
        ],
    ] {
        let run = qpipe_env(
            args,
            Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
            &[],
        );
        assert_eq!(run.code, 2, "{args:?}\n{run}");
        assert_eq!(run.stdout, "", "{args:?}\n{run}");
        assert_eq!(
            run.stderr,
            "qpipe: give one of --print, --check FILE, --try URL or --diff OLD NEW (see qpipe spec --help)\n",
            "{args:?}\n{run}"
        );
    }
    // Credentials in the --try URL are refused before any request, never echoed.
    for url in [
        "http://user:pw-s3cret@127.0.0.1:9/",
        "http://pw-s3cret@127.0.0.1:9/",
        "http://user:pw-s3cret@[bad/",
    ] {
        let run = qpipe_env(&["spec", "--try", url], None, &[]);
        assert_eq!(run.code, 2, "{url}\n{run}");
        assert!(
            run.stderr.starts_with("qpipe: invalid --try URL: ") && run.stderr.lines().count() == 1,
            "{url}\n{run}"
        );
        assert!(
            !run.stderr.contains("s3cret") && !run.stdout.contains("s3cret"),
            "{url}\n{run}"
        );
    }
}

/// Every (quote, author, tag) of the first `pages` list pages, read from
/// the HTML with plain string splitting (not qpipe's spider).
fn list_page_triples(site: &Site, pages: u64) -> BTreeSet<(String, String, String)> {
    let agent = ureq::Agent::new_with_defaults();
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let between = |s: &str, a: &str, b: &str| -> String {
        s.split(a)
            .nth(1)
            .and_then(|r| r.split(b).next())
            .unwrap_or("")
            .to_string()
    };
    let mut out = BTreeSet::new();
    for p in 1..=pages {
        let body = common::list_page(&agent, site, p);
        for chunk in body.split("<div class=\"quote\"").skip(1) {
            let text = unescape(&between(chunk, "itemprop=\"text\">", "</span>"));
            let author = unescape(&between(chunk, "itemprop=\"author\">", "</small>"));
            let keywords = between(chunk, "content=\"", "\"");
            for tag in keywords.split(',').filter(|t| !t.is_empty()) {
                out.insert((text.clone(), author.clone(), tag.to_string()));
            }
        }
    }
    out
}

#[test]
fn search_spec_submits_every_author_and_tag_the_form_offers() {
    let site = Site::start(10);
    let (items, st) = crawl(&site, "specs/toscrape-search.json", &[]);
    let want = list_page_triples(&site, 10);
    assert!(want.len() > 100, "{}", want.len());
    let got: BTreeSet<(String, String, String)> = items
        .iter()
        .map(|i| {
            assert_eq!(keys(i), ["quote", "author", "tag", "url", "kind"], "{i}");
            assert_eq!(i["kind"], "quote");
            assert_eq!(i["url"], format!("{}filter.aspx", site.url));
            (
                i["quote"].as_str().unwrap().to_string(),
                i["author"].as_str().unwrap().to_string(),
                i["tag"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(items.len(), want.len(), "{st}");
    assert_eq!(got, want);
    // One POST per author, then one per (author, tag) the form offers.
    let authors: BTreeSet<&String> = want.iter().map(|(_, a, _)| a).collect();
    let pairs: BTreeSet<(&String, &String)> = want.iter().map(|(_, a, t)| (a, t)).collect();
    assert_eq!(
        st["forms_submitted"],
        (authors.len() + pairs.len()) as u64,
        "{st}"
    );
    assert_eq!(st["pages_by_rule"]["author"], authors.len() as u64, "{st}");
    assert_eq!(st["pages_by_rule"]["quote"], pairs.len() as u64, "{st}");
    assert_eq!(st["forms_cut"], 0, "{st}");
    assert_eq!(st["pages_failed"], 0, "{st}");
}

#[test]
fn spec_diff_follows_the_forms_through_the_cache() {
    let site = Site::start(10);
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs/toscrape-search.json");
    let spec = spec.to_str().unwrap();
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let st = dir.path().join("stats.json");
    let run = qpipe(
        &[
            "produce",
            "--spec",
            spec,
            "--origin",
            &site.url,
            "--redis",
            &redis.url(),
            "--http-cache",
            cache,
            "--stats-json",
            st.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&st).unwrap()).unwrap();
    let items = st["items_extracted"].as_u64().unwrap();
    let forms = st["forms_submitted"].as_u64().unwrap();
    assert!(items > 100, "{st}");
    let diff = |new: &str| {
        qpipe(
            &[
                "spec",
                "--diff",
                spec,
                new,
                "--http-cache",
                cache,
                "--origin",
                &site.url,
            ],
            None,
        )
    };
    // The same spec: every answer its forms got is read again, no change.
    let same = diff(spec);
    assert_eq!(same.code, 0, "{same}");
    assert!(
        same.stdout
            .contains(&format!("(1 pages read, {forms} form answers)")),
        "{same}"
    );
    assert!(
        same.stdout.contains(&format!(
            "# items: {items} before, {items} after: {items} unchanged, 0 changed"
        )),
        "{same}"
    );
    // A field changed in the rule that reads the answers.
    let text = std::fs::read_to_string(spec).unwrap();
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, text.replace("\"span.tag\"", "\"span.tag a\"")).unwrap();
    let out = diff(changed.to_str().unwrap());
    assert_eq!(out.code, 3, "{out}");
    assert!(
        out.stdout
            .contains(&format!("# field tag: changed in {items} items")),
        "{out}"
    );
    assert!(out.stdout.contains("filter.aspx (POST tag="), "{out}");
    // The author page no longer sends the tag form: its answers' items go.
    let cut = dir.path().join("cut.json");
    let no_tags = text.replace(
        r#""submit": {"form": "form[name=filterform]", "each": "tag", "rule": "quote"}"#,
        r#""item": "h1", "fields": {"h": "h1"}"#,
    );
    assert_ne!(no_tags, text);
    std::fs::write(&cut, no_tags).unwrap();
    let out = diff(cut.to_str().unwrap());
    assert_eq!(out.code, 3, "{out}");
    assert!(out.stdout.contains(&format!("{items} removed")), "{out}");
}
