//! Request headers: the spec's `headers` object and `--header 'Name: value'`,
//! checked once and merged (the command line wins). A value may carry a
//! token, so no message or `Debug` output ever shows one.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Headers that qpipe or the HTTP client set themselves.
const RESERVED: &[(&str, &str)] = &[
    ("host", "qpipe sends the URL's host"),
    ("content-length", "the HTTP client sets it"),
    ("transfer-encoding", "the HTTP client sets it"),
    ("connection", "the HTTP client manages connections"),
];

/// The headers sent with every request, in order, and a `Cookie` header given
/// by the user, which goes into the cookie jar instead (see `Session::new`).
#[derive(Clone, Default)]
pub struct Headers {
    /// `(name, value)` pairs, one per name (case-insensitively).
    pub list: Vec<(String, String)>,
    /// The value of a `Cookie` header, if one was given.
    pub cookie: Option<String>,
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Headers")
            .field("names", &names)
            .field("cookie", &self.cookie.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Headers {
    /// Merges the spec's headers with `--header` ones (same name: the command
    /// line wins) and takes any `Cookie` header out of the list.
    pub fn merge(spec: &[(String, String)], cli: &[(String, String)]) -> Headers {
        let mut list: Vec<(String, String)> = spec.to_vec();
        for (name, value) in cli {
            match list.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(slot) => *slot = (name.clone(), value.clone()),
                None => list.push((name.clone(), value.clone())),
            }
        }
        let cookie = take(&mut list, "cookie");
        Headers { list, cookie }
    }

    /// Removes the header `name` (any case) and returns its value.
    pub fn take(&mut self, name: &str) -> Option<String> {
        take(&mut self.list, name)
    }
}

fn take(list: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let at = list
        .iter()
        .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
    Some(list.remove(at).1)
}

/// The `name=value` parts of a `Cookie` header.
pub fn cookie_pairs(value: &str) -> impl Iterator<Item = &str> {
    value.split(';').map(str::trim).filter(|p| !p.is_empty())
}

/// Checks a `Cookie` header: `name=value` pairs joined by `; `.
pub fn check_cookie(value: &str) -> Result<(), String> {
    let ok =
        cookie_pairs(value).all(|p| p.split_once('=').is_some_and(|(n, _)| !n.trim().is_empty()));
    if !ok || cookie_pairs(value).next().is_none() {
        return Err(
            "Cookie must be name=value pairs joined by '; ' (e.g. Cookie: session=abc; lang=en)"
                .into(),
        );
    }
    Ok(())
}

/// Checks a header name; the error says why, and shows the name only up to
/// its first invalid character (see `name_problem`).
pub fn check_name(name: &str) -> Result<(), String> {
    if let Some(why) = name_problem(name) {
        return Err(format!("{why} (use letters, digits and -, e.g. X-Api-Key)"));
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, why)) = RESERVED.iter().find(|(n, _)| *n == lower) {
        return Err(format!("{name} cannot be set ({why}); remove it"));
    }
    Ok(())
}

/// What makes `name` invalid, if anything. Nothing after its first invalid
/// character is shown: a malformed `--header 'Authorization=Bearer TOKEN'`
/// has a token there.
fn name_problem(name: &str) -> Option<String> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() {
        return Some("the header name is empty".into());
    }
    let (at, bad) = name.char_indices().find(|(_, c)| !tchar(*c))?;
    Some(match &name[..at] {
        "" => format!("a header name cannot start with {bad:?}"),
        valid => format!("a header name cannot hold {bad:?} (found after {valid:?})"),
    })
}

/// Checks a header value without ever showing it.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n']) {
        return Err("the value has a line break (give it on one line)".into());
    }
    if value
        .chars()
        .any(|c| (c.is_control() && c != '\t') || !c.is_ascii())
    {
        return Err(
            "the value has a control or non-ASCII character (use printable ASCII; percent-encode the rest)"
                .into(),
        );
    }
    Ok(())
}

/// Parses one `--header 'Name: value'`; surrounding blanks of the value are dropped.
pub fn parse_flag(arg: &str) -> Result<(String, String), String> {
    let bad = |why: String| format!("invalid --header: {why}");
    let Some((name, value)) = arg.split_once(':') else {
        // No colon: the whole argument may be a secret value, so it is not shown.
        return Err(bad(
            "no colon (write it as 'Name: value', e.g. --header 'Accept-Language: en')".into(),
        ));
    };
    if let Some(why) = name_problem(name) {
        return Err(bad(format!(
            "{why}; write it as 'Name: value', e.g. --header 'X-Api-Key: abc'"
        )));
    }
    check_name(name).map_err(bad)?;
    let value = value.trim_matches([' ', '\t']);
    check_value(value).map_err(|why| bad(format!("{name}: {why}")))?;
    if name.eq_ignore_ascii_case("cookie") {
        check_cookie(value).map_err(bad)?;
    }
    Ok((name.to_string(), value.to_string()))
}

/// The spec's `headers`: an object of name -> value, checked as it is read so
/// that errors name the key (`headers.X-Token: ...`).
#[derive(Default)]
pub struct SpecHeaders(pub Vec<(String, String)>);

/// A header value from the spec; its check names the header.
struct Value(String);

impl<'de> Deserialize<'de> for SpecHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SpecHeaders, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SpecHeaders;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header name -> value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecHeaders, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    check_name(&name).map_err(de::Error::custom)?;
                    if out.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                        return Err(de::Error::custom(format!(
                            "{name} is given twice (give each header once)"
                        )));
                    }
                    let Value(value) = map.next_value()?;
                    if name.eq_ignore_ascii_case("cookie") {
                        check_cookie(&value).map_err(de::Error::custom)?;
                    }
                    out.push((name, value));
                }
                Ok(SpecHeaders(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        // serde's own message would quote a wrongly typed value: it may be a token.
        let value = String::deserialize(d)
            .map_err(|_| de::Error::custom("a header value must be a string (e.g. \"en\")"))?;
        check_value(&value).map_err(de::Error::custom)?;
        Ok(Value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: &str, v: &str) -> (String, String) {
        (n.into(), v.into())
    }

    #[test]
    fn flags_parse_as_name_colon_value() {
        assert_eq!(
            parse_flag("X-Api-Key:  s3cret \t").unwrap(),
            pair("X-Api-Key", "s3cret")
        );
        assert_eq!(parse_flag("X-Empty:").unwrap(), pair("X-Empty", ""));
        assert_eq!(
            parse_flag("Authorization: Bearer a:b").unwrap(),
            pair("Authorization", "Bearer a:b")
        );
    }

    #[test]
    fn bad_flags_are_explained_without_the_value() {
        let e = parse_flag("Authorization Bearer s3cret").unwrap_err();
        assert!(e.starts_with("invalid --header: no colon"), "{e}");
        assert!(!e.contains("s3cret"));
        let e = parse_flag("X Token: s3cret").unwrap_err();
        assert_eq!(e, "invalid --header: a header name cannot hold ' ' (found after \"X\"); write it as 'Name: value', e.g. --header 'X-Api-Key: abc'");
        // Whatever follows the first bad character may be a token: not shown.
        let e = parse_flag("Authorization=Bearer TOK:x").unwrap_err();
        assert_eq!(e, "invalid --header: a header name cannot hold '=' (found after \"Authorization\"); write it as 'Name: value', e.g. --header 'X-Api-Key: abc'");
        let e = parse_flag("Authorization\u{e9}Bearer TOK:x").unwrap_err();
        assert!(
            e.contains("cannot hold '\u{e9}' (found after \"Authorization\")")
                && !e.contains("TOK"),
            "{e}"
        );
        let e = parse_flag("=TOK: x").unwrap_err();
        assert!(
            e.contains("a header name cannot start with '='") && !e.contains("TOK"),
            "{e}"
        );
        let e = parse_flag(": x").unwrap_err();
        assert!(e.contains("the header name is empty"), "{e}");
        let e = parse_flag("X-Token: s3\u{7}cret").unwrap_err();
        assert_eq!(e, "invalid --header: X-Token: the value has a control or non-ASCII character (use printable ASCII; percent-encode the rest)");
        let e = parse_flag("X-Token: s3cr\u{e9}t").unwrap_err();
        assert!(!e.contains("s3cr"), "{e}");
        let e = parse_flag("Host: example.com").unwrap_err();
        assert!(e.contains("Host cannot be set"), "{e}");
        assert!(parse_flag(": v").is_err());
        assert!(check_value("a\r\nInjected: 1")
            .unwrap_err()
            .contains("line break"));
    }

    #[test]
    fn the_command_line_wins_and_cookie_goes_to_the_jar() {
        let spec = [pair("Accept-Language", "en"), pair("X-A", "spec")];
        let cli = [
            pair("x-a", "cli"),
            pair("X-B", "new"),
            pair("Cookie", "s=1"),
        ];
        let h = Headers::merge(&spec, &cli);
        assert_eq!(
            h.list,
            [
                pair("Accept-Language", "en"),
                pair("x-a", "cli"),
                pair("X-B", "new")
            ]
        );
        assert_eq!(h.cookie.as_deref(), Some("s=1"));
        let shown = format!("{h:?}");
        assert!(!shown.contains("cli") && !shown.contains("s=1"), "{shown}");
    }

    fn spec(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, SpecHeaders>(&mut de)
            .map(|h| h.0)
            .map_err(|e| format!("{}: {}", e.path().clone(), e.into_inner()))
    }

    #[test]
    fn spec_headers_are_checked_by_key() {
        assert_eq!(
            spec(r#"{"Accept-Language":"en","X-N":""}"#).unwrap(),
            [pair("Accept-Language", "en"), pair("X-N", "")]
        );
        let e = spec(r#"{"X-Token":"a\nb"}"#).unwrap_err();
        assert!(e.starts_with("X-Token: the value has a line break"), "{e}");
        assert!(spec(r#"{"X-Token":5}"#)
            .unwrap_err()
            .starts_with("X-Token: a header value must be a string"));
        let e = spec(r#"{"Bad Name":"v"}"#).unwrap_err();
        assert!(
            e.contains(": a header name cannot hold ' ' (found after \"Bad\") (use letters, digits and -, e.g. X-Api-Key)"),
            "{e}"
        );
        assert!(spec(r#"{"X-A":"1","x-a":"2"}"#)
            .unwrap_err()
            .contains("given twice"));
        assert!(spec(r#"["X-A"]"#).is_err());
    }
}
