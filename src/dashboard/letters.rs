//! Dead letters as the dashboard reads and moves them, bounded in memory
//! whatever their size: a page reads each letter's first `HEAD` bytes
//! (`preview`, a read-only script), and an action fetches the one letter
//! it acts on (`find`, `nth`), then re-queues or deletes it by its bytes
//! (`queue::dead_letter`), so a retry never acts twice.
//!
//! A letter is named in forms by its digest: the SHA-1 of its first
//! `HEAD` bytes and its length, computed in Redis.

use crate::error::Error;
use crate::queue::dead_letter::{self, Back, Letter};
use crate::queue::link::Link;

/// Bytes of each letter a page reads.
pub const HEAD: usize = 4096;

/// KEYS: the dead list. ARGV: first index, last index, head bytes.
/// Returns digest, length and head of each letter, one LINDEX at a time
/// (so Redis never holds a page of large letters at once).
const PREVIEW: &str = r"
local out = {}
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local v = redis.call('LINDEX', KEYS[1], i)
  if not v then break end
  local head = string.sub(v, 1, tonumber(ARGV[3]))
  out[#out + 1] = redis.sha1hex(head) .. ':' .. string.len(v)
  out[#out + 1] = head
end
return out";

/// KEYS: the dead list. ARGV: first index, last index, head bytes, the
/// list's length when the page was drawn (-1: unknown), then digest and
/// index pairs (-1: no index). For each pair: the index given (moved by the
/// letters set aside since) if the letter there has that digest, else the
/// first in the range that has (one pass over the range for all pairs),
/// else -1.
const FIND: &str = r"
local first, last, head = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
-- Letters set aside since the page was drawn push the others older.
local shift = 0
if tonumber(ARGV[4]) >= 0 then shift = math.max(0, redis.call('LLEN', KEYS[1]) - tonumber(ARGV[4])) end
local function digest(i)
  local v = redis.call('LINDEX', KEYS[1], i)
  if not v then return nil end
  return redis.sha1hex(string.sub(v, 1, head)) .. ':' .. string.len(v)
end
local window = nil
local out = {}
for p = 5, #ARGV, 2 do
  local want, at = ARGV[p], tonumber(ARGV[p + 1])
  local found = -1
  if at >= 0 and digest(at + shift) == want then
    found = at + shift
  else
    if not window then
      window = {}
      for i = first + shift, last + shift do
        local d = digest(i)
        if not d then break end
        window[#window + 1] = {i, d}
      end
    end
    for _, e in ipairs(window) do
      if e[2] == want then found = e[1] break end
    end
  end
  out[#out + 1] = found
end
return out";

/// KEYS: the dead list. ARGV: index, head bytes, digest. The letter at the
/// index if it still has that digest, else nil.
const FETCH: &str = r"
local v = redis.call('LINDEX', KEYS[1], tonumber(ARGV[1]))
if v and redis.sha1hex(string.sub(v, 1, tonumber(ARGV[2]))) .. ':' .. string.len(v) == ARGV[3] then
  return v
end
return false";

/// One letter as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub digest: String,
    pub at: String,
    pub reason: String,
    pub consumer: String,
    /// The item's first bytes, as text.
    pub item: String,
    /// The whole letter's size.
    pub bytes: u64,
    /// Only its first `HEAD` bytes were read.
    pub cut: bool,
}

/// What a letter's first bytes say: all of it when whole; else its fields
/// before the item (qpipe writes reason, consumer and time first).
pub fn shown(digest: String, head: &[u8], bytes: u64) -> Shown {
    let cut = (head.len() as u64) < bytes;
    let letter = match cut {
        false => Letter::parse(head.to_vec()),
        true => {
            let text = String::from_utf8_lossy(head);
            let fields = text
                .find(",\"item")
                .map(|i| format!("{}}}", &text[..i]))
                .unwrap_or_default();
            let mut l = Letter::parse(fields.into_bytes());
            l.item = text.find(",\"item").map(|i| text[i..].as_bytes().to_vec());
            l
        }
    };
    let item = match &letter.item {
        Some(b) => String::from_utf8_lossy(b).into_owned(),
        None => String::from_utf8_lossy(head).into_owned(),
    };
    Shown {
        digest,
        at: letter.at,
        reason: letter.reason,
        consumer: letter.consumer,
        item,
        bytes,
        cut,
    }
}

/// The letters `start..start+n` of `dead` (newest first), previewed, and
/// the list's length.
pub fn preview(
    link: &mut Link,
    dead: &str,
    start: u64,
    n: u64,
) -> Result<(u64, Vec<Shown>), Error> {
    let total: u64 = link.call("count dead letters", |c| {
        redis::cmd("LLEN").arg(dead).query(c)
    })?;
    let raw: Vec<Vec<u8>> = link.call("read dead letters", |c| {
        redis::cmd("EVAL_RO")
            .arg(PREVIEW)
            .arg(1)
            .arg(dead)
            .arg(start)
            .arg(start + n - 1)
            .arg(HEAD)
            .query(c)
    })?;
    let letters = raw
        .chunks(2)
        .filter_map(|pair| {
            let digest = String::from_utf8_lossy(pair.first()?).into_owned();
            let bytes = digest.rsplit(':').next()?.parse().ok()?;
            Some(shown(digest, pair.get(1)?, bytes))
        })
        .collect();
    Ok((total, letters))
}

/// Where each pick (`digest@index`, as a page names a letter) is now:
/// at its index if still there, else wherever in `dead[start..=stop]` the
/// digest is first found; `None` if gone.
pub fn locate(
    link: &mut Link,
    dead: &str,
    (start, stop): (u64, u64),
    drawn_len: Option<u64>,
    picks: &[&str],
) -> Result<Vec<Option<(String, u64)>>, Error> {
    // An index that is not a count (forged) is searched for by digest.
    let parsed: Vec<(&str, i64)> = picks
        .iter()
        .map(|p| match p.split_once('@') {
            Some((d, at)) => (d, at.parse::<u32>().map_or(-1, i64::from)),
            None => (*p, -1),
        })
        .collect();
    let drawn = drawn_len.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
    let mut cmd = redis::cmd("EVAL_RO");
    cmd.arg(FIND)
        .arg(1)
        .arg(dead)
        .arg(start)
        .arg(stop)
        .arg(HEAD)
        .arg(drawn);
    for (d, at) in &parsed {
        cmd.arg(*d).arg(*at);
    }
    let at: Vec<i64> = link.call("find dead letters", |c| cmd.query(c))?;
    Ok(parsed
        .iter()
        .zip(at)
        .map(|((d, _), i)| u64::try_from(i).ok().map(|i| (d.to_string(), i)))
        .collect())
}

/// The letter at `index` of `dead` if it still has `digest`.
pub fn fetch(
    link: &mut Link,
    dead: &str,
    index: u64,
    digest: &str,
) -> Result<Option<Vec<u8>>, Error> {
    link.call("read a dead letter", |c| {
        redis::cmd("EVAL_RO")
            .arg(FETCH)
            .arg(1)
            .arg(dead)
            .arg(index)
            .arg(HEAD)
            .arg(digest)
            .query(c)
    })
}

/// What an action did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Done {
    /// Letters re-queued or deleted.
    pub moved: u64,
    /// Letters no longer there (someone else moved or deleted them).
    pub gone: u64,
    /// Letters whose item qpipe cannot read back (not re-queued).
    pub unreadable: u64,
}

/// Re-queues `raw` to `back`, or deletes it, from `dead`.
pub fn act(
    link: &mut Link,
    dead: &str,
    back: &Back<'_>,
    delete: bool,
    raw: Vec<u8>,
    done: &mut Done,
) -> Result<bool, Error> {
    let letter = Letter::parse(raw);
    if !delete && letter.item.is_none() {
        done.unreadable += 1;
        return Ok(false);
    }
    let moved = match delete {
        true => dead_letter::delete(link, dead, &letter)?,
        false => dead_letter::requeue(link, dead, back, &letter)?,
    };
    match moved {
        true => done.moved += 1,
        false => done.gone += 1,
    }
    Ok(moved)
}

/// Acts on the letters `dead` holds now, oldest first, one at a time, up
/// to `max`: letters set aside after this started (at the newest end, a
/// re-queued item that fails again among them) are left for another click.
pub fn act_all(
    link: &mut Link,
    dead: &str,
    back: &Back<'_>,
    delete: bool,
    max: u64,
) -> Result<Done, Error> {
    let mut done = Done::default();
    let there: u64 = link.call("count dead letters", |c| {
        redis::cmd("LLEN").arg(dead).query(c)
    })?;
    // From the oldest end: a letter moved makes room for the next at the
    // same index; one skipped moves the index one newer.
    let mut from_end: i64 = -1;
    for _ in 0..there.min(max) {
        let raw: Option<Vec<u8>> = link.call("read a dead letter", |c| {
            redis::cmd("LINDEX").arg(dead).arg(from_end).query(c)
        })?;
        let Some(raw) = raw else { break };
        if !act(link, dead, back, delete, raw, &mut done)? {
            from_end -= 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_letter_still_shows_its_reason_and_the_start_of_its_item() {
        let whole = br#"{"reason":"invalid JSON: x","consumer":"h:1:n","at":"2026-01-01T00:00:00.000Z","item":"{\"a\":"}"#;
        let s = shown("d".into(), whole, whole.len() as u64);
        assert_eq!(
            (s.reason.as_str(), s.item.as_str(), s.cut),
            ("invalid JSON: x", "{\"a\":", false)
        );
        let cut = &whole[..90];
        let s = shown("d".into(), cut, 5_000_000);
        assert_eq!(s.reason, "invalid JSON: x");
        assert_eq!(s.at, "2026-01-01T00:00:00.000Z");
        assert!(s.cut && s.item.starts_with(",\"item"), "{s:?}");
    }
}
