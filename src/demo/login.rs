//! `/login` and `/logout`, like the app's: a GET renders the form with a new
//! `csrf_token` kept in the visitor's session; a POST with a non-empty
//! `username` and that token logs the session in (any password will do) and
//! redirects to `/`. Sessions live in memory, keyed by a `session` cookie,
//! and are bounded: the least recently used goes when the map is full.

use super::pages::base;
use super::{esc, Reply, Request};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sessions kept; a full map drops its least recently used one.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused this long is dropped when room is needed.
const IDLE: Duration = Duration::from_secs(3600);
const COOKIE: &str = "session";

struct Session {
    csrf: String,
    logged_in: bool,
    used: Instant,
}

/// The server-side sessions, shared by every connection thread.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Whether the request's `session` cookie names a logged-in session.
    pub fn logged_in(&self, req: &Request) -> bool {
        let Some(id) = session_id(req.cookie) else {
            return false;
        };
        self.lock().get(id).is_some_and(|s| s.logged_in)
    }

    /// `GET /login`: a new token in the visitor's (maybe new) session, and the form.
    pub fn form(&self, req: &Request) -> Reply {
        self.form_with_error(req, "")
    }

    /// `POST /login`.
    pub fn login(&self, req: &Request) -> Reply {
        let (mut username, mut token) = (String::new(), String::new());
        for (k, v) in url::form_urlencoded::parse(req.body) {
            match k.as_ref() {
                "username" => username = v.into_owned(),
                "csrf_token" => token = v.into_owned(),
                _ => {}
            }
        }
        if username.is_empty() {
            return self.form_with_error(req, "please, provide your username.");
        }
        let id = session_id(req.cookie);
        let mut map = self.lock();
        match id.and_then(|id| map.get_mut(id).map(|s| (id, s))) {
            Some((id, s)) if !s.csrf.is_empty() && s.csrf == token => {
                s.logged_in = true;
                s.used = Instant::now();
                let cookie = set_cookie(id);
                drop(map);
                Reply::redirect("/").header("Set-Cookie", cookie)
            }
            _ => {
                drop(map);
                // The app's own wording, typo included.
                self.form_with_error(req, "invalid CRSF token.")
            }
        }
    }

    /// `GET /logout`: the session forgets its login; back to `/`.
    pub fn logout(&self, req: &Request) -> Reply {
        if let Some(id) = session_id(req.cookie) {
            if let Some(s) = self.lock().get_mut(id) {
                s.logged_in = false;
            }
        }
        Reply::redirect("/")
    }

    /// How many sessions are kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn form_with_error(&self, req: &Request, error: &str) -> Reply {
        let csrf = new_csrf();
        let id = self.store(session_id(req.cookie), &csrf);
        let error = if error.is_empty() {
            String::new()
        } else {
            format!(
                "<p class=\"error\">Error while logging in: {}</p>\n",
                esc(error)
            )
        };
        let form = format!(
            "<form action=\"/login\" method=\"post\" accept-charset=\"utf-8\">\n\
             <input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\"/>\n\
             <p>Username:</p>\n<input type=\"text\" name=\"username\" />\n\
             <p>Password:</p>\n<input type=\"password\" name=\"password\" /> <br>\n\
             <input type=\"submit\" value=\"Login\" />\n{error}</form>\n"
        );
        Reply::html(base(&form)).header("Set-Cookie", set_cookie(&id))
    }

    /// Puts `csrf` in session `id` if it exists, else in a new session; returns its id.
    fn store(&self, id: Option<&str>, csrf: &str) -> String {
        let mut map = self.lock();
        let now = Instant::now();
        if let Some((id, s)) = id.and_then(|id| map.get_mut(id).map(|s| (id, s))) {
            s.csrf = csrf.to_string();
            s.used = now;
            return id.to_string();
        }
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| now.duration_since(s.used) < IDLE);
        }
        if map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        let id = format!("{:032x}", fastrand::u128(..));
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.to_string(),
                logged_in: false,
                used: now,
            },
        );
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere cannot leave a session half-written: keep serving.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The `session` cookie's value, if it looks like one of ours (32 hex digits).
fn session_id(cookie: Option<&str>) -> Option<&str> {
    cookie?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; HttpOnly")
}

/// The app's token: the 52 ASCII letters in a random order.
fn new_csrf() -> String {
    let mut letters: Vec<u8> = (b'a'..=b'z').chain(b'A'..=b'Z').collect();
    fastrand::shuffle(&mut letters);
    String::from_utf8_lossy(&letters).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_of(r: &Reply) -> String {
        let v = &r.headers.iter().find(|h| h.0 == "Set-Cookie").unwrap().1;
        assert!(v.ends_with("; Path=/; HttpOnly"), "{v}");
        v.split(';').next().unwrap().to_string()
    }

    fn token_of(r: &Reply) -> String {
        let body = String::from_utf8_lossy(&r.body);
        let at = body.find("name=\"csrf_token\" value=\"").unwrap() + 25;
        body[at..at + 52].to_string()
    }

    fn post<'a>(cookie: Option<&'a str>, body: &'a str) -> Request<'a> {
        Request {
            method: "POST",
            cookie,
            body: body.as_bytes(),
            ..Request::get("/login")
        }
    }

    #[test]
    fn login_needs_the_sessions_token_and_a_username() {
        let s = Sessions::default();
        let form = s.form(&Request::get("/login"));
        let (cookie, token) = (cookie_of(&form), token_of(&form));
        assert_eq!(token.len(), 52);
        assert!(String::from_utf8_lossy(&form.body).contains("<input type=\"password\""));
        let as_visitor = Request {
            cookie: Some(&cookie),
            ..Request::get("/")
        };
        assert!(!s.logged_in(&as_visitor));

        let body = |r: &Reply| String::from_utf8_lossy(&r.body).into_owned();
        let no_user = s.login(&post(
            Some(&cookie),
            &format!("username=&csrf_token={token}"),
        ));
        assert!(body(&no_user).contains(
            "<p class=\"error\">Error while logging in: please, provide your username.</p>"
        ));
        // The error page gave a new token; the old one is spent.
        let stale = s.login(&post(
            Some(&cookie),
            &format!("username=a&csrf_token={token}"),
        ));
        assert!(body(&stale).contains("Error while logging in: invalid CRSF token."));
        let no_session = s.login(&post(None, &format!("username=a&csrf_token={token}")));
        assert_eq!(no_session.status, 200);
        assert!(!s.logged_in(&as_visitor));

        let token = token_of(&stale);
        let ok = s.login(&post(
            Some(&cookie),
            &format!("username=qpipe&password=x&csrf_token={token}"),
        ));
        assert_eq!(ok.status, 302);
        assert!(ok.headers.contains(&("Location", "/".to_string())));
        assert_eq!(cookie_of(&ok), cookie);
        assert!(s.logged_in(&as_visitor));
        let other = format!("theme=dark; {cookie}; x=y");
        assert!(s.logged_in(&Request {
            cookie: Some(&other),
            ..Request::get("/")
        }));
        assert_eq!(s.logout(&as_visitor).status, 302);
        assert!(!s.logged_in(&as_visitor));
    }

    #[test]
    fn sessions_are_bounded_and_cookies_checked() {
        let s = Sessions::default();
        for _ in 0..MAX_SESSIONS + 50 {
            s.form(&Request::get("/login"));
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert_eq!(session_id(Some("session=../../etc")), None);
        assert_eq!(session_id(Some("session=")), None);
        assert_eq!(session_id(Some("=;;=;session")), None);
        let fake = Request {
            cookie: Some("session=00000000000000000000000000000000"),
            ..Request::get("/")
        };
        assert!(!s.logged_in(&fake));
    }
}
