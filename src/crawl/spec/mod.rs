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
//! untagged); `raw` reads the shape, `rule` compiles each rule. Every error
//! names the offending key, e.g. `rules[0].fields.tags.css: invalid CSS selector`.

mod raw;
mod rule;
#[cfg(test)]
mod tests;

use crate::crawl::origin::Origin;
use crate::crawl::page::Accept;
use crate::crawl::session::login::Login;
use crate::crawl::spider::{Follow, Rule, Spec};
use crate::queue::item::Identity;
use raw::{Raw, RuleKeys};
use rule::{compile_rule, filter, At};
use serde::de;
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
    // serde would read a JSON array as the struct's fields in order.
    if !text.trim_start().starts_with('{') && serde_json::from_str::<de::IgnoredAny>(text).is_ok() {
        return Err(format!("spec {origin}: must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let raw: Raw = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| {
            let (path, inner) = (e.path().to_string(), e.into_inner());
            if inner.is_syntax() || inner.is_eof() {
                return format!("spec {origin}: invalid JSON: {inner} (check commas and quotes)");
            }
            let (key, msg) = explain(&path, &inner);
            err(&key, &msg)
        })
        .and_then(|raw| {
            // Nothing may follow the object.
            de.end().map(|()| raw).map_err(|e| {
                format!("spec {origin}: invalid JSON: {e} (remove what follows the closing brace)")
            })
        })?;
    let at = |prefix: String, rule_field| At {
        origin,
        prefix,
        rule_field,
    };
    let top = At {
        origin,
        prefix: String::new(),
        rule_field: None,
    };
    let rules = raw.rules.unwrap_or_default();
    let rule_field = match raw.rule_field {
        Some(_) if rules.is_empty() => {
            return Err(err(
                "rule_field",
                "needs rules (the top level's items carry no rule field)",
            ));
        }
        Some(f) if f.is_empty() || f == "url" || f.chars().any(char::is_control) => {
            return Err(err(
                "rule_field",
                "must be a printable name other than \"url\"",
            ));
        }
        Some(f) => f,
        None => RULE_FIELD.to_string(),
    };
    let mut compiled: Vec<Rule> = Vec::with_capacity(rules.len() + 1);
    for (i, r) in rules.into_iter().enumerate() {
        let (name, keys) = r.split();
        let here = at(format!("rules[{i}]."), Some(rule_field.as_str()));
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
    let keys = RuleKeys {
        matches: raw.matches,
        item: raw.item,
        json: raw.json,
        script: raw.script,
        fields: raw.fields,
        follow: raw.follow,
        next: raw.next,
        allow: Vec::new(),
        deny: Vec::new(),
    };
    let has_top_rule = keys.matches.is_some()
        || keys.item.is_some()
        || keys.json.is_some()
        || keys.script.is_some()
        || keys.fields.is_some()
        || !keys.follow.is_empty()
        || keys.next.is_some();
    if compiled.is_empty() || has_top_rule {
        if compiled.is_empty()
            && keys.item.is_none()
            && keys.json.is_none()
            && keys.script.is_none()
            && keys.fields.is_none()
        {
            return Err(err(
                "fields",
                "missing (the fields of each item; with item, a CSS selector for each item element, else the page is the item; or json, script, or rules)",
            ));
        }
        // Tried last: a top level without `match` reads every other page.
        compiled.push(compile_rule("default".into(), false, keys, &top)?);
    }
    let known: Vec<&str> = {
        let mut names: Vec<&str> = Vec::new();
        for f in compiled.iter().flat_map(|r| &r.fields) {
            if !names.contains(&f.name.as_str()) {
                names.push(f.name.as_str());
            }
        }
        names
    };
    let identity = match raw.unique {
        None => Identity::Page,
        Some(names) if names.is_empty() => {
            return Err(err(
                "unique",
                "needs at least one field (leave it out to keep every item)",
            ));
        }
        Some(names) => {
            check_names(&names, "unique", &known, true, &err)?;
            Identity::Fields(names)
        }
    };
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

/// The key and message for a shape error, in qpipe's words: serde's
/// "unknown field `x`, expected one of `a`, `b`" names the key itself.
fn explain(path: &str, e: &serde_json::Error) -> (String, String) {
    let text = e.to_string();
    // serde_json appends " at line L column C"; the key path says where.
    let text = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(t, _)| t);
    // The path already ends in the unknown key.
    if let Some(rest) = text.strip_prefix("unknown field `") {
        let expected = rest.split_once("`, expected").map_or("", |(_, e)| e);
        let expected = expected.trim_start_matches(" one of").replace('`', "");
        return (
            path.to_string(),
            format!("unknown key (expected one of{expected})"),
        );
    }
    if let Some(rest) = text.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or("");
        let sep = if path.is_empty() || path == "." {
            ""
        } else {
            "."
        };
        return (format!("{path}{sep}{key}"), "missing".into());
    }
    // serde names its own types ("expected struct RawRule"): say what to write.
    let text = match text.split_once("expected struct ") {
        Some((head, _)) => format!("{head}expected an object"),
        None => text.to_string(),
    };
    let hint = match path {
        "max_depth" => " (a whole number, 0 or more)",
        "follow" | "start_urls" | "allowed_domains" | "allow" | "deny" | "sitemap_urls"
        | "sitemap_follow" => " (a list of strings)",
        _ => "",
    };
    (path.to_string(), format!("{text}{hint}"))
}
