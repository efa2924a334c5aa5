//! Poison items: a popped item that is not valid UTF-8 JSON
//! (`dead_letter::verdict`) goes to `K:dead`
//! and is never written nor silently dropped. Valid JSON spread over several
//! lines has its raw line breaks (always insignificant whitespace in valid
//! JSON) turned into spaces; nothing else about it changes.
//!
//! A dead letter is `{"reason","consumer","at","item"}`, with the element as
//! a JSON string when it is valid UTF-8, or `item_base64` (standard alphabet,
//! padded) in place of `item` when it is not, so the original bytes survive.

use crate::error::Error;
use crate::queue::dead_letter::{letter, verdict};
use crate::queue::Queue;
use crate::run::log;
use memchr::memchr2;

/// What screening did to one batch.
#[derive(Debug, Default)]
pub struct Screened {
    /// Items moved to dead letters.
    pub dead: u64,
    /// Items whose line breaks became spaces.
    pub reformatted: u64,
}

/// Makes a valid JSON element one line: a raw CR or LF can only be
/// whitespace between tokens (inside strings JSON requires escapes), so each
/// becomes a space. Returns whether anything changed.
pub fn one_line(item: &mut [u8]) -> bool {
    let (mut changed, mut i) = (false, 0);
    while let Some(p) = memchr2(b'\n', b'\r', &item[i..]) {
        item[i + p] = b' ';
        i += p + 1;
        changed = true;
    }
    changed
}

/// Moves items that cannot be written to `<key>:dead`; makes the rest one
/// line. The batch is changed only once the dead letters are recorded: if
/// they cannot be, the error ends the run and the caller still holds every
/// item exactly as popped, so it can put them all back.
pub fn screen(
    q: &mut Queue,
    consumer: &str,
    items: &mut Vec<Vec<u8>>,
    csv: Option<&[String]>,
) -> Result<Screened, Error> {
    let verdicts: Vec<Result<(), String>> = items
        .iter()
        .map(|i| match csv {
            Some(fields) => verdict(i).and_then(|()| crate::consume::csv::verdict(i, fields)),
            None => verdict(i),
        })
        .collect();
    let dead: Vec<String> = items
        .iter()
        .zip(&verdicts)
        .filter_map(|(item, v)| v.as_ref().err().map(|r| letter(r, consumer, item)))
        .collect();
    if !dead.is_empty() {
        let key = crate::queue::keys::dead(&q.key);
        q.call(&format!("record dead letters in {key}"), |c| {
            redis::cmd("LPUSH").arg(&key).arg(&dead).query::<()>(c)
        })?;
        log::warn(&format!("{} poison items moved to {key}", dead.len()));
    }
    let mut out = Screened {
        dead: dead.len() as u64,
        reformatted: 0,
    };
    let mut verdicts = verdicts.into_iter();
    items.retain_mut(|item| match verdicts.next() {
        Some(Ok(())) => {
            out.reformatted += u64::from(one_line(item));
            true
        }
        _ => false,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_json_keeps_every_byte_but_line_breaks() {
        let mut item =
            b"{\"n\": 12345678901234567890123456789,\n \"f\": 1e2,\r\n \"a\": 1, \"a\": 2}"
                .to_vec();
        assert_eq!(verdict(&item), Ok(()));
        assert!(one_line(&mut item));
        assert_eq!(
            item,
            b"{\"n\": 12345678901234567890123456789,  \"f\": 1e2,   \"a\": 1, \"a\": 2}"
        );
        let mut single = b"{\"a\":1}".to_vec();
        assert!(!one_line(&mut single));
    }

    #[test]
    fn invalid_utf8_and_non_json_are_poison() {
        assert!(verdict(b"{\"a\":\"\xff\xfe\"}")
            .unwrap_err()
            .starts_with("not valid UTF-8"));
        assert!(verdict(b"not json")
            .unwrap_err()
            .starts_with("invalid JSON"));
        assert!(verdict(b"").is_err());
    }
}
