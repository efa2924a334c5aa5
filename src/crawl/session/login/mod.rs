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
//! No value from `fields` or the headers is ever printed or logged, and the
//! form goes only to the login page's host or the spec's allowed domains.

mod guard;
mod key;

pub use key::{Css, Login, LoginStep};

use super::exchange::{self, Answer, Method, Redirects, MAX_REDIRECTS};
use super::form::{self, Form};
use super::Session;
use crate::crawl::charset;
use crate::crawl::failure::Failure;
use crate::crawl::page::Kind;
use crate::error::Error;
use crate::run::log;
use guard::Secrets;
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
    // A site may echo anything it was sent: every filled value and header.
    let mut secrets = Secrets::default();
    secrets.extend(step.fields.iter().map(|(_, v)| v.as_str()));
    secrets.extend(session.secrets().iter().map(String::as_str));
    let fail = |msg: String, secrets: &Secrets| Error::Http(secrets.hide(&msg));
    let failed = |hop: Ended, what: String, secrets: &Secrets| match hop {
        Ended::Stopped => Error::Stopped("stopped during the login".into()),
        Ended::Failed(e) => fail(format!("{what}: {e}"), secrets),
    };
    let anywhere = |_: &Url| Ok(());
    let page = exchange(session, &login.url, Method::Get, &anywhere, max_body, stop);
    let page = page.map_err(|h| {
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
    secrets.extend(typed.map(|p| p.value.as_str()));
    let trusted = |to: &Url| guard::vet(to, &login.url, &page.url, &step.allowed_domains);
    trusted(&form.action).map_err(|m| fail(m, &secrets))?;
    let (target, method) = match form.post {
        true => {
            let (body, from) = (form.encoded(), page.url.clone());
            (form.action.clone(), Method::Form { body, from })
        }
        false => (form.get_url(), Method::Get),
    };
    log::debug(&secrets.hide(&format!(
        "login: submitting {} fields to {}",
        form.pairs.len(),
        shown(&target)
    )));
    let reply = exchange(session, &target, method, &trusted, max_body, stop);
    let reply = reply.map_err(|h| {
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
    log::info(&secrets.hide(&format!(
        "logged in at {} ({} cookies in the jar)",
        shown(&login.url),
        session.cookie_count()
    )));
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
enum Ended {
    /// The run is stopping.
    Stopped,
    /// A transport failure or a redirect loop, described.
    Failed(String),
}

/// One request and its redirects. `method` is a GET, or the form's POST; a
/// redirect other than 307 or 308 turns the POST into a GET, as browsers
/// do, and a 307 or 308 resends the body only where `trusted` allows.
fn exchange(
    session: &Session,
    url: &Url,
    method: Method,
    trusted: &dyn Fn(&Url) -> Result<(), String>,
    max_body: u64,
    stop: &AtomicBool,
) -> Result<Reply, Ended> {
    let check = |to: &Url, method: &Method, _: &[Url]| match method {
        Method::Form { .. } => trusted(to).map_err(Ended::Failed),
        Method::Get | Method::GetUnvetted => Ok(()),
    };
    let redirects = Redirects {
        max: MAX_REDIRECTS,
        check: &check,
        too_many: &|_, _| Ended::Failed(format!("more than {MAX_REDIRECTS} redirects")),
    };
    let (url, (code, html)) = exchange::follow(url, method, &redirects, |url, method| {
        if stop.load(Ordering::Relaxed) {
            return Err(Ended::Stopped);
        }
        let failed = |f: Failure| Ended::Failed(f.detail);
        let resp = match exchange::send(session, url, method).map_err(failed)? {
            Answer::Redirect { to, code } => return Ok(exchange::Hop::Redirect { to, code }),
            Answer::Response(resp) => resp,
        };
        let code = resp.code();
        let ctype = resp
            .header("content-type")
            .unwrap_or_else(|| "text/html".into());
        let lower = ctype.to_ascii_lowercase();
        let is_html = lower.starts_with("text/html") || lower.starts_with("application/xhtml");
        let html = match is_html && resp.is_success() {
            true => {
                let bytes = resp.read(max_body, 0).map_err(failed)?;
                Some(charset::decode(&bytes, &lower, Kind::Html))
            }
            false => None,
        };
        Ok(exchange::Hop::Done((code, html)))
    })?;
    Ok(Reply { url, code, html })
}

/// A URL as shown in messages: without its query, which for a GET form
/// holds the fields, nor any user name or password.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
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
    }
}
