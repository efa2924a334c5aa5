//! Dead letters: what `consume` sets aside in `KEY:dead` and `produce
//! --jobs` in `J:dead`, one JSON object each:
//! `{"reason","consumer","at","item"}`, with the element as a JSON string
//! when it is valid UTF-8, or `item_base64` (standard alphabet, padded)
//! when it is not, so the original bytes are never lost. `verdict` says
//! which elements are poison: the check `consume` makes before the sink, and
//! `push` before pushing. `qpipe dead` reads (`read`, `Letter`), re-queues
//! (`requeue`) and deletes (`delete`) them; both are safe to repeat after a
//! lost reply.

use crate::error::Error;
use crate::queue::link::Link;
use base64::{engine::general_purpose::STANDARD, Engine};
use memchr::memchr2;
use serde::de::IgnoredAny;

/// Moves one dead letter back, in one step: only if the letter (ARGV[1],
/// byte for byte) is still in the dead list KEYS[1], it is removed and its
/// item (ARGV[2]) goes onto KEYS[2], at the consuming end (ARGV[3] = "R",
/// popped next) or the far end ("L": jobs, as `enqueue` adds them); a job
/// also loses its attempts count in the hash KEYS[3]. A retry after a lost
/// reply finds the letter gone and moves nothing: never pushed twice.
const REQUEUE: &str = r"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[3] == 'R' then redis.call('RPUSH', KEYS[2], ARGV[2])
else redis.call('LPUSH', KEYS[2], ARGV[2]) end
if KEYS[3] then redis.call('HDEL', KEYS[3], redis.sha1hex(ARGV[2])) end
return 1";

/// Dead letters read at once, at most, per LRANGE.
const PAGE: i64 = 1000;

/// One dead letter, read.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The letter as stored (what `requeue` and `delete` name it by).
    pub raw: Vec<u8>,
    /// Why it was set aside.
    pub reason: String,
    /// Who set it aside.
    pub consumer: String,
    /// When (RFC 3339).
    pub at: String,
    /// The element, byte for byte; `None` if the letter cannot be read.
    pub item: Option<Vec<u8>>,
}

impl Letter {
    /// Reads a stored letter; one that is not a letter keeps its bytes,
    /// with the reason saying so.
    pub fn parse(raw: Vec<u8>) -> Letter {
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let item = match (&v["item"], &v["item_base64"]) {
            (serde_json::Value::String(s), _) => Some(s.as_bytes().to_vec()),
            (_, serde_json::Value::String(b)) => STANDARD.decode(b).ok(),
            _ => None,
        };
        let reason = match v.is_object() {
            true => text("reason"),
            false => "(not a dead letter qpipe wrote)".into(),
        };
        Letter {
            consumer: text("consumer"),
            at: text("at"),
            reason,
            item,
            raw,
        }
    }

    /// The kind of reason, for counting: the text before its first `:` or
    /// `(` ("invalid JSON", "not valid UTF-8", "private address").
    pub fn kind(&self) -> &str {
        let end = self.reason.find([':', '(']).unwrap_or(self.reason.len());
        match self.reason[..end].trim() {
            "" => "(no reason given)",
            kind => kind,
        }
    }
}

/// Every letter of `dead`, newest first (index 0), read a page at a time.
pub fn read(link: &mut Link, dead: &str) -> Result<Vec<Letter>, Error> {
    read_newest(link, dead, i64::MAX)
}

/// The newest `max` letters of `dead` at most, newest first.
pub fn read_newest(link: &mut Link, dead: &str, max: i64) -> Result<Vec<Letter>, Error> {
    let mut out = Vec::new();
    // Bounded by the list's length when read.
    let len: i64 = link.call("count dead letters", |c| {
        redis::cmd("LLEN").arg(dead).query(c)
    })?;
    let len = len.min(max);
    let mut start = 0;
    while start < len {
        let page: Vec<Vec<u8>> = link.call("read dead letters", |c| {
            redis::cmd("LRANGE")
                .arg(dead)
                .arg(start)
                .arg((start + PAGE).min(len) - 1)
                .query(c)
        })?;
        if page.is_empty() {
            break;
        }
        start += page.len() as i64;
        out.extend(page.into_iter().map(Letter::parse));
    }
    Ok(out)
}

/// Where a re-queued item goes.
pub struct Back<'a> {
    /// The list.
    pub list: &'a str,
    /// A job list: the far end, and its attempts hash is reset.
    pub jobs_attempts: Option<&'a str>,
}

/// Moves `letter`'s item from `dead` back onto the list; false if the letter
/// was no longer there (moved or deleted by someone else, or by this call's
/// first copy whose reply was lost).
pub fn requeue(
    link: &mut Link,
    dead: &str,
    back: &Back<'_>,
    letter: &Letter,
) -> Result<bool, Error> {
    let Some(item) = &letter.item else {
        return Ok(false);
    };
    // Only the keys used: a job's attempts hash, for jobs.
    let mut keys = vec![dead, back.list];
    keys.extend(back.jobs_attempts);
    let side = if back.jobs_attempts.is_some() {
        "L"
    } else {
        "R"
    };
    let n: i64 = link.call("re-queue a dead letter", |c| {
        redis::cmd("EVAL")
            .arg(REQUEUE)
            .arg(keys.len())
            .arg(&keys)
            .arg(&letter.raw)
            .arg(item)
            .arg(side)
            .query(c)
    })?;
    Ok(n == 1)
}

/// Deletes one dead letter; false if it was already gone. Safe to repeat.
pub fn delete(link: &mut Link, dead: &str, letter: &Letter) -> Result<bool, Error> {
    let n: i64 = link.call("delete a dead letter", |c| {
        redis::cmd("LREM")
            .arg(dead)
            .arg(1)
            .arg(&letter.raw)
            .query(c)
    })?;
    Ok(n == 1)
}

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
    fn letters_read_back_byte_for_byte_with_their_kind() {
        let text = Letter::parse(letter("invalid JSON: eof", "c", b"{\"a\":").into_bytes());
        assert_eq!(text.item.as_deref(), Some(&b"{\"a\":"[..]));
        assert_eq!(text.kind(), "invalid JSON");
        let bin = Letter::parse(letter("not valid UTF-8: x", "c", b"\xff\x00").into_bytes());
        assert_eq!(bin.item.as_deref(), Some(&b"\xff\x00"[..]));
        assert_eq!(bin.kind(), "not valid UTF-8");
        let job =
            Letter::parse(letter("private address (a job may not...)", "w", b"u").into_bytes());
        assert_eq!(job.kind(), "private address");
        let junk = Letter::parse(b"junk".to_vec());
        assert!(junk.item.is_none());
        assert_eq!(junk.raw, b"junk");
    }

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
