//! The dashboard's requests: read one (bounded in size and time), check who
//! sends it (the Host check against DNS rebinding on loopback, HTTP Basic
//! authentication when required, the CSRF token and Origin on a POST), and
//! answer it: the overview, a page of dead letters, or an action on them
//! (then a redirect back, so a reload never repeats it).

use super::letters;
use super::page::{self, DeadPage, Frame, PER_PAGE};
use super::Board;
use crate::queue::dead_letter::Back;
use crate::queue::keys;
use crate::run::http::{self, Request};
use crate::run::log;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest a client may take to send its request.
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// Largest form accepted (a page's worth of selected digests fits).
const MAX_FORM: usize = 64 * 1024;
/// Dead letters one "all" action moves or deletes at most.
const MAX_ALL: u64 = 10_000;

/// Every answer's headers: nothing loads from elsewhere, nothing frames
/// the page, nothing is cached.
const SAFE: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
];

/// An answer.
struct Reply {
    status: u16,
    ctype: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn html(body: String) -> Reply {
        Reply {
            status: 200,
            ctype: "text/html; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            ctype: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body: body.into() + "\n",
        }
    }
    fn redirect(to: String) -> Reply {
        Reply {
            status: 303,
            ctype: "text/plain",
            headers: vec![("Location", to)],
            body: String::new(),
        }
    }
}

/// Turns a connection away: too many at once.
pub fn busy(mut conn: TcpStream) {
    let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = conn.write_all(&http::response(
        503,
        "text/plain",
        b"busy, try again\n",
        false,
        true,
    ));
}

impl Board {
    /// Reads one request from `conn`, answers it and closes.
    pub(super) fn answer(&self, mut conn: TcpStream, peer: SocketAddr) {
        let (req, buf) = match http::read_one(&mut conn, REQUEST_TIME, MAX_FORM) {
            Ok(got) => got,
            Err(Some(status)) => {
                return write(&mut conn, &Reply::text(status, "bad request"), false)
            }
            Err(None) => return,
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let body = &buf[req.body.clone()];
        let reply = self.route(&req, body, peer);
        if reply.status == 401 || reply.status == 403 {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        write(&mut conn, &reply, req.method == "HEAD");
    }

    fn route(&self, req: &Request, body: &[u8], peer: SocketAddr) -> Reply {
        if let Some(refused) = self.gate(req) {
            return refused;
        }
        let (path, q) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
        match (req.method.as_str(), path) {
            ("GET" | "HEAD", "/") => self.overview(),
            ("GET" | "HEAD", "/dead") => self.dead_page(&params(q.as_bytes())),
            ("POST", "/dead") => self.act(req, &params(body), peer),
            ("GET" | "HEAD", "/healthz") => Reply::text(200, "ok"),
            ("GET" | "HEAD", _) => Reply::text(404, "not found: the dashboard is at /"),
            _ => Reply::text(405, "method not allowed"),
        }
    }

    /// Refuses a request from a name other than loopback's (DNS rebinding)
    /// when serving on loopback, or without the credentials when required.
    fn gate(&self, req: &Request) -> Option<Reply> {
        if self.cfg.addr.ip().is_loopback() && !loopback_host(req.host.as_deref()) {
            return Some(Reply::text(
                403,
                "forbidden: the Host header must name this machine (localhost, 127.0.0.1 or [::1])",
            ));
        }
        let (user, pass) = self.cfg.auth.as_ref()?;
        let given = req
            .authorization
            .as_deref()
            .and_then(|a| {
                a.strip_prefix("Basic ")
                    .or_else(|| a.strip_prefix("basic "))
            })
            .and_then(|b| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .unwrap_or_default();
        let want = format!("{user}:{pass}");
        if same(&given, want.as_bytes()) {
            return None;
        }
        let mut r = Reply::text(401, "authentication required");
        r.headers.push((
            "WWW-Authenticate",
            "Basic realm=\"qpipe dashboard\", charset=\"UTF-8\"".into(),
        ));
        Some(r)
    }

    fn frame(&self) -> Frame<'_> {
        Frame {
            redis: &self.redacted,
            read_only: self.cfg.read_only,
            csrf: &self.csrf,
            now_ms: super::now_ms(),
        }
    }

    fn overview(&self) -> Reply {
        let st = self.lock_state();
        // (0, error): no sample has succeeded yet.
        let sampled = match (st.sampled_ms, st.error.is_empty()) {
            (Some(at), _) => Some((at, st.error.as_str())),
            (None, false) => Some((0, st.error.as_str())),
            (None, true) => None,
        };
        let every = self.cfg.every.as_secs();
        Reply::html(page::overview(
            &st.snap,
            &st.history,
            &self.frame(),
            sampled,
            every,
        ))
    }

    /// The dead list `list` names, where its items go back (with a job
    /// list's attempts hash), and the queue whose counts a re-queue adds
    /// to, if the dashboard found it (no other key is ever read or written).
    fn dead_of(&self, list: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        let st = self.lock_state();
        for (queue, lists) in &st.found.queues {
            if let Some(l) = lists.iter().find(|l| keys::dead(l) == list) {
                return Some((list.to_string(), l.clone(), None, Some(queue.clone())));
            }
        }
        st.found
            .jobs
            .iter()
            .find(|j| keys::dead(j) == list)
            .map(|j| {
                (
                    list.to_string(),
                    j.clone(),
                    Some(keys::job_attempts(j)),
                    None,
                )
            })
    }

    fn dead_page(&self, p: &[(String, String)]) -> Reply {
        let list = field(p, "list").unwrap_or_default();
        let Some((dead, ..)) = self.dead_of(list) else {
            return Reply::text(
                404,
                "not a dead-letter list the dashboard found (see the overview)",
            );
        };
        let page_n: u64 = field(p, "page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(1 << 40);
        let read = self
            .open_link()
            .and_then(|mut link| letters::preview(&mut link, &dead, page_n * PER_PAGE, PER_PAGE));
        match read {
            Ok((total, letters)) => {
                let d = DeadPage {
                    list: &dead,
                    page: page_n,
                    total,
                    letters: &letters,
                    notice: field(p, "done"),
                };
                Reply::html(page::dead(&d, &self.frame()))
            }
            Err(e) => Reply::text(503, format!("Redis did not answer: {e}")),
        }
    }
}

impl Board {
    /// A POST from a dead-letter page: re-queue or delete one letter, the
    /// selected ones or all, then back to the page with what was done.
    fn act(&self, req: &Request, p: &[(String, String)], peer: SocketAddr) -> Reply {
        if let Some(refused) = self.check_post(req, p) {
            return refused;
        }
        let list = field(p, "list").unwrap_or_default();
        let Some((dead, back, attempts, queue)) = self.dead_of(list) else {
            return Reply::text(
                404,
                "not a dead-letter list the dashboard found (see the overview)",
            );
        };
        let (verb, which) = match (field(p, "requeue"), field(p, "delete")) {
            (Some(w), None) => ("re-queued", w),
            (None, Some(w)) => ("deleted", w),
            _ => return Reply::text(400, "bad request: say requeue or delete"),
        };
        let page_n: u64 = field(p, "page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
            .min(1 << 40);
        let picks: Vec<&str> = match which {
            "selected" => p
                .iter()
                .filter(|(k, _)| k == "pick")
                .map(|(_, v)| v.as_str())
                .collect(),
            "all" => Vec::new(),
            one => vec![one],
        };
        let drawn_len: Option<u64> = field(p, "len").and_then(|v| v.parse().ok());
        let target = Back {
            list: &back,
            jobs_attempts: attempts.as_deref(),
        };
        let delete = verb == "deleted";
        let outcome = self.open_link().and_then(|mut link| match which {
            "all" => letters::act_all(&mut link, &dead, &target, delete, MAX_ALL),
            _ => apply(
                &mut link,
                &dead,
                &target,
                delete,
                &picks,
                (page_n, drawn_len),
            ),
        });
        let note = match outcome {
            Ok(done) => {
                let counter = if delete {
                    &self.deleted
                } else {
                    &self.requeued
                };
                counter.fetch_add(done.moved, Ordering::Relaxed);
                if let (false, Some(q)) = (delete, &queue) {
                    crate::queue::stats::add_in(&self.cfg.redis, q, done.moved);
                }
                let user = self
                    .cfg
                    .auth
                    .as_ref()
                    .map_or("(no auth)", |(u, _)| u.as_str());
                log::info(&format!(
                    "dashboard: {user} at {peer} {verb} {} dead letters of {dead} ({which}; {} already gone, {} unreadable)",
                    done.moved, done.gone, done.unreadable
                ));
                notice(verb, done)
            }
            Err(e) => {
                format!("failed: Redis did not answer ({e}); nothing was done twice, try again")
            }
        };
        Reply::redirect(format!(
            "/dead?list={}&page={page_n}&done={}",
            page::query(&dead),
            page::query(&note)
        ))
    }
}

impl Board {
    /// Refuses a POST in read-only mode, without this run's CSRF token, or
    /// from a page of another origin.
    fn check_post(&self, req: &Request, p: &[(String, String)]) -> Option<Reply> {
        if self.cfg.read_only {
            return Some(Reply::text(
                403,
                "forbidden: the dashboard is read-only (--read-only)",
            ));
        }
        let token = field(p, "csrf").unwrap_or_default();
        if !same(token.as_bytes(), self.csrf.as_bytes()) {
            return Some(Reply::text(
                403,
                "forbidden: the form's CSRF token is missing or stale (reload the page)",
            ));
        }
        if let Some(origin) = &req.origin {
            // The Host, or the name a proxy in front says it serves.
            let hosts = [req.host.as_deref(), req.forwarded_host.as_deref()];
            let same_site = hosts
                .iter()
                .flatten()
                .any(|h| origin == &format!("http://{h}") || origin == &format!("https://{h}"));
            if !same_site {
                return Some(Reply::text(
                    403,
                    "forbidden: the form came from another site",
                ));
            }
        }
        None
    }
}

/// Re-queues (to `back`) or deletes the letters of `dead` named by `picks`,
/// each looked for a page either side of page `page_n` (letters shift as
/// new ones arrive) and fetched alone.
fn apply(
    link: &mut crate::queue::link::Link,
    dead: &str,
    back: &Back<'_>,
    delete: bool,
    picks: &[&str],
    (page_n, drawn_len): (u64, Option<u64>),
) -> Result<letters::Done, crate::error::Error> {
    let (start, stop) = (
        page_n.saturating_sub(1) * PER_PAGE,
        (page_n + 2) * PER_PAGE - 1,
    );
    let picks: Vec<&str> = picks.iter().take(PER_PAGE as usize * 3).copied().collect();
    let found = letters::locate(link, dead, (start, stop), drawn_len, &picks)?;
    let mut done = letters::Done::default();
    done.gone += found.iter().filter(|f| f.is_none()).count() as u64;
    // Oldest (highest index) first: moving one never shifts those left.
    let mut at: Vec<(String, u64)> = found.into_iter().flatten().collect();
    at.sort_by_key(|e| std::cmp::Reverse(e.1));
    // Two picks found at one letter: it moves once, the other is gone.
    let before = at.len();
    at.dedup_by(|a, b| a.1 == b.1);
    done.gone += (before - at.len()) as u64;
    for (digest, index) in at {
        match letters::fetch(link, dead, index, &digest)? {
            Some(raw) => {
                letters::act(link, dead, back, delete, raw, &mut done)?;
            }
            None => done.gone += 1,
        }
    }
    Ok(done)
}

/// What an action did, in words.
fn notice(verb: &str, d: letters::Done) -> String {
    let mut n = format!("{verb} {} dead letters", d.moved);
    if d.gone > 0 {
        n.push_str(&format!(
            "; {} were already gone (moved or deleted by someone else)",
            d.gone
        ));
    }
    if d.unreadable > 0 {
        n.push_str(&format!(
            "; {} hold no item qpipe can read back (not written by qpipe) and stay: delete them instead",
            d.unreadable
        ));
    }
    n
}

/// Whether `host` (a Host header) names loopback.
fn loopback_host(host: Option<&str>) -> bool {
    let Some(h) = host else { return false };
    let name = match h.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => h.rsplit_once(':').map_or(h, |(n, _)| n),
    };
    matches!(
        name.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "::1"
    )
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn params(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn field<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn write(conn: &mut TcpStream, r: &Reply, head: bool) {
    let mut headers: Vec<(&str, &str)> = SAFE.to_vec();
    headers.extend(r.headers.iter().map(|(n, v)| (*n, v.as_str())));
    let bytes = http::response_with(r.status, r.ctype, &headers, r.body.as_bytes(), head, true);
    let _ = conn.write_all(&bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in [
            "127.0.0.1:9181",
            "localhost:9181",
            "LOCALHOST",
            "[::1]:9181",
            "127.0.0.1",
        ] {
            assert!(loopback_host(Some(ok)), "{ok}");
        }
        for bad in ["evil.example:9181", "127.0.0.1.evil.example", "", "[::2]:1"] {
            assert!(!loopback_host(Some(bad)), "{bad}");
        }
        assert!(!loopback_host(None));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"ab", b"abc"));
    }
}
