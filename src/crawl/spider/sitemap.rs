//! Sitemaps, as Scrapy's SitemapSpider reads them: a `<urlset>` yields page
//! links (spec-wide allow/deny apply), a `<sitemapindex>` yields sub-sitemaps
//! (`sitemap_follow` applies), and robots.txt yields its `Sitemap:` lines.
//!
//! `<loc>`s are found by a linear scan, not an XML parser: a sitemap is flat,
//! and the scan costs time linear in the body whatever the body holds.

use super::links::Links;
use super::Spec;
use crate::crawl::page::{Kind, Page};
use url::Url;

/// The root element of a sitemap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Urlset,
    Index,
}

/// Adds the links of `page` if it is a sitemap or robots.txt; `false` if it
/// is neither (the rules read it then).
pub(super) fn read(spec: &Spec, page: &Page, url: &Url, links: &mut Links<'_>) -> bool {
    match page.kind {
        Kind::Xml => match root(&page.body) {
            Some(Root::Urlset) => {
                // Only the spec-wide filter applies: no rule reads a sitemap.
                locs(&page.body).for_each(|loc| links.add(&loc));
            }
            Some(Root::Index) => {
                let follow = &spec.sitemap_follow;
                let wanted =
                    |u: &Url| follow.is_empty() || follow.iter().any(|r| r.is_match(u.as_str()));
                locs(&page.body).for_each(|loc| links.add_if(&loc, wanted));
            }
            None => return false,
        },
        Kind::Text if url.path().ends_with("/robots.txt") => {
            for line in page.body.lines() {
                let line = line.trim();
                if line.len() > 8 && line[..8].eq_ignore_ascii_case("sitemap:") {
                    links.add_if(line[8..].trim(), |_| true);
                }
            }
        }
        _ => return false,
    }
    true
}

/// The root element's name (namespace prefix dropped), if it is a sitemap's.
fn root(xml: &str) -> Option<Root> {
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
    let local = name[..end].rsplit(':').next().unwrap_or("");
    match local {
        "urlset" => Some(Root::Urlset),
        "sitemapindex" => Some(Root::Index),
        _ => None,
    }
}

/// The text of each `<loc>`, trimmed, CDATA unwrapped, entities decoded.
fn locs(xml: &str) -> impl Iterator<Item = String> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let open = xml[at..].find("<loc>")? + at + "<loc>".len();
        let close = xml[open..].find("</loc>")? + open;
        at = close + "</loc>".len();
        let text = xml[open..close].trim();
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
        let semi = rest[..rest.len().min(12)].find(';');
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
    fn unclosed_and_hostile_sitemaps_cost_one_pass() {
        assert_eq!(root("<!-- never closed"), None);
        assert_eq!(locs("<urlset><loc>http://h/a").count(), 0);
        let big = format!("<urlset>{}</urlset>", "<loc>".repeat(200_000));
        let t0 = std::time::Instant::now();
        assert_eq!(locs(&big).count(), 0);
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }
}
