//! The in-process frontier's pending URLs (found, not yet fetched), stored
//! compactly.
//!
//! A queued `(Url, depth)` used to cost about 200 bytes: the `Url` (80
//! bytes of indexes), its heap string, and a `VecDeque` slot sized to a
//! power of two. Here a URL is its serialization, front-coded against the
//! URL queued before it (links found together share long prefixes): the
//! depth, the length of the shared prefix and the length of the rest, as
//! varints, then the rest. Entries fill blocks of about 4 KiB, each freed
//! once read. They are handed out first in, first out, so the reader decodes in the order the
//! writer encoded. `Url::parse` of a serialized URL gives it back (the
//! serialization is canonical), at about a microsecond per page fetched.
//!
//! Each URL also carries the page that linked to it (its referrer, for
//! naming a failed URL's source). Links of one page are queued together, so
//! the referrer is written only when it changes: the depth's lowest bit says
//! a new referrer (its length and bytes) follows; otherwise the previous one
//! holds. That costs one byte per page with new links, plus its URL.

use std::collections::VecDeque;
use std::sync::Arc;
use url::Url;

/// A queued URL: the URL, its depth, and the page that linked to it (none
/// for a start URL).
pub type Queued = (Url, u32, Option<Arc<str>>);

/// Bytes per block before the next block starts.
const BLOCK: usize = 4096;

/// A FIFO of `(Url, depth)`, plus a stack of URLs given back to its front.
#[derive(Default)]
pub struct PendingUrls {
    blocks: VecDeque<Vec<u8>>,
    /// Read position in the front block.
    read: usize,
    /// The last URL decoded: the base of the next one's shared prefix.
    read_prev: Vec<u8>,
    /// The referrer of the URLs being decoded.
    read_from: Option<Arc<str>>,
    /// The last URL encoded.
    write_prev: Vec<u8>,
    /// The referrer of the URLs being encoded.
    write_from: Option<String>,
    /// URLs given back (`push_front`), handed out first, last in first out.
    returned: Vec<Queued>,
    len: usize,
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(buf: &[u8], at: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    while let Some(&b) = buf.get(*at) {
        *at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    n
}

impl PendingUrls {
    /// URLs waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no URL waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `url` at `depth`, found on page `from`, at the back.
    pub fn push(&mut self, url: &Url, depth: u32, from: Option<&str>) {
        let text = url.as_str().as_bytes();
        let shared = text
            .iter()
            .zip(&self.write_prev)
            .take_while(|(a, b)| a == b)
            .count();
        if self.blocks.back().is_none_or(|b| b.len() >= BLOCK) {
            if let Some(full) = self.blocks.back_mut() {
                full.shrink_to_fit();
            }
            self.blocks.push_back(Vec::with_capacity(BLOCK + 128));
        }
        let Some(out) = self.blocks.back_mut() else {
            return;
        };
        let new_from = self.write_from.as_deref() != from;
        put_varint(out, ((depth as usize) << 1) | new_from as usize);
        if new_from {
            // Length 0 is "none" (a start URL); a referrer is never empty.
            let text = from.unwrap_or("").as_bytes();
            put_varint(out, text.len());
            out.extend_from_slice(text);
            self.write_from = from.map(str::to_string);
        }
        put_varint(out, shared);
        put_varint(out, text.len() - shared);
        out.extend_from_slice(&text[shared..]);
        self.write_prev.truncate(shared);
        self.write_prev.extend_from_slice(&text[shared..]);
        self.len += 1;
    }

    /// Puts `url` back at the front: the next `pop` returns it.
    pub fn push_front(&mut self, url: Url, depth: u32, from: Option<Arc<str>>) {
        self.returned.push((url, depth, from));
        self.len += 1;
    }

    /// Takes the URL at the front.
    pub fn pop(&mut self) -> Option<Queued> {
        if let Some(back) = self.returned.pop() {
            self.len -= 1;
            return Some(back);
        }
        loop {
            let front = self.blocks.front()?;
            if self.read >= front.len() {
                if self.blocks.len() == 1 {
                    // Caught up with the writer: keep the block, reuse it.
                    self.blocks[0].clear();
                    self.read = 0;
                    return None;
                }
                self.blocks.pop_front();
                self.read = 0;
                continue;
            }
            let at = &mut self.read;
            let head = get_varint(front, at);
            let depth = (head >> 1) as u32;
            if head & 1 == 1 {
                let len = get_varint(front, at);
                let end = (*at + len).min(front.len());
                self.read_from = (len > 0)
                    .then(|| String::from_utf8_lossy(&front[*at..end]).into())
                    .map(|s: String| Arc::from(s));
                *at = end;
            }
            let shared = get_varint(front, at);
            let rest = get_varint(front, at);
            let end = (*at + rest).min(front.len());
            self.read_prev.truncate(shared);
            self.read_prev.extend_from_slice(&front[*at..end]);
            *at = end;
            self.len -= 1;
            // Always valid: the bytes are a `Url`'s own serialization.
            let parsed = std::str::from_utf8(&self.read_prev)
                .ok()
                .and_then(|s| Url::parse(s).ok());
            if let Some(url) = parsed {
                return Some((url, depth, self.read_from.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn urls_come_out_in_order_with_their_depths() {
        let mut q = PendingUrls::default();
        let urls = [
            "http://h/a/b/c",
            "http://h/a/b/d?x=1",
            "http://h/",
            "https://other.example/ünïcode path",
            "http://h/a/b/c",
        ];
        let from = [
            None,
            Some("http://h/"),
            Some("http://h/"),
            Some("http://h/x"),
            None,
        ];
        for (i, s) in urls.iter().enumerate() {
            q.push(&u(s), i as u32 * 1000, from[i]);
        }
        assert_eq!(q.len(), 5);
        for (i, s) in urls.iter().enumerate() {
            assert_eq!(
                q.pop(),
                Some((u(s), i as u32 * 1000, from[i].map(Arc::from)))
            );
        }
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn many_blocks_and_interleaved_reads_and_writes() {
        let mut q = PendingUrls::default();
        let url = |i: usize| u(&format!("http://h/{}/item-{i}", "x".repeat(i % 300)));
        // Runs of links share a referrer, as a page's links do.
        let from = |i: usize| format!("http://h/page-{}", i / 7);
        let (mut next_in, mut next_out) = (0, 0);
        for round in 0..50 {
            for _ in 0..(round * 7 % 40 + 5) {
                q.push(&url(next_in), next_in as u32, Some(&from(next_in)));
                next_in += 1;
            }
            for _ in 0..(round * 5 % 30) {
                match q.pop() {
                    Some(got) => {
                        let want = (url(next_out), next_out as u32, Some(from(next_out).into()));
                        assert_eq!(got, want);
                        next_out += 1;
                    }
                    None => assert_eq!(next_out, next_in),
                }
            }
        }
        assert!(q.blocks.len() > 1, "the test should span blocks");
        while let Some(got) = q.pop() {
            let want = (url(next_out), next_out as u32, Some(from(next_out).into()));
            assert_eq!(got, want);
            next_out += 1;
        }
        assert_eq!((next_out, q.len()), (next_in, 0));
        assert!(q.blocks.len() <= 1, "read blocks are freed");
    }

    #[test]
    fn a_url_given_back_comes_out_first() {
        let mut q = PendingUrls::default();
        q.push(&u("http://h/1"), 1, Some("http://h/"));
        q.push(&u("http://h/2"), 1, Some("http://h/"));
        let first = q.pop().unwrap();
        q.push_front(first.0.clone(), first.1, first.2.clone());
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(first));
        assert_eq!(
            q.pop(),
            Some((u("http://h/2"), 1, Some("http://h/".into())))
        );
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn varints_round_trip() {
        let mut buf = Vec::new();
        let values = [0, 1, 127, 128, 300, 16_383, 16_384, u32::MAX as usize];
        for v in values {
            put_varint(&mut buf, v);
        }
        let mut at = 0;
        for v in values {
            assert_eq!(get_varint(&buf, &mut at), v);
        }
        assert_eq!(at, buf.len());
    }
}
