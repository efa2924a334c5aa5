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

mod token;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use token::{hash, next_lt, raw_text_end, token, Names, Tag};

/// What the pre-scan did to one page.
#[derive(Debug)]
pub struct Capped<'a> {
    /// The page, with markup deeper than the cap removed.
    pub html: Cow<'a, str>,
    /// Start tags removed (each element cut, at any depth).
    pub elements_cut: u64,
}

const VOID: Names<15> = Names::new([
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "keygen",
]);
/// Elements the tree builder merges into the first one: never nested.
const ROOTS: Names<3> = Names::new(["html", "head", "body"]);
/// Elements whose content is text up to their own end tag.
const RAW: Names<8> = Names::new([
    "script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes",
]);
/// Elements whose end tag is optional: inside a cut they neither nest nor close.
const OPTIONAL_END: Names<11> = Names::new([
    "li", "p", "td", "th", "tr", "dt", "dd", "option", "optgroup", "rt", "rp",
]);
/// Elements whose content is foreign (SVG, MathML): there `<x/>` is empty.
const FOREIGN: Names<2> = Names::new(["svg", "math"]);

/// Hashes the map's keys, which are already FNV hashes, by one multiply.
/// Not DoS-hardened like SipHash, but the map never holds more names than
/// elements are open, which the cap bounds.
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, h: u64) {
        self.0 = h.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(26);
    }
}

/// Open elements, as name hashes, with a count per open name so an end tag
/// with no open element of its name costs O(1), not a walk of the stack.
#[derive(Default)]
struct Stack {
    names: Vec<u64>,
    open: HashMap<u64, u32, BuildHasherDefault<Premixed>>,
    /// Open `svg` and `math` elements.
    foreign: u32,
}

impl Stack {
    fn push(&mut self, h: u64) {
        self.names.push(h);
        *self.open.entry(h).or_default() += 1;
        self.foreign += u32::from(FOREIGN.hashes().contains(&h));
    }

    fn pop(&mut self) -> Option<u64> {
        let h = self.names.pop()?;
        if let Some(n) = self.open.get_mut(&h) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&h);
            }
        }
        self.foreign -= u32::from(FOREIGN.hashes().contains(&h));
        Some(h)
    }

    fn top_is(&self, hashes: &[u64]) -> bool {
        self.names.last().is_some_and(|t| hashes.contains(t))
    }

    fn has(&self, h: u64) -> bool {
        self.open.contains_key(&h)
    }

    /// Pops down to and including the innermost element named `h`, if open.
    /// Each pop undoes one push, so this is linear over the whole page.
    fn close(&mut self, h: u64) {
        if self.has(h) {
            while self.pop().is_some_and(|top| top != h) {}
        }
    }

    /// The ends the tree builder implies when `name` (hash `h`) opens.
    fn imply_ends(&mut self, h: u64, name: &[u8]) {
        const LI: Names<1> = Names::new(["li"]);
        const P: Names<1> = Names::new(["p"]);
        const DT_DD: Names<2> = Names::new(["dt", "dd"]);
        const CELL: Names<2> = Names::new(["td", "th"]);
        const TR: Names<3> = Names::new(["td", "th", "tr"]);
        const OPTION: Names<1> = Names::new(["option"]);
        const OPTGROUP: Names<2> = Names::new(["option", "optgroup"]);
        let pops: &[u64] = if LI.has(h, name) {
            LI.hashes()
        } else if P.has(h, name) {
            P.hashes()
        } else if DT_DD.has(h, name) {
            DT_DD.hashes()
        } else if CELL.has(h, name) {
            CELL.hashes()
        } else if h == TR.hashes()[2] && name.eq_ignore_ascii_case(b"tr") {
            TR.hashes()
        } else if OPTION.has(h, name) {
            OPTION.hashes()
        } else if h == OPTGROUP.hashes()[1] && name.eq_ignore_ascii_case(b"optgroup") {
            OPTGROUP.hashes()
        } else {
            return;
        };
        while self.top_is(pops) {
            self.pop();
        }
    }
}

/// Removes every element that would open more than `max` elements deep.
/// Linear in the page's size; borrows the page when nothing is cut.
pub fn cap(html: &str, max: usize) -> Capped<'_> {
    let b = html.as_bytes();
    let mut stack = Stack::default();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut elements_cut = 0u64;
    // Inside a cut: where it started and how many cut elements are open.
    let mut cut: Option<(usize, u64)> = None;
    let mut i = 0;
    while let Some(at) = next_lt(b, i) {
        let Some((tag, end)) = token(b, at) else {
            i = at + 1;
            continue;
        };
        i = end;
        match tag {
            Tag::Other => {}
            Tag::Start { name, self_closing } => {
                let h = hash(name);
                if RAW.has(h, name) {
                    i = raw_text_end(b, end, name);
                }
                let foreign = stack.foreign > 0;
                let nests = !(VOID.has(h, name) || ROOTS.has(h, name) || (self_closing && foreign));
                if let Some((_, open)) = cut.as_mut() {
                    elements_cut += 1;
                    if nests && !OPTIONAL_END.has(h, name) {
                        *open += 1;
                    }
                    continue;
                }
                stack.imply_ends(h, name);
                if !nests {
                    continue;
                }
                if stack.names.len() >= max {
                    elements_cut += 1;
                    cut = Some((at, 1));
                } else {
                    stack.push(h);
                }
            }
            Tag::End { name } => {
                let h = hash(name);
                if let Some((start, open)) = cut.as_mut() {
                    if !OPTIONAL_END.has(h, name) && !ROOTS.has(h, name) && !VOID.has(h, name) {
                        *open -= 1;
                        if *open == 0 {
                            cuts.push((*start, end));
                            cut = None;
                        }
                    }
                } else if !ROOTS.has(h, name) {
                    stack.close(h);
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
