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

use crate::crawl::session::{headers::SpecHeaders, login::Login};
use crate::crawl::spider::{Field, Read, Spec};
use scraper::Selector;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
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
    /// Headers sent with every request (`--header` wins for the same name).
    pub headers: Vec<(String, String)>,
    /// A form to log in with before crawling.
    pub login: Option<Login>,
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

/// A spec file as written. serde checks the shape (unknown keys included);
/// `parse` adds the rules that span keys.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    start_urls: Vec<StartUrl>,
    #[serde(default)]
    allowed_domains: Vec<String>,
    item: Option<Css>,
    fields: Option<Fields>,
    #[serde(default)]
    follow: Vec<Css>,
    #[serde(default)]
    max_depth: Option<u32>,
    #[serde(default)]
    #[allow(dead_code)] // Accepted for the user's own bookkeeping; unused.
    name: Option<String>,
    #[serde(default)]
    headers: SpecHeaders,
    #[serde(default)]
    login: Option<Login>,
}

/// A CSS selector, compiled while the spec is read.
struct Css {
    text: String,
    selector: Selector,
}

impl<'de> Deserialize<'de> for Css {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Css, D::Error> {
        let text = String::deserialize(d)?;
        let selector = compile(&text).map_err(de::Error::custom)?;
        Ok(Css { text, selector })
    }
}

/// An absolute http(s) start URL.
struct StartUrl(Url);

impl<'de> Deserialize<'de> for StartUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StartUrl, D::Error> {
        let s = String::deserialize(d)?;
        match Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(StartUrl(u))
            }
            _ => Err(de::Error::custom(format!(
                "{s:?} is not an absolute http(s) URL"
            ))),
        }
    }
}

/// `"read"`: `text`, `html` or `attr:NAME`.
struct ReadAs(Read);

impl<'de> Deserialize<'de> for ReadAs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReadAs, D::Error> {
        let r = String::deserialize(d)?;
        match r.as_str() {
            "text" => Ok(ReadAs(Read::Text)),
            "html" => Ok(ReadAs(Read::Html)),
            _ if r.starts_with("attr:") && r.len() > 5 => Ok(ReadAs(Read::Attr(r[5..].into()))),
            _ => Err(de::Error::custom(format!(
                "{r:?} is not text, html or attr:NAME"
            ))),
        }
    }
}

/// A field written out in full.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullField {
    css: Css,
    read: Option<ReadAs>,
    #[serde(default)]
    all: bool,
}

/// A field: a CSS selector (shorthand for its text), or a `FullField`.
struct FieldDef(FullField);

impl<'de> Deserialize<'de> for FieldDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CSS selector or an object with css/read/all")
            }
            fn visit_str<E: de::Error>(self, css: &str) -> Result<FieldDef, E> {
                let selector = compile(css).map_err(E::custom)?;
                Ok(FieldDef(FullField {
                    css: Css {
                        text: css.into(),
                        selector,
                    },
                    read: None,
                    all: false,
                }))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FieldDef, A::Error> {
                FullField::deserialize(de::value::MapAccessDeserializer::new(map)).map(FieldDef)
            }
        }
        d.deserialize_any(V)
    }
}

/// `fields`, in the order written.
struct Fields(Vec<(String, FieldDef)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of name -> selector")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some((name, def)) = map.next_entry::<String, FieldDef>()? {
                    out.push((name, def));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

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
    let item = raw
        .item
        .ok_or_else(|| err("item", "missing (a CSS selector for each item element)"))?;
    let defs = raw
        .fields
        .ok_or_else(|| err("fields", "missing or not an object of name -> selector"))?;
    if defs.0.is_empty() {
        return Err(err("fields", "needs at least one field"));
    }
    let mut fields = Vec::with_capacity(defs.0.len());
    for (name, FieldDef(f)) in defs.0 {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(err(
                &format!("fields.{name:?}"),
                "a field name must be non-empty and printable",
            ));
        }
        if fields.iter().any(|f: &Field| f.name == name) {
            return Err(err(
                &format!("fields.{name}"),
                "defined twice (each field name once)",
            ));
        }
        if name == "url" {
            return Err(err(
                "fields.url",
                "\"url\" is added to every item by qpipe; rename the field",
            ));
        }
        fields.push(Field {
            name,
            selector: f.css.selector,
            read: f.read.map_or(Read::Text, |r| r.0),
            many: f.all,
        });
    }
    // Each follow selector was checked alone (so errors name it); they are
    // joined into one selector list: one pass over the page instead of N.
    let follow = match raw.follow.as_slice() {
        [] => Vec::new(),
        list => {
            let joined: Vec<&str> = list.iter().map(|c| c.text.as_str()).collect();
            vec![compile(&joined.join(", ")).map_err(|m| err("follow", &m))?]
        }
    };
    Ok(SpecFile {
        spider: Spec {
            item: item.selector,
            fields,
            follow,
            id_field: None,
        },
        start_urls: raw.start_urls.into_iter().map(|u| u.0).collect(),
        allowed_domains: raw
            .allowed_domains
            .into_iter()
            .map(|d| d.trim_start_matches('.').to_ascii_lowercase())
            .collect(),
        max_depth: raw.max_depth,
        headers: raw.headers.0,
        login: raw.login,
    })
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
    let hint = match path {
        "max_depth" => " (a whole number, 0 or more)",
        "follow" | "start_urls" | "allowed_domains" => " (a list of strings)",
        _ => "",
    };
    (path.to_string(), format!("{text}{hint}"))
}

/// Compiles a CSS selector; the error is one clean line.
fn compile(css: &str) -> Result<Selector, String> {
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
            "spec t.json: folow: unknown key (expected one of start_urls, allowed_domains, item, fields, follow, max_depth, name, headers, login)"
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
