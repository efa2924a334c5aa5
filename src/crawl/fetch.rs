//! One attempt at a crawl page: a GET through the session's exchange, its
//! answer classified as a page (of a kind the spec reads, within
//! `--max-body`, gunzipped and decoded), a redirect or another status. No
//! redirects followed and no retries: `crawler` adds those and politeness.

use crate::crawl::charset;
use crate::crawl::page::{self, Accept, Kind, Page};
use crate::crawl::session::exchange::{self, Answer, Method, Response};
use crate::crawl::session::Session;
use std::time::Duration;
use url::Url;

// The failure kinds live in `failure` (below page decoding and the session),
// and the settings in `session`; the produce side names them from here.
pub use crate::crawl::failure::{Failure, Reason};
pub use crate::crawl::session::HttpConfig;

/// What one request got back.
#[derive(Debug)]
pub enum Reply {
    /// A 2xx page of a kind the spider reads, decoded to text.
    Page(Page),
    /// A 3xx with a usable `Location`, resolved against the request URL.
    Redirect {
        /// Where it leads.
        to: Url,
        /// The 3xx status.
        code: u16,
    },
    /// Any other status; `retry_after` from the header, if given in seconds.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
    },
}

/// The largest body buffer allocated up front from a Content-Length header.
const PRESIZE_MAX: u64 = 16 << 20;

/// Sends one request (a GET, or a form's POST) for `url` and classifies
/// the answer. With an HTTP cache, the request is sent even if an entry
/// exists (ask `cached` first) and the answer is stored.
pub fn request(
    session: &Session,
    url: &Url,
    method: &Method,
    max_body: u64,
    accept: Accept,
) -> Result<Reply, Failure> {
    classify(
        exchange::send_live(session, url, method)?,
        url,
        max_body,
        accept,
    )
}

/// The HTTP cache's answer for `url`, classified, if it has one; `None`
/// when it must be fetched (no fresh entry, or one that does not decode or
/// is larger than `max_body`).
pub fn cached(
    session: &Session,
    url: &Url,
    method: &Method,
    max_body: u64,
    accept: Accept,
) -> Option<Result<Reply, Failure>> {
    let answer = exchange::cached(session, url, method)?;
    let hit = answer.is_ok();
    let result = answer.and_then(|a| classify(a, url, max_body, accept));
    // Kept without the body this run wants: not a hit after all.
    if hit && matches!(&result, Err(f) if f.reason == Reason::NotInCache) {
        if let Some(cache) = session.cache() {
            cache.hit_unusable();
        }
    }
    Some(result)
}

/// One answer as a page, a redirect or another status.
fn classify(answer: Answer, url: &Url, max_body: u64, accept: Accept) -> Result<Reply, Failure> {
    let resp = match answer {
        Answer::Redirect { to, code } => return Ok(Reply::Redirect { to, code }),
        Answer::Response(resp) => resp,
    };
    if !resp.is_success() {
        let retry_after = resp
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let code = resp.code();
        return Ok(Reply::Status { code, retry_after });
    }
    read_page(resp, url, max_body, accept).map(Reply::Page)
}

/// Reads a 2xx body as a page: its kind by Content-Type (`not_html` if the
/// spec reads no such kind), within `max_body`, gunzipped and decoded.
fn read_page(resp: Response, url: &Url, max_body: u64, accept: Accept) -> Result<Page, Failure> {
    let ctype = resp
        .header("content-type")
        .unwrap_or_else(|| "text/html".into());
    let lower = ctype.to_ascii_lowercase();
    let Some(format) = page::format(&lower, url, accept) else {
        return Err(Failure::new(
            Reason::NotHtml,
            format!("content-type {ctype}"),
        ));
    };
    let length = resp
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
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
    let bytes = resp.read(max_body, usize::try_from(hint).unwrap_or(0))?;
    decode(bytes, &lower, format, max_body)
}

/// A body of the `format` its lowercased content type gave, as a page:
/// gunzipped if it is a gzip file, decoded to text.
pub fn decode(
    bytes: Vec<u8>,
    lower: &str,
    format: page::Format,
    max_body: u64,
) -> Result<Page, Failure> {
    if format.gzip || format.kind == Kind::Xml {
        // `.xml.gz` sitemaps come as gzip, or as XML that is still gzip.
        let bytes = page::gunzip(bytes, max_body)?;
        let charset = if format.gzip { "" } else { lower };
        let body = charset::decode(&bytes, charset, Kind::Xml);
        let xml = body.trim_start().starts_with('<');
        let kind = if xml { Kind::Xml } else { Kind::Text };
        return Ok(Page { body, kind });
    }
    let body = charset::decode_owned(bytes, lower, format.kind);
    Ok(Page {
        body,
        kind: format.kind,
    })
}
