//! Field post-processing, the same for HTML and JSON fields: `normalize`,
//! `re`, `absolute` on each string, then `join`, then `default`.

use regex::Regex;
use serde_json::Value;
use url::Url;

/// What is done to a field's raw value, in this order.
#[derive(Debug, Clone, Default)]
pub struct Post {
    /// Collapse whitespace runs to one space and trim.
    pub normalize: bool,
    /// Keep the first capture group (else the whole match); no match: null
    /// (an array drops that element).
    pub re: Option<Regex>,
    /// Resolve against the page URL.
    pub absolute: bool,
    /// Join an array into one string with this separator.
    pub join: Option<String>,
    /// The value when the result is null, `""`, `[]` or `{}`.
    pub default: Option<Value>,
}

impl Post {
    /// Applies the steps to `v`, read from the page at `base`.
    pub fn apply(&self, v: Value, base: &Url) -> Value {
        let v = match v {
            Value::String(s) => self.text(s, base).map_or(Value::Null, Value::String),
            Value::Array(a) => Value::Array(
                a.into_iter()
                    .filter_map(|e| match e {
                        Value::String(s) => self.text(s, base).map(Value::String),
                        other => Some(other),
                    })
                    .collect(),
            ),
            other => other,
        };
        let v = match (&self.join, v) {
            (Some(sep), Value::Array(a)) => Value::String(join(a, sep)),
            (_, v) => v,
        };
        match &self.default {
            Some(d) if is_empty(&v) => d.clone(),
            _ => v,
        }
    }

    fn text(&self, s: String, base: &Url) -> Option<String> {
        let s = if self.normalize { normalize(&s) } else { s };
        let s = match &self.re {
            Some(re) => {
                let caps = re.captures(&s)?;
                caps.get(1).or_else(|| caps.get(0))?.as_str().to_string()
            }
            None => s,
        };
        if self.absolute {
            // A value that is no URL at all stays as it was.
            return Some(base.join(s.trim()).map_or(s, |u| u.to_string()));
        }
        Some(s)
    }
}

/// Collapses each run of whitespace to one space, and trims.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Strings as they are, other values as JSON text; nulls are skipped.
fn join(a: Vec<Value>, sep: &str) -> String {
    let parts: Vec<String> = a
        .into_iter()
        .filter(|v| !v.is_null())
        .map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
        .collect();
    parts.join(sep)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Url {
        Url::parse("http://h/a/b").unwrap()
    }

    #[test]
    fn normalize_then_re_takes_group_one_else_the_match() {
        let p = Post {
            normalize: true,
            re: Some(Regex::new(r"Author: (.*)").unwrap()),
            ..Post::default()
        };
        let got = p.apply(json!("“Q”\n   Author:   Jane  Doe  "), &base());
        assert_eq!(got, json!("Jane Doe"));
        assert_eq!(p.apply(json!("no author"), &base()), Value::Null);
        let whole = Post {
            re: Some(Regex::new(r"\d+").unwrap()),
            ..Post::default()
        };
        assert_eq!(whole.apply(json!("page 12 of 40"), &base()), json!("12"));
        // Array elements without a match are dropped.
        let got = whole.apply(json!(["a1", "b", "c22", 5]), &base());
        assert_eq!(got, json!(["1", "22", 5]));
    }

    #[test]
    fn absolute_join_and_default() {
        let abs = Post {
            absolute: true,
            ..Post::default()
        };
        assert_eq!(
            abs.apply(json!("../c?x=1#f"), &base()),
            json!("http://h/c?x=1#f")
        );
        assert_eq!(
            abs.apply(json!(["/x", "https://o/"]), &base()),
            json!(["http://h/x", "https://o/"])
        );
        let joined = Post {
            join: Some(", ".into()),
            default: Some(json!("none")),
            ..Post::default()
        };
        assert_eq!(
            joined.apply(json!(["a", null, 2, "b"]), &base()),
            json!("a, 2, b")
        );
        assert_eq!(joined.apply(json!([]), &base()), json!("none"));
        assert_eq!(joined.apply(Value::Null, &base()), json!("none"));
        assert_eq!(joined.apply(json!(false), &base()), json!(false));
        let default_only = Post {
            default: Some(json!(0)),
            ..Post::default()
        };
        assert_eq!(default_only.apply(json!(""), &base()), json!(0));
        assert_eq!(default_only.apply(json!({}), &base()), json!(0));
        assert_eq!(default_only.apply(json!(" "), &base()), json!(" "));
    }
}
