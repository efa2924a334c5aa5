//! One HTTP exchange through the session: a GET (or the login form's POST),
//! its redirects followed hop by hop, and the body read within a size limit.
//! The crawler, the login step and robots.txt all fetch through here.
//!
//! What differs between them stays theirs, passed in as closures: what one
//! hop costs (the crawler's robots check, host slot and retries; the
//! login's stop check), where a redirect may go (`Redirects::check`), what
//! going past the limit is called (`Redirects::too_many`), and how a body
//! is decoded (`crate::crawl::charset`, `crate::crawl::page`).
//!
//! The agent follows no redirects itself (`redirects` walks them, pure and
//! unit-tested), so every hop goes through the session's headers, proxy
//! choice and cookie jar.

mod redirects;

pub use redirects::{follow, Hop, Redirects};

use super::cache::{Cache, Entry, Lookup};
use super::Session;
use crate::crawl::failure::{Failure, Reason};
use std::io::Read as _;
use std::sync::Arc;
use url::Url;

/// Redirect hops followed per URL by the crawl and the login.
pub const MAX_REDIRECTS: usize = 10;

/// What a request sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// A GET.
    Get,
    /// A GET of a redirect target nobody vetted (robots.txt follows them
    /// anywhere): without the user's `Authorization` header.
    GetUnvetted,
    /// A form POST (`application/x-www-form-urlencoded`) of `body`, sent
    /// from the page `from` (its Referer and Origin).
    Form {
        /// The encoded form fields.
        body: String,
        /// The page the form is on.
        from: Url,
    },
}

impl Method {
    /// The method of the request that follows a `code` redirect: only a 307
    /// or 308 resends a form; any other turns the POST into a GET, as
    /// browsers do.
    pub fn after_redirect(self, code: u16) -> Method {
        match self {
            Method::Form { .. } if code != 307 && code != 308 => Method::Get,
            other => other,
        }
    }
}

/// What one request got back.
pub enum Answer {
    /// A 3xx with a usable `Location`, resolved against the request URL.
    Redirect {
        /// Where it leads (fragment kept).
        to: Url,
        /// The 3xx status.
        code: u16,
    },
    /// Any other answer, its body not read yet.
    Response(Response),
}

/// A response whose body is still unread.
pub struct Response {
    inner: ureq::http::Response<ureq::Body>,
    /// Where it goes in the HTTP cache once its body is read (or, if it
    /// never is, without its body when dropped).
    pending: Option<Box<Pending>>,
    /// From a cache entry stored without its body.
    bodiless: bool,
}

/// A fetched answer still to be stored in the HTTP cache.
struct Pending {
    cache: Arc<Cache>,
    verb: &'static str,
    url: Url,
    body: String,
    status: u16,
    headers: Vec<(String, String)>,
}

impl Pending {
    fn store(self, content: Option<&[u8]>) {
        self.cache.store(
            self.verb,
            &self.url,
            &self.body,
            self.status,
            self.headers,
            content,
        );
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.store(None);
        }
    }
}

impl Response {
    fn new(inner: ureq::http::Response<ureq::Body>) -> Response {
        Response {
            inner,
            pending: None,
            bodiless: false,
        }
    }

    /// The HTTP status.
    pub fn code(&self) -> u16 {
        self.inner.status().as_u16()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code())
    }

    /// The header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.inner, name)
    }

    /// Reads the body: more than `limit` bytes is a `BodyTooLarge` failure,
    /// a broken read a transport one. `capacity` presizes the buffer.
    pub fn read(mut self, limit: u64, capacity: usize) -> Result<Vec<u8>, Failure> {
        if self.bodiless {
            return Err(Failure::new(
                Reason::NotInCache,
                "the HTTP cache holds this answer without its body (the run that stored it skipped it); refill it with --http-cache-mode refresh".into(),
            ));
        }
        let pending = self.pending.take();
        let mut bytes = Vec::with_capacity(capacity);
        self.inner
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| transport(ureq::Error::from(e)))?;
        if let Some(p) = pending {
            p.store(Some(&bytes));
        }
        Ok(bytes)
    }
}

fn header<B>(resp: &ureq::http::Response<B>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Method {
    /// The method's name and body, as the HTTP cache keys them.
    pub fn cache_key(&self) -> (&'static str, &str) {
        match self {
            Method::Get | Method::GetUnvetted => ("GET", ""),
            Method::Form { body, .. } => ("POST", body),
        }
    }
}

/// Sends one request for `url` with the session's headers, proxy and
/// cookies, following no redirect, and says whether it is one. With an
/// HTTP cache, a fresh entry answers instead, and what is fetched is stored.
pub fn send(session: &Session, url: &Url, method: &Method) -> Result<Answer, Failure> {
    match cached(session, url, method) {
        Some(answer) => answer,
        None => send_live(session, url, method),
    }
}

/// The HTTP cache's answer for `url`, if it has one (in `replay`, a miss
/// is a `not_in_cache` failure); `None` when it must be fetched.
pub fn cached(session: &Session, url: &Url, method: &Method) -> Option<Result<Answer, Failure>> {
    let cache = session.cache()?;
    let (verb, body) = method.cache_key();
    match cache.lookup(verb, url, body, session.max_body()) {
        Lookup::Hit(entry) => {
            session.cookies_from_cache(url, &entry.set_cookies());
            Some(Ok(replayed(url, *entry)))
        }
        Lookup::Miss if cache.replay() => Some(Err(Failure::new(
            Reason::NotInCache,
            format!(
                "{verb} {url} is not in the HTTP cache {} (replay sends no request; fill it with --http-cache-mode use)",
                cache.config().dir.display()
            ),
        ))),
        Lookup::Miss => None,
    }
}

/// `send` without asking the cache first: the request is sent (nothing in
/// `replay`), and what it gets is stored.
pub fn send_live(session: &Session, url: &Url, method: &Method) -> Result<Answer, Failure> {
    let Some(cache) = session.cache() else {
        return fetch(session, url, method);
    };
    if cache.replay() {
        // No request in replay: the cache answers, or nothing does.
        return cached(session, url, method).unwrap_or_else(|| {
            Err(Failure::new(
                Reason::NotInCache,
                "replay sends no request".into(),
            ))
        });
    }
    cache
        .misses
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (verb, body) = method.cache_key();
    let pending = |status, headers| Pending {
        cache: Arc::clone(cache),
        verb,
        url: url.clone(),
        body: body.to_string(),
        status,
        headers,
    };
    let resp = request(session, url, method)?;
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    match answer(url, resp) {
        Answer::Redirect { to, code } => {
            // A login's redirect often carries its session cookie.
            let kept = headers.into_iter().filter(|(n, _)| n == "set-cookie");
            // Same origin: relative, so a password in the URL is never
            // written and comes back from the request URL on a hit.
            let kept_to = match url.make_relative(&to) {
                Some(rel) if url.origin() == to.origin() && url.username() == to.username() => rel,
                _ => super::cache::shown(&to).to_string(),
            };
            let location = std::iter::once(("location".to_string(), kept_to));
            pending(code, location.chain(kept).collect()).store(Some(b""));
            Ok(Answer::Redirect { to, code })
        }
        Answer::Response(mut resp) => {
            resp.pending = Some(Box::new(pending(resp.code(), headers)));
            Ok(Answer::Response(resp))
        }
    }
}

/// A cache entry as the answer it records.
fn replayed(url: &Url, entry: Entry) -> Answer {
    let status = entry.meta.status;
    if (300..400).contains(&status) {
        if let Some(to) = entry.header("location").and_then(|l| url.join(l).ok()) {
            return Answer::Redirect { to, code: status };
        }
    }
    let mut b = ureq::http::Response::builder().status(status);
    for (n, v) in &entry.meta.headers {
        b = b.header(n.as_str(), v.as_str());
    }
    if !entry.meta.unread {
        b = b.header("content-length", entry.body.len());
    }
    let bodiless = entry.meta.unread;
    let inner = b
        .body(ureq::Body::builder().data(entry.body))
        .unwrap_or_else(|_| {
            // A header the builder refuses: the body alone still answers.
            let mut r = ureq::http::Response::new(ureq::Body::builder().data(Vec::new()));
            *r.status_mut() = ureq::http::StatusCode::OK;
            r
        });
    Answer::Response(Response {
        inner,
        pending: None,
        bodiless,
    })
}

/// `send` without the cache: the request itself.
fn fetch(session: &Session, url: &Url, method: &Method) -> Result<Answer, Failure> {
    Ok(answer(url, request(session, url, method)?))
}

/// The request for `url`, sent; no redirect followed.
fn request(
    session: &Session,
    url: &Url,
    method: &Method,
) -> Result<ureq::http::Response<ureq::Body>, Failure> {
    let result = match method {
        Method::Get => session.get(url).call(),
        Method::GetUnvetted => session.get_unvetted(url).call(),
        Method::Form { body, from } => {
            let mut req = session
                .post(url)
                .header("Content-Type", "application/x-www-form-urlencoded");
            // Some CSRF checks compare these with the site's own origin.
            if !session.has_header("referer") {
                req = req.header("Referer", from.as_str());
            }
            if !session.has_header("origin") {
                req = req.header("Origin", from.origin().ascii_serialization());
            }
            req.send(body.as_str())
        }
    };
    result.map_err(transport)
}

/// A response as a redirect (a 3xx with a usable `Location`, resolved
/// against `url`) or an answer whose body is still to read.
fn answer(url: &Url, resp: ureq::http::Response<ureq::Body>) -> Answer {
    let code = resp.status().as_u16();
    if (300..400).contains(&code) {
        if let Some(to) = header(&resp, "location").and_then(|l| url.join(&l).ok()) {
            return Answer::Redirect { to, code };
        }
    }
    Answer::Response(Response::new(resp))
}

/// A transport error as a failure: its reason, and ureq's words as detail.
pub fn transport(e: ureq::Error) -> Failure {
    let reason = match &e {
        ureq::Error::Timeout(_) => Reason::Timeout,
        ureq::Error::HostNotFound => Reason::Dns,
        ureq::Error::ConnectionFailed => Reason::Connect,
        ureq::Error::Io(io) if crate::crawl::session::address::is_refusal(io) => {
            Reason::PrivateAddress
        }
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
    use super::*;

    #[test]
    fn a_same_origin_redirect_is_kept_relative_so_no_password_is_written() {
        let from = Url::parse("http://alice:s3cret@h:81/redir/a").unwrap();
        let to = from.join("/result/r?x=1").unwrap();
        let rel = from.make_relative(&to).unwrap();
        assert!(!rel.contains("s3cret"), "{rel}");
        assert_eq!(from.join(&rel).unwrap(), to);
    }

    #[test]
    fn a_failed_lookup_is_dns_not_io() {
        let lookup = std::io::Error::other(
            "failed to lookup address information: Name or service not known",
        );
        assert_eq!(transport(ureq::Error::Io(lookup)).reason, Reason::Dns);
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(transport(ureq::Error::Io(reset)).reason, Reason::Io);
        let big = transport(ureq::Error::BodyExceedsLimit(5));
        assert_eq!(big.reason, Reason::BodyTooLarge);
    }
}
