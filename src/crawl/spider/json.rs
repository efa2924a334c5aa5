//! JSON pages: paths into a body (`quotes`, `author.name`, `tags.0`,
//! `tags.*.name`), items from an array, links and the next page (a path, or
//! a `template`) from values.
//!
//! Values are re-encoded through `serde_json::Value`: integers past 64 bits
//! become floats and `1e2` becomes `100.0` (strings and bools are exact).
//! serde_json stops at 128 levels of nesting, and a body of more than
//! `MAX_VALUES` values is not parsed at all (a `Value` costs tens of bytes,
//! so `[[],[],...]` would take 25 times its size): a hostile body costs
//! bounded time and memory, and counts as `bad_json`.

use super::page_links::PageLinks;
use super::{Field, Get, ItemSource, Next, Rule};
use serde_json::{Map, Value};
use std::borrow::Cow;
use url::Url;

/// The most values a JSON body (or script capture) may hold to be parsed,
/// counted as its commas and opening brackets (at most twice the values):
/// far above a real API page, and at most ~40 MB of `Value`s.
pub const MAX_VALUES: usize = 500_000;

/// Parses `text` if it holds at most `MAX_VALUES` values: a linear scan
/// counts the separators outside strings first, so the cap costs no memory.
pub fn parse_bounded(text: &str) -> Option<Value> {
    let (mut values, mut in_string, mut escaped) = (1usize, false, false);
    for &b in text.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' | b',' => values += 1,
            _ => {}
        }
        if values > MAX_VALUES {
            return None;
        }
    }
    serde_json::from_str(text).ok()
}

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
    links: &mut PageLinks<'_>,
    emit: &mut dyn FnMut(Map<String, Value>),
) {
    let Some(doc) = parse_bounded(body) else {
        links.out.bad_json += 1;
        return;
    };
    if let Some(ItemSource::Json(path)) = &rule.source {
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
        // Too many values: refused before parsing; strings do not count.
        let wide = format!("[{}]", vec!["[]"; MAX_VALUES].join(","));
        assert_eq!(parse_bounded(&wide), None);
        // Each `[]` counts with its comma: the count is at most twice the values.
        let ok = format!("[{}]", vec!["[]"; MAX_VALUES / 2 - 1].join(","));
        assert!(parse_bounded(&ok).is_some());
        let strings = format!("[\"{}\", \"\\\",[\"]", ",[{".repeat(MAX_VALUES));
        assert_eq!(parse_bounded(&strings).unwrap()[1], "\",[");
    }
}
