//! `qpipe demo-site` over real HTTP: idle keep-alive sockets give their slot
//! back within seconds, a request body never becomes the next request, and
//! the app's variants (API, JS, tableful, login, sitemaps) and the books site
//! answer as the real sites do.

mod common;

use common::{stats, Args, Redis, Site};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A demo site with `--max-connections max`, killed on drop.
/// A `qpipe demo-site` on a free port (killed on drop with its `Site`).
struct Demo {
    _site: Site,
    addr: String,
}

impl Demo {
    fn start(max: usize) -> Demo {
        Demo::start_with(&["--pages", "3", "--max-connections", &max.to_string()])
    }

    fn start_with(args: &[&str]) -> Demo {
        let site = Site::start_with(args);
        let addr = site
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Demo { _site: site, addr }
    }
}

/// Reads one response (head and Content-Length body); `None` if the server
/// closed the connection first.
fn response(conn: &mut TcpStream) -> Option<(u16, String)> {
    let (status, _, body) = full_response(conn)?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Reads one response: status, head (header lines) and body bytes.
fn full_response(conn: &mut TcpStream) -> Option<(u16, String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).expect("ASCII head");
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some((status, head, body))
}

fn connect(addr: &str) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// GET / on a new connection; `None` if it was closed unanswered.
fn fresh_get(addr: &str) -> Option<u16> {
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    response(&mut c).map(|(status, _)| status)
}

#[test]
fn idle_connections_give_their_slots_back_within_seconds() {
    let demo = Demo::start(50);
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(&demo.addr)).collect();
    // Every slot is taken: a new client is turned away for now.
    assert_eq!(fresh_get(&demo.addr), None);
    let mut served_after = None;
    while opened.elapsed() < Duration::from_secs(15) {
        if fresh_get(&demo.addr) == Some(200) {
            served_after = Some(opened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = served_after.expect("no client served within 15 s of 50 idle sockets");
    assert!(
        after >= Duration::from_secs(4) && after < Duration::from_secs(9),
        "served after {after:?}; the idle timeout is 5 s"
    );
    // The server closed the idle sockets itself (EOF, no response).
    for c in &mut idle {
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).expect("EOF, not a timeout"), 0);
    }
}

#[test]
fn a_keep_alive_post_body_is_not_read_as_the_next_request() {
    let demo = Demo::start(8);
    let mut c = connect(&demo.addr);
    // The body arrives after a pause, in its own packet.
    c.write_all(b"POST /page/1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(b"hello world").unwrap();
    let (status, _) = response(&mut c).expect("an answer to the POST");
    assert_eq!(status, 405);
    c.write_all(b"GET /page/2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, body) = response(&mut c).expect("an answer to the GET");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("<div class=\"quote\"").count(), 10, "{body}");
    // A pipelined POST with its body, then a GET, in one write.
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).map(|r| r.0), Some(405));
    assert_eq!(response(&mut c).map(|r| r.0), Some(200));
}

/// One request on its own connection: status, head and body.
fn ask(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> (u16, String, String) {
    let mut c = connect(addr);
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    let (status, head, body) =
        full_response(&mut c).unwrap_or_else(|| panic!("no answer to {req}"));
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn login_sets_a_session_cookie_and_shows_goodreads_links() {
    let demo = Demo::start_with(&["--pages", "3"]);
    let (status, head, form) = ask(&demo.addr, "GET", "/login", "", "");
    assert_eq!(status, 200, "{head}{form}");
    let set = header(&head, "Set-Cookie").expect("Set-Cookie on GET /login");
    assert!(
        set.starts_with("session=") && set.ends_with("; Path=/; HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let at = form
        .find("name=\"csrf_token\" value=\"")
        .expect("csrf_token")
        + 25;
    let token = &form[at..at + 52];
    assert!(token.bytes().all(|b| b.is_ascii_alphabetic()), "{token}");

    // A wrong token, then no username: the form again, with the app's error line.
    let with_cookie = format!("Cookie: {cookie}\r\n");
    let (status, _, page) = ask(
        &demo.addr,
        "POST",
        "/login",
        &with_cookie,
        "username=u&csrf_token=nope",
    );
    assert_eq!(status, 200);
    assert!(
        page.contains("<p class=\"error\">Error while logging in: invalid CRSF token.</p>"),
        "{page}"
    );
    let at = page.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let token = page[at..at + 52].to_string();
    let (_, _, page) = ask(
        &demo.addr,
        "POST",
        "/login",
        &with_cookie,
        &format!("csrf_token={token}"),
    );
    assert!(
        page.contains("Error while logging in: please, provide your username."),
        "{page}"
    );
    let at = page.find("name=\"csrf_token\" value=\"").unwrap() + 25;
    let token = page[at..at + 52].to_string();

    let form_body = format!("csrf_token={token}&username=qpipe&password=any");
    let (status, head, _) = ask(&demo.addr, "POST", "/login", &with_cookie, &form_body);
    assert_eq!(status, 302, "{head}");
    assert_eq!(header(&head, "Location"), Some("/"));

    let (_, _, page) = ask(&demo.addr, "GET", "/page/2/", &with_cookie, "");
    assert_eq!(page.matches("<div class=\"quote\"").count(), 10);
    assert_eq!(
        page.matches(">(Goodreads page)</a></span>").count(),
        10,
        "{page}"
    );
    assert!(page.contains(" <a href=\"http://goodreads.com/author/show/"));
    assert!(page.contains("<a href=\"/logout\">Logout</a>"));
    // Another visitor, and the same one after /logout, see the plain page.
    let (_, _, plain) = ask(&demo.addr, "GET", "/page/2/", "", "");
    assert!(!plain.contains("Goodreads") && !plain.contains("Logout"));
    let (status, _, _) = ask(&demo.addr, "GET", "/logout", &with_cookie, "");
    assert_eq!(status, 302);
    let (_, _, after) = ask(&demo.addr, "GET", "/page/2/", &with_cookie, "");
    assert_eq!(after, plain);
}

#[test]
fn api_js_tableful_and_sitemaps_answer_like_the_app() {
    let demo = Demo::start_with(&["--pages", "3"]);
    let (status, head, body) = ask(&demo.addr, "GET", "/api/quotes?page=3", "", "");
    assert_eq!(status, 200);
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["has_next"], false);
    assert_eq!(v["page"], 3);
    assert_eq!(v["quotes"].as_array().unwrap().len(), 10);
    assert_eq!(v["top_ten_tags"].as_array().unwrap().len(), 10);
    let (_, _, past) = ask(&demo.addr, "GET", "/api/quotes?page=4", "", "");
    let past: serde_json::Value = serde_json::from_str(&past).unwrap();
    assert_eq!(
        (past["has_next"].clone(), past["quotes"].clone()),
        (false.into(), serde_json::json!([]))
    );

    let (_, _, js) = ask(&demo.addr, "GET", "/js/page/2/", "", "");
    let data = js
        .split("var data = ")
        .nth(1)
        .unwrap()
        .split(";\n")
        .next()
        .unwrap();
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(data.as_array().unwrap().len(), 10);
    let (_, _, api2) = ask(&demo.addr, "GET", "/api/quotes?page=2", "", "");
    let api2: serde_json::Value = serde_json::from_str(&api2).unwrap();
    for k in 0..10 {
        assert_eq!(data[k]["text"], api2["quotes"][k]["text"]);
        assert_eq!(data[k]["author"], api2["quotes"][k]["author"]);
    }
    assert!(js.contains("<li class=\"next\"><a href=\"/js/page/3/\">"));

    let (_, _, table) = ask(&demo.addr, "GET", "/tableful/page/3/", "", "");
    assert_eq!(table.matches(" Author: ").count(), 10);
    assert!(!table.contains("Next"));

    let (_, _, robots) = ask(&demo.addr, "GET", "/robots.txt", "", "");
    assert!(
        robots.ends_with(&format!("Sitemap: http://{}/sitemap.xml\n", demo.addr)),
        "{robots}"
    );
    let (_, head, index) = ask(&demo.addr, "GET", "/sitemap.xml", "", "");
    assert_eq!(header(&head, "Content-Type"), Some("application/xml"));
    assert!(index.contains(&format!(
        "<loc>http://{}/sitemap-authors.xml.gz</loc>",
        demo.addr
    )));
    let (_, _, pages) = ask(&demo.addr, "GET", "/sitemap-pages.xml", "", "");
    assert_eq!(pages.matches("<url>").count(), 3);

    let mut c = connect(&demo.addr);
    c.write_all(b"GET /sitemap-authors.xml.gz HTTP/1.1\r\nHost: x.test\r\n\r\n")
        .unwrap();
    let (status, head, gz) = full_response(&mut c).unwrap();
    assert_eq!(status, 200);
    assert_eq!(header(&head, "Content-Type"), Some("application/gzip"));
    let mut xml = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut xml)
        .unwrap();
    assert_eq!(
        xml.matches("<url><loc>http://x.test/author/").count(),
        16,
        "{xml}"
    );
}

#[test]
fn a_body_over_64_kib_is_refused_with_413() {
    let demo = Demo::start_with(&["--pages", "1"]);
    let mut c = connect(&demo.addr);
    c.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n")
        .unwrap();
    assert_eq!(response(&mut c).map(|r| r.0), Some(413));
    let (status, _, _) = ask(&demo.addr, "POST", "/login", "", &"a".repeat(65536));
    assert_eq!(status, 200, "64 KiB exactly is taken");
}

#[test]
fn export_writes_every_variant() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site");
    let run = Args::new("demo-site")
        .opt("--pages", 2)
        .path("--export", &out)
        .run_expect(None, 0);
    for f in [
        "index.html",
        "api/quotes",
        "api/quotes?page=2",
        "api/quotes?page=1&tag=love",
        "js/page/2/index.html",
        "tableful/index.html",
        "tableful/tag/love/page/1/index.html",
        "login",
        "sitemap.xml",
        "sitemap-pages.xml",
        "sitemap-authors.xml.gz",
    ] {
        assert!(out.join(f).is_file(), "{f} not exported: {run}");
    }
    let login = std::fs::read_to_string(out.join("login")).unwrap();
    assert!(login.contains("name=\"csrf_token\"") && !login.contains("Logout"));
    let robots = std::fs::read_to_string(out.join("robots.txt")).unwrap();
    assert!(
        robots.ends_with("Sitemap: http://127.0.0.1:8000/sitemap.xml\n"),
        "{robots}"
    );
}

#[test]
fn books_site_crawls_with_the_books_spec() {
    let demo = Demo::start_with(&["--site", "books"]);
    let (status, _, home) = ask(&demo.addr, "GET", "/", "", "");
    assert_eq!(status, 200);
    assert_eq!(home.matches("<article class=\"product_pod\">").count(), 20);
    let (status, _, detail) = ask(
        &demo.addr,
        "GET",
        "/catalogue/the-silent-garden_1000/index.html",
        "",
        "",
    );
    assert_eq!(status, 200);
    assert!(
        detail.contains("<h1>The Silent Garden</h1>") && detail.contains("In stock (1 available)")
    );

    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/books.json");
    let (url, start) = (redis.url(), format!("http://{}/", demo.addr));
    let run = Args::new("produce")
        .redis(&url)
        .opt("--key", "books")
        .opt("--spec", spec)
        .start_url(&start)
        .stats_json(&stats_path)
        .run(Some(dir.path()));
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&stats_path);
    assert_eq!(s["items_pushed"], 50, "{s}");
    let items: Vec<serde_json::Value> = redis
        .lrange("books")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let titles: std::collections::BTreeSet<&str> =
        items.iter().map(|v| v["title"].as_str().unwrap()).collect();
    assert_eq!(titles.len(), 50);
    assert!(titles.contains("The Broken Garden & Other Stories of the Sea"));
    let first = items
        .iter()
        .find(|v| v["title"] == "The Silent Garden")
        .unwrap();
    assert_eq!(first["price"], "£10.00");
    assert_eq!(first["rating"], "star-rating One");
    assert_eq!(first["link"], "catalogue/the-silent-garden_1000/index.html");
}

#[test]
fn the_viewstate_form_filters_by_author_then_tag() {
    let demo = Demo::start_with(&["--pages", "10"]);
    let state_of = |html: &str| {
        let at = html
            .find("name=\"__VIEWSTATE\" value=\"")
            .expect("__VIEWSTATE")
            + 26;
        html[at..].split('"').next().unwrap().to_string()
    };
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let (status, _, form) = ask(&demo.addr, "GET", "/search.aspx", "", "");
    assert_eq!(status, 200);
    assert_eq!(
        form.matches("<option value=\"").count(),
        1 + 16 + 1,
        "{form}"
    );
    let body = format!(
        "author=Mark+Twain&tag=&__VIEWSTATE={}",
        enc(&state_of(&form))
    );
    let (status, _, tags) = ask(&demo.addr, "POST", "/filter.aspx", "", &body);
    assert_eq!(status, 200, "{tags}");
    assert!(tags.contains("<option value=\"Mark Twain\" selected>"));
    let tag = tags
        .split("name=\"tag\">")
        .nth(1)
        .and_then(|t| t.split("<option value=\"").nth(2))
        .and_then(|t| t.split('"').next())
        .expect("a tag option")
        .to_string();
    let body = format!(
        "author=Mark+Twain&tag={tag}&__VIEWSTATE={}",
        enc(&state_of(&tags))
    );
    let (_, _, results) = ask(&demo.addr, "POST", "/filter.aspx", "", &body);
    let n = results
        .matches("<span class=\"author\">Mark Twain</span>")
        .count();
    assert!(n > 0, "{results}");
    assert_eq!(
        results
            .matches(&format!("<span class=\"tag\">{tag}</span>"))
            .count(),
        n
    );
    let (status, head, _) = ask(&demo.addr, "POST", "/filter.aspx", "", "author=Mark+Twain");
    assert_eq!(
        (status, header(&head, "Location")),
        (302, Some("/search.aspx"))
    );
}

#[test]
fn page_kb_pads_list_pages_and_default_only_skips_the_variants() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, heavy) = (dir.path().join("plain"), dir.path().join("heavy"));
    for (out, extra) in [(&plain, &[][..]), (&heavy, &["--page-kb", "20"][..])] {
        let run = Args::new("demo-site")
            .opt("--pages", 2)
            .arg("--default-only")
            .path("--export", out)
            .args(extra)
            .run_expect(None, 0);
        for f in ["api", "js", "tableful", "login", "search.aspx"] {
            assert!(
                !out.join(f).exists(),
                "{f} exported with --default-only: {run}"
            );
        }
    }
    let read = |d: &std::path::Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let (p, h) = (
        read(&plain, "page/2/index.html"),
        read(&heavy, "page/2/index.html"),
    );
    assert!(h.len() >= p.len() + 20 * 1024, "{} vs {}", h.len(), p.len());
    for part in ["<nav", "<script type=\"application/json\"", "<svg"] {
        assert!(h.contains(part), "{part}");
    }
    // The same items and followed links: the padding matches no selector.
    for needle in ["class=\"quote\"", "class=\"tag\"", "class=\"next\""] {
        assert_eq!(
            h.matches(needle).count(),
            p.matches(needle).count(),
            "{needle}"
        );
    }
    assert_eq!(
        read(&plain, "author/Mark-Twain/index.html"),
        read(&heavy, "author/Mark-Twain/index.html")
    );
}
