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

/// What makes two items the same (in-run dedup, `--seen-key`, shard routing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The default: the whole item, `url` included. Only the same record
    /// from the same page (a repeat within the page) counts as a duplicate,
    /// so distinct pages that look alike are all kept.
    Page,
    /// A spec's `unique`: these fields, in this order (`url` allowed). Two
    /// items with equal values are one item; the first page wins. An item
    /// whose listed fields are all null falls back to `Page`.
    Fields(Vec<String>),
    /// `--id-field NAME`: that field's JSON value alone (an item without it
    /// falls back to `Page`).
    Field(String),
}

impl Identity {
    /// How the summary names it.
    pub fn describe(&self) -> String {
        match self {
            Identity::Page => "the whole item, url included".into(),
            Identity::Fields(f) => format!("fields {}", f.join(", ")),
            Identity::Field(f) => format!("field {f} (--id-field)"),
        }
    }
}

/// Encodes `fields` in order, then `"url"`, as one JSON object with a
/// fingerprint of its `identity`. `rule` is a `(key, rule name)` pair
/// written after `"url"`, which the fingerprint covers like a last field
/// (two rules never share items). (Tests' shorthand for `encode_with_meta`.)
#[cfg(test)]
pub fn encode(
    fields: serde_json::Map<String, serde_json::Value>,
    url: &str,
    identity: &Identity,
    rule: Option<(&str, &str)>,
) -> Item {
    encode_with_meta(fields, url, identity, rule, None)
}

/// Like `encode`, with a crawl job's `meta` object (compact JSON text, kept
/// byte for byte) written as the field `"meta"` right after `"url"`, before
/// the rule pair. The fingerprint covers it like a field, so the same record
/// from two jobs with different meta is two items.
pub fn encode_with_meta(
    fields: serde_json::Map<String, serde_json::Value>,
    url: &str,
    identity: &Identity,
    rule: Option<(&str, &str)>,
    meta: Option<&str>,
) -> Item {
    let url_json = serde_json::Value::String(url.to_string()).to_string();
    // The bytes the fingerprint covers, when not the whole item.
    let key: Option<String> = match identity {
        Identity::Page => None,
        Identity::Field(name) if name == "url" => Some(url_json.clone()),
        Identity::Field(name) => fields
            .get(name)
            .filter(|v| !v.is_null())
            .map(|v| v.to_string()),
        Identity::Fields(names) => {
            let mut m = serde_json::Map::with_capacity(names.len());
            let mut any = false;
            for n in names {
                let v = match n.as_str() {
                    "url" => serde_json::Value::String(url.to_string()),
                    _ => fields.get(n).cloned().unwrap_or(serde_json::Value::Null),
                };
                any |= !v.is_null();
                m.insert(n.clone(), v);
            }
            any.then(|| serde_json::Value::Object(m).to_string())
        }
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
    let mut json = Vec::with_capacity(body.len() + url_json.len() + 8);
    json.extend_from_slice(open.as_bytes());
    json.extend_from_slice(comma.as_bytes());
    json.extend_from_slice(b"\"url\":");
    json.extend_from_slice(url_json.as_bytes());
    if let Some(pair) = &pair {
        json.push(b',');
        json.extend_from_slice(pair.as_bytes());
    }
    json.push(b'}');
    let fingerprint = match (key, identity, &pair) {
        (Some(id), Identity::Field(_), _) => fingerprint(id.as_bytes()),
        // The listed fields, then meta and the rule as before: for a spec
        // that lists every field, the same bytes as the identity of old.
        (Some(k), _, Some(pair)) => {
            let open = &k[..k.len() - 1];
            let comma = if k.len() > 2 { "," } else { "" };
            fingerprint(format!("{open}{comma}{pair}}}").as_bytes())
        }
        (Some(k), _, None) => fingerprint(k.as_bytes()),
        (None, _, _) => fingerprint(&json),
    };
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
            &Identity::Page,
            None,
        );
        assert_eq!(
            String::from_utf8(item.json).unwrap(),
            r#"{"quote":"“Hi” & <b>","author":"Zoë","tags":["a","b"],"url":"http://x/page/1/"}"#
        );
    }

    #[test]
    fn by_default_items_alike_on_two_pages_are_two_items() {
        let at = |tags: Value, url: &str, id: &Identity| {
            encode(fields(json!({"quote": "q", "tags": tags})), url, id, None).fingerprint
        };
        let page = Identity::Page;
        assert_ne!(
            at(json!([]), "http://x/1", &page),
            at(json!([]), "http://x/2", &page)
        );
        // The same record twice on one page is one item.
        assert_eq!(
            at(json!([]), "http://x/1", &page),
            at(json!([]), "http://x/1", &page)
        );
        // unique: the listed fields decide, whatever the page.
        let both = Identity::Fields(vec!["quote".into(), "tags".into()]);
        assert_eq!(
            at(json!([]), "http://x/1", &both),
            at(json!([]), "http://x/2", &both)
        );
        assert_ne!(
            at(json!([]), "http://x/1", &both),
            at(json!(["t"]), "http://x/1", &both)
        );
        // Listing every field keeps the identity of old (stored --seen-key sets).
        assert_eq!(
            at(json!([]), "http://x/1", &both),
            Some(fingerprint(br#"{"quote":"q","tags":[]}"#))
        );
        let quote = Identity::Fields(vec!["quote".into()]);
        assert_eq!(
            at(json!([]), "http://x/1", &quote),
            at(json!(["t"]), "http://x/2", &quote)
        );
        // All listed fields null: the whole item decides.
        let none = Identity::Fields(vec!["author".into()]);
        assert_ne!(
            at(json!([]), "http://x/1", &none),
            at(json!([]), "http://x/2", &none)
        );
    }

    #[test]
    fn id_field_alone_decides_identity() {
        let q = |quote: &str, tags: Value, url: &str, id: &str| {
            let id = Identity::Field(id.to_string());
            encode(
                fields(json!({"quote": quote, "tags": tags})),
                url,
                &id,
                None,
            )
            .fingerprint
        };
        assert_eq!(
            q("a", json!([]), "u1", "quote"),
            q("a", json!(["x"]), "u2", "quote")
        );
        assert_ne!(
            q("a", json!([]), "u1", "url"),
            q("a", json!([]), "u2", "url")
        );
        // Missing id field: fall back to the whole item, never lump items together.
        assert_ne!(
            q("a", json!([]), "u", "author"),
            q("b", json!([]), "u", "author")
        );
    }

    #[test]
    fn the_rule_pair_follows_url_and_counts_in_the_fingerprint() {
        let f = || fields(json!({"name": "Ann"}));
        let a = encode(f(), "http://x/a", &Identity::Page, Some(("kind", "author")));
        assert_eq!(
            String::from_utf8(a.json).unwrap(),
            r#"{"name":"Ann","url":"http://x/a","kind":"author"}"#
        );
        let b = encode(f(), "http://x/b", &Identity::Page, Some(("kind", "quote")));
        let plain = encode(f(), "http://x/a", &Identity::Page, None);
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, plain.fingerprint);
        let name = Identity::Fields(vec!["name".into()]);
        let by_name = encode(f(), "http://x/a", &name, Some(("kind", "author")));
        assert_eq!(
            by_name.fingerprint,
            Some(fingerprint(br#"{"name":"Ann","kind":"author"}"#))
        );
        let empty = encode(Map::new(), "u", &Identity::Page, Some(("r", "x")));
        assert_eq!(empty.json, br#"{"url":"u","r":"x"}"#);
    }

    #[test]
    fn meta_follows_url_before_the_rule_pair_and_counts_in_the_fingerprint() {
        let f = || fields(json!({"name": "Ann"}));
        let meta = Some(r#"{"job":1e2}"#);
        let a = encode_with_meta(
            f(),
            "http://x/a",
            &Identity::Page,
            Some(("kind", "author")),
            meta,
        );
        assert_eq!(
            String::from_utf8(a.json).unwrap(),
            r#"{"name":"Ann","url":"http://x/a","meta":{"job":1e2},"kind":"author"}"#
        );
        let name = Identity::Fields(vec!["name".into()]);
        let by_name = encode_with_meta(f(), "http://x/a", &name, Some(("kind", "author")), meta);
        assert_eq!(
            by_name.fingerprint,
            Some(fingerprint(
                br#"{"name":"Ann","meta":{"job":1e2},"kind":"author"}"#
            ))
        );
        let b = encode_with_meta(Map::new(), "u", &Identity::Page, None, meta);
        assert_eq!(b.json, br#"{"url":"u","meta":{"job":1e2}}"#);
        let plain = encode_with_meta(f(), "http://x/a", &Identity::Page, None, None);
        assert_eq!(plain, encode(f(), "http://x/a", &Identity::Page, None));
    }

    #[test]
    fn empty_fields_still_valid_json() {
        let item = encode(Map::new(), "http://x/", &Identity::Page, None);
        assert_eq!(item.json, br#"{"url":"http://x/"}"#);
    }
}
