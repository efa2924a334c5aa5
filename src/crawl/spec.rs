//! Spider specs: the JSON format users write, validated into a `spider::Spec`.
//!
//! ```json
//! {"start_urls": ["https://quotes.toscrape.com/"],
//!  "allowed_domains": ["quotes.toscrape.com"],
//!  "item": "div.quote",
//!  "fields": {"quote": "span.text",
//!             "tags": {"css": "a.tag", "all": true},
//!             "link": {"css": "a", "read": "attr:href"}},
//!  "follow": ["li.next a"],
//!  "max_depth": 5}
//! ```
//! Every error names the offending key, e.g. `fields.tags.css: invalid CSS selector`.

use crate::crawl::spider::{Field, Read, Spec};
use scraper::Selector;
use serde_json::{Map, Value};
use url::Url;

/// A validated spec file: the spider plus where and how far it crawls.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// The compiled spider.
    pub spider: Spec,
    /// Where the crawl starts (may be empty if the command line gives them).
    pub start_urls: Vec<Url>,
    /// Domains whose hosts (and subdomains) may be crawled; empty: the start URLs' hosts.
    pub allowed_domains: Vec<String>,
    /// Links deeper than this many hops from a start URL are not followed.
    pub max_depth: Option<u32>,
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
  "follow": ["li.next a", "a.tag", "ul.sitemap a"]
}
"#;

const TOP_KEYS: [&str; 7] = [
    "start_urls",
    "allowed_domains",
    "item",
    "fields",
    "follow",
    "max_depth",
    "name",
];
const FIELD_KEYS: [&str; 3] = ["css", "read", "all"];

/// Parses and validates a spec; `origin` names it in errors (a path, or "built-in").
pub fn parse(text: &str, origin: &str) -> Result<SpecFile, String> {
    let err = |key: &str, msg: String| format!("spec {origin}: {key}: {msg}");
    let root: Value = serde_json::from_str(text)
        .map_err(|e| format!("spec {origin}: invalid JSON: {e} (check commas and quotes)"))?;
    let obj = root
        .as_object()
        .ok_or_else(|| format!("spec {origin}: must be a JSON object"))?;
    unknown_keys(obj, &TOP_KEYS).map_err(|k| {
        err(
            &k,
            format!("unknown key (expected one of {})", TOP_KEYS.join(", ")),
        )
    })?;

    let item_css = obj.get("item").ok_or_else(|| {
        err(
            "item",
            "missing (a CSS selector for each item element)".into(),
        )
    })?;
    let item = selector(item_css).map_err(|m| err("item", m))?;

    let fields_obj = obj
        .get("fields")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            err(
                "fields",
                "missing or not an object of name -> selector".into(),
            )
        })?;
    if fields_obj.is_empty() {
        return Err(err("fields", "needs at least one field".into()));
    }
    let mut fields = Vec::with_capacity(fields_obj.len());
    for (name, def) in fields_obj {
        let at = format!("fields.{name}");
        if name == "url" {
            return Err(err(
                &at,
                "\"url\" is added to every item by qpipe; rename the field".into(),
            ));
        }
        fields.push(field(name, def).map_err(|(k, m)| err(&format!("{at}{k}"), m))?);
    }

    let follow = match obj.get("follow") {
        None => Vec::new(),
        Some(Value::Array(list)) => {
            // Each is checked alone (so errors name it), then they are joined
            // into one selector list: one pass over the page instead of N.
            for (i, v) in list.iter().enumerate() {
                selector(v).map_err(|m| err(&format!("follow[{i}]"), m))?;
            }
            let css: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            if css.is_empty() {
                Vec::new()
            } else {
                vec![selector(&Value::String(css.join(", "))).map_err(|m| err("follow", m))?]
            }
        }
        Some(_) => return Err(err("follow", "must be a list of CSS selectors".into())),
    };
    let start_urls = strings(obj.get("start_urls"))
        .map_err(|m| err("start_urls", m))?
        .iter()
        .enumerate()
        .map(|(i, s)| match Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
            _ => Err(err(
                &format!("start_urls[{i}]"),
                format!("{s:?} is not an absolute http(s) URL"),
            )),
        })
        .collect::<Result<_, _>>()?;
    let allowed_domains = strings(obj.get("allowed_domains"))
        .map_err(|m| err("allowed_domains", m))?
        .into_iter()
        .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
        .collect();
    let max_depth = match obj.get("max_depth") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| err("max_depth", "must be a whole number, 0 or more".into()))?,
        ),
    };
    Ok(SpecFile {
        spider: Spec {
            item,
            fields,
            follow,
            id_field: None,
        },
        start_urls,
        allowed_domains,
        max_depth,
    })
}

fn unknown_keys(obj: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(k.clone()),
        None => Ok(()),
    }
}

fn selector(v: &Value) -> Result<Selector, String> {
    let css = v.as_str().ok_or("must be a CSS selector string")?;
    Selector::parse(css).map_err(|e| {
        // Some parser errors span lines and ask to be reported; keep one clean line.
        let why: Vec<String> = e
            .to_string()
            .lines()
            .filter(|l| !l.contains("Please report"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        format!(
            "invalid CSS selector {css:?}: {} (check the selector syntax)",
            why.join("; ")
        )
    })
}

fn strings(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or("must be a list of strings".to_string())
            })
            .collect(),
        Some(_) => Err("must be a list of strings".into()),
    }
}

/// One field: `"css"` shorthand, or `{"css", "read", "all"}`. Errors carry a key suffix.
fn field(name: &str, def: &Value) -> Result<Field, (String, String)> {
    let (css, read, all) = match def {
        Value::String(_) => (def, None, false),
        Value::Object(o) => {
            unknown_keys(o, &FIELD_KEYS).map_err(|k| {
                (
                    format!(".{k}"),
                    format!("unknown key (expected one of {})", FIELD_KEYS.join(", ")),
                )
            })?;
            let css = o
                .get("css")
                .ok_or((".css".to_string(), "missing".to_string()))?;
            let all = match o.get("all") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err((".all".into(), "must be true or false".into())),
            };
            (css, o.get("read"), all)
        }
        _ => {
            return Err((
                String::new(),
                "must be a CSS selector or an object with css/read/all".into(),
            ))
        }
    };
    let selector = selector(css).map_err(|m| (".css".to_string(), m))?;
    let read = match read.map(|r| r.as_str().ok_or(r)) {
        None | Some(Ok("text")) => Read::Text,
        Some(Ok("html")) => Read::Html,
        Some(Ok(r)) if r.starts_with("attr:") && r.len() > 5 => Read::Attr(r[5..].to_string()),
        Some(Ok(r)) => {
            return Err((
                ".read".into(),
                format!("{r:?} is not text, html or attr:NAME"),
            ))
        }
        Some(Err(_)) => {
            return Err((
                ".read".into(),
                "must be \"text\", \"html\" or \"attr:NAME\"".into(),
            ))
        }
    };
    Ok(Field {
        name: name.to_string(),
        selector,
        read,
        many: all,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(text: &str) -> String {
        parse(text, "t.json").expect_err("should be rejected")
    }

    #[test]
    fn builtin_spec_parses_to_the_quotes_spider() {
        let s = parse(QUOTES, "built-in").unwrap();
        let names: Vec<&str> = s.spider.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["quote", "author", "tags"]);
        assert!(s.spider.fields[2].many);
        assert_eq!(s.spider.follow.len(), 1, "one joined selector list");
        assert_eq!(s.start_urls[0].as_str(), "https://quotes.toscrape.com/");
    }

    #[test]
    fn shorthand_attr_and_html_fields() {
        let s = parse(
            r#"{"item":"li","fields":{"t":"b","href":{"css":"a","read":"attr:href","all":true},"h":{"css":"i","read":"html"}},"max_depth":2,"allowed_domains":[".Example.com"]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(s.spider.fields[1].read, Read::Attr("href".into()));
        assert_eq!(s.spider.fields[2].read, Read::Html);
        assert_eq!(s.max_depth, Some(2));
        assert_eq!(s.allowed_domains, ["example.com"]);
    }

    #[test]
    fn errors_point_at_the_key() {
        assert!(bad("{").starts_with("spec t.json: invalid JSON: EOF while parsing"));
        assert_eq!(
            bad(r#"{"item":"div","fields":{"a":"b"},"folow":[]}"#),
            "spec t.json: folow: unknown key (expected one of start_urls, allowed_domains, item, fields, follow, max_depth, name)"
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
        assert!(bad(r#"{"fields":{"a":"p"}}"#).starts_with("spec t.json: item: missing"));
        assert!(
            bad(r#"{"item":"div","fields":{"url":"p"}}"#).starts_with("spec t.json: fields.url:")
        );
    }
}
