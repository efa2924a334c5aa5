//! Spider rules end to end: `qpipe produce` with a spec of rules against a
//! site served on 127.0.0.1, items read back from a real Redis.

mod common;

use common::fixture::{html, Answer, Fixture};
use common::{stats, Args, Redis};
use serde_json::{json, Value};
use std::io::Write as _;

const KEY: &str = "DATA-PIPELINE-KEY";

/// Every pushed item, sorted by its JSON text (fetch order varies).
fn items(redis: &Redis) -> Vec<Value> {
    let mut v: Vec<String> = redis.lrange(KEY);
    v.sort();
    v.iter().map(|s| serde_json::from_str(s).unwrap()).collect()
}

fn body(ctype: &str, bytes: Vec<u8>) -> Answer {
    Answer::Full(200, vec![("Content-Type", ctype.into())], bytes)
}

fn not_found() -> Answer {
    Answer::Full(404, vec![], b"nope".to_vec())
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// Writes `spec`, runs `produce` from `start`, returns the items and stats.
fn crawl(spec: &str, start: &str, site: &Fixture) -> (Vec<Value>, Value) {
    crawl_from(spec, Some(start), site)
}

/// Like `crawl`, with no `--start-url` when `start` is None.
fn crawl_from(spec: &str, start: Option<&str>, site: &Fixture) -> (Vec<Value>, Value) {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (spec_path, st) = (dir.path().join("spec.json"), dir.path().join("s.json"));
    std::fs::write(&spec_path, spec.replace("BASE", &site.base)).unwrap();
    let mut args = Args::new("produce").path("--spec", &spec_path);
    if let Some(start) = start {
        args = args.start_url(&format!("{}{start}", site.base));
    }
    args.redis(&redis.url()).stats_json(&st).run_expect(None, 0);
    (items(&redis), stats(&st))
}

#[test]
fn rules_pick_the_page_kind_and_tag_items_with_the_rule_field() {
    let site = Fixture::start(|path, _| match path {
        "/" | "/page/2/" => {
            let n = if path == "/" { 1 } else { 2 };
            let next = if n == 1 {
                r#"<li class="next"><a href="/page/2/">Next</a></li>"#
            } else {
                ""
            };
            html(&format!(
                r#"<div class="quote"><span class="text">Q{n}</span>
                   <a href="/author/a{n}/">(about)</a> <a href="/tag/t{n}/">t{n}</a></div>
                   <ul>{next}</ul><a href="/logout">out</a>"#
            ))
        }
        "/author/a1/" | "/author/a2/" => html(&format!(
            "<div class=author-details><h3 class=author-title>  Author\n  {}  </h3></div>",
            &path[8..10]
        )),
        _ => not_found(),
    });
    let spec = r#"{"rule_field": "kind", "deny": ["/logout", "/tag/"],
      "rules": [
        {"name": "author", "match": "/author/", "item": ".author-details",
         "fields": {"name": {"css": "h3", "normalize": true, "re": "Author (.*)"}}},
        {"name": "quote", "item": "div.quote",
         "fields": {"quote": "span.text", "about": {"css": "a", "read": "attr:href", "absolute": true}},
         "follow": ["li.next a", "div.quote a", "a[href='/logout']"]}]}"#;
    let (got, st) = crawl(spec, "/", &site);
    let b = &site.base;
    assert_eq!(
        got,
        [
            json!({"name": "a1", "url": format!("{b}/author/a1/"), "kind": "author"}),
            json!({"name": "a2", "url": format!("{b}/author/a2/"), "kind": "author"}),
            json!({"quote": "Q1", "about": format!("{b}/author/a1/"), "url": format!("{b}/"), "kind": "quote"}),
            json!({"quote": "Q2", "about": format!("{b}/author/a2/"), "url": format!("{b}/page/2/"), "kind": "quote"}),
        ]
    );
    // The field order is kept: fields, url, then the rule field.
    assert_eq!(
        serde_json::to_string(&got[0]).unwrap(),
        format!(r#"{{"name":"a1","url":"{b}/author/a1/","kind":"author"}}"#)
    );
    assert_eq!(
        st["pages_by_rule"],
        json!({"author": 2, "quote": 2}),
        "{st}"
    );
    assert_eq!(
        st["links_filtered"], 4,
        "two /tag/ and two /logout links: {st}"
    );
    assert_eq!((site.hits("/logout"), site.hits("/tag/t1/")), (0, 0));
}

#[test]
fn a_json_api_is_read_page_by_page_from_its_body() {
    let site = Fixture::start(|path, _| {
        let page: u32 = match path.strip_prefix("/api/quotes?page=") {
            Some(n) => n.parse().unwrap_or(0),
            None => return not_found(),
        };
        if !(1..=3).contains(&page) {
            return not_found();
        }
        let quotes: Vec<Value> = (0..2)
            .map(|i| json!({"text": format!("Q{page}.{i}"), "author": {"name": format!("A{i}")}, "tags": ["t", format!("p{page}")]}))
            .collect();
        let doc = json!({"has_next": page < 3, "page": page, "quotes": quotes});
        body("application/json", doc.to_string().into_bytes())
    });
    let spec = r#"{"rules": [{"name": "api", "match": "/api/quotes", "json": "quotes",
        "fields": {"quote": "text", "author": "author.name", "tags": "tags", "first_tag": "tags.0"},
        "next": {"url": "/api/quotes?page={page+1}", "if": "has_next"}}]}"#;
    let (got, st) = crawl(spec, "/api/quotes?page=1", &site);
    let b = &site.base;
    let want: Vec<Value> = (1..=3)
        .flat_map(|p| {
            (0..2).map(move |i| {
                json!({"quote": format!("Q{p}.{i}"), "author": format!("A{i}"), "tags": ["t", format!("p{p}")],
                       "first_tag": "t", "url": format!("{b}/api/quotes?page={p}"), "rule": "api"})
            })
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(st["pages_by_rule"], json!({"api": 3}), "{st}");
    assert_eq!(
        site.hits("/api/quotes?page=4"),
        0,
        "has_next was false on page 3"
    );
}

#[test]
fn script_data_and_table_rows_make_items() {
    let site = Fixture::start(|path, _| match path {
        "/js/" => html(
            r#"<script src="/static/jquery.js"></script><script>
                var data = [{"tags": ["a", "b"], "author": {"name": "Ann"}, "text": "\u201cOne\u201d"},
                            {"tags": [], "author": {"name": "Bo"}, "text": "Two"}];
                for (var i in data) { document.write(data[i].text); }
            </script><ul><li class="next"><a href="/tableful/">Next</a></li></ul>"#,
        ),
        "/tableful/" => html(
            r#"<table><tr><td>Viewing tag: <a href="/tag/x/">x</a></td><td rowspan="5">Top Ten tags</td></tr>
                <tr style="border-bottom: 0px; "><td style="padding-top: 2em;">“Three” Author: Cy  Dee</td></tr>
                <tr><td style="padding-bottom: 2em;">Tags: <a href="/tag/c/">c</a> <a href="/tag/d/">d</a></td></tr>
                <tr style="border-bottom: 0px; "><td style="padding-top: 2em;">“Four” Author: Di</td></tr>
                <tr><td style="padding-bottom: 2em;">Tags:</td></tr></table>"#,
        ),
        _ => not_found(),
    });
    let spec = r#"{"rules": [
        {"name": "js", "match": "/js/", "script": "var data = (\\[[\\s\\S]*?\\]);",
         "fields": {"quote": "text", "author": "author.name", "tags": "tags"}, "follow": ["li.next a"]},
        {"name": "table", "match": "/tableful/", "item": "tr[style*='border-bottom']",
         "fields": {"quote": {"css": "td", "normalize": true, "re": "^(.*) Author:"},
                    "author": {"css": "td", "normalize": true, "re": "Author: (.*)"},
                    "tags": {"css": "a", "all": true, "sibling": 1}}}]}"#;
    let (got, st) = crawl(spec, "/js/", &site);
    let b = &site.base;
    let (js, table) = (format!("{b}/js/"), format!("{b}/tableful/"));
    assert_eq!(
        got,
        [
            json!({"quote": "Two", "author": "Bo", "tags": [], "url": js, "rule": "js"}),
            json!({"quote": "“Four”", "author": "Di", "tags": [], "url": table, "rule": "table"}),
            json!({"quote": "“One”", "author": "Ann", "tags": ["a", "b"], "url": js, "rule": "js"}),
            json!({"quote": "“Three”", "author": "Cy Dee", "tags": ["c", "d"], "url": table, "rule": "table"}),
        ]
    );
    assert_eq!(st["pages_by_rule"], json!({"js": 1, "table": 1}), "{st}");
}

#[test]
fn a_gzip_sitemap_index_leads_to_a_urlset_of_pages() {
    let site = Fixture::start(|path, _| match path {
        "/robots.txt" => body(
            "text/plain",
            b"User-agent: *\nDisallow: /private/\nSitemap: /sitemap_index.xml.gz\n".to_vec(),
        ),
        "/sitemap_index.xml.gz" => body(
            "application/x-gzip",
            gzip(
                r#"<?xml version="1.0" encoding="UTF-8"?>
                    <sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
                      <sitemap><loc>/sitemap-quotes.xml.gz</loc></sitemap>
                      <sitemap><loc>/sitemap-other.xml</loc></sitemap>
                    </sitemapindex>"#,
            ),
        ),
        "/sitemap-quotes.xml.gz" => body(
            "application/octet-stream",
            gzip(
                r#"<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
                      <url><loc>/q/1?a=1&amp;b=2</loc></url><url><loc>/q/2</loc></url>
                      <url><loc>/q/3-draft</loc></url><url><loc>/elsewhere/1</loc></url>
                    </urlset>"#,
            ),
        ),
        "/q/1?a=1&b=2" | "/q/2" | "/q/3-draft" | "/elsewhere/1" => {
            html(&format!("<h1>{}</h1>", path.replace('&', "&amp;")))
        }
        _ => not_found(),
    });
    let spec = r#"{"sitemap_urls": ["BASE/robots.txt"], "sitemap_follow": ["quotes"],
        "allow": ["/q/"], "deny": ["draft"],
        "rules": [{"name": "page", "match": "/q/", "item": "h1", "fields": {"title": {"read": "text"}}}]}"#;
    // The spec's sitemap_urls are start URLs; --start-url adds nothing here.
    let (got, st) = crawl_from(spec, None, &site);
    let b = &site.base;
    assert_eq!(
        got,
        [
            json!({"title": "/q/1?a=1&b=2", "url": format!("{b}/q/1?a=1&b=2"), "rule": "page"}),
            json!({"title": "/q/2", "url": format!("{b}/q/2"), "rule": "page"}),
        ]
    );
    assert_eq!(
        st["links_filtered"], 3,
        "other sitemap, draft, elsewhere: {st}"
    );
    assert_eq!(
        st["pages_by_rule"],
        json!({"(sitemap)": 3, "page": 2}),
        "{st}"
    );
    assert_eq!(site.hits("/sitemap-other.xml"), 0);
    assert_eq!(site.hits("/q/3-draft"), 0);
}
