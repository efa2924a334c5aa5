//! Spider specs: the JSON format users write, validated into a `spider::Spec`.
//!
//! ```json
//! {"start_urls": ["https://quotes.toscrape.com/"],
//!  "allowed_domains": ["quotes.toscrape.com"],
//!  "item": "div.quote",
//!  "fields": {"quote": "span.text",
//!             "tags": {"css": "a.tag", "all": true, "join": ", "},
//!             "link": {"css": "a", "read": "attr:href", "absolute": true}},
//!  "follow": ["li.next a"],
//!  "max_depth": 5,
//!  "rules": [{"name": "api", "match": "/api/", "json": "quotes",
//!             "fields": {"quote": "text", "author": "author.name"},
//!             "next": {"url": "/api/quotes?page={page+1}", "if": "has_next"}}]}
//! ```
//! The top level is one rule ("default", tried after `rules`, its items
//! untagged); `json` reads the text into the shape that `raw` declares,
//! `rule` compiles each rule. Every error names the offending key, e.g.
//! `rules[0].fields.tags.css: invalid CSS selector`.

mod json;
mod raw;
mod rule;
#[cfg(test)]
mod tests;

use crate::crawl::origin::Origin;
use crate::crawl::page::Accept;
use crate::crawl::session::login::Login;
use crate::crawl::spider::{Follow, Rule, Spec};
use crate::queue::item::Identity;
use raw::{RawRule, RuleKeys};
use rule::{compile_rule, filter, At};
use url::Url;

/// A validated spec file: the spider plus where and how far it crawls.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The compiled spider.
    pub spider: Spec,
    /// Where the crawl starts: `start_urls`, then `sitemap_urls` (may be
    /// empty if the command line gives them).
    pub start_urls: Vec<Url>,
    /// The `sitemap_urls` alone (already in `start_urls`).
    pub sitemap_urls: Vec<Url>,
    /// Domains whose hosts (and subdomains) may be crawled; empty: the start URLs' hosts.
    pub allowed_domains: Vec<String>,
    /// Links deeper than this many hops from a start URL are not followed.
    pub max_depth: Option<u32>,
    /// The spec's `name`, for the user's bookkeeping.
    pub name: Option<String>,
    /// Headers sent with every request (`--header` wins for the same name).
    pub headers: Vec<(String, String)>,
    /// A form to log in with before crawling.
    pub login: Option<Login>,
}

impl SpecFile {
    /// Moves the spec onto `origin` (`--origin`): its start, sitemap and
    /// login URLs, and its allowed domains, which become the origin's host.
    pub fn rebase(&mut self, origin: &Origin) {
        for u in self.start_urls.iter_mut().chain(&mut self.sitemap_urls) {
            *u = origin.rebase(u);
        }
        if let Some(login) = &mut self.login {
            login.url = origin.rebase(&login.url);
        }
        if !self.allowed_domains.is_empty() {
            self.allowed_domains = vec![origin.host()];
        }
    }
}

/// The built-in quotes spider, as a spec users can copy (`qpipe spec --print`).
pub const QUOTES: &str = r#"{
  "start_urls": ["https://quotes.toscrape.com/"],
  "item": "div.quote",
  "fields": {
    "quote": {"css": "span.text", "read": "text"},
    "author": {"css": "small.author", "read": "text"},
    "tags": {"css": "a.tag", "read": "text", "all": true}
  },
  "follow": ["li.next a", "a.tag", "ul.sitemap a"],
  "unique": ["quote", "author", "tags"]
}
"#;

/// The rule field when the spec does not name one.
pub const RULE_FIELD: &str = "rule";

/// Reads a spec file; the error says whether the path or the encoding is wrong.
/// `label` says where the path came from (`--spec`, `spec`).
pub fn read(label: &str, path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => {
            format!("cannot read {label} {path}: it is not UTF-8 text (save it as UTF-8 JSON)")
        }
        _ => format!(
            "cannot read {label} {path}: {e} (check the path; `qpipe spec --print` shows an example)"
        ),
    })
}

/// Parses and validates a spec; `origin` names it in errors (a path, or "built-in").
pub fn parse(text: &str, origin: &str) -> Result<SpecFile, String> {
    let err = |key: &str, msg: &str| format!("spec {origin}: {key}: {msg}");
    let raw = json::deserialize(text, origin)?;
    let rules = raw.rules.unwrap_or_default();
    let rule_field = rule_field(raw.rule_field, rules.is_empty(), &err)?;
    let mut compiled = compile_rules(rules, &rule_field, origin)?;
    let top = RuleKeys {
        matches: raw.matches,
        item: raw.item,
        json: raw.json,
        script: raw.script,
        fields: raw.fields,
        follow: raw.follow,
        next: raw.next,
        allow: Vec::new(),
        deny: Vec::new(),
        submit: None,
    };
    if let Some(rule) = compile_top(top, compiled.is_empty(), origin)? {
        // Tried last: a top level without `match` reads every other page.
        compiled.push(rule);
    }
    for (i, r) in compiled.iter().enumerate() {
        let Some(target) = r.submit.as_ref().and_then(|s| s.rule.as_ref()) else {
            continue;
        };
        if !compiled.iter().any(|c| &c.name == target) {
            let names: Vec<&str> = compiled.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "spec {origin}: rules[{i}].submit.rule: no rule is named {target:?} (the rules are {})",
                names.join(", ")
            ));
        }
    }
    let known = field_names(&compiled);
    let identity = identity(raw.unique, &known, &err)?;
    let required = raw.required.unwrap_or_default();
    check_names(&required, "required", &known, false, &err)?;
    let sitemap_urls: Vec<Url> = raw.sitemap_urls.into_iter().map(|u| u.0).collect();
    let mut start_urls: Vec<Url> = raw.start_urls.into_iter().map(|u| u.0).collect();
    start_urls.extend(sitemap_urls.iter().cloned());
    let accept = Accept {
        json: compiled.iter().any(|r| matches!(r.follow, Follow::Json(_))),
        sitemaps: !sitemap_urls.is_empty(),
    };
    Ok(SpecFile {
        spider: Spec {
            rules: compiled,
            rule_field,
            links: filter(raw.allow, raw.deny),
            sitemap_follow: raw.sitemap_follow.into_iter().map(|r| r.0).collect(),
            identity,
            required,
            accept,
        },
        start_urls,
        sitemap_urls,
        allowed_domains: raw
            .allowed_domains
            .into_iter()
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
            .collect(),
        max_depth: raw.max_depth,
        name: raw.name,
        headers: raw.headers.0,
        login: raw.login,
    })
}

/// The key that carries the rule name on items (`rule_field`, default
/// `rule`): only with `rules`, printable, and not `url`.
fn rule_field(
    given: Option<String>,
    no_rules: bool,
    err: &dyn Fn(&str, &str) -> String,
) -> Result<String, String> {
    match given {
        Some(_) if no_rules => Err(err(
            "rule_field",
            "needs rules (the top level's items carry no rule field)",
        )),
        Some(f) if f.is_empty() || f == "url" || f.chars().any(char::is_control) => Err(err(
            "rule_field",
            "must be a printable name other than \"url\"",
        )),
        Some(f) => Ok(f),
        None => Ok(RULE_FIELD.to_string()),
    }
}

/// Compiles `rules` in order; each is named once, printably, and not
/// `default`.
fn compile_rules(rules: Vec<RawRule>, rule_field: &str, origin: &str) -> Result<Vec<Rule>, String> {
    let mut compiled: Vec<Rule> = Vec::with_capacity(rules.len() + 1);
    for (i, r) in rules.into_iter().enumerate() {
        let (name, keys) = r.split();
        let here = At {
            origin,
            prefix: format!("rules[{i}]."),
            rule_field: Some(rule_field),
        };
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(here.err("name", "a rule name must be non-empty and printable"));
        }
        if name == "default" {
            return Err(here.err(
                "name",
                "\"default\" names the top level's own rule (pick another name)",
            ));
        }
        if compiled.iter().any(|c| c.name == name) {
            return Err(here.err(
                "name",
                &format!("{name:?} is used twice (name each rule once)"),
            ));
        }
        compiled.push(compile_rule(name, true, keys, &here)?);
    }
    Ok(compiled)
}

/// The top level's own rule ("default", untagged), if it has rule keys or
/// there are no `rules`; a spec of neither has nothing to extract.
fn compile_top(keys: RuleKeys, no_rules: bool, origin: &str) -> Result<Option<Rule>, String> {
    let top = At {
        origin,
        prefix: String::new(),
        rule_field: None,
    };
    let reads_items = keys.item.is_some()
        || keys.json.is_some()
        || keys.script.is_some()
        || keys.fields.is_some();
    let has_top_rule =
        reads_items || keys.matches.is_some() || !keys.follow.is_empty() || keys.next.is_some();
    if !no_rules && !has_top_rule {
        return Ok(None);
    }
    if no_rules && !reads_items {
        return Err(top.err(
            "fields",
            "missing (the fields of each item; with item, a CSS selector for each item element, else the page is the item; or json, script, or rules)",
        ));
    }
    compile_rule("default".into(), false, keys, &top).map(Some)
}

/// Every field name of the compiled rules, once each, in spec order.
fn field_names(rules: &[Rule]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for f in rules.iter().flat_map(|r| &r.fields) {
        if !names.contains(&f.name.as_str()) {
            names.push(f.name.as_str());
        }
    }
    names
}

/// What makes two items the same: `unique`'s fields (at least one), else
/// the page they came from.
fn identity(
    unique: Option<Vec<String>>,
    known: &[&str],
    err: &dyn Fn(&str, &str) -> String,
) -> Result<Identity, String> {
    match unique {
        None => Ok(Identity::Page),
        Some(names) if names.is_empty() => Err(err(
            "unique",
            "needs at least one field (leave it out to keep every item)",
        )),
        Some(names) => {
            check_names(&names, "unique", known, true, err)?;
            Ok(Identity::Fields(names))
        }
    }
}

/// Checks a list of field names (`unique`, `required`): each a field of the
/// spec (or `url`, where `url_ok`), none twice.
fn check_names(
    names: &[String],
    key: &str,
    known: &[&str],
    url_ok: bool,
    err: &dyn Fn(&str, &str) -> String,
) -> Result<(), String> {
    let also = if url_ok { ", url" } else { "" };
    for (i, n) in names.iter().enumerate() {
        let allowed = known.contains(&n.as_str()) || (url_ok && n == "url");
        if !allowed {
            return Err(err(
                &format!("{key}[{i}]"),
                &format!(
                    "{n:?} is not a field of this spec (use one of {}{also})",
                    known.join(", ")
                ),
            ));
        }
        if names[..i].contains(n) {
            return Err(err(
                &format!("{key}[{i}]"),
                &format!("{n:?} is named twice"),
            ));
        }
    }
    Ok(())
}
