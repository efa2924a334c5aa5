//! The built-in demo site's content: deterministic quotes.toscrape.com look-alike.
//!
//! Quote `i` (0-based) is on `/page/{i/10+1}/`; its text encodes `i` in base 64
//! over a word list, so every quote is distinct. Pages are rendered on request,
//! so start-up costs nothing whatever `--pages` is.

use std::fmt::Write;

const WORDS: [&str; 64] = [
    "world", "truth", "love", "time", "mind", "heart", "life", "light", "dream", "fear", "hope",
    "art", "silence", "river", "stone", "book", "friend", "music", "road", "winter", "summer",
    "sea", "fire", "garden", "city", "wisdom", "courage", "night", "morning", "memory", "star",
    "door", "mirror", "bridge", "journey", "shadow", "voice", "question", "answer", "story",
    "island", "window", "forest", "storm", "echo", "candle", "harbour", "letter", "promise",
    "secret", "mountain", "wave", "thread", "season", "lantern", "compass", "meadow", "ember",
    "horizon", "whisper", "kingdom", "feather", "anchor", "puzzle",
];
const VERBS: [&str; 8] = [
    "is",
    "becomes",
    "outlives",
    "remembers",
    "forgives",
    "follows",
    "rewrites",
    "teaches",
];
const AUTHORS: [&str; 16] = [
    "Albert Einstein",
    "Jane Austen",
    "Marilyn Monroe",
    "J.K. Rowling",
    "André Gide",
    "Thomas A. Edison",
    "Eleanor Roosevelt",
    "Steve Martin",
    "Zoë Ångström",
    "Mark Twain",
    "Dr. Seuss",
    "Douglas Adams",
    "Elie Wiesel",
    "Friedrich Nietzsche",
    "Søren Kierkegaard",
    "Bob Marley",
];
/// Tag names; quote `i`'s primary tag is `TAGS[i % TAGS.len()]`.
pub const TAGS: [&str; 12] = [
    "love",
    "inspirational",
    "life",
    "humor",
    "books",
    "reading",
    "friendship",
    "friends",
    "truth",
    "simile",
    "change",
    "deep-thoughts",
];
/// Tag pages are capped, like a "best of" list; they only repeat quotes.
pub const MAX_TAG_PAGES: u64 = 3;
const NT: u64 = TAGS.len() as u64;

/// An HTTP response body with its status.
pub struct Reply {
    /// 200 or 404.
    pub status: u16,
    /// `text/html; charset=utf-8` or `text/plain`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

/// The text of quote `i`, with the site's curly quotes.
pub fn quote_text(i: u64) -> String {
    // Digit k of i in base 64, shifted per position so small ids still read varied.
    let w = |k: u32| WORDS[((i / 64u64.pow(k) + u64::from(k) * 13) % 64) as usize];
    let amp = if i.is_multiple_of(5) { " & more" } else { "" };
    let mut first = w(0).to_string();
    first[..1].make_ascii_uppercase();
    format!(
        "“{first} {} {} of the {} {} {}{amp}.”",
        VERBS[(i % 8) as usize],
        w(1),
        w(2),
        w(3),
        w(4)
    )
}

/// The author of quote `i`.
pub fn author(i: u64) -> &'static str {
    AUTHORS[((i * 7 + i / 16) % 16) as usize]
}

/// The tags of quote `i`: none for one in five, else a primary and maybe a secondary.
pub fn tags(i: u64) -> Vec<&'static str> {
    if (i / NT) % 5 == 4 {
        return Vec::new();
    }
    let primary = i % NT;
    let secondary = (i / 3 + 5) % NT;
    if i.is_multiple_of(3) && secondary != primary {
        vec![TAGS[primary as usize], TAGS[secondary as usize]]
    } else {
        vec![TAGS[primary as usize]]
    }
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn quote_html(out: &mut String, i: u64) {
    let a = author(i);
    let tags = tags(i);
    let _ = write!(
        out,
        "<div class=\"quote\" itemscope itemtype=\"http://schema.org/CreativeWork\">\n\
         <span class=\"text\" itemprop=\"text\">{}</span>\n\
         <span>by <small class=\"author\" itemprop=\"author\">{}</small>\n\
         <a href=\"/author/{}/\">(about)</a></span>\n\
         <div class=\"tags\">Tags:\n<meta class=\"keywords\" itemprop=\"keywords\" content=\"{}\" />\n",
        esc(&quote_text(i)),
        esc(a),
        slug(a),
        tags.join(",")
    );
    for t in tags {
        let _ = writeln!(out, "<a class=\"tag\" href=\"/tag/{t}/page/1/\">{t}</a>");
    }
    out.push_str("</div>\n</div>\n");
}

fn layout(title: &str, main: &str) -> String {
    let mut side = String::new();
    for (k, t) in TAGS.iter().enumerate().take(10) {
        let _ = writeln!(
            side,
            "<span class=\"tag-item\"><a class=\"tag\" style=\"font-size: {}px\" href=\"/tag/{t}/\">{t}</a></span>",
            28 - 2 * k
        );
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n<title>{title}</title>\n</head>\n\
         <body>\n<div class=\"container\">\n<div class=\"row header-box\"><div class=\"col-md-8\">\
         <h1><a href=\"/\" style=\"text-decoration: none\">Quotes to Scrape</a></h1></div></div>\n\
         <div class=\"row\">\n<div class=\"col-md-8\">\n{main}</div>\n\
         <div class=\"col-md-4 tags-box\">\n<h2>Top Ten tags</h2>\n{side}</div>\n</div>\n</div>\n\
         <footer class=\"footer\"><p>qpipe demo site</p></footer>\n</body>\n</html>\n"
    )
}

fn pager(out: &mut String, prefix: &str, p: u64, last: u64) {
    out.push_str("<nav>\n<ul class=\"pager\">\n");
    if p > 1 {
        let _ = writeln!(
            out,
            "<li class=\"previous\"><a href=\"{prefix}/page/{}/\"><span aria-hidden=\"true\">&larr;</span> Previous</a></li>",
            p - 1
        );
    }
    if p < last {
        let _ = writeln!(
            out,
            "<li class=\"next\"><a href=\"{prefix}/page/{}/\">Next <span aria-hidden=\"true\">&rarr;</span></a></li>",
            p + 1
        );
    }
    out.push_str("</ul>\n</nav>\n");
}

/// The site with `pages` list pages (10 × `pages` unique quotes).
pub struct Site {
    /// Number of `/page/N/` pages.
    pub pages: u64,
}

impl Site {
    /// Renders `path` (query string ignored).
    pub fn render(&self, path: &str) -> Reply {
        let path = path.split(['?', '#']).next().unwrap_or("/");
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let html = |body: String| Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body,
        };
        match parts.as_slice() {
            [] => html(self.list_page(1)),
            ["page", n] => match n.parse::<u64>() {
                Ok(p) if (1..=self.pages).contains(&p) => html(self.list_page(p)),
                _ => not_found(),
            },
            ["tag", t] => self.tag_page(t, "1").map_or_else(not_found, html),
            ["tag", t, "page", n] => self.tag_page(t, n).map_or_else(not_found, html),
            ["author", a] => AUTHORS
                .iter()
                .find(|name| slug(name) == *a)
                .map_or_else(not_found, |name| html(author_page(name))),
            ["pages"] => html(self.sitemap()),
            ["robots.txt"] => Reply {
                status: 200,
                content_type: "text/plain",
                body: "User-agent: *\nDisallow: /private/\n".into(),
            },
            _ => not_found(),
        }
    }

    /// Every path the site serves with 200, for `--export`.
    pub fn paths(&self) -> impl Iterator<Item = String> + '_ {
        let fixed = ["/".to_string(), "/pages/".into(), "/robots.txt".into()];
        let pages = (1..=self.pages).map(|p| format!("/page/{p}/"));
        let tags = TAGS.iter().flat_map(move |t| {
            let last = self.tag_pages(t).unwrap_or(1);
            std::iter::once(format!("/tag/{t}/"))
                .chain((1..=last).map(move |p| format!("/tag/{t}/page/{p}/")))
        });
        let authors = AUTHORS.iter().map(|a| format!("/author/{}/", slug(a)));
        fixed.into_iter().chain(pages).chain(tags).chain(authors)
    }

    /// `/pages/`: a link to every list page, so a crawler can fan out at once.
    fn sitemap(&self) -> String {
        let mut main = String::with_capacity(40 * self.pages as usize + 256);
        main.push_str("<h2>All pages</h2>\n<ul class=\"sitemap\">\n");
        for p in 1..=self.pages {
            let _ = writeln!(main, "<li><a href=\"/page/{p}/\">Page {p}</a></li>");
        }
        main.push_str("</ul>\n");
        layout("Quotes to Scrape: all pages", &main)
    }

    fn list_page(&self, p: u64) -> String {
        let mut main = String::with_capacity(8 * 1024);
        for i in (p - 1) * 10..p * 10 {
            quote_html(&mut main, i);
        }
        pager(&mut main, "", p, self.pages);
        layout("Quotes to Scrape", &main)
    }

    /// Quotes with primary tag `t`, and how many pages they fill (capped).
    fn tag_count(&self, t: &str) -> Option<(u64, u64)> {
        let tag = TAGS.iter().position(|x| *x == t)? as u64;
        let total = self.pages * 10;
        let m_count = if tag < total {
            (total - tag).div_ceil(NT)
        } else {
            0
        };
        let count = m_count - m_count / 5;
        Some((count, count.div_ceil(10).clamp(1, MAX_TAG_PAGES)))
    }

    fn tag_pages(&self, t: &str) -> Option<u64> {
        self.tag_count(t).map(|(_, pages)| pages)
    }

    /// Quotes whose primary tag is `t`, in order: quote `t + NT*m` for untagged-free `m`.
    fn tag_page(&self, t: &str, n: &str) -> Option<String> {
        let tag = TAGS.iter().position(|x| *x == t)? as u64;
        let p: u64 = n.parse().ok()?;
        let (count, last) = self.tag_count(t)?;
        if !(1..=last).contains(&p) {
            return None;
        }
        let mut main = format!("<h3>Viewing tag: <a href=\"/tag/{t}/page/1/\">{t}</a></h3>\n");
        for j in (p - 1) * 10..(p * 10).min(count) {
            quote_html(&mut main, tag + NT * ((j / 4) * 5 + j % 4));
        }
        pager(&mut main, &format!("/tag/{t}"), p, last);
        Some(layout(&format!("Quotes to Scrape: {t}"), &main))
    }
}

fn author_page(name: &str) -> String {
    let main = format!(
        "<div class=\"author-details\">\n<h3 class=\"author-title\">{}</h3>\n\
         <p><strong>Born:</strong> <span class=\"author-born-date\">January 1, 1900</span></p>\n\
         <div class=\"author-description\">A generated author of the qpipe demo site.</div>\n</div>\n",
        esc(name)
    );
    layout(&format!("Quotes to Scrape: {}", esc(name)), &main)
}

fn not_found() -> Reply {
    Reply {
        status: 404,
        content_type: "text/html; charset=utf-8",
        body: layout(
            "Not found",
            "<h2>404 Not Found</h2>\n<p>No such page.</p>\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn quotes_are_distinct() {
        let texts: HashSet<String> = (0..100_000).map(quote_text).collect();
        assert_eq!(texts.len(), 100_000);
    }

    #[test]
    fn pages_and_404s() {
        let site = Site { pages: 3 };
        assert_eq!(site.render("/").body, site.render("/page/1/").body);
        assert_eq!(site.render("/page/3/").status, 200);
        assert!(!site.render("/page/3/").body.contains("class=\"next\""));
        assert!(site.render("/page/2/").body.contains("href=\"/page/3/\""));
        assert_eq!(site.render("/page/4/").status, 404);
        assert_eq!(site.render("/page/0/").status, 404);
        assert_eq!(site.render("/nope").status, 404);
        assert_eq!(site.render("/tag/unknown/").status, 404);
        assert_eq!(site.render("/author/Mark-Twain/").status, 200);
        assert_eq!(
            site.render("/page/1/")
                .body
                .matches("class=\"quote\"")
                .count(),
            10
        );
    }

    #[test]
    fn tag_pages_only_show_quotes_with_that_tag() {
        let site = Site { pages: 50 };
        for t in TAGS {
            for p in 1..=MAX_TAG_PAGES {
                let body = site.render(&format!("/tag/{t}/page/{p}/")).body;
                let n = body.matches("class=\"quote\"").count();
                assert_eq!(n, 10, "tag {t} page {p}");
                assert_eq!(
                    body.matches(&format!("class=\"tag\" href=\"/tag/{t}/page/1/\""))
                        .count(),
                    10
                );
            }
            assert_eq!(
                site.render(&format!("/tag/{t}/page/{}/", MAX_TAG_PAGES + 1))
                    .status,
                404
            );
        }
    }

    #[test]
    fn sitemap_links_every_page_and_paths_all_resolve() {
        let site = Site { pages: 7 };
        let map = site.render("/pages/").body;
        assert_eq!(map.matches("<li><a href=\"/page/").count(), 7);
        assert!(map.contains("href=\"/page/7/\""));
        let paths: Vec<String> = site.paths().collect();
        let tag_paths: u64 = TAGS.iter().map(|t| 1 + site.tag_pages(t).unwrap()).sum();
        assert_eq!(paths.len() as u64, 3 + 7 + tag_paths + 16, "{paths:?}");
        for p in &paths {
            assert_eq!(site.render(p).status, 200, "{p}");
        }
    }

    #[test]
    fn tiny_site_has_short_tag_pages() {
        let site = Site { pages: 1 };
        // Quotes 0..10: tag 11 ("deep-thoughts") has no primary quotes, still one empty page.
        assert_eq!(site.render("/tag/deep-thoughts/").status, 200);
        assert_eq!(
            site.render("/tag/love/")
                .body
                .matches("class=\"quote\"")
                .count(),
            1
        );
    }
}
