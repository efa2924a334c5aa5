//! Sessions on `produce`: login by form, cookies scoped by domain and path,
//! request headers, and proxies, against servers run by the test itself.

mod common;

use common::web::{ForwardProxy, Req, Resp, Server};
use common::{qpipe_env, Redis, Run};
use std::path::Path;

const KEY: &str = "DATA-PIPELINE-KEY";
const PASSWORD: &str = "pw-s3cret-42";

/// Runs produce with every proxy variable blanked (empty = unset), then `env`.
fn produce(redis: &Redis, args: &[&str], env: &[(&str, &str)]) -> Run {
    let url = redis.url();
    let mut all: Vec<&str> = vec!["produce", "--redis", &url];
    all.extend_from_slice(args);
    let mut vars: Vec<(&str, &str)> = [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
    ]
    .iter()
    .map(|v| (*v, ""))
    .collect();
    vars.extend_from_slice(env);
    qpipe_env(&all, None, &vars)
}

fn texts(redis: &Redis) -> Vec<String> {
    let mut v: Vec<String> = redis
        .lrange(KEY)
        .iter()
        .map(|s| {
            serde_json::from_str::<serde_json::Value>(s).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

fn write_spec(dir: &Path, spec: serde_json::Value) -> String {
    let path = dir.join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

const LOGIN_FORM: &str = r#"<form action="/login" method="post">
  <input type="hidden" name="csrf_token" value="tok-123">
  <input name="username"><input type="password" name="password">
  <input type="checkbox" name="remember" value="yes">
  <input type="submit" value="Login"></form>"#;

/// A site whose pages show quotes only to a logged-in session. The login
/// needs the pre-login cookie and the CSRF token from the form; a good login
/// sets the session cookie on its 302 reply.
fn members_site(error_page: bool) -> Server {
    Server::start(move |r: &Req| {
        let logged_in = r.cookie("session").as_deref() == Some("good");
        let quotes = |n: &[&str]| -> String {
            n.iter()
                .map(|t| format!("<div class=quote><span class=text>{t}</span></div>"))
                .collect()
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/login") => Resp::html(LOGIN_FORM).cookie("session=anon; Path=/; HttpOnly"),
            ("POST", "/login") => {
                let ok = r.cookie("session").as_deref() == Some("anon")
                    && r.form("csrf_token").as_deref() == Some("tok-123")
                    && r.form("username").as_deref() == Some("bob")
                    && r.form("password").as_deref() == Some(PASSWORD)
                    && r.form("remember").is_none()
                    && r.header("content-type") == Some("application/x-www-form-urlencoded");
                match (ok, error_page) {
                    (true, _) => Resp::redirect(302, "/").cookie("session=good; Path=/; HttpOnly"),
                    (false, true) => Resp::html(&format!(
                        "<p class=error>Invalid   password\n for bob</p>{LOGIN_FORM}"
                    )),
                    (false, false) => Resp::html(LOGIN_FORM),
                }
            }
            ("GET", "/") if logged_in => Resp::html(&format!(
                "{}<a class=next href=/page/2/>next</a>",
                quotes(&["one", "two"])
            )),
            ("GET", "/page/2/") if logged_in => Resp::html(&quotes(&["three"])),
            ("GET", "/" | "/page/2/") => {
                Resp::html("<p>Please log in</p><a class=next href=/page/2/>next</a>")
            }
            _ => Resp::not_found(),
        }
    })
}

fn members_spec(dir: &Path, site: &Server, error: bool) -> String {
    let mut login = serde_json::json!({
        "url": format!("{}/login", site.base),
        "fields": {"username": "bob", "password": {"env": "QP_TEST_PASSWORD"}}
    });
    if error {
        login["error"] = "p.error".into();
    }
    write_spec(
        dir,
        serde_json::json!({
            "start_urls": [format!("{}/", site.base)],
            "item": "div.quote",
            "fields": {"text": "span.text"},
            "follow": ["a.next"],
            "login": login
        }),
    )
}

fn assert_no_secret(run: &Run, secret: &str) {
    assert!(
        !run.stderr.contains(secret) && !run.stdout.contains(secret),
        "a secret was printed\n{run}"
    );
}

#[test]
fn login_carries_the_session_cookie_into_the_crawl() {
    let redis = Redis::start();
    let site = members_site(true);
    let dir = tempfile::tempdir().unwrap();
    let spec = members_spec(dir.path(), &site, true);
    let run = produce(
        &redis,
        &["--spec", &spec, "--threads", "1", "-v"],
        &[("QP_TEST_PASSWORD", PASSWORD)],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["one", "three", "two"], "{run}");
    assert_no_secret(&run, PASSWORD);
    let reqs = site.requests();
    let post = reqs.iter().find(|r| r.method == "POST").expect("a POST");
    assert_eq!(post.form("username").as_deref(), Some("bob"));
    assert_eq!(
        post.header("referer"),
        Some(&format!("{}/login", site.base)[..])
    );
    // Every crawl page carried the cookie set by the login's 302.
    let pages: Vec<&Req> = reqs
        .iter()
        .filter(|r| r.path == "/" || r.path == "/page/2/")
        .collect();
    assert_eq!(
        pages.len(),
        3,
        "/ after the login redirect, / from the start URL? {reqs:#?}"
    );
    assert!(
        pages
            .iter()
            .all(|r| r.cookie("session").as_deref() == Some("good")),
        "{reqs:#?}"
    );
}

#[test]
fn a_login_answered_from_the_http_cache_still_logs_the_crawl_in() {
    let redis = Redis::start();
    let site = members_site(true);
    let dir = tempfile::tempdir().unwrap();
    let spec = members_spec(dir.path(), &site, true);
    let cache = dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let env = [("QP_TEST_PASSWORD", PASSWORD)];
    // First run: the login and the first page only, cached.
    let first = ["--spec", &spec, "--threads", "1", "--http-cache", cache];
    let run = produce(&redis, &[&first[..], &["--max-pages", "1"]].concat(), &env);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["one", "two"], "{run}");
    let before = site.requests().len();
    // Second run: the login's three answers come from the cache, and the
    // page it lacks is fetched with the session cookie they set.
    redis.cmd::<i64>(&["DEL", KEY]);
    let run = produce(&redis, &first, &env);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["one", "three", "two"], "{run}");
    let reqs = site.requests();
    let new: Vec<&Req> = reqs[before..].iter().collect();
    assert_eq!(new.len(), 1, "{new:#?}");
    assert_eq!(new[0].path, "/page/2/");
    assert_eq!(new[0].cookie("session").as_deref(), Some("good"));
    // No entry holds the password; each is readable by its owner only.
    for entry in common::walk(Path::new(cache)) {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(&entry).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{entry:?}");
        let mut text = String::new();
        let file = std::fs::File::open(&entry).unwrap();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(file), &mut text).unwrap();
        assert!(!text.contains(PASSWORD), "{entry:?} holds the password");
    }
}

#[test]
fn a_refused_login_exits_1_quoting_the_site_never_the_password() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    // A login with the wrong password: exit 1, stderr holding `want(base)`.
    let refused = |error_page: bool, want: &dyn Fn(&str) -> String| {
        let site = members_site(error_page);
        let spec = members_spec(dir.path(), &site, error_page);
        let run = produce(
            &redis,
            &["--spec", &spec],
            &[("QP_TEST_PASSWORD", "wrong-pw-77")],
        );
        assert_eq!(run.code, 1, "{run}");
        assert!(run.stderr.contains(&want(&site.base)), "{run}");
        assert_no_secret(&run, "wrong-pw-77");
        (site, spec)
    };
    // By the error selector.
    refused(true, &|base| {
        format!(
        "qpipe: login failed: the site says \"Invalid password for ***\" (login.error \"p.error\" matched on {base}/login)"
    )
    });
    assert_eq!(redis.llen(KEY), 0);
    // By the form still shown.
    let (site, spec) = refused(false, &|base| {
        format!(
        "qpipe: login failed: the reply {base}/login still shows the login form (login.form \"form\"); check login.fields"
    )
    });
    assert!(
        site.requests().iter().all(|r| r.path == "/login"),
        "no crawl after a failed login"
    );
    // The variable is missing: a usage error naming it.
    let run = produce(&redis, &["--spec", &spec], &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("login.fields.password.env: the environment variable QP_TEST_PASSWORD is not set or empty"),
        "{run}"
    );
}

#[test]
fn spec_headers_and_header_flags_reach_every_request() {
    let redis = Redis::start();
    let site = members_site(true);
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        serde_json::json!({
            "start_urls": [format!("{}/", site.base)],
            "item": "div.quote", "fields": {"text": "span.text"}, "follow": ["a.next"],
            "headers": {"Accept-Language": "fr", "X-Spec": "from-spec", "User-Agent": "spec-agent/1"}
        }),
    );
    let run = produce(
        &redis,
        &[
            "--spec",
            &spec,
            "--header",
            "x-spec: from-cli",
            "--header",
            "X-Token:  t0k3n-secret ",
            "--header",
            "Cookie: session=good",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        texts(&redis),
        ["one", "three", "two"],
        "the Cookie header went into the jar\n{run}"
    );
    let reqs = site.requests();
    assert_eq!(reqs.len(), 3, "robots.txt, /, /page/2/: {reqs:#?}");
    for r in &reqs {
        assert_eq!(r.header("accept-language"), Some("fr"), "{r:?}");
        assert_eq!(r.header("x-spec"), Some("from-cli"), "{r:?}");
        assert_eq!(r.header("x-token"), Some("t0k3n-secret"), "{r:?}");
        assert_eq!(r.header("user-agent"), Some("spec-agent/1"), "{r:?}");
        assert_eq!(r.cookies(), ["session=good"], "one Cookie header: {r:?}");
    }
    // A bad header is a usage error that names the flag, never the value.
    let run = produce(&redis, &["--header", "X-Token t0k3n-secret"], &[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(run.stderr.contains("invalid --header: no colon"), "{run}");
    assert_no_secret(&run, "t0k3n-secret");
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"item":"p","fields":{"a":"b"},"headers":{"X-Token":"a\nt0k3n-secret"}}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    let run = produce(&redis, &["--spec", bad.to_str().unwrap()], &[]);
    assert_eq!(run.code, 1, "a spec error, as for every key\n{run}");
    assert!(
        run.stderr
            .contains("headers.X-Token: the value has a line break"),
        "{run}"
    );
    assert_no_secret(&run, "t0k3n-secret");
}

/// Hosts that exist only behind the test's proxy: cookies set by one must
/// reach only the hosts and paths their Domain and Path allow.
#[test]
fn cookies_are_scoped_by_domain_and_path() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let site = Server::start(|r: &Req| {
        match (r.host(), r.path.as_str()) {
        ("www.shop.test", "/") => Resp::html(
            r#"<a href="http://other.test/">o</a> <a href="/redir">r</a> <a href="http://api.shop.test/">a</a>
               <a href="/account/orders">ao</a> <a href="/other">x</a>"#,
        )
        .cookie("host=1")
        .cookie("wide=1; Domain=shop.test")
        .cookie("deep=1; Path=/account"),
        ("other.test", "/") => Resp::html("<p>other</p>")
            .cookie("evil=1; Domain=shop.test")
            .cookie("mine=1"),
        ("www.shop.test", "/redir") => Resp::redirect(302, "/after").cookie("hop=1"),
        (_, _) => Resp::html("<p>page</p>"),
    }
    });
    let proxy = ForwardProxy::start(site.port);
    let run = produce(
        &redis,
        &[
            "--start-url",
            "http://www.shop.test/",
            "--proxy",
            &proxy.url,
            "--threads",
            "1",
            "--ignore-robots",
            "--spec",
            &write_spec(
                dir.path(),
                serde_json::json!({"item": "p", "fields": {"text": "p"}, "follow": ["a"],
                                   "allowed_domains": ["shop.test", "other.test"]}),
            ),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    let sent = |host: &str, path: &str| -> Vec<String> {
        let reqs = site.requests();
        let r = reqs.iter().find(|r| r.host() == host && r.path == path);
        let mut c = r
            .unwrap_or_else(|| panic!("no request for {host}{path}: {reqs:#?}"))
            .cookies();
        c.sort();
        c
    };
    assert_eq!(sent("www.shop.test", "/"), Vec::<String>::new());
    assert_eq!(sent("other.test", "/"), Vec::<String>::new());
    assert_eq!(
        sent("www.shop.test", "/after"),
        ["hop=1", "host=1", "wide=1"],
        "set on a 302"
    );
    assert_eq!(sent("api.shop.test", "/"), ["wide=1"]);
    assert_eq!(
        sent("www.shop.test", "/account/orders"),
        ["deep=1", "hop=1", "host=1", "wide=1"]
    );
    assert_eq!(
        sent("www.shop.test", "/other"),
        ["hop=1", "host=1", "wide=1"]
    );
    assert_eq!(site.requests().len(), 7, "{:#?}", site.requests());
    assert_eq!(proxy.seen(), 7);
}

/// A crawl of a host name that only the proxy can reach.
fn proxied_crawl(redis: &Redis, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut all = vec![
        "--start-url",
        "http://quotes.proxied.test/",
        "--ignore-robots",
        "--spec",
    ];
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec(
        dir.path(),
        serde_json::json!({"item": "div.quote", "fields": {"text": "span.text"}, "follow": ["a.next"]}),
    );
    all.push(&spec);
    all.extend_from_slice(args);
    produce(redis, &all, env)
}

fn open_site() -> Server {
    Server::start(|r: &Req| match r.path.as_str() {
        "/" => Resp::html(
            "<div class=quote><span class=text>a</span></div><a class=next href=/2>n</a>",
        ),
        "/2" => Resp::html("<div class=quote><span class=text>b</span></div>"),
        _ => Resp::not_found(),
    })
}

#[test]
fn proxy_flag_and_http_proxy_route_every_request() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let site = open_site();
    // --proxy, with credentials that are sent but never printed.
    let proxy = ForwardProxy::start(site.port);
    let with_auth = proxy.url.replace("http://", "http://qp:px-s3cret@");
    let run = proxied_crawl(
        &redis,
        &["--proxy", &with_auth, "--stats-json", "-"],
        &[("HTTP_PROXY", "http://127.0.0.1:9")],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["a", "b"], "{run}");
    assert_eq!(proxy.seen(), 2);
    assert_eq!(
        *proxy.connects.lock().unwrap(),
        ["quotes.proxied.test:80", "quotes.proxied.test:80"]
    );
    assert_eq!(*proxy.auth.lock().unwrap(), ["Basic cXA6cHgtczNjcmV0"; 2]);
    assert_no_secret(&run, "px-s3cret");
    // HTTP_PROXY for http:// URLs; HTTPS_PROXY (a dead port) is not used for them.
    redis.cmd::<i64>(&["DEL", KEY]);
    let proxy = ForwardProxy::start(site.port);
    let run = proxied_crawl(
        &redis,
        &[],
        &[
            ("HTTP_PROXY", &proxy.url),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["a", "b"], "{run}");
    assert_eq!(proxy.seen(), 2);
    // NO_PROXY sends a listed host direct, here as a CIDR range.
    redis.cmd::<i64>(&["DEL", KEY]);
    let proxy = ForwardProxy::start(site.port);
    let start = format!("{}/", site.base);
    let run = produce(
        &redis,
        &[
            "--start-url",
            &start,
            "--ignore-robots",
            "--spec",
            &write_spec(
                dir.path(),
                serde_json::json!({"item": "div.quote", "fields": {"text": "span.text"}, "follow": ["a.next"]}),
            ),
        ],
        &[
            ("http_proxy", &proxy.url),
            ("NO_PROXY", "example.com, 127.0.0.0/8"),
        ],
    );
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(texts(&redis), ["a", "b"], "{run}");
    assert_eq!(proxy.seen(), 0);
    // A bad proxy is a usage error naming its source, password hidden.
    let run = proxied_crawl(
        &redis,
        &[],
        &[("HTTP_PROXY", "socks5://qp:px-s3cret@127.0.0.1:1")],
    );
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains(
            "invalid HTTP_PROXY \"socks5://***:***@127.0.0.1:1\": socks5 proxies are not supported"
        ),
        "{run}"
    );
    assert_no_secret(&run, "px-s3cret");
}

/// A site that echoes what the login sent it: the field values and a header.
#[test]
fn a_refused_login_masks_every_filled_value_and_header_the_site_echoes() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let site = Server::start(|r: &Req| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/login") => {
            Resp::html(r#"<form method=post><input name=user><input name=pass></form>"#)
        }
        ("POST", "/login") => Resp::html(&format!(
            "<p class=error>Wrong password {} for {}. Also header: {}</p>",
            r.form("pass").unwrap_or_default(),
            r.form("user").unwrap_or_default(),
            r.header("x-token").unwrap_or_default()
        )),
        _ => Resp::not_found(),
    });
    let spec = write_spec(
        dir.path(),
        serde_json::json!({
            "start_urls": [format!("{}/", site.base)],
            "item": "p", "fields": {"text": "p"},
            "headers": {"X-Token": "HDRSECRET"},
            "login": {"url": format!("{}/login", site.base), "error": "p.error",
                      "fields": {"user": "bob", "pass": "LITERALPW"}}
        }),
    );
    let run = produce(&redis, &["--spec", &spec, "-v"], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains(&format!(
            "qpipe: login failed: the site says \"Wrong password *** for ***. Also header: ***\" (login.error \"p.error\" matched on {}/login)",
            site.base
        )),
        "{run}"
    );
    assert_no_secret(&run, "LITERALPW");
    assert_no_secret(&run, "HDRSECRET");
}

/// The form, or a 307 after it, names another host: the credentials are not sent.
#[test]
fn a_login_form_posting_to_another_host_is_refused() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let site = Server::start(|r: &Req| {
        let port = r
            .header("host")
            .unwrap_or("")
            .rsplit(':')
            .next()
            .unwrap_or("");
        match (r.method.as_str(), r.path.as_str()) {
            // "localhost" is this very server under another name.
            ("GET", "/login") => Resp::html(&format!(
                r#"<form method=post action="http://localhost:{port}/steal"><input name=user></form>"#
            )),
            ("GET", "/login2") => {
                Resp::html(r#"<form method=post action="/hop"><input name=user></form>"#)
            }
            ("POST", "/hop") => Resp::redirect(307, &format!("http://localhost:{port}/steal")),
            _ => Resp::html("<p>x</p>"),
        }
    });
    let login_spec = |path: &str, extra: serde_json::Value| {
        let mut spec = serde_json::json!({
            "start_urls": [format!("{}/", site.base)],
            "item": "p", "fields": {"text": "p"},
            "login": {"url": format!("{}{path}", site.base), "fields": {"user": "bob"}}
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        write_spec(dir.path(), spec)
    };
    let run = produce(
        &redis,
        &["--spec", &login_spec("/login", serde_json::json!({}))],
        &[],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.lines().count() == 1 && run.stderr.starts_with(
            "qpipe: login: refusing to send the credentials to localhost: it is neither the login page's host 127.0.0.1 nor in the spec's allowed_domains (if localhost is the site's own, add it to allowed_domains"
        ),
        "{run}"
    );
    // Allowed when the spec says the host is the site's own.
    let allowed = serde_json::json!({"allowed_domains": ["127.0.0.1", "localhost"]});
    let run = produce(&redis, &["--spec", &login_spec("/login", allowed)], &[]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(
        site.requests()
            .iter()
            .filter(|r| r.path == "/steal")
            .count(),
        1
    );
    // A 307 would resend the body to the other host.
    let run = produce(
        &redis,
        &["--spec", &login_spec("/login2", serde_json::json!({}))],
        &[],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("refusing to send the credentials to localhost"),
        "{run}"
    );
    // --origin: the spec's production host is "localhost", the mirror is
    // 127.0.0.1, and the mirror's form names production.
    let prod = site.base.replace("127.0.0.1", "localhost");
    let spec = write_spec(
        dir.path(),
        serde_json::json!({
            "start_urls": [format!("{prod}/")], "allowed_domains": ["localhost"],
            "item": "p", "fields": {"text": "p"},
            "login": {"url": format!("{prod}/login"), "fields": {"user": "bob"}}
        }),
    );
    let run = produce(&redis, &["--spec", &spec, "--origin", &site.base], &[]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr
            .contains("refusing to send the credentials to localhost"),
        "{run}"
    );
    assert_eq!(
        site.requests()
            .iter()
            .filter(|r| r.path == "/steal")
            .count(),
        1,
        "only the allowed run posted: {:#?}",
        site.requests()
    );
}

/// Every page sets 50 new cookies of ~110 bytes; the server answers 431 to a
/// Cookie header over 8 KiB, as nginx and Apache do. The jar stays within
/// browsers' limits, so no page is lost; the user's own cookie is never evicted.
#[test]
fn a_site_setting_cookies_on_every_page_never_gets_an_oversized_header() {
    const PAGES: usize = 12;
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let site = Server::start(|r: &Req| {
        let header_len: usize = r
            .headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .map(|(_, v)| v.len())
            .sum();
        if header_len > 8190 {
            return Resp {
                code: 431,
                headers: Vec::new(),
                body: "Request Header Fields Too Large".into(),
            };
        }
        let Some(n) = r
            .path
            .strip_prefix("/p/")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            return Resp::not_found();
        };
        let next = match n < PAGES {
            true => format!("<a class=next href=/p/{}>next</a>", n + 1),
            false => String::new(),
        };
        let mut resp = Resp::html(&format!(
            "<div class=quote><span class=text>q{n}</span></div>{next}"
        ));
        for i in 0..50 {
            resp = resp.cookie(&format!("t{n}_{i}={}; Path=/", "v".repeat(100)));
        }
        resp
    });
    let start = format!("{}/p/1", site.base);
    let run = produce(
        &redis,
        &[
            "--start-url",
            &start,
            "--threads",
            "1",
            "--ignore-robots",
            "--header",
            "Cookie: keep=me",
            "--spec",
            &write_spec(
                dir.path(),
                serde_json::json!({"item": "div.quote", "fields": {"text": "span.text"}, "follow": ["a.next"]}),
            ),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run}");
    let mut want: Vec<String> = (1..=PAGES).map(|n| format!("q{n}")).collect();
    want.sort();
    assert_eq!(texts(&redis), want, "{run}");
    let reqs = site.requests();
    assert_eq!(reqs.len(), PAGES, "{reqs:#?}");
    for r in &reqs {
        let len: usize = r.cookies().iter().map(|c| c.len() + 2).sum();
        assert!(
            len <= 6 * 1024 + 2,
            "{} carried {len} bytes of cookies",
            r.path
        );
        assert_eq!(r.cookie("keep").as_deref(), Some("me"), "{}", r.path);
    }
    // The newest cookies are the ones kept.
    let last = reqs.last().unwrap();
    assert!(
        last.cookie(&format!("t{}_49", PAGES - 1)).is_some(),
        "{:?}",
        last.cookies()
    );
    assert!(last.cookie("t1_0").is_none(), "{:?}", last.cookies());
}
