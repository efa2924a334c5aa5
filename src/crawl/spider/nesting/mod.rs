//! A linear pre-scan that caps HTML nesting depth before html5ever sees the
//! page, as browsers and libxml2 do: the tree builder is quadratic in depth.
//!
//! The scan keeps a stack of open element names (hashed), closes the usual
//! implied ends (`li`, `p`, table cells, ...), skips comments and raw text
//! (`script`, `style`, ...), and drops every element that would open deeper
//! than the cap, with all its content, up to its matching end tag. It is a
//! rough model of the HTML tree builder: where the two disagree, the scan
//! errs on the side of counting deeper, so the real tree never gets deeper
//! than the cap plus the implicit `html` and `body`.

use std::borrow::Cow;
use std::collections::HashMap;

/// What the pre-scan did to one page.
#[derive(Debug)]
pub struct Capped<'a> {
    /// The page, with markup deeper than the cap removed.
    pub html: Cow<'a, str>,
    /// Start tags removed (each element cut, at any depth).
    pub elements_cut: u64,
}

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen",
];
/// Elements the tree builder merges into the first one: never nested.
const ROOTS: &[&str] = &["html", "head", "body"];
/// Elements whose content is text up to their own end tag.
const RAW: &[&str] = &[
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
];
/// Elements whose end tag is optional: inside a cut they neither nest nor close.
const OPTIONAL_END: &[&str] = &[
    "li", "p", "td", "th", "tr", "dt", "dd", "option", "optgroup", "rt", "rp",
];

/// A case-insensitive hash of a tag name (FNV-1a over lowercase bytes).
fn hash(name: &[u8]) -> u64 {
    name.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    })
}

fn is(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}

/// Open elements, as name hashes, with a count per name so an end tag with
/// no open element of its name costs O(1), not a walk of the stack.
#[derive(Default)]
struct Stack {
    names: Vec<u64>,
    open: HashMap<u64, u32>,
}

impl Stack {
    fn push(&mut self, h: u64) {
        self.names.push(h);
        *self.open.entry(h).or_default() += 1;
    }

    fn pop(&mut self) -> Option<u64> {
        let h = self.names.pop()?;
        if let Some(n) = self.open.get_mut(&h) {
            *n -= 1;
        }
        Some(h)
    }

    fn top_is(&self, names: &[&str]) -> bool {
        self.names
            .last()
            .is_some_and(|t| names.iter().any(|n| hash(n.as_bytes()) == *t))
    }

    fn has(&self, h: u64) -> bool {
        self.open.get(&h).is_some_and(|n| *n > 0)
    }

    /// Pops down to and including the innermost element named `h`, if open.
    /// Each pop undoes one push, so this is linear over the whole page.
    fn close(&mut self, h: u64) {
        if self.has(h) {
            while self.pop().is_some_and(|top| top != h) {}
        }
    }

    /// The ends the tree builder implies when `name` opens.
    fn imply_ends(&mut self, name: &[u8]) {
        const ENDS: &[(&str, &[&str])] = &[
            ("li", &["li"]),
            ("p", &["p"]),
            ("dt", &["dt", "dd"]),
            ("dd", &["dt", "dd"]),
            ("td", &["td", "th"]),
            ("th", &["td", "th"]),
            ("tr", &["td", "th", "tr"]),
            ("option", &["option"]),
            ("optgroup", &["option", "optgroup"]),
        ];
        let pops = ENDS
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map_or(&[][..], |(_, p)| p);
        while !pops.is_empty() && self.top_is(pops) {
            self.pop();
        }
    }
}

/// One token of the scan.
enum Tag<'a> {
    Start { name: &'a [u8], self_closing: bool },
    End { name: &'a [u8] },
    Other,
}

/// Reads the markup token at `b[at] == b'<'`; returns it and where it ends,
/// or `None` if this `<` starts plain text.
fn token(b: &[u8], at: usize) -> Option<(Tag<'_>, usize)> {
    let rest = &b[at..];
    let to_gt = |from: usize| {
        b[from..]
            .iter()
            .position(|&c| c == b'>')
            .map_or(b.len(), |p| from + p + 1)
    };
    if rest.starts_with(b"<!--") {
        let end = find(b, at + 4, b"-->").map_or(b.len(), |p| p + 3);
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

/// The end of a start tag's attributes (past `>`), honouring quoted values;
/// and whether it ended with `/>`.
fn tag_end(b: &[u8], mut i: usize) -> (usize, bool) {
    let mut after_eq = false;
    while i < b.len() {
        match b[i] {
            b'>' => return (i + 1, i > 0 && b[i - 1] == b'/'),
            q @ (b'"' | b'\'') if after_eq => {
                i = b[i + 1..]
                    .iter()
                    .position(|&c| c == q)
                    .map_or(b.len(), |p| i + 1 + p);
                after_eq = false;
            }
            b'=' => after_eq = true,
            c if c.is_ascii_whitespace() => {}
            _ => after_eq = false,
        }
        i += 1;
    }
    (b.len(), false)
}

fn find(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Where the raw text of element `name` that starts at `from` ends: at its
/// end tag (case-insensitive), else at the end of the page.
fn raw_text_end(b: &[u8], from: usize, name: &[u8]) -> usize {
    let mut i = from;
    while let Some(p) = find(b, i, b"</") {
        let candidate = &b[p + 2..];
        if candidate.len() >= name.len() && candidate[..name.len()].eq_ignore_ascii_case(name) {
            return p;
        }
        i = p + 2;
    }
    b.len()
}

/// Removes every element that would open more than `max` elements deep.
/// Linear in the page's size; borrows the page when nothing is cut.
pub fn cap(html: &str, max: usize) -> Capped<'_> {
    let b = html.as_bytes();
    let (svg, math) = (hash(b"svg"), hash(b"math"));
    let mut stack = Stack::default();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut elements_cut = 0u64;
    // Inside a cut: where it started and how many cut elements are open.
    let mut cut: Option<(usize, u64)> = None;
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'<') {
        let at = i + p;
        let Some((tag, end)) = token(b, at) else {
            i = at + 1;
            continue;
        };
        i = end;
        match tag {
            Tag::Other => {}
            Tag::Start { name, self_closing } => {
                if is(name, RAW) {
                    i = raw_text_end(b, end, name);
                }
                let foreign = stack.has(svg) || stack.has(math);
                let nests = !(is(name, VOID) || is(name, ROOTS) || (self_closing && foreign));
                if let Some((_, open)) = cut.as_mut() {
                    elements_cut += 1;
                    if nests && !is(name, OPTIONAL_END) {
                        *open += 1;
                    }
                    continue;
                }
                stack.imply_ends(name);
                if !nests {
                    continue;
                }
                if stack.names.len() >= max {
                    elements_cut += 1;
                    cut = Some((at, 1));
                } else {
                    stack.push(hash(name));
                }
            }
            Tag::End { name } => {
                if let Some((start, open)) = cut.as_mut() {
                    if !is(name, OPTIONAL_END) && !is(name, ROOTS) && !is(name, VOID) {
                        *open -= 1;
                        if *open == 0 {
                            cuts.push((*start, end));
                            cut = None;
                        }
                    }
                } else if !is(name, ROOTS) {
                    stack.close(hash(name));
                }
            }
        }
    }
    if let Some((start, _)) = cut {
        cuts.push((start, b.len()));
    }
    if cuts.is_empty() {
        return Capped {
            html: Cow::Borrowed(html),
            elements_cut,
        };
    }
    let mut out = String::with_capacity(html.len());
    let mut from = 0;
    for (start, end) in cuts {
        out.push_str(&html[from..start]);
        from = end;
    }
    out.push_str(&html[from..]);
    Capped {
        html: Cow::Owned(out),
        elements_cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capped(html: &str, max: usize) -> (String, u64) {
        let c = cap(html, max);
        (c.html.into_owned(), c.elements_cut)
    }

    #[test]
    fn shallow_pages_are_borrowed_unchanged() {
        let page = "<html><body><ul><li>a<li>b</ul><p>x<p>y<br><img src=a></body></html>";
        let c = cap(page, 3);
        assert!(matches!(c.html, Cow::Borrowed(_)));
        assert_eq!(c.elements_cut, 0);
    }

    #[test]
    fn deeper_elements_are_cut_with_their_content_up_to_their_end_tag() {
        let page = "<div><div><div><b>deep</b></div></div></div><p>after";
        assert_eq!(
            capped(page, 2),
            ("<div><div></div></div><p>after".to_string(), 2)
        );
    }

    #[test]
    fn an_unclosed_cut_runs_to_the_end_of_the_page() {
        assert_eq!(capped("a<i><i><i>b", 2), ("a<i><i>".to_string(), 1));
    }

    #[test]
    fn comments_raw_text_and_quoted_attributes_hide_tags() {
        let page =
            r#"<div><!-- <div><div> --><script>"<div><div>"</script><a title="<div>">x</a></div>"#;
        assert_eq!(capped(page, 2).1, 0);
        assert_eq!(capped(page, 1).1, 2, "only the script and the a are cut");
    }

    #[test]
    fn implied_ends_do_not_count_as_nesting() {
        assert_eq!(capped("<table><tr><td>a<td>b<tr><td>c</table>", 3).1, 0);
        let items = format!("<ul>{}</ul>", "<li>x".repeat(1000));
        assert_eq!(capped(&items, 2).1, 0);
    }

    #[test]
    fn self_closing_only_counts_in_svg_and_math() {
        // `<div/>` opens a div in HTML: 3 of them nest.
        assert_eq!(capped("<div/><div/><div/>", 2).1, 1);
        assert_eq!(capped("<svg><g/><g/><g/></svg>", 2).1, 0);
    }

    #[test]
    fn body_end_tags_do_not_reset_the_depth() {
        // The tree builder does not pop on </body>; neither may the scan.
        let page = "<body><div><div></body><div></body><div>";
        assert_eq!(capped(page, 3).1, 1);
    }

    #[test]
    fn two_hundred_thousand_nested_divs_are_cut_in_one_pass() {
        let n = 200_000;
        let page = format!("{}x{}<p>after", "<div>".repeat(n), "</div>".repeat(n));
        let t0 = std::time::Instant::now();
        let (html, cut) = capped(&page, 256);
        assert_eq!(cut, (n - 256) as u64);
        assert_eq!(
            html,
            format!("{}{}<p>after", "<div>".repeat(256), "</div>".repeat(256))
        );
        // A hang guard only (debug build): the scan is linear.
        assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    }
}
