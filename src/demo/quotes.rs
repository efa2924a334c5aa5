//! The quotes site: routes every path of the quotes.toscrape.com look-alike
//! to its page, and lists them all for `--export`.
//!
//! Default pages (`/`, `/page/N/`, `/tag/T/[page/N/]`, `/author/A/`,
//! `/pages/`) plus the app's variants: `/api/quotes`, `/js/`, `/tableful/`,
//! `/login` and `/logout`, `/search.aspx` with `POST /filter.aspx`, and
//! `robots.txt` with its sitemaps.

use super::data::{self, Listing, AUTHORS, TAGS};
use super::login::Sessions;
use super::{api, pages, search, sitemap, tableful, Reply, Request, Site};

/// The quotes site with `pages` list pages (10 × `pages` unique quotes).
pub struct Quotes {
    pages: u64,
    /// Used in absolute URLs when a request has no usable `Host` (and by `--export`).
    host: String,
    top_ten: Vec<(&'static str, u64)>,
    sessions: Sessions,
    /// KiB of padding on each list page (`--page-kb`).
    page_kb: usize,
    /// Whether `paths` lists the variants too (`--export` without `--default-only`).
    variants: bool,
}

impl Quotes {
    /// A site with `pages` list pages whose sitemaps default to `host`.
    pub fn new(pages: u64, host: &str) -> Quotes {
        Quotes {
            pages,
            host: host.to_string(),
            top_ten: data::top_ten_tags(pages * data::PER_PAGE),
            sessions: Sessions::default(),
            page_kb: 0,
            variants: true,
        }
    }

    /// The same site with `page_kb` KiB of padding on each list page, and
    /// (`variants` false) only the default pages listed for `--export`.
    pub fn shaped(self, page_kb: usize, variants: bool) -> Quotes {
        Quotes {
            page_kb,
            variants,
            ..self
        }
    }

    /// Renders `path` for a logged-out GET.
    #[cfg(test)]
    pub fn render(&self, path: &str) -> Reply {
        self.answer(&Request::get(path))
    }

    fn get(&self, req: &Request) -> Option<Reply> {
        let parts: Vec<&str> = req.route().split('/').filter(|s| !s.is_empty()).collect();
        let num = |n: &str| n.parse::<u64>().ok();
        let all = Listing::all(self.pages);
        let tagged = |t: &str| Listing::tagged(self.pages, &percent_decode(t));
        let list = |l: Option<Listing>, p: Option<u64>| {
            pages::list_page(&l?, p?, self.sessions.logged_in(req), self.page_kb)
        };
        let table = |l: Option<Listing>, p: Option<u64>| tableful::page(&l?, p?, &self.top_ten);
        let host = req.host_or(&self.host);
        let xml = |body: String| Reply::ok("application/xml", body);
        let html = match parts.as_slice() {
            [] => list(Some(all), Some(1)),
            ["page", n] => list(Some(all), num(n)),
            ["tag", t] => list(tagged(t), Some(1)),
            ["tag", t, "page", n] => list(tagged(t), num(n)),
            ["author", a] => AUTHORS
                .iter()
                .find(|(name, _)| data::slug(name) == percent_decode(a))
                .map(|(name, _)| pages::author_page(name, self.sessions.logged_in(req))),
            ["pages"] => Some(pages::all_pages(self.pages)),
            ["tableful"] => table(Some(all), Some(1)),
            ["tableful", "page", n] => table(Some(all), num(n)),
            ["tableful", "tag", t] => table(tagged(t), Some(1)),
            ["tableful", "tag", t, "page", n] => table(tagged(t), num(n)),
            ["js"] => api::js_page(self.pages, 1),
            ["js", "page", n] => api::js_page(self.pages, num(n)?),
            ["api", "quotes"] => return Some(api::quotes(self.pages, &self.top_ten, req)),
            ["login"] => return Some(self.sessions.form(req)),
            ["search.aspx"] => return Some(search::form(self.pages)),
            ["logout"] => return Some(self.sessions.logout(req)),
            ["robots.txt"] => return Some(Reply::ok("text/plain", sitemap::robots(host))),
            ["sitemap.xml"] => return Some(xml(sitemap::index(host, self.pages))),
            ["sitemap-pages.xml"] => return sitemap::pages_part(host, self.pages, 1).map(xml),
            [part] if part.starts_with("sitemap-pages-") => {
                let k = num(part.strip_prefix("sitemap-pages-")?.strip_suffix(".xml")?)?;
                // Part 1 is only /sitemap-pages.xml, so each part has one URL.
                let k = Some(k).filter(|k| *k >= 2)?;
                return sitemap::pages_part(host, self.pages, k).map(xml);
            }
            ["sitemap-authors.xml.gz"] => {
                return Some(Reply::ok("application/gzip", sitemap::authors_gz(host)))
            }
            _ => None,
        };
        html.map(Reply::html)
    }
}

impl Site for Quotes {
    fn answer(&self, req: &Request) -> Reply {
        let reply = match (req.method, req.route().trim_end_matches('/')) {
            ("GET" | "HEAD", _) => self.get(req),
            ("POST", "/login") => Some(self.sessions.login(req)),
            ("POST", "/filter.aspx") => Some(search::filter(self.pages, req)),
            _ => return Reply::text(405, "method not allowed\n"),
        };
        reply.unwrap_or_else(|| Reply {
            status: 404,
            ..Reply::html(pages::not_found())
        })
    }

    fn paths(&self) -> Box<dyn Iterator<Item = String> + '_> {
        let fixed = ["/", "/pages/", "/robots.txt", "/sitemap.xml"];
        let fixed = fixed.into_iter().map(String::from);
        let sitemaps = (1..=sitemap::parts(self.pages))
            .map(sitemap::part_path)
            .chain(std::iter::once("/sitemap-authors.xml.gz".to_string()));
        let pages = (1..=self.pages).map(|p| format!("/page/{p}/"));
        let last = |t: &str| Listing::tagged(self.pages, t).map_or(1, |l| l.last);
        let tags = TAGS.iter().flat_map(move |t| {
            std::iter::once(format!("/tag/{t}/"))
                .chain((1..=last(t)).map(move |p| format!("/tag/{t}/page/{p}/")))
        });
        let authors = AUTHORS
            .iter()
            .map(|(a, _)| format!("/author/{}/", data::slug(a)));
        let tableful = std::iter::once("/tableful/".to_string())
            .chain((1..=self.pages).map(|p| format!("/tableful/page/{p}/")))
            .chain(TAGS.iter().flat_map(move |t| {
                std::iter::once(format!("/tableful/tag/{t}/"))
                    .chain((1..=last(t)).map(move |p| format!("/tableful/tag/{t}/page/{p}/")))
            }));
        let js = std::iter::once("/js/".to_string())
            .chain((1..=self.pages).map(|p| format!("/js/page/{p}/")));
        let api = std::iter::once("/api/quotes".to_string())
            .chain((1..=self.pages).map(|p| format!("/api/quotes?page={p}")))
            .chain(TAGS.iter().flat_map(move |t| {
                (1..=last(t)).map(move |p| format!("/api/quotes?page={p}&tag={t}"))
            }));
        let default = fixed
            .chain(sitemaps)
            .chain(pages)
            .chain(tags)
            .chain(authors);
        let variants = ["/login", "/search.aspx"].into_iter().map(String::from);
        let variants = variants.chain(tableful).chain(js).chain(api);
        match self.variants {
            true => Box::new(default.chain(variants)),
            false => Box::new(default),
        }
    }

    fn describe(&self) -> String {
        format!(
            "demo site with {} pages ({} quotes)",
            self.pages,
            self.pages * data::PER_PAGE
        )
    }
}

/// A path segment with its `%XX` escapes decoded (browsers and crawlers
/// send `/author/Zo%C3%AB-%C3%85ngstr%C3%B6m/` for the link `/author/Zoë-Ångström/`).
fn percent_decode(segment: &str) -> String {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(site: &Quotes, path: &str) -> u16 {
        site.render(path).status
    }

    fn body(site: &Quotes, path: &str) -> String {
        String::from_utf8(site.render(path).body).unwrap()
    }

    #[test]
    fn pages_and_404s() {
        let site = Quotes::new(3, "h");
        assert_eq!(body(&site, "/"), body(&site, "/page/1/"));
        assert!(!body(&site, "/page/3/").contains("class=\"next\""));
        assert!(body(&site, "/page/2/").contains("href=\"/page/3/\""));
        for p in [
            "/page/4/",
            "/page/0/",
            "/nope",
            "/tag/unknown/",
            "/js/page/4/",
        ] {
            assert_eq!(status(&site, p), 404, "{p}");
        }
        for p in [
            "/tableful/page/99999999999999999999/",
            "/sitemap-pages-2.xml",
            "/sitemap-pages-1.xml",
        ] {
            assert_eq!(status(&site, p), 404, "{p}");
        }
        assert_eq!(status(&site, "/author/Mark-Twain/"), 200);
        assert_eq!(
            body(&site, "/page/1/").matches("class=\"quote\"").count(),
            10
        );
        let post = Request {
            method: "POST",
            ..Request::get("/page/1/")
        };
        assert_eq!(site.answer(&post).status, 405);
    }

    #[test]
    fn tag_pages_only_show_quotes_with_that_tag() {
        let site = Quotes::new(50, "h");
        for t in TAGS {
            for p in 1..=data::MAX_TAG_PAGES {
                let b = body(&site, &format!("/tag/{t}/page/{p}/"));
                assert_eq!(b.matches("class=\"quote\"").count(), 10, "tag {t} page {p}");
                let link = format!("class=\"tag\" href=\"/tag/{t}/page/1/\"");
                assert_eq!(b.matches(&link).count(), 10);
            }
            let past = format!("/tag/{t}/page/{}/", data::MAX_TAG_PAGES + 1);
            assert_eq!(status(&site, &past), 404);
        }
    }

    #[test]
    fn every_exported_path_resolves() {
        let site = Quotes::new(7, "h");
        let map = body(&site, "/pages/");
        assert_eq!(map.matches("<li><a href=\"/page/").count(), 7);
        let paths: Vec<String> = site.paths().collect();
        let tag_pages: u64 = TAGS
            .iter()
            .map(|t| Listing::tagged(7, t).unwrap().last)
            .sum();
        // fixed 6 + 2 sitemaps + pages + (tag + tableful tag) pages + authors
        // + tableful + js + api (+ api per tag page)
        let want = 6 + 2 + 7 + 2 * (12 + tag_pages) + 16 + (1 + 7) + (1 + 7) + (1 + 7 + tag_pages);
        assert_eq!(paths.len() as u64, want, "{paths:?}");
        for p in &paths {
            assert_eq!(status(&site, p), 200, "{p}");
        }
    }

    #[test]
    fn tiny_site_has_short_tag_pages() {
        let site = Quotes::new(1, "h");
        // Quotes 0..10: tag 11 ("deep-thoughts") has no primary quotes, still one empty page.
        assert_eq!(status(&site, "/tag/deep-thoughts/"), 200);
        assert_eq!(
            body(&site, "/tag/love/").matches("class=\"quote\"").count(),
            1
        );
    }

    #[test]
    fn robots_and_sitemaps_use_the_host_header() {
        let site = Quotes::new(10, "127.0.0.1:8000");
        let req = Request {
            host: Some("demo.test:81"),
            ..Request::get("/robots.txt")
        };
        let robots = String::from_utf8(site.answer(&req).body).unwrap();
        assert_eq!(
            robots,
            "User-agent: *\nDisallow: /private/\nSitemap: http://demo.test:81/sitemap.xml\n"
        );
        assert!(body(&site, "/sitemap.xml")
            .contains("<loc>http://127.0.0.1:8000/sitemap-pages.xml</loc>"));
        let gz = site.render("/sitemap-authors.xml.gz");
        assert_eq!((gz.status, gz.content_type), (200, "application/gzip"));
    }

    #[test]
    fn logging_in_shows_goodreads_links_on_list_pages() {
        let site = Quotes::new(10, "h");
        let form = site.render("/login");
        let cookie = form.headers[0].1.split(';').next().unwrap().to_string();
        let text = String::from_utf8(form.body).unwrap();
        let at = text.find("value=\"").unwrap() + 7;
        let token = &text[at..at + 52];
        let form = format!("csrf_token={token}&username=u&password=p");
        let post = Request {
            method: "POST",
            cookie: Some(&cookie),
            body: form.as_bytes(),
            ..Request::get("/login")
        };
        assert_eq!(site.answer(&post).status, 302);
        for path in ["/", "/page/2/", "/tag/love/"] {
            let get = Request {
                cookie: Some(&cookie),
                ..Request::get(path)
            };
            let page = String::from_utf8(site.answer(&get).body).unwrap();
            let n = page.matches("\">(Goodreads page)</a>").count();
            assert_eq!(n, page.matches("class=\"quote\"").count(), "{path}");
            assert!(n > 0 && page.contains("<a href=\"/logout\">Logout</a>"));
        }
        assert!(!body(&site, "/").contains("Goodreads"));
    }

    #[test]
    fn author_paths_are_percent_decoded() {
        let site = Quotes::new(1, "127.0.0.1:8000");
        let body = site.render("/author/Zo%C3%AB-%C3%85ngstr%C3%B6m/");
        assert_eq!(body.status, 200);
        let text = String::from_utf8_lossy(&body.body);
        assert!(
            text.contains("<h3 class=\"author-title\">Zoë Ångström</h3>"),
            "{text}"
        );
        assert_eq!(site.render("/author/Zo%C3-x/").status, 404);
        assert_eq!(site.render("/tag/l%69fe/").status, 200);
        assert_eq!(
            site.render("/tag/l%69fe/").body,
            site.render("/tag/life/").body
        );
    }
}
