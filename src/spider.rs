//! Spiders: what to extract from a page and which links to follow. Pure, no I/O.

use crate::item::{self, Item};
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

/// What one page yielded.
#[derive(Debug, Default)]
pub struct Scraped {
    /// Encoded items, in page order.
    pub items: Vec<Item>,
    /// Absolute http(s) links, fragment removed, in page order (may repeat).
    pub links: Vec<Url>,
    /// Followed `href`s that are not http(s) (`mailto:`, `javascript:`, ...).
    pub ignored_links: u64,
}

#[cfg(test)]
impl Spec {
    /// The built-in spider for quotes.toscrape.com and `qpipe demo-site`,
    /// compiled from the same JSON that `qpipe spec --print` shows.
    pub fn quotes() -> Spec {
        // The built-in text is a constant covered by tests; it cannot fail.
        crate::spec::parse(crate::spec::QUOTES, "built-in")
            .map(|s| s.spider)
            .unwrap_or_else(|e| unreachable!("{e}"))
    }
}

/// Extracts items and links from `html`, fetched from `url`.
pub fn scrape(spec: &Spec, html: &str, url: &Url) -> Scraped {
    let doc = Html::parse_document(html);
    let items = doc
        .select(&spec.item)
        .map(|el| item::encode(fields(spec, el), url.as_str(), spec.id_field.as_deref()))
        .collect();
    let mut links = Vec::new();
    let mut ignored_links = 0;
    let hrefs = spec
        .follow
        .iter()
        .flat_map(|sel| doc.select(sel))
        .filter_map(|a| a.value().attr("href"));
    for href in hrefs {
        match resolve(url, href) {
            Some(u) => links.push(u),
            None => ignored_links += 1,
        }
    }
    Scraped {
        items,
        links,
        ignored_links,
    }
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

    #[test]
    fn extracts_quotes_with_entities_unicode_and_empty_tags() {
        let s = scrape(&Spec::quotes(), PAGE, &url("http://h/page/1/"));
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
        let s = scrape(&Spec::quotes(), PAGE, &url("http://h/page/1/"));
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
            "<html><p>404</p></html>",
            &url("http://h/x"),
        );
        assert!(s.items.is_empty());
        assert!(s.links.is_empty());
    }

    #[test]
    fn missing_single_field_is_null() {
        let html = r#"<div class="quote"><span class="text">t</span></div>"#;
        let s = scrape(&Spec::quotes(), html, &url("http://h/"));
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
