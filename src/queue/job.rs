//! Crawl jobs (`produce --jobs`, `enqueue`): what one is and how it is read.
//! Pure: no Redis here (that is `jobs`).
//!
//! A job is a list element holding either a bare absolute http(s) URL, or a
//! JSON object `{"url": "...", "meta": {...}}` as scrapy-redis has it. The
//! `meta` object is copied into every item of the job, so it is kept as the
//! bytes it came in (numbers and key order untouched), minus the whitespace
//! between tokens, which would only make every item longer.

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

/// The most bytes a job's `meta` may take: it is copied into every item.
pub const MAX_META: usize = 64 * 1024;
/// The deepest nesting of `meta` (an item nests one level deeper, and items
/// deeper than 128 levels are dead letters on the consume side).
pub const MAX_META_DEPTH: usize = 64;

/// One crawl job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Where the job's crawl starts.
    pub url: Url,
    /// The `meta` object's JSON text without insignificant whitespace.
    pub meta: Option<String>,
}

/// The JSON form; anything else in the object is refused, so a misspelt
/// `"mate"` is not silently dropped.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form<'a> {
    url: String,
    #[serde(borrow)]
    meta: Option<&'a RawValue>,
}

/// Reads one job; the error says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<Job, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Err("empty".into());
    }
    if !text.starts_with('{') {
        return Ok(Job {
            url: url(text)?,
            meta: None,
        });
    }
    let form: Form = serde_json::from_str(text).map_err(|e| format!("invalid job JSON: {e}"))?;
    let meta = match form.meta {
        None => None,
        Some(raw) if raw.get().starts_with('{') => Some(compact(raw.get())?),
        Some(_) => return Err("\"meta\" is not a JSON object".into()),
    };
    Ok(Job {
        url: url(&form.url)?,
        meta,
    })
}

/// An absolute http(s) URL with a host and no credentials. A user name or
/// password would be printed in logs and copied into every item's `url`,
/// so such a job is refused, and no message repeats it.
fn url(s: &str) -> Result<Url, String> {
    let u = Url::parse(s).map_err(|e| format!("{} is not a URL: {e}", shown(s)))?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "the job URL holds a user name or password, which would be logged and copied into every item (give the URL without them)".into(),
        );
    }
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("{} is not an http(s) URL with a host", shown(s)));
    }
    Ok(u)
}

/// How a message quotes job text: never with credentials. A URL keeps all
/// but its user name and password; text that is no URL but holds an `@`
/// (which may be `user:password@`) is not quoted at all.
pub fn shown(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            // Only URLs that cannot have a user name fail these, and those
            // have none to remove.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            format!("{:?}", u.as_str())
        }
        _ if s.contains('@') => "the job text (not shown: it may hold a password)".into(),
        _ => format!("{s:?}"),
    }
}

/// Valid JSON text with the whitespace between tokens removed (strings are
/// kept byte for byte), refused when too large or too deep for an item.
fn compact(json: &str) -> Result<String, String> {
    let mut out = String::with_capacity(json.len());
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for c in json.chars() {
        match (in_string, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_string = false,
            (true, _) => {}
            (false, '"') => in_string = true,
            (false, ' ' | '\t' | '\n' | '\r') => continue,
            (false, '[' | '{') => {
                depth += 1;
                if depth > MAX_META_DEPTH {
                    return Err(format!(
                        "\"meta\" is nested deeper than {MAX_META_DEPTH} levels"
                    ));
                }
            }
            (false, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        out.push(c);
    }
    if out.len() > MAX_META {
        return Err(format!(
            "\"meta\" takes {} bytes, more than {MAX_META} (it is copied into every item)",
            out.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(s: &str) -> Result<Job, String> {
        parse(s.as_bytes())
    }

    #[test]
    fn a_bare_url_is_a_job_without_meta() {
        let j = job("  https://example.com/a?b=1 \n").unwrap();
        assert_eq!(j.url.as_str(), "https://example.com/a?b=1");
        assert_eq!(j.meta, None);
    }

    #[test]
    fn meta_keeps_its_bytes_but_not_its_whitespace() {
        let j = job(
            r#"{"url": "http://x/", "meta": {"n": 12345678901234567890123456789, "e": 1e2,
               "s": "a  \" b", "z": [1, {"k": null}]}}"#,
        )
        .unwrap();
        assert_eq!(
            j.meta.as_deref(),
            Some(r#"{"n":12345678901234567890123456789,"e":1e2,"s":"a  \" b","z":[1,{"k":null}]}"#)
        );
        assert_eq!(job(r#"{"url":"http://x/"}"#).unwrap().meta, None);
    }

    #[test]
    fn bad_jobs_say_what_is_wrong() {
        let err = |s: &str| job(s).unwrap_err();
        assert!(
            err("ftp://x/").contains("not an http(s) URL"),
            "{}",
            err("ftp://x/")
        );
        assert!(err("/relative").contains("not a URL"));
        assert!(err(r#"{"url": 5}"#).contains("invalid job JSON"));
        assert!(err(r#"{"meta": {}}"#).contains("missing field `url`"));
        assert!(err(r#"{"url": "http://x/", "meta": [1]}"#).contains("not a JSON object"));
        assert!(err(r#"{"url": "http://x/", "mata": {}}"#).contains("unknown field `mata`"));
        assert!(err(r#"{"url": "http://x/", "meta": {"a": 1}"#).contains("invalid job JSON"));
        assert_eq!(err("   "), "empty");
        assert_eq!(parse(b"\xff").unwrap_err(), "not valid UTF-8");
        let deep = format!(
            r#"{{"url":"http://x/","meta":{}{}}}"#,
            "{\"a\":".repeat(70),
            "1".to_string() + &"}".repeat(70)
        );
        assert!(err(&deep).contains("deeper than 64"), "{}", err(&deep));
        let big = format!(
            r#"{{"url":"http://x/","meta":{{"a":"{}"}}}}"#,
            "x".repeat(MAX_META)
        );
        assert!(err(&big).contains("more than 65536"));
    }

    #[test]
    fn credentials_are_refused_and_never_repeated() {
        for bad in [
            "http://user:s3cretPW@example.com/a",
            "https://user@example.com/",
            "http://:s3cretPW@example.com/",
            r#"{"url": "http://user:s3cretPW@example.com/"}"#,
            "http://u:s3cretPW@[bad",
            "ftp://u:s3cretPW@example.com/",
        ] {
            let why = job(bad).unwrap_err();
            assert!(!why.contains("s3cretPW") && !why.contains("user@"), "{why}");
        }
        assert!(job("http://user:s3cretPW@example.com/")
            .unwrap_err()
            .contains("user name or password"));
        assert_eq!(shown("ftp://u:pw@x/a"), r#""ftp://x/a""#);
        assert_eq!(shown("/relative"), r#""/relative""#);
        assert!(!shown("http://u:pw@[bad").contains("pw"));
    }
}
