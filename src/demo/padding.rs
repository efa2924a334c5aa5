//! `demo-site --page-kb N`: pads list pages with N KiB of the markup real
//! pages carry around their content, so benchmarks see realistic weight.
//!
//! The padding has a mega-menu `<nav>` of many links, article paragraphs, an
//! inline JSON `<script>` and an inline `<svg>`. Nothing in it matches a
//! selector of the built-in spec (`div.quote`, `span.text`, `small.author`,
//! `a.tag`, `li.next a`, `ul.sitemap a`), so items and followed links are
//! the same as on the unpadded page. It depends only on the page's seed.

use std::fmt::Write;

const WORDS: [&str; 32] = [
    "market",
    "report",
    "update",
    "season",
    "guide",
    "review",
    "policy",
    "travel",
    "science",
    "health",
    "culture",
    "energy",
    "design",
    "history",
    "archive",
    "weather",
    "sports",
    "money",
    "opinion",
    "video",
    "podcast",
    "events",
    "careers",
    "support",
    "privacy",
    "contact",
    "press",
    "partners",
    "research",
    "gallery",
    "library",
    "community",
];

/// A small deterministic generator (xorshift), so padding needs no state.
struct Words(u64);

impl Words {
    fn next(&mut self) -> &'static str {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        WORDS[(self.0 % WORDS.len() as u64) as usize]
    }

    fn number(&mut self, below: u64) -> u64 {
        self.next();
        self.0 % below
    }
}

/// The two halves of a page's padding: `top` goes before the content (the
/// site's menus), `bottom` after it (article, data script, artwork).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Padding {
    /// Markup placed before the page's main content.
    pub top: String,
    /// Markup placed after the page's main content.
    pub bottom: String,
}

/// About `kb` KiB of padding for the page with this `seed` (0 KiB: empty).
pub fn pad(kb: usize, seed: u64) -> Padding {
    if kb == 0 {
        return Padding::default();
    }
    let budget = kb * 1024;
    let mut w = Words(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut top = String::with_capacity(budget * 3 / 10 + 256);
    let mut bottom = String::with_capacity(budget * 7 / 10 + 4096);
    nav(&mut top, &mut w, budget * 3 / 10);
    article(&mut bottom, &mut w, budget * 35 / 100);
    let json_end = bottom.len() + budget * 2 / 10;
    json(&mut bottom, &mut w, json_end);
    let svg_end = budget.saturating_sub(top.len());
    svg(&mut bottom, &mut w, svg_end);
    Padding { top, bottom }
}

/// A mega-menu: sections of plain links (no class a follow selector knows).
fn nav(out: &mut String, w: &mut Words, until: usize) {
    out.push_str("<nav class=\"site-menu\" aria-label=\"Main\">\n");
    let mut section = 0;
    while out.len() < until {
        let title = w.next();
        let _ = writeln!(
            out,
            "<div class=\"menu-section\"><h4 class=\"menu-title\">{title}</h4>\n<ul class=\"menu-list\">"
        );
        for _ in 0..12 {
            let (a, b) = (w.next(), w.next());
            let _ = writeln!(
                out,
                "<li class=\"menu-item\"><a class=\"menu-link\" href=\"/{title}/{a}-{b}/\" title=\"{a} {b}\">{a} {b}</a></li>"
            );
        }
        out.push_str("</ul></div>\n");
        section += 1;
    }
    let _ = writeln!(out, "</nav><!-- {section} menu sections -->");
}

/// Article paragraphs with inline emphasis and in-text links.
fn article(out: &mut String, w: &mut Words, size: usize) {
    let until = out.len() + size;
    out.push_str("<article class=\"post\">\n<h2 class=\"post-title\">Further reading</h2>\n");
    while out.len() < until {
        out.push_str("<p class=\"post-text\">");
        for k in 0..40 {
            let word = w.next();
            match k % 13 {
                5 => {
                    let _ = write!(out, "<em>{word}</em> ");
                }
                11 => {
                    let _ = write!(out, "<a href=\"/read/{word}/\">{word}</a> ");
                }
                _ => {
                    out.push_str(word);
                    out.push(' ');
                }
            }
        }
        out.push_str("</p>\n");
    }
    out.push_str("</article>\n");
}

/// A JSON-LD-like data blob, as frameworks inline their state.
fn json(out: &mut String, w: &mut Words, until: usize) {
    out.push_str("<script type=\"application/json\" id=\"page-state\">{\"items\":[");
    let mut first = true;
    while out.len() < until {
        if !first {
            out.push(',');
        }
        first = false;
        let (id, a, b) = (w.number(1_000_000), w.next(), w.next());
        let _ = write!(
            out,
            "{{\"id\":{id},\"slug\":\"{a}-{b}\",\"title\":\"{a} {b}\",\"score\":{}.{},\"flags\":[\"{}\",\"{}\"]}}",
            w.number(100),
            w.number(100),
            w.next(),
            w.next()
        );
    }
    out.push_str("]}</script>\n");
}

/// An inline SVG chart: paths and shapes with numeric attributes.
fn svg(out: &mut String, w: &mut Words, until: usize) {
    out.push_str(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 400 200\" role=\"img\">\n",
    );
    while out.len() < until {
        let _ = write!(out, "<g class=\"series\"><path d=\"M0 {}", w.number(200));
        for x in 1..20 {
            let _ = write!(out, " L{} {}", x * 20, w.number(200));
        }
        let _ = writeln!(
            out,
            "\" fill=\"none\" stroke=\"#{:06x}\"/><circle cx=\"{}\" cy=\"{}\" r=\"3\"/></g>",
            w.number(0xff_ffff),
            w.number(400),
            w.number(200)
        );
    }
    out.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_has_the_size_asked_and_is_deterministic() {
        assert_eq!(pad(0, 7), Padding::default());
        for kb in [1, 10, 110] {
            let p = pad(kb, 7);
            let len = p.top.len() + p.bottom.len();
            assert!(
                len >= kb * 1024 && len < kb * 1024 + 2048,
                "{kb} KiB: {len}"
            );
            assert_eq!(p, pad(kb, 7));
        }
        assert_ne!(pad(4, 1), pad(4, 2));
        let p = pad(20, 3);
        for part in ["<nav", "<p class", "application/json", "<svg", "</svg>"] {
            assert!((p.top.clone() + &p.bottom).contains(part), "{part}");
        }
        for class in ["quote", "text", "author", "tag", "next", "sitemap"] {
            let all = p.top.clone() + &p.bottom;
            assert!(!all.contains(&format!("class=\"{class}\"")), "{class}");
        }
    }
}
