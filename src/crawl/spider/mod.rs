//! Spiders: what to extract from a page and which links to follow. Pure, no I/O.

pub mod nesting;

use crate::queue::item::{self, Item};
use scraper::{ElementRef, Html, Selector};
use serde_json::{Map, Value};
use url::Url;

/// How a field's value is read from a matched element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The element's text content, trimmed.
    Text,
    /// The value of an attribute (`attr:NAME`).
    Attr(String),
    /// The element's inner HTML.
    Html,
}

/// One named field of an item.
#[derive(Debug, Clone)]
pub struct Field {
    /// The JSON key.
    pub name: String,
    /// Where the value is, inside the item element.
    pub selector: Selector,
    /// How the value is read.
    pub read: Read,
    /// All matches as an array (true) or the first match or null (false).
    pub many: bool,
}

/// A compiled spider: item selector, fields and link selectors.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Selects each item element on a page.
    pub item: Selector,
    /// The fields of each item, in output order.
    pub fields: Vec<Field>,
    /// Selects `<a>` elements whose `href` is followed.
    pub follow: Vec<Selector>,
    /// The field that alone identifies an item (`url` allowed); `None`: all but url.
    pub id_field: Option<String>,
}

/// Per-page caps that keep the time and memory of any page near-linear in
/// its size, whatever the site sends.
#[derive(Debug, Clone, Copy)]
pub struct PageCaps {
    /// Elements that would open deeper than this are cut before parsing.
    pub max_nesting: usize,
    /// Followed links kept per page; the rest are counted and dropped.
    pub max_links: usize,
}

/// What one page yielded.
#[derive(Debug, Default)]
pub struct Scraped {
    /// Encoded items, in page order.
    pub items: Vec<Item>,
    /// Absolute http(s) links, fragment removed, in page order (may repeat).
    pub links: Vec<Url>,
    /// Followed `href`s that are not http(s) (`mailto:`, `javascript:`, ...).
    pub ignored_links: u64,
    /// Elements cut because they were nested deeper than `max_nesting`.
    pub elements_cut: u64,
    /// Followed links dropped beyond `max_links`.
    pub links_cut: u64,
    /// Item matches inside another item, which are not items of their own.
    pub nested_items: u64,
}

#[cfg(test)]
impl Spec {
    /// The built-in spider for quotes.toscrape.com and `qpipe demo-site`,
    /// compiled from the same JSON that `qpipe spec --print` shows.
    pub fn quotes() -> Spec {
        // The built-in text is a constant covered by tests; it cannot fail.
        crate::crawl::spec::parse(crate::crawl::spec::QUOTES, "built-in")
            .map(|s| s.spider)
            .unwrap_or_else(|e| unreachable!("{e}"))
    }
}

/// Extracts items and links from `html`, fetched from `url`, within `caps`.
///
/// An element matched by the item selector inside another matched item is
/// not an item of its own: items are disjoint subtrees, so reading their
/// fields visits each element once.
pub fn scrape(spec: &Spec, caps: PageCaps, html: &str, url: &Url) -> Scraped {
    let capped = nesting::cap(html, caps.max_nesting);
    let doc = Html::parse_document(&capped.html);
    let mut out = Scraped {
        elements_cut: capped.elements_cut,
        ..Scraped::default()
    };
    let mut outer: Option<ElementRef<'_>> = None;
    for el in doc.select(&spec.item) {
        // Document order: an element inside an earlier item is inside the
        // latest one. The walk up is bounded by the nesting cap.
        if outer.is_some_and(|o| el.ancestors().any(|a| a.id() == o.id())) {
            out.nested_items += 1;
            continue;
        }
        outer = Some(el);
        let encoded = item::encode(fields(spec, el), url.as_str(), spec.id_field.as_deref());
        out.items.push(encoded);
    }
    let hrefs = spec
        .follow
        .iter()
        .flat_map(|sel| doc.select(sel))
        .filter_map(|a| a.value().attr("href"));
    for href in hrefs {
        if out.links.len() >= caps.max_links {
            out.links_cut += 1;
            continue;
        }
        match resolve(url, href) {
            Some(u) => out.links.push(u),
            None => out.ignored_links += 1,
        }
    }
    out
}

fn fields(spec: &Spec, el: ElementRef<'_>) -> Map<String, Value> {
    let mut map = Map::with_capacity(spec.fields.len());
    for f in &spec.fields {
        let mut values = el.select(&f.selector).filter_map(|m| read(&f.read, m));
        let value = if f.many {
            Value::Array(values.map(Value::String).collect())
        } else {
            values.next().map_or(Value::Null, Value::String)
        };
        map.insert(f.name.clone(), value);
    }
    map
}

fn read(how: &Read, el: ElementRef<'_>) -> Option<String> {
    match how {
        Read::Text => Some(el.text().collect::<String>().trim().to_string()),
        Read::Attr(name) => el.value().attr(name).map(str::to_string),
        Read::Html => Some(el.inner_html()),
    }
}

/// Resolves `href` against `base`; keeps only http(s), drops the fragment.
///
/// The `url` crate already lowercases scheme and host, drops default ports and
/// resolves `.`/`..`, which is the canonical form used for the seen set.
pub fn resolve(base: &Url, href: &str) -> Option<Url> {
    let mut u = base.join(href.trim()).ok()?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return None;
    }
    u.set_fragment(None);
    Some(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<html><body>
      <div class="quote"><span class="text">“Caf&eacute; &amp; ünïcode”</span>
        <span>by <small class="author">Zoë Q</small></span>
        <div class="tags">Tags: <a class="tag" href="/tag/life/page/1/">life</a>
          <a class="tag" href="/tag/love/">love</a></div></div>
      <div class="quote"><span class="text">No tags here</span>
        <small class="author">Anon</small><div class="tags">Tags: </div></div>
      <ul class="pager"><li class="next"><a href="/page/2/#top">Next</a></li></ul>
      <a href="mailto:x@y">mail</a><a class="tag" href="javascript:void(0)">js</a>
    </body></html>"#;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const CAPS: PageCaps = PageCaps {
        max_nesting: 256,
        max_links: 10_000,
    };

    #[test]
    fn items_inside_items_are_skipped_and_counted() {
        let nested: String = (0..5)
            .map(|i| format!("<div class=\"quote\"><span class=\"text\">q{i}</span>"))
            .collect::<String>()
            + &"</div>".repeat(5)
            + r#"<div class="quote"><span class="text">next</span></div>"#;
        let s = scrape(&Spec::quotes(), CAPS, &nested, &url("http://h/"));
        let quotes: Vec<String> = s
            .items
            .iter()
            .map(|i| serde_json::from_slice::<Value>(&i.json).unwrap()["quote"].to_string())
            .collect();
        assert_eq!(quotes, ["\"q0\"", "\"next\""]);
        assert_eq!(s.nested_items, 4);
    }

    #[test]
    fn links_beyond_the_cap_are_counted_not_kept() {
        let page: String = (0..25)
            .map(|i| format!("<li class=\"next\"><a href=\"/{i}\">n</a></li>"))
            .collect();
        let caps = PageCaps {
            max_links: 10,
            ..CAPS
        };
        let s = scrape(&Spec::quotes(), caps, &page, &url("http://h/"));
        assert_eq!((s.links.len(), s.links_cut), (10, 15));
        assert_eq!(s.links[9].as_str(), "http://h/9");
    }

    #[test]
    fn nesting_beyond_the_cap_is_cut_before_parsing() {
        let page = format!(
            "{}<div class=\"quote\"><span class=\"text\">deep</span></div>{}",
            "<div>".repeat(300),
            "</div>".repeat(300)
        ) + r#"<div class="quote"><span class="text">after</span></div>"#;
        let s = scrape(&Spec::quotes(), CAPS, &page, &url("http://h/"));
        assert_eq!(s.items.len(), 1, "only the quote after the deep part");
        assert_eq!(s.elements_cut, 300 - 256 + 2);
    }

    #[test]
    fn extracts_quotes_with_entities_unicode_and_empty_tags() {
        let s = scrape(&Spec::quotes(), CAPS, PAGE, &url("http://h/page/1/"));
        let got: Vec<String> = s
            .items
            .iter()
            .map(|i| String::from_utf8(i.json.clone()).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                r#"{"quote":"“Café & ünïcode”","author":"Zoë Q","tags":["life","love"],"url":"http://h/page/1/"}"#,
                r#"{"quote":"No tags here","author":"Anon","tags":[],"url":"http://h/page/1/"}"#,
            ]
        );
    }

    #[test]
    fn follows_next_and_tag_links_only_http() {
        let s = scrape(&Spec::quotes(), CAPS, PAGE, &url("http://h/page/1/"));
        // Document order: the follow selectors are one selector list.
        let links: Vec<&str> = s.links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "http://h/tag/life/page/1/",
                "http://h/tag/love/",
                "http://h/page/2/"
            ]
        );
        assert_eq!(s.ignored_links, 1, "the javascript: tag link");
    }

    #[test]
    fn page_without_quotes_yields_nothing() {
        let s = scrape(
            &Spec::quotes(),
            CAPS,
            "<html><p>404</p></html>",
            &url("http://h/x"),
        );
        assert!(s.items.is_empty());
        assert!(s.links.is_empty());
    }

    #[test]
    fn missing_single_field_is_null() {
        let html = r#"<div class="quote"><span class="text">t</span></div>"#;
        let s = scrape(&Spec::quotes(), CAPS, html, &url("http://h/"));
        assert_eq!(
            s.items[0].json,
            br#"{"quote":"t","author":null,"tags":[],"url":"http://h/"}"#
        );
    }

    #[test]
    fn resolve_canonicalises() {
        let base = url("http://H.example:80/a/b/");
        assert_eq!(
            resolve(&base, "../c/./d#frag").unwrap().as_str(),
            "http://h.example/a/c/d"
        );
        assert_eq!(resolve(&base, "ftp://x/"), None);
        assert_eq!(resolve(&base, " javascript:alert(1)"), None);
    }
}
