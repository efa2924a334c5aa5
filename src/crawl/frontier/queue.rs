//! The in-process frontier's queue of URLs, stored compactly.
//!
//! A queued `(Url, depth)` used to cost about 200 bytes: the `Url` (80
//! bytes of indexes), its heap string, and a `VecDeque` slot sized to a
//! power of two. Here a URL is its serialization, front-coded against the
//! URL queued before it (links found together share long prefixes): the
//! depth, the length of the shared prefix and the length of the rest, as
//! varints, then the rest. Entries fill blocks of about 4 KiB, each freed
//! once read. The queue is FIFO, so the reader decodes in the order the
//! writer encoded. `Url::parse` of a serialized URL gives it back (the
//! serialization is canonical), at about a microsecond per page fetched.

use std::collections::VecDeque;
use url::Url;

/// Bytes per block before the next block starts.
const BLOCK: usize = 4096;

/// A FIFO of `(Url, depth)`, plus a stack of URLs given back to its front.
#[derive(Default)]
pub struct UrlQueue {
    blocks: VecDeque<Vec<u8>>,
    /// Read position in the front block.
    read: usize,
    /// The last URL decoded: the base of the next one's shared prefix.
    read_prev: Vec<u8>,
    /// The last URL encoded.
    write_prev: Vec<u8>,
    /// URLs given back (`push_front`), handed out first, last in first out.
    returned: Vec<(Url, u32)>,
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

impl UrlQueue {
    /// URLs waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no URL waits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `url` at `depth`, at the back.
    pub fn push(&mut self, url: &Url, depth: u32) {
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
        put_varint(out, depth as usize);
        put_varint(out, shared);
        put_varint(out, text.len() - shared);
        out.extend_from_slice(&text[shared..]);
        self.write_prev.truncate(shared);
        self.write_prev.extend_from_slice(&text[shared..]);
        self.len += 1;
    }

    /// Puts `url` back at the front: the next `pop` returns it.
    pub fn push_front(&mut self, url: Url, depth: u32) {
        self.returned.push((url, depth));
        self.len += 1;
    }

    /// Takes the URL at the front.
    pub fn pop(&mut self) -> Option<(Url, u32)> {
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
            let depth = get_varint(front, at) as u32;
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
                return Some((url, depth));
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
        let mut q = UrlQueue::default();
        let urls = [
            "http://h/a/b/c",
            "http://h/a/b/d?x=1",
            "http://h/",
            "https://other.example/ünïcode path",
            "http://h/a/b/c",
        ];
        for (i, s) in urls.iter().enumerate() {
            q.push(&u(s), i as u32 * 1000);
        }
        assert_eq!(q.len(), 5);
        for (i, s) in urls.iter().enumerate() {
            assert_eq!(q.pop(), Some((u(s), i as u32 * 1000)));
        }
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn many_blocks_and_interleaved_reads_and_writes() {
        let mut q = UrlQueue::default();
        let url = |i: usize| u(&format!("http://h/{}/item-{i}", "x".repeat(i % 300)));
        let (mut next_in, mut next_out) = (0, 0);
        for round in 0..50 {
            for _ in 0..(round * 7 % 40 + 5) {
                q.push(&url(next_in), next_in as u32);
                next_in += 1;
            }
            for _ in 0..(round * 5 % 30) {
                match q.pop() {
                    Some(got) => {
                        assert_eq!(got, (url(next_out), next_out as u32));
                        next_out += 1;
                    }
                    None => assert_eq!(next_out, next_in),
                }
            }
        }
        assert!(q.blocks.len() > 1, "the test should span blocks");
        while let Some(got) = q.pop() {
            assert_eq!(got, (url(next_out), next_out as u32));
            next_out += 1;
        }
        assert_eq!((next_out, q.len()), (next_in, 0));
        assert!(q.blocks.len() <= 1, "read blocks are freed");
    }

    #[test]
    fn a_url_given_back_comes_out_first() {
        let mut q = UrlQueue::default();
        q.push(&u("http://h/1"), 1);
        q.push(&u("http://h/2"), 1);
        let first = q.pop().unwrap();
        q.push_front(first.0.clone(), first.1);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(first));
        assert_eq!(q.pop(), Some((u("http://h/2"), 1)));
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
