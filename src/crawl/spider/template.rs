//! URL templates for the next page of a JSON API: `/api/quotes?page={page+1}`
//! fills each `{path}` (plus or minus a number) with a value from the body.

use super::Path;
use serde_json::Value;
use std::fmt::Write as _;

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
                    encode_into(&mut out, &text);
                }
            }
        }
        Some(out)
    }
}

/// Appends `value` percent-encoded but for RFC 3986's unreserved characters,
/// so a value can neither end the query (`#`), add parameters (`&`), nor
/// be read as a space (`+` in a cursor).
fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_add_offsets_and_fail_on_missing_values() {
        let t = Template::parse("/api/quotes?page={page+1}&tag={tag}").unwrap();
        let v = json!({"page": 2, "tag": "love", "s": "9"});
        assert_eq!(t.render(&v).as_deref(), Some("/api/quotes?page=3&tag=love"));
        assert_eq!(t.render(&json!({"page": 2})), None);
        let s = Template::parse("/p/{s-1}").unwrap();
        assert_eq!(s.render(&v).as_deref(), Some("/p/8"));
        assert_eq!(Template::parse("/p/{tag+1}").unwrap().render(&v), None);
        let c = Template::parse("/n?x={s}&p={page}").unwrap();
        let v = json!({"s": "x y#z?a=b&c+d/é", "page": -1});
        assert_eq!(
            c.render(&v).as_deref(),
            Some("/n?x=x%20y%23z%3Fa%3Db%26c%2Bd%2F%C3%A9&p=-1")
        );
        for bad in ["/p/{page", "/p/}", "/p/{}", "/p/{a..b}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
