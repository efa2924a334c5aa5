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

use super::form::{self, Form};
use super::Session;
use crate::crawl::crawler::MAX_REDIRECTS;
use crate::crawl::fetch;
use crate::error::Error;
use crate::run::log;
use scraper::{Html, Selector};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use url::Url;

/// The `login` spec key as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawLogin")]
pub struct Login {
    /// The page that holds the login form.
    pub url: Url,
    /// Which form to fill (default `form`: the first one).
    pub form: Css,
    /// Field name -> value, in the order written.
    pub fields: Vec<(String, FieldValue)>,
    /// A selector that matches only when the site reports a failed login.
    pub error: Option<Css>,
}

/// A login field's value: written in the spec, or read from a variable.
#[derive(Clone)]
pub enum FieldValue {
    /// The value itself.
    Text(String),
    /// The name of the environment variable holding it.
    Env(String),
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(_) => f.write_str("Text(***)"),
            FieldValue::Env(name) => write!(f, "Env({name})"),
        }
    }
}

/// A CSS selector with its text, for messages.
#[derive(Debug, Clone)]
pub struct Css {
    /// As written.
    pub text: String,
    /// Compiled.
    pub selector: Selector,
}

/// A login ready to run: variables read. `Debug` shows no value.
#[derive(Clone)]
pub struct LoginStep {
    /// The spec's login.
    pub login: Login,
    /// Field name -> value.
    pub fields: Vec<(String, String)>,
    /// Values never to show (those read from variables).
    pub secrets: Vec<String>,
}

impl fmt::Debug for LoginStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginStep")
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Reads each `{"env": VAR}` through `env` (`std::env::var(..).ok()` in a
    /// run). An unset or empty variable is an error naming it and its key.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<LoginStep, String> {
        let mut fields = Vec::with_capacity(self.fields.len());
        let mut secrets = Vec::new();
        for (name, value) in &self.fields {
            let value = match value {
                FieldValue::Text(t) => t.clone(),
                FieldValue::Env(var) => {
                    let v = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                        format!("login.fields.{name}.env: the environment variable {var} is not set or empty (export it before running qpipe)")
                    })?;
                    secrets.push(v.clone());
                    v
                }
            };
            fields.push((name.clone(), value));
        }
        Ok(LoginStep {
            login: self.clone(),
            fields,
            secrets,
        })
    }
}

/// Logs in with `step`; afterwards the session's jar holds the site's cookies.
/// Every failure is an `Error::Http` (exit 1) whose line shows no credential.
pub fn log_in(session: &Session, step: &LoginStep, max_body: u64) -> Result<(), Error> {
    let login = &step.login;
    let mut secrets = step.secrets.clone();
    let fail = |msg: String, secrets: &[String]| Error::Http(hide(&msg, secrets));
    let page = exchange(session, &login.url, None, max_body).map_err(|e| {
        fail(
            format!(
                "login: cannot load the login page {}: {e}",
                shown(&login.url)
            ),
            &secrets,
        )
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
    secrets.extend(
        form.pairs
            .iter()
            .filter(|p| p.password)
            .map(|p| p.value.clone()),
    );
    let (target, body) = match form.post {
        true => (form.action.clone(), Some((form.encoded(), &page.url))),
        false => (form.get_url(), None),
    };
    log::debug(&format!(
        "login: submitting {} fields to {}",
        form.pairs.len(),
        shown(&target)
    ));
    let reply = exchange(session, &target, body, max_body).map_err(|e| {
        fail(
            format!(
                "login: submitting the form to {} failed: {e}",
                shown(&target)
            ),
            &secrets,
        )
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

/// One request and its redirects. `post` is a form body and the page it came
/// from; a 301, 302 or 303 turns the POST into a GET, as browsers do.
fn exchange(
    session: &Session,
    url: &Url,
    mut post: Option<(String, &Url)>,
    max_body: u64,
) -> Result<Reply, String> {
    let mut url = url.clone();
    for _ in 0..=MAX_REDIRECTS {
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
        let mut resp = result.map_err(|e| e.to_string())?;
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
                    .map_err(|e| e.to_string())?;
                Some(fetch::decode(&bytes, &lower))
            }
            false => None,
        };
        return Ok(Reply { url, code, html });
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
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

/// The key as written; each part checks itself so errors name the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    url: LoginUrl,
    #[serde(default)]
    form: Option<Css>,
    fields: Fields,
    #[serde(default)]
    error: Option<Css>,
}

impl From<RawLogin> for Login {
    fn from(r: RawLogin) -> Login {
        Login {
            url: r.url.0,
            form: r.form.unwrap_or_else(|| Css {
                text: "form".into(),
                selector: Selector::parse("form").expect("a valid selector"),
            }),
            fields: r.fields.0,
            error: r.error,
        }
    }
}

struct LoginUrl(Url);

impl<'de> Deserialize<'de> for LoginUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LoginUrl, D::Error> {
        let s = String::deserialize(d)?;
        match Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(LoginUrl(u))
            }
            _ => Err(de::Error::custom(format!(
                "{s:?} is not an absolute http(s) URL"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Css {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Css, D::Error> {
        let text = String::deserialize(d)?;
        let selector = Selector::parse(&text).map_err(|e| {
            let why = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            de::Error::custom(format!(
                "invalid CSS selector {text:?}: {why} (check the selector syntax)"
            ))
        })?;
        Ok(Css { text, selector })
    }
}

/// `fields`, in the order written.
struct Fields(Vec<(String, FieldValue)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of field name -> value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out: Vec<(String, FieldValue)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.is_empty() || out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!(
                            "field {name:?} is empty or given twice"
                        )));
                    }
                    let value = map.next_value()?;
                    out.push((name, value));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `{"env": "VAR"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRef {
    env: VarName,
}

struct VarName(String);

impl<'de> Deserialize<'de> for VarName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<VarName, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains(['=', '\0']) || s.trim() != s {
            return Err(de::Error::custom(format!(
                "{s:?} is not an environment variable name (e.g. \"QUOTES_PASSWORD\")"
            )));
        }
        Ok(VarName(s))
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldValue, D::Error> {
        struct V;
        // serde's own messages would quote a wrongly typed value: it may be a secret.
        fn not<E: de::Error>(what: &str) -> E {
            E::custom(format!(
                "a field value must be a string or {{\"env\": \"VAR\"}}, not {what}"
            ))
        }
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or {\"env\": \"VAR\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldValue, A::Error> {
                let r = EnvRef::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldValue::Env(r.env.0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<FieldValue, E> {
                Err(not("true or false"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(text: &str) -> Result<Login, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, Login>(&mut de)
            .map_err(|e| format!("{}: {}", e.path().clone(), e.into_inner()))
    }

    #[test]
    fn parses_fields_in_order_with_env_references() {
        let l = login(r#"{"url":"https://x.example/login","fields":{"username":"bob","password":{"env":"PW"}},"error":"p.error"}"#).unwrap();
        assert_eq!(l.form.text, "form");
        assert_eq!(l.error.as_ref().map(|e| e.text.as_str()), Some("p.error"));
        let step = l
            .resolve(&|k| (k == "PW").then(|| "hunter2".to_string()))
            .unwrap();
        let want: Vec<(String, String)> = vec![
            ("username".into(), "bob".into()),
            ("password".into(), "hunter2".into()),
        ];
        assert_eq!(step.fields, want);
        assert_eq!(step.secrets, ["hunter2"]);
        assert!(!format!("{step:?}{l:?}").contains("hunter2") && !format!("{l:?}").contains("bob"));
        let e = l.resolve(&|_| None).unwrap_err();
        assert_eq!(e, "login.fields.password.env: the environment variable PW is not set or empty (export it before running qpipe)");
    }

    #[test]
    fn errors_name_the_key_and_never_the_value() {
        let e = login(r#"{"url":"https://x/","fields":{"password":{"env":"A=B"}}}"#).unwrap_err();
        assert!(
            e.starts_with("fields.password.env: \"A=B\" is not an environment variable name"),
            "{e}"
        );
        let e =
            login(r#"{"url":"https://x/","fields":{"password":{"env":"PW","x":1}}}"#).unwrap_err();
        assert!(e.starts_with("fields.password.x: unknown field"), "{e}");
        let e = login(r#"{"url":"https://x/","fields":{"pin":123456}}"#).unwrap_err();
        assert!(
            e.starts_with("fields.pin: a field value must be a string") && !e.contains("123456"),
            "{e}"
        );
        assert!(login(r#"{"url":"/login","fields":{}}"#)
            .unwrap_err()
            .starts_with("url: \"/login\" is not an absolute"));
        assert!(login(r#"{"url":"https://x/","form":"form[","fields":{}}"#)
            .unwrap_err()
            .starts_with("form: invalid CSS selector"));
        assert!(login(r#"{"url":"https://x/","fields":{},"eror":"p"}"#)
            .unwrap_err()
            .contains("unknown field `eror`"));
        assert!(login(r#"{"url":"https://x/"}"#)
            .unwrap_err()
            .contains("missing field `fields`"));
    }

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
