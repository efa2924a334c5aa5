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
//! The agent follows no redirects itself, so every hop goes through the
//! session's headers, proxy choice and cookie jar.

use super::Session;
use crate::crawl::failure::{Failure, Reason};
use std::io::Read as _;
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
pub struct Response(ureq::http::Response<ureq::Body>);

impl Response {
    /// The HTTP status.
    pub fn code(&self) -> u16 {
        self.0.status().as_u16()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code())
    }

    /// The header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.0, name)
    }

    /// Reads the body: more than `limit` bytes is a `BodyTooLarge` failure,
    /// a broken read a transport one. `capacity` presizes the buffer.
    pub fn read(mut self, limit: u64, capacity: usize) -> Result<Vec<u8>, Failure> {
        let mut bytes = Vec::with_capacity(capacity);
        self.0
            .body_mut()
            .with_config()
            .limit(limit)
            .reader()
            .read_to_end(&mut bytes)
            .map_err(|e| transport(ureq::Error::from(e)))?;
        Ok(bytes)
    }
}

fn header<B>(resp: &ureq::http::Response<B>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Sends one request for `url` with the session's headers, proxy and
/// cookies, following no redirect, and says whether it is one.
pub fn send(session: &Session, url: &Url, method: &Method) -> Result<Answer, Failure> {
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
    let resp = result.map_err(transport)?;
    let code = resp.status().as_u16();
    if (300..400).contains(&code) {
        if let Some(to) = header(&resp, "location").and_then(|l| url.join(&l).ok()) {
            return Ok(Answer::Redirect { to, code });
        }
    }
    Ok(Answer::Response(Response(resp)))
}

/// Where one hop of an exchange led.
pub enum Hop<T> {
    /// A redirect to `to` with status `code`, to be followed.
    Redirect {
        /// The target, as the caller wants it requested.
        to: Url,
        /// The 3xx status (whether a form is resent: 307, 308).
        code: u16,
    },
    /// The end of the exchange, with the caller's result.
    Done(T),
}

/// A check of a redirect target: the target, the method it will be
/// requested with, and the URLs requested so far.
pub type Check<'a, E> = &'a dyn Fn(&Url, &Method, &[Url]) -> Result<(), E>;

/// How many redirects an exchange follows, and which.
pub struct Redirects<'a, E> {
    /// Redirects followed at most; one more ends the exchange with `too_many`.
    pub max: usize,
    /// Checks each redirect target before it is requested, given the method
    /// the request will use and the URLs requested so far.
    pub check: Check<'a, E>,
    /// The error for a redirect past `max`: the URLs requested so far, and
    /// where it led.
    pub too_many: &'a dyn Fn(&[Url], &Url) -> E,
}

impl<E> Redirects<'_, E> {
    /// No check: any redirect target is followed.
    pub fn anywhere(_: &Url, _: &Method, _: &[Url]) -> Result<(), E> {
        Ok(())
    }
}

/// Requests `url` with `method`, then each redirect target in turn, until
/// `hop` (one request, plus whatever the caller adds: retries, politeness,
/// a stop check) says it is done. Past `redirects.max` redirects the
/// exchange ends with `too_many`; before that each target must pass
/// `redirects.check`. Returns the last URL requested and `hop`'s result.
pub fn follow<T, E>(
    url: &Url,
    method: Method,
    redirects: &Redirects<'_, E>,
    mut hop: impl FnMut(&Url, &Method) -> Result<Hop<T>, E>,
) -> Result<(Url, T), E> {
    let mut chain = vec![url.clone()];
    let mut method = method;
    loop {
        let current = &chain[chain.len() - 1];
        match hop(current, &method)? {
            Hop::Done(result) => return Ok((current.clone(), result)),
            Hop::Redirect { to, code } => {
                if chain.len() > redirects.max {
                    return Err((redirects.too_many)(&chain, &to));
                }
                method = method.after_redirect(code);
                (redirects.check)(&to, &method, &chain)?;
                chain.push(to);
            }
        }
    }
}

/// A transport error as a failure: its reason, and ureq's words as detail.
pub fn transport(e: ureq::Error) -> Failure {
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
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A site of redirects: `/N` leads to `/N+1` with `code`, up to `/last`.
    fn chain_of(
        code: u16,
        last: usize,
    ) -> impl FnMut(&Url, &Method) -> Result<Hop<Method>, String> {
        move |url, method| {
            let n: usize = url.path()[1..].parse().unwrap();
            Ok(match n < last {
                true => Hop::Redirect {
                    to: u(&format!("http://h/{}", n + 1)),
                    code,
                },
                false => Hop::Done(method.clone()),
            })
        }
    }

    fn limited(max: usize) -> Redirects<'static, String> {
        Redirects {
            max,
            check: &Redirects::anywhere,
            too_many: &|chain, to| format!("{} redirects, then {to}", chain.len()),
        }
    }

    #[test]
    fn follows_up_to_the_limit_and_not_one_more() {
        let (url, _) = follow(
            &u("http://h/0"),
            Method::Get,
            &limited(10),
            chain_of(302, 10),
        )
        .unwrap();
        assert_eq!(url, u("http://h/10"), "10 redirects, 11 requests");
        let err = follow(
            &u("http://h/0"),
            Method::Get,
            &limited(10),
            chain_of(302, 11),
        )
        .unwrap_err();
        assert_eq!(err, "11 redirects, then http://h/11");
        let err = follow(&u("http://h/0"), Method::Get, &limited(5), chain_of(302, 6)).unwrap_err();
        assert_eq!(err, "6 redirects, then http://h/6");
    }

    #[test]
    fn a_form_is_resent_only_on_307_and_308() {
        let form = Method::Form {
            body: "a=1".into(),
            from: u("http://h/login"),
        };
        for (code, resent) in [
            (301, false),
            (302, false),
            (303, false),
            (307, true),
            (308, true),
        ] {
            let (_, last) = follow(
                &u("http://h/0"),
                form.clone(),
                &limited(10),
                chain_of(code, 2),
            )
            .unwrap();
            assert_eq!(last == form, resent, "{code}");
        }
        assert_eq!(Method::Get.after_redirect(307), Method::Get);
    }

    #[test]
    fn each_target_is_checked_with_its_method_and_the_chain_before_it_is_requested() {
        let seen = std::cell::RefCell::new(Vec::new());
        let check = |to: &Url, m: &Method, chain: &[Url]| {
            seen.borrow_mut()
                .push((to.path().to_string(), m.clone(), chain.len()));
            match to.path() == "/2" {
                true => Err(format!("refused {to}")),
                false => Ok(()),
            }
        };
        let redirects = Redirects {
            max: 10,
            check: &check,
            too_many: &|_, _| "too many".to_string(),
        };
        let form = Method::Form {
            body: "a=1".into(),
            from: u("http://h/login"),
        };
        let mut requested = Vec::new();
        let mut site = chain_of(303, 5);
        let err = follow(&u("http://h/0"), form, &redirects, |url, m| {
            requested.push(url.path().to_string());
            site(url, m)
        })
        .unwrap_err();
        assert_eq!(err, "refused http://h/2");
        assert_eq!(
            requested,
            ["/0", "/1"],
            "the refused target is never requested"
        );
        let seen = seen.into_inner();
        assert_eq!(
            seen,
            [("/1".into(), Method::Get, 1), ("/2".into(), Method::Get, 2)]
        );
    }

    #[test]
    fn the_limit_is_checked_before_the_target() {
        let redirects = Redirects {
            max: 1,
            check: &|_, _, _| Err("checked".to_string()),
            too_many: &|_, _| "too many".to_string(),
        };
        let looped = |_: &Url, _: &Method| -> Result<Hop<()>, String> {
            Ok(Hop::Redirect {
                to: u("http://h/0"),
                code: 302,
            })
        };
        let err = follow(&u("http://h/0"), Method::Get, &redirects, looped).unwrap_err();
        assert_eq!(err, "checked", "the first redirect is within the limit");
        let none = Redirects {
            max: 0,
            ..redirects
        };
        let err = follow(&u("http://h/0"), Method::Get, &none, looped).unwrap_err();
        assert_eq!(err, "too many");
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
