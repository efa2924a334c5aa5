//! The built-in demo sites behind `qpipe demo-site`: a deterministic
//! quotes.toscrape.com look-alike with the real app's variants, and a small
//! books.toscrape.com look-alike. Pages are rendered on request, so start-up
//! costs nothing whatever `--pages` is. No sockets here: `cmd::demo_site`
//! serves what these modules answer.
//!
//! - `data`: the quotes, authors and tags, and the lists that page through them.
//! - `quotes`: the quotes site's routes; `pages`: its default HTML pages;
//!   `padding`: the `--page-kb` markup that weighs list pages down.
//! - `api`: `/api/quotes` (JSON) and `/js/` (JSON in a script).
//! - `tableful`: `/tableful/`; `login`: `/login`, `/logout` and sessions.
//! - `search`: the ViewState form at `/search.aspx` and `/filter.aspx`.
//! - `sitemap`: `robots.txt` and the XML sitemaps; `books`: the books site.

mod api;
mod books;
mod data;
mod login;
mod padding;
mod pages;
mod quotes;
mod search;
mod sitemap;
mod tableful;

pub use books::Books;
pub use quotes::Quotes;

/// A request as the demo sites see it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The request target, query string included.
    pub path: &'a str,
    /// The `Host` header, if any.
    pub host: Option<&'a str>,
    /// The `Cookie` header, if any.
    pub cookie: Option<&'a str>,
    /// The body (form-urlencoded for the POSTs the sites take).
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// A plain GET of `path` with no headers, as `--export` and tests make.
    pub fn get(path: &'a str) -> Request<'a> {
        Request {
            method: "GET",
            path,
            host: None,
            cookie: None,
            body: b"",
        }
    }

    /// The path without its query string or fragment.
    pub fn route(&self) -> &'a str {
        self.path.split(['?', '#']).next().unwrap_or("/")
    }

    /// The query string's `name` parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let q = self.path.split('#').next()?.split_once('?')?.1;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The `Host` header if it is a plausible `host[:port]`, else `fallback`,
    /// so a hostile header cannot inject markup into absolute URLs.
    pub fn host_or<'b>(&self, fallback: &'b str) -> &'b str
    where
        'a: 'b,
    {
        match self.host {
            Some(h)
                if !h.is_empty()
                    && h.len() <= 255
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)) =>
            {
                h
            }
            _ => fallback,
        }
    }
}

/// An HTTP response: status, content type, extra headers and body.
#[derive(Debug)]
pub struct Reply {
    /// 200, 302, 400, 404, 405 or 413.
    pub status: u16,
    /// `text/html; charset=utf-8`, `application/json`, ...
    pub content_type: &'static str,
    /// Extra header lines (`Set-Cookie`, `Location`).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A 200 with this content type.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A 200 HTML page.
    pub fn html(body: String) -> Reply {
        Reply::ok("text/html; charset=utf-8", body)
    }

    /// A plain-text reply with this status.
    pub fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            ..Reply::ok("text/plain", body)
        }
    }

    /// A 302 to `location`.
    pub fn redirect(location: &str) -> Reply {
        Reply::text(302, "").header("Location", location.to_string())
    }

    /// The same reply with one more header line.
    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }
}

/// A demo site: answers requests and lists its pages for `--export`.
pub trait Site: Sync {
    /// Answers one request.
    fn answer(&self, req: &Request) -> Reply;
    /// Every path the site serves with 200 to a plain GET, for `--export`.
    fn paths(&self) -> Box<dyn Iterator<Item = String> + '_>;
    /// One line for the log: what is served.
    fn describe(&self) -> String;
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_split_route_query_and_host() {
        let req = Request {
            host: Some("example.org:8080"),
            ..Request::get("/api/quotes?page=2&tag=deep%20thoughts#x")
        };
        assert_eq!(req.route(), "/api/quotes");
        assert_eq!(req.query("page").as_deref(), Some("2"));
        assert_eq!(req.query("tag").as_deref(), Some("deep thoughts"));
        assert_eq!(req.query("nope"), None);
        assert_eq!(req.host_or("fallback"), "example.org:8080");
        let evil = Request {
            host: Some("x\"><script>"),
            ..Request::get("/")
        };
        assert_eq!(evil.host_or("127.0.0.1:8000"), "127.0.0.1:8000");
    }

    #[test]
    fn hostile_requests_get_an_answer_not_a_panic() {
        let sites: [Box<dyn Site>; 2] = [Box::new(Quotes::new(10_000_000, "h")), Box::new(Books)];
        let paths = [
            "",
            "/",
            "//",
            "/%ff",
            "/tag//page/",
            "/page/-1/",
            "/page/18446744073709551616/",
            "/api/quotes?page=%ff",
            "/api/quotes?page=18446744073709551615&tag=love",
            "/api/quotes?tag=%00%ff",
            "/js/page/18446744073709551615/",
            "/sitemap-pages-.xml",
            "/sitemap-pages-18446744073709551615.xml",
            "/tableful/tag/love/page/0/",
            "/catalogue/_/index.html",
            "/catalogue/x_1001/index.html",
            "/catalogue/page-.html",
            "/catalogue/x_0/index.html",
            "/author/../../etc/passwd/",
        ];
        for site in &sites {
            for path in paths {
                for method in ["GET", "POST", "DELETE"] {
                    let body = b"csrf_token=%%%&username=\xff&__VIEWSTATE=!!!&author=%";
                    let req = Request {
                        method,
                        cookie: Some("session=;session=zz; =; ;"),
                        host: Some("\u{0}"),
                        body,
                        ..Request::get(path)
                    };
                    let status = site.answer(&req).status;
                    assert!(
                        [200, 302, 400, 404, 405].contains(&status),
                        "{method} {path}: {status}"
                    );
                }
            }
        }
    }
}
