//! Reading a spec's text into its shape (`raw::Raw`): one JSON object with
//! nothing after it, and serde's shape errors put in qpipe's words, naming
//! the key (`rules[0].fields.tags.css: ...`).

use super::raw::Raw;
use serde::de;

/// `text` as a `Raw` spec, or an error that names `origin` and the key.
pub(super) fn deserialize(text: &str, origin: &str) -> Result<Raw, String> {
    let err = |key: &str, msg: &str| format!("spec {origin}: {key}: {msg}");
    // serde would read a JSON array as the struct's fields in order.
    if !text.trim_start().starts_with('{') && serde_json::from_str::<de::IgnoredAny>(text).is_ok() {
        return Err(format!("spec {origin}: must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de)
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
