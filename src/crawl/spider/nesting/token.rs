//! The nesting scan's tokenizer: finds the next tag, comment or raw-text end
//! with `memchr`, and names tags by a case-insensitive hash computed once.
//!
//! Only what the scan needs: tag names and where each token ends. Attribute
//! values are skipped whole when quoted, so a `>` inside one ends nothing.

use memchr::{memchr, memchr2, memmem};

/// A case-insensitive hash of a tag name (FNV-1a over lowercase bytes).
pub const fn hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < name.len() {
        h = (h ^ name[i].to_ascii_lowercase() as u64).wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

/// A set of tag names with their hashes, so membership is a hash compare
/// (confirmed on the name itself, so a colliding name is never taken for one).
pub struct Names<const N: usize> {
    names: [&'static str; N],
    hashes: [u64; N],
}

impl<const N: usize> Names<N> {
    /// The set of these names.
    pub const fn new(names: [&'static str; N]) -> Names<N> {
        let mut hashes = [0; N];
        let mut i = 0;
        while i < N {
            hashes[i] = hash(names[i].as_bytes());
            i += 1;
        }
        Names { names, hashes }
    }

    /// Whether the tag `name`, whose hash is `h`, is in the set.
    pub fn has(&self, h: u64, name: &[u8]) -> bool {
        self.hashes
            .iter()
            .position(|x| *x == h)
            .is_some_and(|i| self.names[i].as_bytes().eq_ignore_ascii_case(name))
    }

    /// The hashes, for checks against the scan's stack (which holds hashes).
    pub fn hashes(&self) -> &[u64; N] {
        &self.hashes
    }
}

/// One token of the scan.
pub enum Tag<'a> {
    /// A start tag.
    Start {
        /// Its name as written.
        name: &'a [u8],
        /// It ended with `/>`.
        self_closing: bool,
    },
    /// An end tag.
    End {
        /// Its name as written.
        name: &'a [u8],
    },
    /// A comment, doctype, processing instruction or bogus end tag.
    Other,
}

/// Where the next `<` is, at or after `from`.
pub fn next_lt(b: &[u8], from: usize) -> Option<usize> {
    memchr(b'<', &b[from..]).map(|p| from + p)
}

/// Reads the markup token at `b[at] == b'<'`; returns it and where it ends,
/// or `None` if this `<` starts plain text.
pub fn token(b: &[u8], at: usize) -> Option<(Tag<'_>, usize)> {
    let rest = &b[at..];
    let to_gt = |from: usize| memchr(b'>', &b[from..]).map_or(b.len(), |p| from + p + 1);
    if rest.starts_with(b"<!--") {
        let end = memmem::find(&b[at + 4..], b"-->").map_or(b.len(), |p| at + 4 + p + 3);
        return Some((Tag::Other, end));
    }
    match rest.get(1) {
        Some(b'!' | b'?') => Some((Tag::Other, to_gt(at + 1))),
        Some(b'/') => {
            let name = name_at(b, at + 2);
            if name.is_empty() {
                return Some((Tag::Other, to_gt(at + 2)));
            }
            Some((Tag::End { name }, to_gt(at + 2 + name.len())))
        }
        Some(c) if c.is_ascii_alphabetic() => {
            let name = name_at(b, at + 1);
            let (end, self_closing) = tag_end(b, at + 1 + name.len());
            Some((Tag::Start { name, self_closing }, end))
        }
        _ => None,
    }
}

fn name_at(b: &[u8], from: usize) -> &[u8] {
    let len = b[from..]
        .iter()
        .position(|c| c.is_ascii_whitespace() || matches!(c, b'/' | b'>'))
        .unwrap_or(b.len() - from);
    &b[from..from + len]
}

/// The end of a start tag's attributes (past `>`), honouring values quoted
/// right after `=` (and optional whitespace); and whether it ended with `/>`.
fn tag_end(b: &[u8], mut i: usize) -> (usize, bool) {
    while let Some(p) = memchr2(b'>', b'=', &b[i..]) {
        i += p;
        if b[i] == b'>' {
            return (i + 1, i > 0 && b[i - 1] == b'/');
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if let Some(&q @ (b'"' | b'\'')) = b.get(i) {
            match memchr(q, &b[i + 1..]) {
                Some(p) => i += 1 + p + 1,
                None => return (b.len(), false),
            }
        }
    }
    (b.len(), false)
}

/// Where the raw text of element `name` that starts at `from` ends: at its
/// end tag (case-insensitive), else at the end of the page.
pub fn raw_text_end(b: &[u8], from: usize, name: &[u8]) -> usize {
    let mut i = from;
    // `memchr` for `<`, not `memmem` for `</`: a searcher set up per call
    // made `<script>` followed by millions of `</` 30 times slower.
    while let Some(p) = memchr(b'<', &b[i..]).map(|p| i + p) {
        if b.get(p + 1) != Some(&b'/') {
            i = p + 1;
            continue;
        }
        let candidate = &b[p + 2..];
        if candidate.len() >= name.len() && candidate[..name.len()].eq_ignore_ascii_case(name) {
            return p;
        }
        i = p + 2;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_end_past_quoted_values_only() {
        let end = |s: &str| tag_end(s.as_bytes(), 0);
        assert_eq!(end(r#" a="x>y" b>z"#), (11, false));
        assert_eq!(end(r#" a = 'x>y'/>"#), (12, true));
        // A quote not right after `=` is plain text, so `>` ends the tag.
        assert_eq!(end(r#" a=b"x>"y"#), (7, false));
        assert_eq!(end(r#" a="never closed>"#), (17, false));
        assert_eq!(end(" a b"), (4, false));
    }

    #[test]
    fn names_match_case_insensitively_by_hash_and_name() {
        const SET: Names<2> = Names::new(["script", "li"]);
        assert!(SET.has(hash(b"SCRIPT"), b"SCRIPT"));
        assert!(SET.has(hash(b"li"), b"Li"));
        assert!(!SET.has(hash(b"lii"), b"lii"));
        // Same hash, other name (as a collision would be): not a member.
        assert!(!SET.has(hash(b"li"), b"ol"));
    }
}
