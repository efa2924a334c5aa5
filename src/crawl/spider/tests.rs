//! The spider end to end: a spec, a page, the exact items and links.

use super::*;
use crate::crawl::page::{Kind, Page};
use serde_json::Value;

const PAGE: &str = r#"<html><body>
  <div class="quote"><span class="text">“Caf&eacute; &amp; ünïcode”</span>
    <span>by <small class="author">Zoë Q</small></span>
    <div class="tags">Tags: <a class="tag" href="/tag/life/page/1/">life</a>
      <a class="tag" href="/tag/love/">love</a></div></div>
  <div class="quote"><span class="text">No tags here</span>
    <small class="author">Anon</small><div class="tags">Tags: </div></div>
  <ul class="pager"><li class="next"><a href="/page/2/#top">Next</a></li></ul>
  <a href="mailto:x@y">mail</a><a class="tag" href="javascript:void(0)">js</a>
</body></html>"#;

pub(super) const CAPS: PageCaps = PageCaps {
    max_nesting: 256,
    max_links: 10_000,
};

pub(super) fn run(spec: &Spec, caps: PageCaps, html: &str, url: &str) -> Scraped {
    let page = Page {
        body: html.into(),
        kind: Kind::Html,
    };
    scrape(spec, caps, &page, &Url::parse(url).unwrap())
}

pub(super) fn texts(s: &Scraped) -> Vec<String> {
    s.items
        .iter()
        .map(|i| String::from_utf8(i.json.clone()).unwrap())
        .collect()
}

#[test]
fn items_inside_items_are_skipped_and_counted() {
    let nested: String = (0..5)
        .map(|i| format!("<div class=\"quote\"><span class=\"text\">q{i}</span>"))
        .collect::<String>()
        + &"</div>".repeat(5)
        + r#"<div class="quote"><span class="text">next</span></div>"#;
    let s = run(&Spec::quotes(), CAPS, &nested, "http://h/");
    let quotes: Vec<String> = s
        .items
        .iter()
        .map(|i| serde_json::from_slice::<Value>(&i.json).unwrap()["quote"].to_string())
        .collect();
    assert_eq!(quotes, ["\"q0\"", "\"next\""]);
    assert_eq!(s.nested_items, 4);
}

#[test]
fn links_beyond_the_cap_are_counted_not_kept() {
    let page: String = (0..25)
        .map(|i| format!("<li class=\"next\"><a href=\"/{i}\">n</a></li>"))
        .collect();
    let caps = PageCaps {
        max_links: 10,
        ..CAPS
    };
    let s = run(&Spec::quotes(), caps, &page, "http://h/");
    assert_eq!((s.links.len(), s.links_cut), (10, 15));
    assert_eq!(s.links[9].as_str(), "http://h/9");
}

#[test]
fn nesting_beyond_the_cap_is_cut_before_parsing() {
    let page = format!(
        "{}<div class=\"quote\"><span class=\"text\">deep</span></div>{}",
        "<div>".repeat(300),
        "</div>".repeat(300)
    ) + r#"<div class="quote"><span class="text">after</span></div>"#;
    let s = run(&Spec::quotes(), CAPS, &page, "http://h/");
    assert_eq!(s.items.len(), 1, "only the quote after the deep part");
    assert_eq!(s.elements_cut, 300 - 256 + 2);
}

#[test]
fn extracts_quotes_with_entities_unicode_and_empty_tags() {
    let s = run(&Spec::quotes(), CAPS, PAGE, "http://h/page/1/");
    assert_eq!(
        texts(&s),
        [
            r#"{"quote":"“Café & ünïcode”","author":"Zoë Q","tags":["life","love"],"url":"http://h/page/1/"}"#,
            r#"{"quote":"No tags here","author":"Anon","tags":[],"url":"http://h/page/1/"}"#,
        ]
    );
    assert_eq!(s.rule.as_deref(), Some("default"));
}

#[test]
fn follows_next_and_tag_links_only_http() {
    let s = run(&Spec::quotes(), CAPS, PAGE, "http://h/page/1/");
    // Document order: the follow selectors are one selector list.
    let links: Vec<&str> = s.links.iter().map(Url::as_str).collect();
    assert_eq!(
        links,
        [
            "http://h/tag/life/page/1/",
            "http://h/tag/love/",
            "http://h/page/2/"
        ]
    );
    assert_eq!(s.ignored_links, 1, "the javascript: tag link");
}

#[test]
fn page_without_quotes_yields_nothing_and_json_pages_nothing_either() {
    let s = run(
        &Spec::quotes(),
        CAPS,
        "<html><p>404</p></html>",
        "http://h/x",
    );
    assert!(s.items.is_empty() && s.links.is_empty());
    assert!(!s.wrong_kind, "an HTML page for an HTML rule");
    let page = Page {
        body: r#"{"quote":"x"}"#.into(),
        kind: Kind::Json,
    };
    let s = scrape(
        &Spec::quotes(),
        CAPS,
        &page,
        &Url::parse("http://h/").unwrap(),
    );
    assert!(s.items.is_empty() && s.links.is_empty());
    assert!(s.wrong_kind, "a JSON page for an HTML rule is reported");
    let json_rule = Spec::parse(r#"{"json": "", "fields": {"q": "quote"}}"#);
    let s = run(&json_rule, CAPS, "<p>x</p>", "http://h/");
    assert!(s.items.is_empty() && s.wrong_kind);
}

#[test]
fn missing_single_field_is_null() {
    let html = r#"<div class="quote"><span class="text">t</span></div>"#;
    let s = run(&Spec::quotes(), CAPS, html, "http://h/");
    assert_eq!(
        texts(&s),
        [r#"{"quote":"t","author":null,"tags":[],"url":"http://h/"}"#]
    );
}

#[test]
fn table_rows_read_their_sibling_row_and_the_item_element_itself() {
    let spec = Spec::parse(
        r#"{"item": "tr.q", "fields": {
            "quote": {"re": "^(.*?)\\s*Author:", "normalize": true},
            "author": {"css": "td", "re": "Author: (.*)", "normalize": true},
            "tags": {"css": "a", "all": true, "sibling": 1},
            "first": {"css": "a", "sibling": 1, "read": "attr:href", "absolute": true},
            "n": {"css": "b", "sibling": 3, "default": "none"}}}"#,
    );
    let html = r#"<table><tr><td>header</td></tr>
        <tr class="q"><td>“One”
            Author: Ann  Lee</td></tr>
        <tr><td>Tags: <a href="/tag/a/">a</a> <a href="/tag/b/">b</a></td></tr>
        <tr class="q"><td>“Two” Author: Bo</td></tr>
        <tr><td>Tags: <b>x</b></td></tr></table>"#;
    let s = run(&spec, CAPS, html, "http://h/tableful/");
    let u = "\"url\":\"http://h/tableful/\"";
    assert_eq!(
        texts(&s),
        [
            format!(
                r#"{{"quote":"“One”","author":"Ann Lee","tags":["a","b"],"first":"http://h/tag/a/","n":"x",{u}}}"#
            ),
            format!(r#"{{"quote":"“Two”","author":"Bo","tags":[],"first":null,"n":"none",{u}}}"#),
        ]
    );
}

#[test]
fn script_items_come_from_the_captured_json() {
    let spec = Spec::parse(
        r#"{"script": "var data = (\\[[\\s\\S]*?\\]);", "fields": {
            "quote": "text", "author": "author.name", "tags": "tags", "slug": {"path": "author.slug", "re": "^(\\w+)"}},
            "follow": ["li.next a"]}"#,
    );
    let html = r#"<script src="/jq.js"></script><script>var other = 1;</script>
        <script>
          var data = [{"tags": ["a"], "author": {"name": "Ann", "slug": "Ann-Lee"}, "text": "\u201cOne\u201d"},
                      {"tags": [], "author": {"name": "Bo"}, "text": "Two"}];
          for (var i in data) {}
        </script><script>var data = [oops];</script>
        <ul><li class="next"><a href="/js/page/2/">Next</a></li></ul>"#;
    let s = run(&spec, CAPS, html, "http://h/js/");
    assert_eq!(
        texts(&s),
        [
            r#"{"quote":"“One”","author":"Ann","tags":["a"],"slug":"Ann","url":"http://h/js/"}"#,
            r#"{"quote":"Two","author":"Bo","tags":[],"slug":null,"url":"http://h/js/"}"#,
        ]
    );
    assert_eq!(s.bad_json, 1, "the [oops] script");
    assert_eq!(
        s.links.iter().map(Url::as_str).collect::<Vec<_>>(),
        ["http://h/js/page/2/"]
    );
}

fn json_page(body: &str) -> Page {
    Page {
        body: body.into(),
        kind: Kind::Json,
    }
}

fn links(s: &Scraped) -> Vec<&str> {
    s.links.iter().map(Url::as_str).collect()
}

const RULES: &str = r#"{"rule_field": "kind", "deny": ["/logout"],
  "rules": [
    {"name": "api", "match": "/api/quotes", "json": "quotes",
     "fields": {"quote": "text", "author": "author.name", "tags": {"path": "tags", "join": "|", "default": "-"}},
     "follow": ["links.*"],
     "next": {"url": "/api/quotes?page={page+1}", "if": "has_next"}},
    {"name": "authors", "match": "/author/", "item": "div.author",
     "fields": {"name": {"css": "h3", "normalize": true}, "born": {"css": ".born", "re": "Born: (.*)"}}},
    {"name": "nav", "follow": ["a"], "deny": ["/secret/"]}],
  "item": "p.never", "fields": {"x": "b"}}"#;

#[test]
fn json_rule_reads_items_follows_paths_and_builds_the_next_page() {
    let spec = Spec::parse(RULES);
    let body = r#"{"has_next": true, "page": 1, "links": ["/author/a/", "/logout"],
        "quotes": [{"text": "One", "author": {"name": "Ann"}, "tags": ["x", "y"]},
                   {"text": "Two", "author": null, "tags": []}]}"#;
    let url = Url::parse("http://h/api/quotes?page=1").unwrap();
    let s = scrape(&spec, CAPS, &json_page(body), &url);
    let u = r#""url":"http://h/api/quotes?page=1","kind":"api""#;
    assert_eq!(
        texts(&s),
        [
            format!(r#"{{"quote":"One","author":"Ann","tags":"x|y",{u}}}"#),
            format!(r#"{{"quote":"Two","author":null,"tags":"-",{u}}}"#),
        ]
    );
    assert_eq!(
        links(&s),
        ["http://h/author/a/", "http://h/api/quotes?page=2"]
    );
    assert_eq!(s.links_filtered, 1, "the spec-wide deny");
    assert_eq!(s.rule.as_deref(), Some("api"));
    let last = r#"{"has_next": false, "page": 10, "quotes": []}"#;
    let s = scrape(&spec, CAPS, &json_page(last), &url);
    assert!(s.items.is_empty() && s.links.is_empty());
    let s = scrape(&spec, CAPS, &json_page("{\"quotes\": ["), &url);
    assert_eq!(s.bad_json, 1);
}

#[test]
fn the_first_matching_rule_reads_the_page_and_tags_its_items() {
    let spec = Spec::parse(RULES);
    let author = r#"<div class="author"><h3> Ann
        Lee </h3><span class="born">Born: 1900</span></div><a href="/p/">p</a>"#;
    let s = run(&spec, CAPS, author, "http://h/author/ann/");
    assert_eq!(
        texts(&s),
        [r#"{"name":"Ann Lee","born":"1900","url":"http://h/author/ann/","kind":"authors"}"#]
    );
    assert!(s.links.is_empty(), "the authors rule follows nothing");
    let nav = r#"<p class="never"><b>x</b></p><a href="/a/">a</a><a href="/secret/1">s</a><a href="/logout">o</a>"#;
    let s = run(&spec, CAPS, nav, "http://h/page/1/");
    assert!(
        s.items.is_empty(),
        "nav matched first: the default rule is last"
    );
    assert_eq!(links(&s), ["http://h/a/"]);
    assert_eq!((s.links_filtered, s.rule.as_deref()), (2, Some("nav")));
    // A JSON body on a page an HTML rule reads yields nothing.
    let s = scrape(
        &spec,
        CAPS,
        &json_page("{}"),
        &Url::parse("http://h/author/x/").unwrap(),
    );
    assert!(s.items.is_empty() && s.links.is_empty());
}

#[test]
fn items_beyond_the_page_cap_are_counted_not_kept() {
    let spec = Spec::parse(r#"{"json": "", "fields": {"n": ""}}"#);
    let n = MAX_ITEMS_PER_PAGE + 3;
    let body = format!("[{}0]", "0,".repeat(n - 1));
    let s = scrape(
        &spec,
        CAPS,
        &json_page(&body),
        &Url::parse("http://h/").unwrap(),
    );
    assert_eq!((s.items.len(), s.items_cut), (MAX_ITEMS_PER_PAGE, 3));
}

#[test]
fn the_link_cap_counts_distinct_urls_not_repeats_or_fragments() {
    // 30 links to 5 pages (each 3 times, with fragments), 10 to the page
    // itself, then 5 new pages: a cap of 10 takes all 10 distinct ones.
    let mut page = String::new();
    for i in 0..5 {
        for frag in ["", "#a", "#b"] {
            page.push_str(&format!(
                "<li class=\"next\"><a href=\"/p{i}{frag}\">x</a></li>"
            ));
        }
        page.push_str("<li class=\"next\"><a href=\"#top\">t</a></li>");
        page.push_str("<li class=\"next\"><a href=\"/\">home</a></li>");
    }
    for i in 5..10 {
        page.push_str(&format!("<li class=\"next\"><a href=\"/p{i}\">x</a></li>"));
    }
    let caps = PageCaps {
        max_links: 10,
        ..CAPS
    };
    let s = run(&Spec::quotes(), caps, &page, "http://h/");
    let got: Vec<&str> = s.links.iter().map(Url::as_str).collect();
    let want: Vec<String> = (0..10).map(|i| format!("http://h/p{i}")).collect();
    assert_eq!(got, want);
    assert_eq!((s.links_cut, s.links_repeated), (0, 20));
    // One more distinct link is cut, and counted.
    let more = format!("{page}<li class=\"next\"><a href=\"/p10\">x</a></li>");
    let s = run(&Spec::quotes(), caps, &more, "http://h/");
    assert_eq!((s.links.len(), s.links_cut), (10, 1));
}

#[test]
fn without_item_the_page_is_the_item_and_fields_read_the_whole_document() {
    let spec = Spec::parse(
        r#"{"fields": {"title": "title", "h1": "h1", "h2": {"css": "h2", "all": true}}}"#,
    );
    let page =
        "<html><head><title>Doc</title></head><body><h1>One</h1><h2>a</h2><h2>b</h2></body></html>";
    let s = run(&spec, CAPS, page, "http://h/x.html");
    assert_eq!(s.items.len(), 1);
    assert_eq!(
        String::from_utf8_lossy(&s.items[0].json),
        r#"{"title":"Doc","h1":"One","h2":["a","b"],"url":"http://h/x.html"}"#
    );
}

#[test]
fn a_submit_rule_sends_its_form_once_per_option_with_hidden_fields_kept() {
    let spec = Spec::parse(
        r#"{"rules": [
            {"name": "s", "match": "/s$", "submit": {"each": "who", "values": {"q": "x y"}, "rule": "r"}},
            {"name": "g", "match": "/g$", "submit": {"form": "form.get"}},
            {"name": "r", "match": "/never$", "item": "p", "fields": {"t": "p"}}
        ]}"#,
    );
    let html = r#"<form action="/post" method="post">
        <input type="hidden" name="__VIEWSTATE" value="abc=">
        <select name="who"><option value="">----</option><option value="a b">A</option>
          <option value="c" disabled>C</option><option>d</option><option value="a b">again</option></select>
        <input name="q" value="old"><input type="submit" name="go" value="Go"></form>"#;
    let s = run(&spec, CAPS, html, "http://h/s");
    let got: Vec<(String, Option<String>, String)> = s
        .submissions
        .iter()
        .map(|x| (x.url.to_string(), x.body.clone(), x.label.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "http://h/post".into(),
                Some("__VIEWSTATE=abc%3D&who=a+b&q=x+y&go=Go".into()),
                "who=a b".into()
            ),
            (
                "http://h/post".into(),
                Some("__VIEWSTATE=abc%3D&who=d&q=x+y&go=Go".into()),
                "who=d".into()
            ),
        ]
    );
    assert!(s.submissions.iter().all(|x| x.rule.as_deref() == Some("r")));
    // A GET form: once, its fields in the query.
    let s = run(
        &spec,
        CAPS,
        r#"<form class="get" action="/find"><input name="k" value="v w"></form>"#,
        "http://h/g",
    );
    assert_eq!(s.submissions.len(), 1);
    assert_eq!(s.submissions[0].url.as_str(), "http://h/find?k=v+w");
    assert_eq!(s.submissions[0].body, None);
    // No form, or a select without options: nothing sent, and said why.
    let s = run(&spec, CAPS, "<p>no form</p>", "http://h/s");
    assert!(s.submissions.is_empty());
    assert!(s.form_problem.unwrap().contains("no element matches"));
    let s = run(
        &spec,
        CAPS,
        "<form><select name=who></select></form>",
        "http://h/s",
    );
    assert!(s.form_problem.unwrap().contains("has no options"));
    // An answer is read by the rule named, whatever its URL.
    let page = Page {
        body: "<p>hi</p>".into(),
        kind: Kind::Html,
    };
    let url = Url::parse("http://h/post").unwrap();
    let s = scrape_by(&spec, CAPS, &page, &url, None, Some("r"));
    assert_eq!(s.rule.as_deref(), Some("r"));
    assert_eq!(s.items.len(), 1);
}
