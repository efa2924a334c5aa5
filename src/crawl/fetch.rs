//! One HTTP exchange through the crawl's shared `Session`: no redirects, no
//! retries, no threads. `crawl` builds redirects, retries and politeness on top.

use crate::crawl::page::{self, Accept, Kind, Page};
use crate::crawl::session::headers::Headers;
use crate::crawl::session::proxy::Proxies;
use crate::crawl::session::Session;
use std::io::Read as _;
use std::time::Duration;
use url::Url;

/// HTTP client settings, validated from the command line.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Time allowed to open a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response.
    pub read_timeout: Duration,
    /// Whole-request budget, so a trickling server is cut off.
    pub total_timeout: Duration,
    /// Largest body read, in bytes; bigger pages are skipped.
    pub max_body: u64,
    /// The User-Agent header.
    pub user_agent: String,
    /// Headers sent with every request (`headers` in the spec, `--header`).
    pub headers: Headers,
    /// The proxy for each URL (`--proxy`, HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
    pub proxies: Proxies,
}

/// What one request got back.
#[derive(Debug)]
pub enum Reply {
    /// A 2xx page of a kind the spider reads, decoded to text.
    Page(Page),
    /// A 3xx with a usable `Location`, resolved against the request URL.
    Redirect(Url),
    /// Any other status; `retry_after` from the header, if given in seconds.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
    },
}

/// Why a page yielded nothing. `name` renders it as its stats key, in one
/// place; the variant says whether it is an error or a skip by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request or a read timed out.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused or failed.
    Connect,
    /// The connection broke mid-exchange.
    Io,
    /// Any other transport failure.
    HttpError,
    /// A status that is not 2xx or a redirect (after retries, if retryable).
    Http(u16),
    /// Redirects went round in a circle or past the limit.
    RedirectLoop,
    /// Skip: not a kind the spider reads (HTML, JSON, XML, gzip, text), or bad gzip.
    NotHtml,
    /// Skip: larger than `--max-body`.
    BodyTooLarge,
    /// Skip: a redirect left the allowed domains.
    OffsiteRedirect,
    /// Skip: robots.txt disallows it.
    RobotsForbidden,
    /// Not fetched: the run is stopping (the page goes back to the frontier).
    Shutdown,
}

impl Reason {
    /// The stats key (`timeout`, `http_404`, `not_html`, ...).
    pub fn name(self) -> String {
        let fixed = match self {
            Reason::Http(code) => return format!("http_{code}"),
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Io => "io",
            Reason::HttpError => "http_error",
            Reason::RedirectLoop => "redirect_loop",
            Reason::NotHtml => "not_html",
            Reason::BodyTooLarge => "body_too_large",
            Reason::OffsiteRedirect => "offsite_redirect",
            Reason::RobotsForbidden => "robots_forbidden",
            Reason::Shutdown => "shutdown",
        };
        fixed.to_string()
    }

    /// Skipped by policy (not an error, does not count toward `--fail-on-errors`).
    pub fn is_skip(self) -> bool {
        matches!(
            self,
            Reason::NotHtml
                | Reason::BodyTooLarge
                | Reason::OffsiteRedirect
                | Reason::RobotsForbidden
                | Reason::Shutdown
        )
    }

    /// A transport failure worth another attempt.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Timeout | Reason::Connect | Reason::Io | Reason::HttpError
        )
    }
}

/// Why a request yielded nothing, with detail for the log.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub reason: Reason,
    /// Human detail for the log.
    pub detail: String,
}

impl Failure {
    /// A failure (or skip, by the reason) with its detail.
    pub fn new(reason: Reason, detail: String) -> Failure {
        Failure { reason, detail }
    }
}

/// The largest body buffer allocated up front from a Content-Length header.
const PRESIZE_MAX: u64 = 16 << 20;

/// Sends one GET for `url` and classifies the answer.
pub fn request(
    session: &Session,
    url: &Url,
    max_body: u64,
    accept: Accept,
) -> Result<Reply, Failure> {
    let mut resp = session.get(url).call().map_err(transport)?;
    let code = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if (300..400).contains(&code) {
        if let Some(next) = header("location").and_then(|l| url.join(&l).ok()) {
            return Ok(Reply::Redirect(next));
        }
    }
    if !(200..300).contains(&code) {
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Ok(Reply::Status { code, retry_after });
    }
    let ctype = header("content-type").unwrap_or_else(|| "text/html".into());
    let lower = ctype.to_ascii_lowercase();
    let Some(format) = page::format(&lower, url, accept) else {
        return Err(Failure::new(
            Reason::NotHtml,
            format!("content-type {ctype}"),
        ));
    };
    let length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = length.filter(|len| *len > max_body) {
        return Err(Failure::new(
            Reason::BodyTooLarge,
            format!("{len} bytes (over --max-body {max_body})"),
        ));
    }
    // Sized from Content-Length (+1 so read_to_end's final probe does not
    // grow it), so a page is read into one buffer with no regrowth copies.
    // The header is the server's word: past 16 MiB the buffer grows as
    // bytes actually arrive, so a lying header cannot allocate for it.
    let hint = length.map_or(0, |n| n.min(PRESIZE_MAX).saturating_add(1));
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    resp.body_mut()
        .with_config()
        .limit(max_body)
        .reader()
        .read_to_end(&mut bytes)
        .map_err(|e| transport(ureq::Error::from(e)))?;
    if format.gzip || format.kind == Kind::Xml {
        // `.xml.gz` sitemaps come as gzip, or as XML that is still gzip.
        let bytes = page::gunzip(bytes, max_body)?;
        let charset = if format.gzip { "" } else { &lower };
        let body = decode(&bytes, charset, Kind::Xml);
        let xml = body.trim_start().starts_with('<');
        let kind = if xml { Kind::Xml } else { Kind::Text };
        return Ok(Reply::Page(Page { body, kind }));
    }
    let body = decode_owned(bytes, &lower, format.kind);
    Ok(Reply::Page(Page {
        body,
        kind: format.kind,
    }))
}

/// Decodes by the Content-Type charset, else (HTML only) `<meta charset>`,
/// else UTF-8.
pub fn decode(bytes: &[u8], content_type: &str, kind: Kind) -> String {
    let meta = || (kind == Kind::Html).then(|| meta_charset(bytes)).flatten();
    let label = charset_param(content_type).or_else(meta);
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_with_bom_removal(bytes).0.into_owned()
}

/// `decode`, keeping the buffer when it already is the UTF-8 text (the
/// usual case), instead of copying it.
fn decode_owned(bytes: Vec<u8>, content_type: &str, kind: Kind) -> String {
    let utf8 = |l: &str| encoding_rs::Encoding::for_label(l.as_bytes()) == Some(encoding_rs::UTF_8);
    let label = charset_param(content_type);
    let is_utf8 = match &label {
        Some(l) => utf8(l),
        None => kind != Kind::Html || meta_charset(&bytes).is_none_or(|l| utf8(&l)),
    };
    if is_utf8 && !bytes.starts_with(b"\xEF\xBB\xBF") {
        return String::from_utf8(bytes)
            .unwrap_or_else(|e| decode(e.as_bytes(), content_type, kind));
    }
    decode(&bytes, content_type, kind)
}

fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == "charset").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `<meta charset="x">` or `<meta http-equiv content="...; charset=x">` in the first 1 KiB.
fn meta_charset(bytes: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let rest = head[at..].trim_start_matches(['"', '\'']);
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))?;
    Some(rest[..end].to_string()).filter(|s| !s.is_empty())
}

fn transport(e: ureq::Error) -> Failure {
    let reason = match &e {
        ureq::Error::Timeout(_) => Reason::Timeout,
        ureq::Error::HostNotFound => Reason::Dns,
        ureq::Error::ConnectionFailed => Reason::Connect,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            Reason::Connect
        }
        // The system resolver's failure arrives as a plain I/O error.
        ureq::Error::Io(io) if io.to_string().contains("failed to lookup address") => Reason::Dns,
        ureq::Error::Io(_) => Reason::Io,
        ureq::Error::BodyExceedsLimit(_) => Reason::BodyTooLarge,
        _ => Reason::HttpError,
    };
    Failure::new(reason, e.to_string())
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_failed_lookup_is_dns_not_io() {
        let lookup = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(transport(ureq::Error::Io(lookup)).reason, Reason::Dns);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(transport(ureq::Error::Io(reset)).reason, Reason::Io);
    }

    use super::*;

    #[test]
    fn decodes_by_header_then_meta_then_utf8() {
        let latin1 = b"<p>caf\xe9</p>";
        assert_eq!(
            decode(latin1, "text/html; charset=ISO-8859-1", Kind::Html),
            "<p>café</p>"
        );
        let meta = b"<meta charset=\"windows-1252\"><p>\x93hi\x94</p>";
        assert_eq!(
            decode(meta, "text/html", Kind::Html),
            "<meta charset=\"windows-1252\"><p>“hi”</p>"
        );
        let equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\xe9";
        assert!(decode(equiv, "text/html", Kind::Html).ends_with('é'));
        assert_eq!(decode("ünï".as_bytes(), "text/html", Kind::Html), "ünï");
        // A JSON body saying "charset=" is not a meta tag.
        let json = b"{\"a\":\"charset=latin1 \xc3\xa9\"}";
        assert_eq!(
            decode(json, "application/json", Kind::Json),
            "{\"a\":\"charset=latin1 é\"}"
        );
    }

    #[test]
    fn decoding_in_place_matches_decode() {
        let cases: [(&[u8], &str, Kind); 8] = [
            (
                b"<p>caf\xe9</p>",
                "text/html; charset=ISO-8859-1",
                Kind::Html,
            ),
            (
                b"<meta charset=\"windows-1252\"><p>\x93hi\x94</p>",
                "text/html",
                Kind::Html,
            ),
            ("<p>ünï</p>".as_bytes(), "text/html", Kind::Html),
            (
                "<p>ünï</p>".as_bytes(),
                "text/html; charset=utf-8",
                Kind::Html,
            ),
            (b"\xEF\xBB\xBF<p>bom</p>", "text/html", Kind::Html),
            (b"<p>bad \xff utf-8</p>", "text/html", Kind::Html),
            (b"\xFF\xFE<\x00p\x00>\x00", "text/html", Kind::Html),
            (
                b"{\"a\":\"charset=latin1 \xc3\xa9\"}",
                "application/json",
                Kind::Json,
            ),
        ];
        for (bytes, ct, kind) in cases {
            assert_eq!(
                decode_owned(bytes.to_vec(), ct, kind),
                decode(bytes, ct, kind)
            );
        }
    }
}
