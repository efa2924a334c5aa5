//! JSON pages: paths into a body (`quotes`, `author.name`, `tags.0`,
//! `tags.*.name`), items from an array, links and the next page from values.
//!
//! serde_json stops at 128 levels of nesting, so a hostile body costs time
//! and memory linear in its size; such a body counts as `bad_json`.

use super::links::Links;
use super::{Field, Get, Next, Rule, Source};
use serde_json::{Map, Value};
use std::borrow::Cow;
use url::Url;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// An object key.
    Key(String),
    /// An array index (or, on an object, the key with these digits).
    Index(usize, String),
    /// `*`: every element of an array (or value of an object), as an array.
    All,
}

/// A dot-separated path into a JSON value; `""` is the value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(Vec<Step>);

impl Path {
    /// The path to the value itself (`""`).
    pub fn whole() -> Path {
        Path(Vec::new())
    }

    /// Parses `a.b.0.*`; an empty step (`a..b`) is an error.
    pub fn parse(text: &str) -> Result<Path, String> {
        if text.is_empty() {
            return Ok(Path::whole());
        }
        let steps = text.split('.').map(|s| match s {
            "" => Err(format!(
                "empty step in path {text:?} (write steps as a.b.0, or \"\" for the whole value)"
            )),
            "*" => Ok(Step::All),
            _ => Ok(match s.parse::<usize>() {
                Ok(i) if s.bytes().all(|b| b.is_ascii_digit()) => Step::Index(i, s.into()),
                _ => Step::Key(s.into()),
            }),
        });
        steps.collect::<Result<_, _>>().map(Path)
    }

    /// The value at this path in `v`, if any. A `*` maps over the elements,
    /// skipping those where the rest of the path finds nothing.
    pub fn get<'a>(&self, v: &'a Value) -> Option<Cow<'a, Value>> {
        walk(&self.0, v)
    }
}

fn walk<'a>(steps: &[Step], v: &'a Value) -> Option<Cow<'a, Value>> {
    let Some((first, rest)) = steps.split_first() else {
        return Some(Cow::Borrowed(v));
    };
    let all = |values: &mut dyn Iterator<Item = &'a Value>| {
        let found = values.filter_map(|e| walk(rest, e)).map(Cow::into_owned);
        Some(Cow::Owned(Value::Array(found.collect())))
    };
    match (first, v) {
        (Step::All, Value::Array(a)) => all(&mut a.iter()),
        (Step::All, Value::Object(o)) => all(&mut o.values()),
        (Step::Key(k) | Step::Index(_, k), Value::Object(o)) => walk(rest, o.get(k)?),
        (Step::Index(i, _), Value::Array(a)) => walk(rest, a.get(*i)?),
        _ => None,
    }
}

/// One piece of a URL template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// The value at the path, plus the offset (numbers only, if not 0).
    Value(Path, i64),
}

/// A URL built from body values: `/api/quotes?page={page+1}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses text with `{path}`, `{path+N}` or `{path-N}` placeholders.
    pub fn parse(text: &str) -> Result<Template, String> {
        let bad = |why: &str| {
            format!("{why} in URL template {text:?} (write {{page+1}} or {{links.next}})")
        };
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(bad("a '}' without '{'"));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| bad("a '{' without '}'"))?
                + open;
            let inner = &rest[open + 1..close];
            let (path, offset) = match inner.rfind(['+', '-']) {
                Some(at)
                    if !inner[at + 1..].is_empty()
                        && inner[at + 1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let n: i64 = inner[at + 1..]
                        .parse()
                        .map_err(|_| bad("too big a number"))?;
                    (
                        &inner[..at],
                        if inner.as_bytes()[at] == b'-' { -n } else { n },
                    )
                }
                _ => (inner, 0),
            };
            if path.is_empty() || path.contains('{') {
                return Err(bad("an empty or nested placeholder"));
            }
            parts.push(Part::Text(rest[..open].into()));
            parts.push(Part::Value(Path::parse(path).map_err(|e| bad(&e))?, offset));
            rest = &rest[close + 1..];
        }
        parts.push(Part::Text(rest.into()));
        Ok(Template(parts))
    }

    /// The URL for body `v`; `None` if a placeholder's value is missing, or
    /// not a number where an offset is added.
    pub fn render(&self, v: &Value) -> Option<String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(path, offset) => {
                    let value = path.get(v)?;
                    let text = match (value.as_ref(), *offset) {
                        (Value::String(s), 0) => s.clone(),
                        (Value::String(s), n) => {
                            s.trim().parse::<i64>().ok()?.checked_add(n)?.to_string()
                        }
                        (Value::Number(x), n) => match x.as_i64() {
                            Some(i) => i.checked_add(n)?.to_string(),
                            None if n == 0 => x.to_string(),
                            None => return None,
                        },
                        (Value::Bool(b), 0) => b.to_string(),
                        _ => return None,
                    };
                    out.push_str(&text);
                }
            }
        }
        Some(out)
    }
}

/// JavaScript's truthiness, roughly: null, false, 0, "" and [] are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(_) => true,
    }
}

/// Reads a JSON body by a JSON rule: items, `follow` paths, `next`.
pub(super) fn read(
    rule: &Rule,
    body: &str,
    links: &mut Links<'_>,
    emit: &mut dyn FnMut(Map<String, Value>),
) {
    let Ok(doc) = serde_json::from_str::<Value>(body) else {
        links.out.bad_json += 1;
        return;
    };
    if let Some(Source::Json(path)) = &rule.source {
        let base = links.base().clone();
        items(path, &doc, &rule.fields, &base, emit);
    }
    if let super::Follow::Json(paths) = &rule.follow {
        for path in paths {
            match path.get(&doc).as_deref() {
                Some(Value::String(s)) => links.add(s),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .for_each(|s| links.add(s)),
                _ => {}
            }
        }
    }
    let next = match &rule.next {
        Some(Next::Path(path)) => path.get(&doc).and_then(|v| v.as_str().map(str::to_string)),
        Some(Next::Template(t, when)) => {
            let go = when
                .as_ref()
                .is_none_or(|w| w.get(&doc).is_some_and(|v| truthy(&v)));
            go.then(|| t.render(&doc)).flatten()
        }
        None => None,
    };
    if let Some(url) = next {
        links.add(&url);
    }
}

/// Emits the items at `path` in `doc`: each element of an array, or the one
/// object there.
pub(super) fn items(
    path: &Path,
    doc: &Value,
    fields: &[Field],
    base: &Url,
    emit: &mut dyn FnMut(Map<String, Value>),
) {
    let Some(found) = path.get(doc) else {
        return;
    };
    let one = |elem: &Value| {
        let mut map = Map::with_capacity(fields.len());
        for f in fields {
            let raw = match &f.get {
                Get::Json(p) => p.get(elem).map_or(Value::Null, Cow::into_owned),
                Get::Css { .. } => Value::Null,
            };
            map.insert(f.name.clone(), f.post.apply(raw, base));
        }
        map
    };
    match found.as_ref() {
        Value::Array(a) => a.iter().for_each(|e| emit(one(e))),
        o @ Value::Object(_) => emit(one(o)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(path: &str, v: &Value) -> Option<Value> {
        Path::parse(path).unwrap().get(v).map(Cow::into_owned)
    }

    #[test]
    fn paths_walk_keys_indexes_and_stars() {
        let v = json!({"a": {"b": [10, {"c": "x"}, {"c": "y"}], "7": "seven"}, "n": null});
        assert_eq!(get("", &v), Some(v.clone()));
        assert_eq!(get("a.b.0", &v), Some(json!(10)));
        assert_eq!(get("a.b.2.c", &v), Some(json!("y")));
        assert_eq!(get("a.7", &v), Some(json!("seven")));
        assert_eq!(get("a.b.*.c", &v), Some(json!(["x", "y"])));
        assert_eq!(get("a.*", &v).map(|a| a.as_array().unwrap().len()), Some(2));
        assert_eq!(get("a.b.9", &v), None);
        assert_eq!(get("n.x", &v), None);
        assert_eq!(get("n", &v), Some(Value::Null));
        assert!(Path::parse("a..b")
            .unwrap_err()
            .starts_with("empty step in path \"a..b\""));
    }

    #[test]
    fn templates_add_offsets_and_fail_on_missing_values() {
        let t = Template::parse("/api/quotes?page={page+1}&tag={tag}").unwrap();
        let v = json!({"page": 2, "tag": "love", "s": "9"});
        assert_eq!(t.render(&v).as_deref(), Some("/api/quotes?page=3&tag=love"));
        assert_eq!(t.render(&json!({"page": 2})), None);
        let s = Template::parse("/p/{s-1}").unwrap();
        assert_eq!(s.render(&v).as_deref(), Some("/p/8"));
        assert_eq!(Template::parse("/p/{tag+1}").unwrap().render(&v), None);
        for bad in ["/p/{page", "/p/}", "/p/{}", "/p/{a..b}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn truthiness_follows_javascript() {
        let t: Vec<bool> = [
            json!(null),
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!(true),
            json!(1),
            json!("n"),
            json!({}),
        ]
        .iter()
        .map(truthy)
        .collect();
        assert_eq!(
            t,
            [false, false, false, false, false, true, true, true, true]
        );
    }

    #[test]
    fn deep_json_is_refused_quickly() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let t0 = std::time::Instant::now();
        assert!(serde_json::from_str::<Value>(&deep).is_err());
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
