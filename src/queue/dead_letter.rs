//! Dead letters: what `consume` sets aside in `KEY:dead` and `produce
//! --jobs` in `J:dead`, one JSON object each:
//! `{"reason","consumer","at","item"}`, with the element as a JSON string
//! when it is valid UTF-8, or `item_base64` (standard alphabet, padded)
//! when it is not, so the original bytes are never lost. `verdict` says
//! which elements are poison: the check `consume` makes before the sink, and
//! `push` before pushing.

use memchr::memchr2;
use serde::de::IgnoredAny;

/// Deepest nesting of arrays and objects a line may have. Parsers that
/// recurse give up near here (serde_json's default limit is 128; Python's
/// `json` fails soon after), so a deeper element is a dead letter rather
/// than a line the consumer downstream cannot read.
pub const MAX_DEPTH: usize = 128;

/// Why an element cannot go to the sink, if it cannot.
pub fn verdict(item: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(item).map_err(|e| format!("not valid UTF-8: {e}"))?;
    if depth(item) > MAX_DEPTH {
        return Err(format!(
            "nested deeper than {MAX_DEPTH} levels (most JSON parsers cannot read it)"
        ));
    }
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|e| format!("invalid JSON: {e}"))
}

/// The deepest nesting of `[`/`{` outside strings, in one linear pass.
/// Strings, most of an item's bytes, are crossed with `memchr` rather than
/// byte by byte: this pass used to cost more than the JSON check itself.
fn depth(item: &[u8]) -> usize {
    let (mut depth, mut deepest, mut i) = (0usize, 0, 0);
    while let Some(&b) = item.get(i) {
        match b {
            b'"' => {
                // To the closing quote, stepping over each escaped byte.
                i += 1;
                loop {
                    let rest = item.get(i..).unwrap_or_default();
                    match memchr2(b'"', b'\\', rest) {
                        None => return deepest,
                        Some(p) if rest[p] == b'\\' => i += p + 2,
                        Some(p) => {
                            i += p;
                            break;
                        }
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// One dead-letter entry for `item`.
pub fn letter(reason: &str, consumer: &str, item: &[u8]) -> String {
    let mut entry = serde_json::Map::new();
    entry.insert("reason".into(), reason.into());
    entry.insert("consumer".into(), consumer.into());
    entry.insert("at".into(), crate::run::log::now_rfc3339().into());
    match std::str::from_utf8(item) {
        Ok(text) => entry.insert("item".into(), text.into()),
        Err(_) => entry.insert("item_base64".into(), base64(item).into()),
    };
    serde_json::Value::Object(entry).to_string()
}

/// Standard padded base64 (RFC 4648 section 4).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_keep_the_original_bytes() {
        let text: serde_json::Value =
            serde_json::from_str(&letter("r", "c", b"plain \"text\"")).unwrap();
        assert_eq!(text["item"], "plain \"text\"");
        assert_eq!(text["reason"], "r");
        let bin: serde_json::Value =
            serde_json::from_str(&letter("r", "c", b"\xff\x00binary\xfe")).unwrap();
        assert_eq!(bin["item_base64"], "/wBiaW5hcnn+");
        assert!(bin.get("item").is_none());
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn nesting_is_measured_outside_strings_and_capped() {
        assert_eq!(depth(br#"{"a":[1,{"b":"[[[{{"}]}"#), 3);
        assert_eq!(depth(br#"["\"[", [[]]]"#), 3);
        assert_eq!(depth(br#"[{"a\\":["x\\\"]"}]"#), 3);
        assert_eq!(depth(br#"[["unterminated [[[\"#), 2);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(verdict(ok.as_bytes()), Ok(()));
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(verdict(deep.as_bytes())
            .unwrap_err()
            .starts_with("nested deeper than 128"));
    }
}
