//! Spec parsing: what each key compiles to, and the error each mistake gets.

use super::*;
use crate::crawl::spider::{Follow, Get, ItemSource, Next, Read};

/// Spiders for tests, made from spec JSON (here, since `spider` never
/// reads specs).
impl Spec {
    /// The built-in spider for quotes.toscrape.com and `qpipe demo-site`,
    /// compiled from the same JSON that `qpipe spec --print` shows.
    pub fn quotes() -> Spec {
        Spec::parse(QUOTES)
    }

    /// A spider from spec JSON that the test knows to be valid.
    pub fn parse(json: &str) -> Spec {
        parse(json, "test")
            .map(|s| s.spider)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

fn bad(text: &str) -> String {
    parse(text, "t.json").expect_err("should be rejected")
}

fn ok(text: &str) -> SpecFile {
    parse(text, "t.json").unwrap_or_else(|e| panic!("{e}"))
}

fn css_get(rule: &Rule, i: usize) -> (Read, bool, usize, bool) {
    match &rule.fields[i].get {
        Get::Css {
            read,
            all,
            sibling,
            selector,
        } => (read.clone(), *all, *sibling, selector.is_some()),
        Get::Json(_) => panic!("not a CSS field"),
    }
}

#[test]
fn builtin_spec_parses_to_the_quotes_spider() {
    let s = parse(QUOTES, "built-in").unwrap();
    assert_eq!(s.spider.field_names(), ["quote", "author", "tags"]);
    assert_eq!(s.spider.rules.len(), 1);
    let rule = &s.spider.rules[0];
    assert_eq!((rule.name.as_str(), rule.tagged), ("default", false));
    assert!(rule.matches.is_none());
    assert!(css_get(rule, 2).1, "tags: all");
    assert!(
        matches!(rule.follow, Follow::Css(Some(_))),
        "one joined selector list"
    );
    assert_eq!(s.start_urls[0].as_str(), "https://quotes.toscrape.com/");
}

#[test]
fn shorthand_attr_and_html_fields() {
    let s = ok(
        r#"{"item":"li","fields":{"t":"b","href":{"css":"a","read":"attr:href","all":true},"h":{"css":"i","read":"html"},"me":{"sibling":2}},"max_depth":2,"allowed_domains":[".Example.com"]}"#,
    );
    let rule = &s.spider.rules[0];
    assert_eq!(css_get(rule, 1), (Read::Attr("href".into()), true, 0, true));
    assert_eq!(css_get(rule, 2), (Read::Html, false, 0, true));
    assert_eq!(css_get(rule, 3), (Read::Text, false, 2, false));
    assert_eq!(s.max_depth, Some(2));
    assert_eq!(s.allowed_domains, ["example.com"]);
}

#[test]
fn rules_come_first_and_the_top_level_is_the_untagged_default() {
    let s = ok(r#"{"name": "all", "item": "div", "fields": {"a": "b"},
        "rule_field": "kind", "allow": ["/x/"], "deny": ["/y/", "/z/"],
        "sitemap_urls": ["http://h/sitemap.xml"], "sitemap_follow": ["q"],
        "start_urls": ["http://h/"],
        "rules": [
          {"name": "api", "match": "/api/", "json": "quotes", "fields": {"q": "text", "t": {"path": "tags.*", "join": ","}},
           "follow": ["links.author"], "next": {"url": "/api?page={page+1}", "if": "has_next"}, "deny": ["/api/x"]},
          {"name": "nav", "follow": ["li.next a", ".x + a"]},
          {"name": "js", "script": "var d = (.*);", "json": "data", "fields": {"q": "text"}},
          {"name": "next-by-path", "json": "", "next": {"path": "links.next"}}]}"#);
    let sp = &s.spider;
    let names: Vec<(&str, bool)> = sp
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.tagged))
        .collect();
    assert_eq!(
        names,
        [
            ("api", true),
            ("nav", true),
            ("js", true),
            ("next-by-path", true),
            ("default", false)
        ]
    );
    assert_eq!(sp.rule_field, "kind");
    assert_eq!((sp.links.allow.len(), sp.links.deny.len()), (1, 2));
    assert_eq!(sp.sitemap_follow.len(), 1);
    assert_eq!(s.start_urls.len(), 2, "start_urls, then sitemap_urls");
    assert_eq!(s.sitemap_urls[0].as_str(), "http://h/sitemap.xml");
    assert_eq!(s.name.as_deref(), Some("all"));
    let api = &sp.rules[0];
    assert!(matches!(api.source, Some(ItemSource::Json(_))));
    assert!(matches!(&api.follow, Follow::Json(p) if p.len() == 1));
    assert!(matches!(api.next, Some(Next::Template(_, Some(_)))));
    assert_eq!(api.fields[1].post.join.as_deref(), Some(","));
    assert_eq!(api.links.deny.len(), 1);
    assert!(sp.rules[1].source.is_none() && sp.rules[1].fields.is_empty());
    assert!(matches!(sp.rules[2].source, Some(ItemSource::Script(..))));
    assert!(
        sp.rules[3].source.is_none(),
        "a json rule without fields only follows"
    );
    assert!(matches!(sp.rules[3].next, Some(Next::Path(_))));
    assert_eq!(sp.field_names(), ["q", "t", "a"]);
    let url = |u: &str| Url::parse(u).unwrap();
    assert_eq!(
        sp.rule_for(&url("http://h/api/quotes")).unwrap().name,
        "api"
    );
    assert_eq!(sp.rule_for(&url("http://h/page/2/")).unwrap().name, "nav");
}

#[test]
fn a_rules_only_spec_needs_no_top_level_item() {
    let s =
        ok(r#"{"rules": [{"name": "q", "match": "/q/", "item": "div", "fields": {"a": "b"}}]}"#);
    assert_eq!(s.spider.rules.len(), 1, "no default rule");
    assert_eq!(s.spider.rule_field, "rule");
    assert!(s
        .spider
        .rule_for(&Url::parse("http://h/other").unwrap())
        .is_none());
}

#[test]
fn errors_point_at_the_key() {
    assert!(bad("{").starts_with("spec t.json: invalid JSON: EOF while parsing"));
    assert_eq!(
        bad(r#"{"item":"div","fields":{"a":"b"},"folow":[]}"#),
        "spec t.json: folow: unknown key (expected one of start_urls, allowed_domains, item, fields, follow, max_depth, name, match, json, script, next, allow, deny, rules, rule_field, unique, required, sitemap_urls, sitemap_follow, headers, login)"
    );
    assert!(bad(r#"{"item":"div..x","fields":{"a":"b"}}"#)
        .starts_with("spec t.json: item: invalid CSS selector \"div..x\""));
    assert_eq!(
        bad(r#"{"item":"div","fields":{}}"#),
        "spec t.json: fields: needs at least one field"
    );
    assert!(
        bad(r#"{"item":"div","fields":{"a":{"css":"p","selector":"q"}}}"#)
            .starts_with("spec t.json: fields.a.selector: unknown key")
    );
    assert!(bad(r#"{"item":"div","fields":{"a":{"css":"p["}}}"#)
        .starts_with("spec t.json: fields.a.css: invalid CSS selector"));
    assert!(bad(r#"{"item":"div","fields":{"a":"p["}}"#)
        .starts_with("spec t.json: fields.a: invalid CSS selector"));
    assert!(
        bad(r#"{"item":"div","fields":{"a":{"css":"p","read":"attr:"}}}"#)
            .starts_with("spec t.json: fields.a.read:")
    );
    assert!(
        bad(r#"{"item":"div","fields":{"a":"p"},"follow":["a","!"]}"#)
            .starts_with("spec t.json: follow[1]: invalid CSS selector")
    );
    assert!(
        bad(r#"{"item":"div","fields":{"a":"p"},"start_urls":["ftp://x"]}"#)
            .starts_with("spec t.json: start_urls[0]:")
    );
    assert!(bad(r#"{"follow":["a"]}"#).starts_with("spec t.json: fields: missing"));
    assert!(bad(r#"{"item":"div","fields":{"url":"p"}}"#).starts_with("spec t.json: fields.url:"));
}

#[test]
fn rule_errors_name_the_rule_and_key() {
    let rules = |r: &str| {
        bad(&format!(
            r#"{{"rules": [{{"name": "a", "follow": ["a"]}}, {r}]}}"#
        ))
    };
    assert_eq!(
        rules(r#"{"name": "b", "item": "tr", "fields": {"tags": {"css": "a", "re": "(x"}}}"#),
        "spec t.json: rules[1].fields.tags.re: invalid regex \"(x\": unclosed group (check the syntax; look-around and backreferences are not supported)"
    );
    assert!(rules(r#"{"name": "b", "match": "[", "follow": ["a"]}"#)
        .starts_with("spec t.json: rules[1].match: invalid regex \"[\": unclosed character class"));
    assert_eq!(
        rules(r#"{"match": "x"}"#),
        "spec t.json: rules[1].name: missing"
    );
    assert!(
        rules(r#"{"name": "a"}"#).starts_with("spec t.json: rules[1].name: \"a\" is used twice")
    );
    assert!(rules(r#"{"name": "b", "colour": 1}"#)
        .starts_with("spec t.json: rules[1].colour: unknown key (expected one of name, match,"));
    assert!(
        rules(r#"{"name": "b", "json": "a..b", "fields": {"x": "y"}}"#)
            .starts_with("spec t.json: rules[1].json: empty step in path \"a..b\"")
    );
    assert_eq!(
        rules(r#"{"name": "b", "json": "q", "fields": {"x": {"css": "p"}}}"#),
        "spec t.json: rules[1].fields.x.css: only in HTML item rules (use path)"
    );
    assert_eq!(
        rules(r#"{"name": "b", "item": "p", "fields": {"x": {"path": "a"}}}"#),
        "spec t.json: rules[1].fields.x.path: only in json and script rules (use css)"
    );
    assert!(
        rules(r#"{"name": "b", "item": "p", "json": "q", "fields": {"x": "a"}}"#)
            .starts_with("spec t.json: rules[1].item: a rule reads items by one of")
    );
    assert!(rules(r#"{"name": "b", "script": "x"}"#)
        .starts_with("spec t.json: rules[1].fields: missing"));
    assert!(
        rules(r#"{"name": "b", "item": "p", "fields": {"x": "a"}, "next": {"path": "n"}}"#)
            .starts_with("spec t.json: rules[1].next: only in a json rule")
    );
    assert!(
        rules(r#"{"name": "b", "json": "", "next": {}}"#).starts_with(
            "spec t.json: rules[1].next: give either path (where the next URL is) or url"
        )
    );
    assert!(
        rules(r#"{"name": "b", "json": "", "next": {"url": "/p/{page"}}"#)
            .starts_with("spec t.json: rules[1].next.url: a '{' without '}' in URL template")
    );
    assert!(rules(r#"{"name": "b", "json": "", "follow": ["a..b"]}"#)
        .starts_with("spec t.json: rules[1].follow[0]: empty step"));
    assert!(
        rules(r#"{"name": "b", "item": "p", "fields": {"rule": "a"}}"#)
            .starts_with("spec t.json: rules[1].fields.rule: is the rule_field")
    );
    assert!(rules(r#"{"name": "b", "allow": ["("]}"#)
        .starts_with("spec t.json: rules[1].allow[0]: invalid regex"));
}

#[test]
fn spec_wide_key_errors() {
    assert!(
        bad(r#"{"item":"p","fields":{"a":"b"},"rule_field":"kind"}"#)
            .starts_with("spec t.json: rule_field: needs rules")
    );
    assert!(
        bad(r#"{"rules":[{"name":"a","follow":["a"]}],"rule_field":"url"}"#)
            .starts_with("spec t.json: rule_field: must be a printable name")
    );
    assert!(bad(r#"{"item":"p","fields":{"a":"b"},"deny":["(?<=x)"]}"#)
        .starts_with("spec t.json: deny[0]: invalid regex"));
    assert!(
        bad(r#"{"item":"p","fields":{"a":"b"},"sitemap_urls":["/s.xml"]}"#)
            .starts_with("spec t.json: sitemap_urls[0]:")
    );
    assert!(
        bad(r#"{"item":"p","fields":{"a":"b"},"sitemap_follow":"x"}"#)
            .starts_with("spec t.json: sitemap_follow: invalid type")
    );
    assert_eq!(
        bad(r#"{"rules":[1]}"#),
        "spec t.json: rules[0]: invalid type: integer `1`, expected an object"
    );
    assert_eq!(
        bad(r#"{"rules":[{"name":"default","item":"p","fields":{"a":"b"}}]}"#),
        "spec t.json: rules[0].name: \"default\" names the top level's own rule (pick another name)"
    );
    assert_eq!(
        bad(r#"{"item":"p","fields":{"a":{"css":"b","sibling":17}}}"#),
        "spec t.json: fields.a.sibling: at most 16 (the item's N-th following sibling element)"
    );
    assert!(
        bad(r#"{"item":"p","fields":{"a":{"css":"b","sibling":-1}}}"#)
            .starts_with("spec t.json: fields.a.sibling: invalid value")
    );
}

#[test]
fn submit_is_checked() {
    let e = bad(r#"{"rules": [{"name": "a", "submit": {"rule": "nope"}}]}"#);
    assert!(
        e.contains("rules[0].submit.rule: no rule is named \"nope\""),
        "{e}"
    );
    let e = bad(r#"{"rules": [{"name": "a", "json": "$.x", "follow": ["$.n"], "submit": {}}]}"#);
    assert!(e.contains("submit: only in a rule that reads HTML"), "{e}");
    let e = bad(r#"{"rules": [{"name": "a", "submit": {"values": {"n": 1}}}]}"#);
    assert!(e.contains("submit.values.n: a string"), "{e}");
    let e = bad(r#"{"rules": [{"name": "a", "submit": {"each": ""}}]}"#);
    assert!(e.contains("submit.each"), "{e}");
    let e = bad(r#"{"rules": [{"name": "a", "submit": {"click": true}}]}"#);
    assert!(e.contains("click"), "{e}");
    let s = ok(r#"{"rules": [{"name": "a", "submit": {"form": "form#f", "each": "x"}}]}"#);
    assert_eq!(
        s.spider.rules[0].submit.as_ref().unwrap().each.as_deref(),
        Some("x")
    );
}
