//! The spec file as written: serde checks its shape (unknown keys included)
//! and compiles what is always the same kind of thing (a CSS `item`, a regex,
//! a JSON path), so those errors carry serde's key path.

use crate::crawl::origin::HttpUrl;
use crate::crawl::session::{headers::SpecHeaders, login::Login};
use crate::crawl::spider::css::compile;
use crate::crawl::spider::{Path, Read, Template};
use regex::Regex;
use scraper::Selector;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// The top level: spec-wide keys, and the keys of its own rule ("default").
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[serde(default)]
    pub start_urls: Vec<HttpUrl>,
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    pub item: Option<Css>,
    pub fields: Option<Fields>,
    #[serde(default)]
    pub follow: Vec<String>,
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub matches: Option<Re>,
    pub json: Option<JsonPath>,
    pub script: Option<Re>,
    pub next: Option<RawNext>,
    #[serde(default)]
    pub allow: Vec<Re>,
    #[serde(default)]
    pub deny: Vec<Re>,
    pub rules: Option<Vec<RawRule>>,
    pub rule_field: Option<String>,
    /// The fields that make two items the same (`url` allowed).
    pub unique: Option<Vec<String>>,
    /// Fields an item must have (not null, "" or []) to be pushed.
    pub required: Option<Vec<String>>,
    #[serde(default)]
    pub sitemap_urls: Vec<HttpUrl>,
    #[serde(default)]
    pub sitemap_follow: Vec<Re>,
    #[serde(default)]
    pub headers: SpecHeaders,
    #[serde(default)]
    pub login: Option<Login>,
}

/// One entry of `rules`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Option<Re>,
    pub item: Option<Css>,
    pub json: Option<JsonPath>,
    pub script: Option<Re>,
    pub fields: Option<Fields>,
    #[serde(default)]
    pub follow: Vec<String>,
    pub next: Option<RawNext>,
    #[serde(default)]
    pub allow: Vec<Re>,
    #[serde(default)]
    pub deny: Vec<Re>,
    pub submit: Option<RawSubmit>,
}

/// `submit` of a rule: a form to send from its pages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubmit {
    /// The form (default `form`).
    pub form: Option<Css>,
    /// A select whose options each make one submission.
    pub each: Option<String>,
    /// Fields to set.
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// The rule that reads the answers.
    pub rule: Option<String>,
}

/// The keys a rule has, at the top level or in `rules`.
pub(super) struct RuleKeys {
    pub matches: Option<Re>,
    pub item: Option<Css>,
    pub json: Option<JsonPath>,
    pub script: Option<Re>,
    pub fields: Option<Fields>,
    pub follow: Vec<String>,
    pub next: Option<RawNext>,
    pub allow: Vec<Re>,
    pub deny: Vec<Re>,
    pub submit: Option<RawSubmit>,
}

impl RawRule {
    /// Its name and its rule keys.
    pub fn split(self) -> (String, RuleKeys) {
        let keys = RuleKeys {
            matches: self.matches,
            item: self.item,
            json: self.json,
            script: self.script,
            fields: self.fields,
            follow: self.follow,
            next: self.next,
            allow: self.allow,
            deny: self.deny,
            submit: self.submit,
        };
        (self.name, keys)
    }
}

/// `next` of a JSON rule.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNext {
    pub path: Option<JsonPath>,
    pub url: Option<TemplateDef>,
    #[serde(rename = "if")]
    pub when: Option<JsonPath>,
}

/// A CSS selector, compiled while the spec is read.
pub(super) struct Css(pub Selector);

impl<'de> Deserialize<'de> for Css {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Css, D::Error> {
        let text = String::deserialize(d)?;
        compile(&text).map(Css).map_err(de::Error::custom)
    }
}

/// A regex (the `regex` crate's syntax: linear time, no look-around).
pub(super) struct Re(pub Regex);

impl<'de> Deserialize<'de> for Re {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Re, D::Error> {
        let text = String::deserialize(d)?;
        Regex::new(&text).map(Re).map_err(|e| {
            // Syntax errors draw a caret over several lines; keep the last.
            let msg = e.to_string();
            let why = msg.lines().rev().map(str::trim).find(|l| !l.is_empty());
            let why = why.unwrap_or("").trim_start_matches("error: ");
            de::Error::custom(format!(
                "invalid regex {text:?}: {why} (check the syntax; look-around and backreferences are not supported)"
            ))
        })
    }
}

/// A JSON path (`quotes`, `author.name`, `tags.*`).
pub(super) struct JsonPath(pub Path);

impl<'de> Deserialize<'de> for JsonPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonPath, D::Error> {
        let text = String::deserialize(d)?;
        Path::parse(&text).map(JsonPath).map_err(de::Error::custom)
    }
}

/// A URL template (`/api/quotes?page={page+1}`).
pub(super) struct TemplateDef(pub Template);

impl<'de> Deserialize<'de> for TemplateDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TemplateDef, D::Error> {
        let text = String::deserialize(d)?;
        Template::parse(&text)
            .map(TemplateDef)
            .map_err(de::Error::custom)
    }
}

/// `"read"`: `text`, `html` or `attr:NAME`.
pub(super) struct ReadAs(pub Read);

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

/// A field written out in full. Which keys fit depends on the rule (CSS
/// for HTML items, a path for JSON), so that is checked afterwards.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FullField {
    pub css: Option<Css>,
    pub path: Option<JsonPath>,
    pub read: Option<ReadAs>,
    pub all: Option<bool>,
    pub sibling: Option<usize>,
    pub re: Option<Re>,
    #[serde(default)]
    pub normalize: bool,
    pub join: Option<String>,
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub absolute: bool,
}

/// A field: a string (a CSS selector or a JSON path, by the rule), or a `FullField`.
pub(super) enum FieldDef {
    Short(String),
    Full(Box<FullField>),
}

impl<'de> Deserialize<'de> for FieldDef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldDef, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FieldDef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a CSS selector, a JSON path, or an object with css/path/read/all/...")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<FieldDef, E> {
                Ok(FieldDef::Short(s.into()))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<FieldDef, A::Error> {
                FullField::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|f| FieldDef::Full(Box::new(f)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `fields`, in the order written.
pub(super) struct Fields(pub Vec<(String, FieldDef)>);

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
