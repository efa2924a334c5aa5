//! Fetched bodies and their kinds: which Content-Types the crawl reads, and
//! the bounded gunzip that turns `sitemap.xml.gz` into text.

use crate::crawl::failure::{Failure, Reason};
use std::io::Read as _;
use url::Url;

/// What a fetched body is, as far as the spider cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTML or XHTML.
    Html,
    /// JSON (`application/json`, `*+json`, `text/json`).
    Json,
    /// XML (`*/xml`, `*+xml`, or a gunzipped body): sitemaps.
    Xml,
    /// Plain text: robots.txt, read for its `Sitemap:` lines.
    Text,
}

/// A fetched 2xx body, decoded to text (and gunzipped if it was gzip).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The decoded text.
    pub body: String,
    /// What the text is.
    pub kind: Kind,
}

/// Which kinds besides HTML a spec reads: JSON only if a rule reads JSON,
/// XML, gzip and plain text only if it names sitemaps. Anything else is
/// skipped unread (`not_html`), as for a spec of HTML rules alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accept {
    /// Some rule reads JSON bodies.
    pub json: bool,
    /// The spec has `sitemap_urls`.
    pub sitemaps: bool,
}

/// How to read a response: its kind, and whether the bytes are gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    /// The kind of the (decompressed) text.
    pub kind: Kind,
    /// The body is a gzip file (not a transfer encoding): gunzip it first.
    pub gzip: bool,
}

/// Classifies a response by its lowercased Content-Type (and, for gzip, the
/// URL's `.gz` path); `None`: a type the crawl skips (`not_html`).
pub fn format(content_type: &str, url: &Url, accept: Accept) -> Option<Format> {
    let f = classify(content_type, url)?;
    let wanted = match f.kind {
        Kind::Html => true,
        Kind::Json => accept.json,
        Kind::Xml | Kind::Text => accept.sitemaps,
    };
    wanted.then_some(f)
}

/// `format` before the spec's `Accept` applies.
fn classify(content_type: &str, url: &Url) -> Option<Format> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let plain = |kind| Some(Format { kind, gzip: false });
    let gz_path = url.path().ends_with(".gz");
    match mime {
        "text/html" | "application/xhtml+xml" => plain(Kind::Html),
        "application/json" | "text/json" => plain(Kind::Json),
        m if m.ends_with("+json") => plain(Kind::Json),
        "application/gzip" | "application/x-gzip" => Some(Format {
            kind: Kind::Xml,
            gzip: true,
        }),
        m if m.ends_with("/xml") || m.ends_with("+xml") => plain(Kind::Xml),
        // Servers send `.gz` sitemaps as octet-stream too.
        "application/octet-stream" if gz_path => Some(Format {
            kind: Kind::Xml,
            gzip: true,
        }),
        "text/plain" => plain(Kind::Text),
        _ => None,
    }
}

/// Gunzips `bytes`, if they are gzip (by magic number; a server may already
/// have sent them with `Content-Encoding: gzip`, which the client undid).
/// More than `max` decompressed bytes is an error: a gzip bomb costs at most
/// `max` bytes of memory.
pub fn gunzip(bytes: Vec<u8>, max: u64) -> Result<Vec<u8>, Failure> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes.as_slice())
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Failure::new(Reason::NotHtml, format!("bad gzip data: {e}")))?;
    if out.len() as u64 > max {
        return Err(Failure::new(
            Reason::BodyTooLarge,
            format!("gzip body inflates past --max-body {max} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn content_types_map_to_kinds() {
        let u = Url::parse("http://h/a").unwrap();
        let gzu = Url::parse("http://h/sitemap.xml.gz").unwrap();
        let all = Accept {
            json: true,
            sitemaps: true,
        };
        let kind = |ct: &str, u: &Url| format(ct, u, all).map(|f| (f.kind, f.gzip));
        assert_eq!(
            kind("text/html; charset=utf-8", &u),
            Some((Kind::Html, false))
        );
        assert_eq!(kind("application/xhtml+xml", &u), Some((Kind::Html, false)));
        assert_eq!(kind("application/json", &u), Some((Kind::Json, false)));
        assert_eq!(kind("application/ld+json", &u), Some((Kind::Json, false)));
        assert_eq!(kind("text/xml", &u), Some((Kind::Xml, false)));
        assert_eq!(kind("application/rss+xml", &u), Some((Kind::Xml, false)));
        assert_eq!(kind("application/x-gzip", &u), Some((Kind::Xml, true)));
        assert_eq!(
            kind("application/octet-stream", &gzu),
            Some((Kind::Xml, true))
        );
        assert_eq!(kind("application/octet-stream", &u), None);
        assert_eq!(kind("text/plain", &u), Some((Kind::Text, false)));
        assert_eq!(kind("image/png", &u), None);
        // A spec of HTML rules alone skips the rest, as before there were others.
        let html_only = |ct: &str| format(ct, &u, Accept::default()).map(|f| f.kind);
        assert_eq!(html_only("text/html"), Some(Kind::Html));
        for ct in [
            "application/json",
            "text/xml",
            "application/gzip",
            "text/plain",
        ] {
            assert_eq!(html_only(ct), None, "{ct}");
        }
        let json_only = Accept {
            json: true,
            sitemaps: false,
        };
        assert_eq!(
            format("application/json", &u, json_only).map(|f| f.kind),
            Some(Kind::Json)
        );
        assert_eq!(format("text/plain", &u, json_only), None);
    }

    #[test]
    fn gunzip_inflates_within_the_cap_and_passes_plain_bytes() {
        assert_eq!(gunzip(gz(b"<urlset/>"), 9).unwrap(), b"<urlset/>");
        assert_eq!(gunzip(b"<urlset/>".to_vec(), 1).unwrap(), b"<urlset/>");
        let bomb = gz(&vec![b'a'; 1 << 20]);
        assert!(bomb.len() < 5000);
        let err = gunzip(bomb, 1000).unwrap_err();
        assert_eq!(err.reason, Reason::BodyTooLarge);
        assert_eq!(err.detail, "gzip body inflates past --max-body 1000 bytes");
        let bad = gunzip(vec![0x1f, 0x8b, 0, 1], 100).unwrap_err();
        assert_eq!(bad.reason, Reason::NotHtml);
        assert!(bad.detail.starts_with("bad gzip data"), "{}", bad.detail);
    }
}
