//! The `login` step: before the crawl, GET the login page, fill its form
//! (keeping every other field, hidden CSRF tokens included), submit it,
//! follow the redirects, and fail if the reply still shows the form or an
//! error. The session's jar keeps the cookies for the crawl.
//!
//! ```json
//! "login": {"url": "https://quotes.toscrape.com/login", "form": "form",
//!           "fields": {"username": "qpipe", "password": {"env": "QUOTES_PASSWORD"}},
//!           "error": "p.error"}
//! ```
//! No value from `fields` is ever printed or logged.

mod key;

pub use key::{Css, Login, LoginStep};

use super::form::{self, Form};
use super::Session;
use crate::crawl::crawler::MAX_REDIRECTS;
use crate::crawl::fetch;
use crate::error::Error;
use crate::run::log;
use scraper::Html;
use std::sync::atomic::{AtomicBool, Ordering};
use url::Url;

/// Logs in with `step`; afterwards the session's jar holds the site's cookies.
/// Every failure is an `Error::Http` (exit 1) whose line shows no credential;
/// a raised `stop` ends it between requests with `Error::Stopped`.
pub fn log_in(
    session: &Session,
    step: &LoginStep,
    max_body: u64,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let login = &step.login;
    let mut secrets = step.secrets.clone();
    let fail = |msg: String, secrets: &[String]| Error::Http(hide(&msg, secrets));
    let failed = |hop: Hop, what: String, secrets: &[String]| match hop {
        Hop::Stopped => Error::Stopped("stopped during the login".into()),
        Hop::Failed(e) => fail(format!("{what}: {e}"), secrets),
    };
    let page = exchange(session, &login.url, None, max_body, stop).map_err(|h| {
        let what = format!("login: cannot load the login page {}", shown(&login.url));
        failed(h, what, &secrets)
    })?;
    let html = page.page(|code| {
        format!(
            "login: the login page {} answered HTTP {code} (check login.url)",
            shown(&page.url)
        )
    });
    let html = html.map_err(|m| fail(m, &secrets))?;
    let mut form = find(&html, &login.form, &page.url).map_err(|m| fail(m, &secrets))?;
    for name in form.fill(&step.fields) {
        log::warn(&format!(
            "login: the form has no field {name:?}; sending it anyway (check login.fields)"
        ));
    }
    let typed = form.pairs.iter().filter(|p| p.password);
    secrets.extend(typed.map(|p| p.value.clone()));
    let (target, body) = match form.post {
        true => (form.action.clone(), Some((form.encoded(), &page.url))),
        false => (form.get_url(), None),
    };
    log::debug(&format!(
        "login: submitting {} fields to {}",
        form.pairs.len(),
        shown(&target)
    ));
    let reply = exchange(session, &target, body, max_body, stop).map_err(|h| {
        let what = format!("login: submitting the form to {} failed", shown(&target));
        failed(h, what, &secrets)
    })?;
    let html = reply.page(|code| {
        format!(
            "login failed: {} answered HTTP {code} to the form",
            shown(&reply.url)
        )
    });
    let html = html.map_err(|m| fail(m, &secrets))?;
    if let Some(why) = html.as_deref().and_then(|h| refused(h, login, &reply.url)) {
        return Err(fail(why, &secrets));
    }
    log::info(&format!(
        "logged in at {} ({} cookies in the jar)",
        shown(&login.url),
        session.cookie_count()
    ));
    Ok(())
}

/// The form on the login page, or why there is none.
fn find(html: &Option<String>, css: &Css, url: &Url) -> Result<Form, String> {
    let Some(html) = html else {
        return Err(format!("login: the login page {} is not HTML", shown(url)));
    };
    let doc = parse(html);
    match form::find(&doc, &css.selector, url) {
        Ok(Some(f)) => Ok(f),
        Ok(None) => Err(format!(
            "login: nothing matches login.form {:?} on {} (check the selector against the page)",
            css.text,
            shown(url)
        )),
        Err(why) => Err(format!("login: login.form {:?}: {why}", css.text)),
    }
}

/// Why the reply to the form shows a failed login, if it does.
fn refused(html: &str, login: &Login, url: &Url) -> Option<String> {
    let doc = parse(html);
    if let Some(error) = &login.error {
        if let Some(el) = doc.select(&error.selector).next() {
            let text: Vec<&str> = el.text().flat_map(str::split_whitespace).collect();
            let text: String = text.join(" ").chars().take(200).collect();
            return Some(format!(
                "login failed: the site says {text:?} (login.error {:?} matched on {})",
                error.text,
                shown(url)
            ));
        }
    }
    doc.select(&login.form.selector).next().map(|_| {
        format!(
            "login failed: the reply {} still shows the login form (login.form {:?}); check login.fields",
            shown(url),
            login.form.text
        )
    })
}

/// Parses a page with its nesting capped, as the spider does.
fn parse(html: &str) -> Html {
    Html::parse_document(&crate::crawl::spider::nesting::cap(html, 256).html)
}

/// Where an exchange ended: the last URL, its status, and its body if HTML.
struct Reply {
    url: Url,
    code: u16,
    html: Option<String>,
}

impl Reply {
    /// The HTML (or `None` if another type) of a 2xx reply; else `status(code)`.
    fn page(&self, status: impl Fn(u16) -> String) -> Result<Option<String>, String> {
        match self.code {
            200..=299 => Ok(self.html.clone()),
            code => Err(status(code)),
        }
    }
}

/// Why an exchange ended without a reply.
enum Hop {
    /// The run is stopping.
    Stopped,
    /// A transport failure or a redirect loop, described.
    Failed(String),
}

/// One request and its redirects. `post` is a form body and the page it came
/// from; a 301, 302 or 303 turns the POST into a GET, as browsers do.
fn exchange(
    session: &Session,
    url: &Url,
    mut post: Option<(String, &Url)>,
    max_body: u64,
    stop: &AtomicBool,
) -> Result<Reply, Hop> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
        if stop.load(Ordering::Relaxed) {
            return Err(Hop::Stopped);
        }
        let result = match &post {
            Some((body, from)) => {
                let mut req = session
                    .post(&url)
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
            None => session.get(&url).call(),
        };
        let mut resp = result.map_err(|e| Hop::Failed(e.to_string()))?;
        let code = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if (300..400).contains(&code) {
            if let Some(next) = header("location").and_then(|l| url.join(&l).ok()) {
                if code != 307 && code != 308 {
                    post = None;
                }
                url = next;
                continue;
            }
        }
        let ctype = header("content-type").unwrap_or_else(|| "text/html".into());
        let lower = ctype.to_ascii_lowercase();
        let is_html = lower.starts_with("text/html") || lower.starts_with("application/xhtml");
        let html = match is_html && (200..300).contains(&code) {
            true => {
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(max_body)
                    .read_to_vec()
                    .map_err(|e| Hop::Failed(e.to_string()))?;
                Some(fetch::decode(
                    &bytes,
                    &lower,
                    crate::crawl::page::Kind::Html,
                ))
            }
            false => None,
        };
        return Ok(Reply { url, code, html });
    }
    Err(Hop::Failed(format!("more than {MAX_REDIRECTS} redirects")))
}

/// A URL as shown in messages: without its query, which for a GET form
/// holds the fields.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// `msg` with every secret replaced by `***`.
fn hide(msg: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(msg.to_string(), |m, s| m.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::key::tests::login;
    use super::*;

    #[test]
    fn refusals_quote_the_site_and_hide_secrets() {
        let l = login(
            r#"{"url":"https://x.example/login","form":"form#login","fields":{},"error":".err"}"#,
        )
        .unwrap();
        let url = Url::parse("https://x.example/login?user=bob&pw=hunter2").unwrap();
        let why = refused(
            "<p class=err>  Wrong   password\n for bob </p><form id=login></form>",
            &l,
            &url,
        )
        .unwrap();
        assert_eq!(why, "login failed: the site says \"Wrong password for bob\" (login.error \".err\" matched on https://x.example/login)");
        let why = refused("<form id=login></form>", &l, &url).unwrap();
        assert!(
            why.contains("still shows the login form") && !why.contains("hunter2"),
            "{why}"
        );
        assert_eq!(
            refused("<p>Welcome</p><form id=search></form>", &l, &url),
            None
        );
        assert_eq!(
            hide("bad hunter2!", &["hunter2".into(), String::new()]),
            "bad ***!"
        );
    }
}
