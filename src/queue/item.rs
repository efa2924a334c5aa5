//! Items: the JSON object pushed for each scraped record, and its dedup fingerprint.

/// One encoded record on its way to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The exact bytes pushed: one JSON object, no trailing newline.
    pub json: Vec<u8>,
    /// Hash of every field except `url`; `None` means "never deduplicate".
    pub fingerprint: Option<u128>,
}

impl Item {
    /// Wraps raw bytes (e.g. a JSON Lines record) that are pushed as they are.
    pub fn raw(json: Vec<u8>) -> Item {
        Item {
            json,
            fingerprint: None,
        }
    }
}

/// Encodes `fields` in order, then `"url"`, as one JSON object with a fingerprint.
///
/// The fingerprint covers the fields but not the URL, so the same record seen
/// on two pages is one item; the first page it was seen on wins. With
/// `id_field`, it covers that field alone (`url` allowed); an item without
/// that field falls back to all fields. `rule` is a `(key, rule name)` pair
/// written after `"url"`, which the fingerprint covers like a last field
/// (two rules never share items). (Tests' shorthand for `encode_with_meta`.)
#[cfg(test)]
pub fn encode(
    fields: serde_json::Map<String, serde_json::Value>,
    url: &str,
    id_field: Option<&str>,
    rule: Option<(&str, &str)>,
) -> Item {
    encode_with_meta(fields, url, id_field, rule, None)
}

/// Like `encode`, with a crawl job's `meta` object (compact JSON text, kept
/// byte for byte) written as the field `"meta"` right after `"url"`, before
/// the rule pair. The fingerprint covers it like a field, so the same record
/// from two jobs with different meta is two items.
pub fn encode_with_meta(
    fields: serde_json::Map<String, serde_json::Value>,
    url: &str,
    id_field: Option<&str>,
    rule: Option<(&str, &str)>,
    meta: Option<&str>,
) -> Item {
    let id = match id_field {
        Some("url") => Some(serde_json::Value::String(url.to_string()).to_string()),
        Some(name) => fields
            .get(name)
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
        None => None,
    };
    let body = serde_json::Value::Object(fields).to_string();
    // `"key":"name"`, the rule's pair.
    let rule = rule.map(|(k, v)| {
        let json = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        format!("{}:{}", json(k), json(v))
    });
    // What follows `"url"`: the meta field, then the rule pair.
    let pair = match (meta.map(|m| format!("\"meta\":{m}")), rule) {
        (Some(m), Some(r)) => Some(format!("{m},{r}")),
        (m, r) => m.or(r),
    };
    let open = &body[..body.len() - 1];
    let comma = if body.len() > 2 { "," } else { "" };
    let fingerprint = match (&id, &pair) {
        (Some(id), _) => fingerprint(id.as_bytes()),
        (None, Some(pair)) => fingerprint(format!("{open}{comma}{pair}}}").as_bytes()),
        (None, None) => fingerprint(body.as_bytes()),
    };
    let url = serde_json::Value::String(url.to_string()).to_string();
    let mut json = Vec::with_capacity(body.len() + url.len() + 8);
    json.extend_from_slice(open.as_bytes());
    json.extend_from_slice(comma.as_bytes());
    json.extend_from_slice(b"\"url\":");
    json.extend_from_slice(url.as_bytes());
    if let Some(pair) = pair {
        json.push(b',');
        json.extend_from_slice(pair.as_bytes());
    }
    json.push(b'}');
    Item {
        json,
        fingerprint: Some(fingerprint),
    }
}

/// A 128-bit content hash of exactly these bytes: XXH3-128 (seed 0), which
/// is specified byte for byte, so the same item has the same fingerprint on
/// every platform, build and Rust release (fingerprints are stored in Redis).
pub fn fingerprint(bytes: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn fingerprints_are_xxh3_128_of_the_bytes() {
        // Known answers from the reference implementation (python-xxhash).
        assert_eq!(fingerprint(b""), 0x99aa06d3014798d86001c324468d497f);
        assert_eq!(
            fingerprint(br#"{"quote":"a"}"#),
            0x3ba01041735187f2bfdbb13eb5be042d
        );
    }

    #[test]
    fn keeps_field_order_and_appends_url() {
        let item = encode(
            fields(json!({"quote": "“Hi” & <b>", "author": "Zoë", "tags": ["a", "b"]})),
            "http://x/page/1/",
            None,
            None,
        );
        assert_eq!(
            String::from_utf8(item.json).unwrap(),
            r#"{"quote":"“Hi” & <b>","author":"Zoë","tags":["a","b"],"url":"http://x/page/1/"}"#
        );
    }

    #[test]
    fn fingerprint_ignores_url_only() {
        let a = encode(
            fields(json!({"quote": "q", "tags": []})),
            "http://x/1",
            None,
            None,
        );
        let b = encode(
            fields(json!({"quote": "q", "tags": []})),
            "http://x/2",
            None,
            None,
        );
        let c = encode(
            fields(json!({"quote": "q", "tags": ["t"]})),
            "http://x/1",
            None,
            None,
        );
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn id_field_alone_decides_identity() {
        let q = |quote: &str, tags: Value, url: &str, id| {
            encode(fields(json!({"quote": quote, "tags": tags})), url, id, None).fingerprint
        };
        assert_eq!(
            q("a", json!([]), "u1", Some("quote")),
            q("a", json!(["x"]), "u2", Some("quote"))
        );
        assert_ne!(
            q("a", json!([]), "u1", Some("url")),
            q("a", json!([]), "u2", Some("url"))
        );
        // Missing id field: fall back to all fields, never lump items together.
        assert_ne!(
            q("a", json!([]), "u", Some("author")),
            q("b", json!([]), "u", Some("author"))
        );
    }

    #[test]
    fn the_rule_pair_follows_url_and_counts_in_the_fingerprint() {
        let f = || fields(json!({"name": "Ann"}));
        let a = encode(f(), "http://x/a", None, Some(("kind", "author")));
        assert_eq!(
            String::from_utf8(a.json).unwrap(),
            r#"{"name":"Ann","url":"http://x/a","kind":"author"}"#
        );
        let b = encode(f(), "http://x/b", None, Some(("kind", "quote")));
        let plain = encode(f(), "http://x/a", None, None);
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, plain.fingerprint);
        assert_eq!(
            a.fingerprint,
            Some(fingerprint(br#"{"name":"Ann","kind":"author"}"#))
        );
        let empty = encode(Map::new(), "u", None, Some(("r", "x")));
        assert_eq!(empty.json, br#"{"url":"u","r":"x"}"#);
    }

    #[test]
    fn meta_follows_url_before_the_rule_pair_and_counts_in_the_fingerprint() {
        let f = || fields(json!({"name": "Ann"}));
        let meta = Some(r#"{"job":1e2}"#);
        let a = encode_with_meta(f(), "http://x/a", None, Some(("kind", "author")), meta);
        assert_eq!(
            String::from_utf8(a.json).unwrap(),
            r#"{"name":"Ann","url":"http://x/a","meta":{"job":1e2},"kind":"author"}"#
        );
        assert_eq!(
            a.fingerprint,
            Some(fingerprint(
                br#"{"name":"Ann","meta":{"job":1e2},"kind":"author"}"#
            ))
        );
        let b = encode_with_meta(Map::new(), "u", None, None, meta);
        assert_eq!(b.json, br#"{"url":"u","meta":{"job":1e2}}"#);
        let plain = encode_with_meta(f(), "http://x/a", None, None, None);
        assert_eq!(plain, encode(f(), "http://x/a", None, None));
    }

    #[test]
    fn empty_fields_still_valid_json() {
        let item = encode(Map::new(), "http://x/", None, None);
        assert_eq!(item.json, br#"{"url":"http://x/"}"#);
    }
}
