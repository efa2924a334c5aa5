//! Sitemaps, as Scrapy's SitemapSpider reads them: a `<urlset>` yields page
//! links (spec-wide allow/deny apply), a `<sitemapindex>` yields sub-sitemaps
//! (`sitemap_follow` applies), and robots.txt yields its `Sitemap:` lines.
//!
//! `<loc>`s are found by a linear scan, not an XML parser: a sitemap is flat,
//! and the scan costs time linear in the body whatever the body holds.

use super::page_links::PageLinks;
use super::Spec;
use crate::crawl::page::{Kind, Page};
use url::Url;

/// The kind of root element of a sitemap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Urlset,
    Index,
}

/// Adds the links of `page` if it is a sitemap or robots.txt; `false` if it
/// is neither (the rules read it then).
pub(super) fn read(spec: &Spec, page: &Page, url: &Url, links: &mut PageLinks<'_>) -> bool {
    match page.kind {
        Kind::Xml => match root(&page.body) {
            Some((Root::Urlset, prefix)) => {
                // Only the spec-wide filter applies: no rule reads a sitemap.
                locs(&page.body, prefix).for_each(|loc| links.add(&loc));
            }
            Some((Root::Index, prefix)) => {
                let follow = &spec.sitemap_follow;
                let wanted =
                    |u: &Url| follow.is_empty() || follow.iter().any(|r| r.is_match(u.as_str()));
                locs(&page.body, prefix).for_each(|loc| links.add_if(&loc, wanted));
            }
            None => return false,
        },
        Kind::Text if url.path().ends_with("/robots.txt") => {
            for line in page.body.lines() {
                let line = line.trim();
                // `get` is `None` when byte 8 is inside a character.
                if line
                    .get(..8)
                    .is_some_and(|h| h.eq_ignore_ascii_case("sitemap:"))
                {
                    links.add_if(line[8..].trim(), |_| true);
                }
            }
        }
        _ => return false,
    }
    true
}

/// The root element, if it is a sitemap's, and its namespace prefix (`""`
/// for none): the sitemap's own `<loc>`s carry the same prefix.
fn root(xml: &str) -> Option<(Root, &str)> {
    let mut rest = xml.trim_start_matches('\u{feff}');
    loop {
        rest = rest.trim_start();
        let skip_to = |end: &str| rest.find(end).map(|i| &rest[i + end.len()..]);
        rest = if rest.starts_with("<?") {
            skip_to("?>")?
        } else if rest.starts_with("<!--") {
            skip_to("-->")?
        } else if rest.starts_with("<!") {
            skip_to(">")?
        } else {
            break;
        };
    }
    let name = rest.strip_prefix('<')?;
    let end = name
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(name.len());
    let (prefix, local) = name[..end].rsplit_once(':').unwrap_or(("", &name[..end]));
    match local {
        "urlset" => Some((Root::Urlset, prefix)),
        "sitemapindex" => Some((Root::Index, prefix)),
        _ => None,
    }
}

/// The text of each `<loc>` (or `<PREFIX:loc>` with the root's prefix, but
/// not `<image:loc>`; attributes allowed), trimmed, CDATA unwrapped, entities
/// decoded. Each `<` is looked at once, so the scan is linear in the body.
fn locs<'a>(xml: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    let prefixed = format!("{prefix}:loc");
    let close_prefixed = format!("</{prefixed}>");
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let lt = xml[at..].find('<')? + at + 1;
        at = lt;
        let tag = &xml[lt..];
        let end = tag
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(tag.len());
        let name = &tag[..end];
        if name != "loc" && (prefix.is_empty() || name != prefixed) {
            continue;
        }
        let close = if name == "loc" {
            "</loc>"
        } else {
            close_prefixed.as_str()
        };
        let gt = tag.find('>')? + lt;
        at = gt + 1;
        if xml[..gt].ends_with('/') {
            continue; // `<loc/>`: empty.
        }
        let stop = xml[at..].find(close)? + at;
        let text = xml[at..stop].trim();
        at = stop + close.len();
        let text = text
            .strip_prefix("<![CDATA[")
            .and_then(|t| t.strip_suffix("]]>"))
            .map_or_else(|| unescape(text), |t| t.trim().to_string());
        if !text.is_empty() {
            return Some(text);
        }
    })
}

/// Decodes XML's five named entities and numeric references; anything else
/// is kept as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // Entities are short; a missing `;` nearby means a literal `&`.
        // (Bytes, not characters: `;` is ASCII, so its index is a boundary.)
        let semi = rest.as_bytes()[..rest.len().min(12)]
            .iter()
            .position(|&b| b == b';');
        let decoded = semi.and_then(|end| {
            let c = match &rest[1..end] {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                n if n.starts_with("#x") || n.starts_with("#X") => {
                    char::from_u32(u32::from_str_radix(&n[2..], 16).ok()?)?
                }
                n if n.starts_with('#') => char::from_u32(n[1..].parse().ok()?)?,
                _ => return None,
            };
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::CAPS;
    use super::super::{scrape, Scraped};
    use super::*;

    fn run(spec: &str, kind: Kind, body: &str, url: &str) -> Scraped {
        let page = Page {
            body: body.into(),
            kind,
        };
        scrape(&Spec::parse(spec), CAPS, &page, &Url::parse(url).unwrap())
    }

    fn links(s: &Scraped) -> Vec<&str> {
        s.links.iter().map(Url::as_str).collect()
    }

    const SPEC: &str = r#"{"item": "div", "fields": {"a": "b"}, "deny": ["/private/"],
        "sitemap_follow": ["quotes"]}"#;

    #[test]
    fn urlset_yields_pages_filtered_by_the_spec_wide_deny() {
        let xml = "\u{feff}<?xml version=\"1.0\"?>\n<!-- made by hand -->\n<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">
            <url><loc> http://h/page/1/?a=1&amp;b=2 </loc><lastmod>2024</lastmod></url>
            <url><loc><![CDATA[http://h/page/2/?x=<y>]]></loc></url>
            <url><loc>http://h/private/1</loc></url>
            <url><loc>/rel&#47;ative&#x2F;x &bogus; a&b</loc><image:loc>http://h/img.png</image:loc></url>
        </urlset>";
        let s = run(SPEC, Kind::Xml, xml, "http://h/sitemap.xml");
        assert_eq!(
            links(&s),
            [
                "http://h/page/1/?a=1&b=2",
                "http://h/page/2/?x=%3Cy%3E",
                "http://h/rel/ative/x%20&bogus;%20a&b"
            ]
        );
        assert_eq!(s.links_filtered, 1);
        assert!(s.items.is_empty());
        assert_eq!((s.rule, s.sitemap), (None, true));
    }

    #[test]
    fn sitemap_index_follows_only_matching_sub_sitemaps() {
        let xml = r#"<sm:sitemapindex xmlns:sm="x"><sitemap><loc>http://h/quotes.xml.gz</loc></sitemap>
            <sitemap><loc>http://h/private/quotes.xml</loc></sitemap>
            <sitemap><loc>http://h/authors.xml</loc></sitemap></sm:sitemapindex>"#;
        let s = run(SPEC, Kind::Xml, xml, "http://h/sitemap.xml");
        // sitemap_follow, not allow/deny, decides which sub-sitemaps are read.
        assert_eq!(
            links(&s),
            ["http://h/quotes.xml.gz", "http://h/private/quotes.xml"]
        );
        assert_eq!(s.links_filtered, 1);
    }

    #[test]
    fn robots_txt_yields_its_sitemap_lines_and_other_xml_is_left_to_rules() {
        let robots =
            "User-agent: *\nDisallow: /x\nSitemap: http://h/sitemap.xml\nsitemap:/s2.xml\n";
        let s = run(SPEC, Kind::Text, robots, "http://h/robots.txt");
        assert_eq!(links(&s), ["http://h/sitemap.xml", "http://h/s2.xml"]);
        let s = run(SPEC, Kind::Text, robots, "http://h/notes.txt");
        assert!(s.links.is_empty());
        let rss = "<?xml version=\"1.0\"?><rss><loc>http://h/a</loc></rss>";
        assert!(run(SPEC, Kind::Xml, rss, "http://h/feed").links.is_empty());
    }

    #[test]
    fn multibyte_text_next_to_cuts_is_kept_not_a_panic() {
        let xml = "<urlset><url><loc>http://h/a&éééééé</loc></url></urlset>";
        let s = run(SPEC, Kind::Xml, xml, "http://h/s.xml");
        assert_eq!(
            links(&s),
            ["http://h/a&%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"]
        );
        let robots = "User-agent: *\naéééé\nSitemap: http://h/s.xml\nééééé: x\n";
        let s = run(SPEC, Kind::Text, robots, "http://h/robots.txt");
        assert_eq!(links(&s), ["http://h/s.xml"]);
    }

    #[test]
    fn prefixed_sitemaps_and_locs_with_attributes_are_read() {
        let xml = r#"<ns0:urlset xmlns:ns0="http://www.sitemaps.org/schemas/sitemap/0.9">
            <ns0:url><ns0:loc>http://h/1</ns0:loc></ns0:url>
            <ns0:url><ns0:loc xml:lang="en" >http://h/2</ns0:loc><img:loc>http://h/i.png</img:loc></ns0:url>
            <ns0:url><ns0:loc/><loc>http://h/unprefixed</loc></ns0:url></ns0:urlset>"#;
        let s = run(SPEC, Kind::Xml, xml, "http://h/s.xml");
        assert_eq!(
            links(&s),
            ["http://h/1", "http://h/2", "http://h/unprefixed"]
        );
        let xml = r#"<urlset><url><loc >http://h/a</loc><loc lang="x">http://h/b</loc><xloc>http://h/c</xloc></url></urlset>"#;
        let s = run(SPEC, Kind::Xml, xml, "http://h/s.xml");
        assert_eq!(links(&s), ["http://h/a", "http://h/b"]);
    }

    #[test]
    fn unclosed_and_hostile_sitemaps_cost_one_pass() {
        assert_eq!(root("<!-- never closed"), None);
        assert_eq!(locs("<urlset><loc>http://h/a", "").count(), 0);
        let big = format!("<urlset>{}</urlset>", "<loc>".repeat(200_000));
        let t0 = std::time::Instant::now();
        assert_eq!(locs(&big, "").count(), 0);
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
