//! `robots.txt` and the sitemaps: `/sitemap.xml` is a sitemapindex of
//! `/sitemap-pages.xml` (the list pages; past 50,000 pages, more parts
//! `/sitemap-pages-K.xml`) and `/sitemap-authors.xml.gz` (the author pages,
//! gzip-compressed). URLs are absolute, built from the request's `Host`.

use super::data::{slug, AUTHORS};
use flate2::{write::GzEncoder, Compression};
use std::fmt::Write as _;
use std::io::Write as _;

/// Most URLs in one sitemap file, as sitemaps.org allows.
pub const MAX_URLS: u64 = 50_000;
const XMLNS: &str = "http://www.sitemaps.org/schemas/sitemap/0.9";

/// `robots.txt`, pointing at the sitemap index.
pub fn robots(host: &str) -> String {
    format!("User-agent: *\nDisallow: /private/\nSitemap: http://{host}/sitemap.xml\n")
}

/// How many `sitemap-pages` parts a site with `pages` list pages has.
pub fn parts(pages: u64) -> u64 {
    pages.div_ceil(MAX_URLS).max(1)
}

/// The path of part `k` (1-based) of the list pages' sitemap.
pub fn part_path(k: u64) -> String {
    if k == 1 {
        "/sitemap-pages.xml".to_string()
    } else {
        format!("/sitemap-pages-{k}.xml")
    }
}

/// `/sitemap.xml`: the sitemapindex.
pub fn index(host: &str, pages: u64) -> String {
    let mut out =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sitemapindex xmlns=\"{XMLNS}\">\n");
    let paths = (1..=parts(pages))
        .map(part_path)
        .chain(std::iter::once("/sitemap-authors.xml.gz".to_string()));
    for p in paths {
        let _ = writeln!(out, "<sitemap><loc>http://{host}{p}</loc></sitemap>");
    }
    out.push_str("</sitemapindex>\n");
    out
}

/// Part `k` of the list pages' urlset, or `None` if there is no such part.
pub fn pages_part(host: &str, pages: u64, k: u64) -> Option<String> {
    if !(1..=parts(pages)).contains(&k) {
        return None;
    }
    let first = (k - 1) * MAX_URLS + 1;
    let last = (k * MAX_URLS).min(pages);
    Some(urlset(host, (first..=last).map(|p| format!("/page/{p}/"))))
}

/// `/sitemap-authors.xml.gz`: the author pages' urlset, gzip-compressed.
pub fn authors_gz(host: &str) -> Vec<u8> {
    let xml = urlset(
        host,
        AUTHORS.iter().map(|a| format!("/author/{}/", slug(a.0))),
    );
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail.
    let _ = gz.write_all(xml.as_bytes());
    gz.finish().unwrap_or_default()
}

fn urlset(host: &str, paths: impl Iterator<Item = String>) -> String {
    let mut out =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<urlset xmlns=\"{XMLNS}\">\n");
    for p in paths {
        // Author slugs keep their letters (Zoë); a sitemap <loc> is percent-encoded.
        let p: String = url::form_urlencoded::byte_serialize(p.as_bytes())
            .collect::<String>()
            .replace("%2F", "/");
        let _ = writeln!(out, "<url><loc>http://{host}{p}</loc></url>");
    }
    out.push_str("</urlset>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_index_points_at_both_sitemaps() {
        assert_eq!(
            index("h:1", 10),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\">\n\
             <sitemap><loc>http://h:1/sitemap-pages.xml</loc></sitemap>\n\
             <sitemap><loc>http://h:1/sitemap-authors.xml.gz</loc></sitemap>\n\
             </sitemapindex>\n"
        );
        assert!(robots("h:1").ends_with("\nSitemap: http://h:1/sitemap.xml\n"));
    }

    #[test]
    fn list_pages_are_split_in_parts_of_50000() {
        let one = pages_part("h", 10, 1).unwrap();
        assert_eq!(one.matches("<url>").count(), 10);
        assert!(one.contains("<url><loc>http://h/page/10/</loc></url>\n</urlset>"));
        assert!(pages_part("h", 10, 2).is_none());
        assert_eq!(parts(120_000), 3);
        assert!(index("h", 120_000).contains("http://h/sitemap-pages-3.xml"));
        let third = pages_part("h", 120_000, 3).unwrap();
        assert_eq!(third.matches("<url>").count(), 20_000);
        assert!(third.contains("http://h/page/100001/<"));
    }

    #[test]
    fn authors_sitemap_gunzips_to_every_author() {
        let gz = authors_gz("h");
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut xml = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut xml)
            .unwrap();
        assert_eq!(xml.matches("<url><loc>http://h/author/").count(), 16);
        assert!(xml.contains("<loc>http://h/author/J-K-Rowling/</loc>"));
        assert!(xml.contains("<loc>http://h/author/Zo%C3%AB-%C3%85ngstr%C3%B6m/</loc>"));
    }
}
