//! Getting one page the polite way: robots.txt, per-host slots and delay,
//! redirects checked hop by hop (through the session's `exchange`), and
//! retries with back-off. No threads here.

use crate::crawl::failure::{Failure, Reason};
use crate::crawl::fetch::{self, Reply};
use crate::crawl::hosts::{Hosts, Outcome};
use crate::crawl::page::{Accept, Page};
use crate::crawl::robots::Robots;
use crate::crawl::session::exchange::{self, Hop, Method, Redirects, MAX_REDIRECTS};
use crate::crawl::session::Session;
use crate::crawl::spider::Submission;
use crate::run::backoff::Backoff;
use crate::run::counters::Counters;
use crate::run::summary::Counts;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use url::Url;

/// Attempts per URL in all (the first try and two retries).
pub const ATTEMPTS: u32 = 3;
/// Longest Retry-After honoured; a server asking for more is retried sooner.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Everything a fetcher needs to get pages politely; shared by all fetchers.
pub struct Crawler<'a> {
    /// The shared HTTP session (agent, cookie jar, headers, proxies).
    pub session: &'a Session,
    /// robots.txt rules, if obeyed.
    pub robots: Option<&'a Robots>,
    /// Per-host concurrency and delay.
    pub hosts: &'a Hosts,
    /// `--delay-ms` between request starts per host.
    pub delay: Duration,
    /// Which kinds besides HTML the spec reads.
    pub accept: Accept,
    /// `--max-body`.
    pub max_body: u64,
    /// Base of the exponential retry back-off.
    pub backoff: Duration,
    /// Whether a redirect target may be crawled.
    pub allowed: &'a (dyn Fn(&Url) -> bool + Sync),
    /// The run's live counters (responses by status class).
    pub live: &'a Counters,
}

/// Counters a fetcher keeps per page attempt, merged at the end.
#[derive(Debug, Default)]
pub struct CrawlCounts {
    /// Every HTTP response by status code.
    pub responses_by_status: Counts,
    /// Retries by reason (`http_503`, `timeout`, ...).
    pub retries: Counts,
    /// URLs given up on after the last attempt, by reason.
    pub gave_up: Counts,
    /// URLs skipped because robots.txt forbids them.
    pub robots_forbidden: u64,
}

/// A fetched page and where it ended up after redirects.
pub struct Got {
    /// The final URL (the base for links).
    pub url: Url,
    /// The decoded body and its kind.
    pub page: Page,
}

impl Crawler<'_> {
    /// Fetches `url`, following redirects (each hop checked: allowed host,
    /// robots, loops) and retrying transient failures.
    pub fn get(
        &self,
        url: &Url,
        counts: &mut CrawlCounts,
        stop: &AtomicBool,
    ) -> Result<Got, Failure> {
        self.fetch(url, Method::Get, counts, stop)
    }

    /// Sends a form submission, following redirects (a 302/303 turns it
    /// into a GET) and retrying like a page.
    pub fn submit(
        &self,
        sub: &Submission,
        from: &Url,
        counts: &mut CrawlCounts,
        stop: &AtomicBool,
    ) -> Result<Got, Failure> {
        // A form's action is the page's to choose: held to the crawl's
        // domains like a link, so no header or cookie goes elsewhere.
        if !matches!(sub.url.scheme(), "http" | "https") || !(self.allowed)(&sub.url) {
            return Err(Failure::new(
                Reason::OffsiteForm,
                format!("form action {} is not an allowed http(s) URL", sub.url),
            ));
        }
        let method = match &sub.body {
            Some(body) => Method::Form {
                body: body.clone(),
                from: from.clone(),
            },
            None => Method::Get,
        };
        self.fetch(&sub.url, method, counts, stop)
    }

    fn fetch(
        &self,
        url: &Url,
        method: Method,
        counts: &mut CrawlCounts,
        stop: &AtomicBool,
    ) -> Result<Got, Failure> {
        let redirects = Redirects {
            max: MAX_REDIRECTS,
            check: &|next, _, chain| self.check_redirect(next, chain),
            too_many: &redirect_loop,
        };
        let (url, page) = exchange::follow(url, method, &redirects, |url, method| {
            match self.attempts(url, method, counts, stop)? {
                Reply::Page(page) => Ok(Hop::Done(page)),
                Reply::Redirect { mut to, code } => {
                    to.set_fragment(None);
                    Ok(Hop::Redirect { to, code })
                }
                Reply::Status { code, .. } => {
                    Err(Failure::new(Reason::Http(code), format!("HTTP {code}")))
                }
            }
        })?;
        Ok(Got { url, page })
    }

    /// A redirect target may be crawled if it is not already in the `chain`
    /// of URLs requested, and is an http(s) URL on an allowed host.
    fn check_redirect(&self, next: &Url, chain: &[Url]) -> Result<(), Failure> {
        if chain.contains(next) {
            return Err(redirect_loop(chain, next));
        }
        if !matches!(next.scheme(), "http" | "https") || !(self.allowed)(next) {
            return Err(Failure::new(
                Reason::OffsiteRedirect,
                format!("redirected off-site to {next}"),
            ));
        }
        Ok(())
    }

    /// Up to `ATTEMPTS` tries of one URL (no redirect following), politely.
    fn attempts(
        &self,
        url: &Url,
        method: &Method,
        counts: &mut CrawlCounts,
        stop: &AtomicBool,
    ) -> Result<Reply, Failure> {
        let host = url.host_str().unwrap_or("").to_string();
        let delay = self.polite_delay(url, counts)?;
        if let Some(result) = self.offline(url, method, counts, stop) {
            return result;
        }
        let mut attempt = 1;
        let mut backoff = Backoff::new(self.backoff, self.backoff * 4);
        loop {
            if !self.hosts.acquire(&host, delay, stop) {
                return Err(Failure::new(Reason::Shutdown, "stopping".into()));
            }
            let sent = std::time::Instant::now();
            let result = fetch::request(self.session, url, method, self.max_body, self.accept);
            self.observe(&host, sent.elapsed(), &result, delay);
            let (reason, retry_after) = match &result {
                Ok(Reply::Status { code, retry_after }) if retryable_status(*code) => {
                    (Some(Reason::Http(*code)), *retry_after)
                }
                Err(f) if f.reason.is_transient() => (Some(f.reason), None),
                _ => (None, None),
            };
            let back_off = retry_after.map(|d| d.min(MAX_RETRY_AFTER));
            self.hosts.release(&host, back_off);
            self.count_response(&result, counts);
            let Some(reason) = reason else {
                return result;
            };
            if attempt >= ATTEMPTS {
                *counts.gave_up.entry(reason.name()).or_default() += 1;
                return result;
            }
            *counts.retries.entry(reason.name()).or_default() += 1;
            // Retry-After is enforced by the host slot; otherwise back off here.
            if back_off.is_none() {
                std::thread::sleep(backoff.step());
            }
            attempt += 1;
        }
    }

    /// The HTTP cache's answer for `url`, which costs the site nothing (no
    /// host slot, no delay), if it has a usable one. An entry that turns out
    /// unreadable, larger than `--max-body` or kept without the body this
    /// run wants is fetched politely instead (not in `replay`: there it
    /// fails).
    fn offline(
        &self,
        url: &Url,
        method: &Method,
        counts: &mut CrawlCounts,
        stop: &AtomicBool,
    ) -> Option<Result<Reply, Failure>> {
        if !self.session.answers_offline(url, method) {
            return None;
        }
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(Err(Failure::new(Reason::Shutdown, "stopping".into())));
        }
        let result = fetch::cached(self.session, url, method, self.max_body, self.accept)?;
        let replay = self.session.cache().is_some_and(|c| c.replay());
        if !replay && matches!(&result, Err(f) if f.reason == Reason::NotInCache) {
            return None;
        }
        self.count_response(&result, counts);
        Some(result)
    }

    /// The delay between requests to `url`'s host: `--delay-ms`, or the
    /// site's Crawl-delay when longer. Refuses a URL robots.txt disallows.
    fn polite_delay(&self, url: &Url, counts: &mut CrawlCounts) -> Result<Duration, Failure> {
        let Some(robots) = self.robots else {
            return Ok(self.delay);
        };
        let (allowed, crawl_delay) = robots.check(self.session, url);
        if !allowed {
            counts.robots_forbidden += 1;
            return Err(Failure::new(
                Reason::RobotsForbidden,
                format!("{url} is disallowed by robots.txt"),
            ));
        }
        Ok(self.delay.max(crawl_delay.unwrap_or_default()))
    }

    /// Tells AutoThrottle how the host answered (when it is on).
    fn observe(
        &self,
        host: &str,
        took: Duration,
        result: &Result<Reply, Failure>,
        delay: Duration,
    ) {
        let outcome = match result {
            Ok(Reply::Status {
                code: 429 | 503, ..
            }) => Outcome::Overloaded,
            Err(f) if f.reason == Reason::Timeout => Outcome::Overloaded,
            // A server error's quick answer says nothing about its load.
            Ok(Reply::Status { code, .. }) if *code == 408 || *code >= 500 => Outcome::Failed,
            Ok(Reply::Page(_) | Reply::Redirect { .. } | Reply::Status { .. }) => Outcome::Answered,
            Err(_) => Outcome::Failed,
        };
        if let Some(d) = self.hosts.observe(host, took, outcome, delay) {
            self.live.host_delay(host, d);
        }
    }

    /// Counts an answer by status (2xx and 3xx as classes).
    fn count_response(&self, result: &Result<Reply, Failure>, counts: &mut CrawlCounts) {
        let (key, code) = match result {
            Ok(Reply::Status { code, .. }) => (code.to_string(), *code),
            Ok(Reply::Page(_)) => ("2xx".to_string(), 200),
            Ok(Reply::Redirect { .. }) => ("3xx".to_string(), 300),
            Err(_) => return,
        };
        *counts.responses_by_status.entry(key).or_default() += 1;
        self.live.response(code);
    }
}

/// A redirect back into the `chain` of URLs requested, or past the limit.
fn redirect_loop(chain: &[Url], next: &Url) -> Failure {
    Failure::new(
        Reason::RedirectLoop,
        format!("{} redirects, back to {next}", chain.len()),
    )
}

/// Statuses worth retrying: timeouts, throttling and transient server errors.
pub fn retryable_status(code: u16) -> bool {
    matches!(code, 408 | 429 | 500 | 502 | 503 | 504 | 522 | 524)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses_match_the_documented_list() {
        let retry: Vec<u16> = (100..600).filter(|c| retryable_status(*c)).collect();
        assert_eq!(retry, [408, 429, 500, 502, 503, 504, 522, 524]);
    }
}
