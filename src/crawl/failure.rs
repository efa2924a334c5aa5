//! Why a fetch yielded nothing: the failure kinds (`Reason`) and the
//! failure with its detail (`Failure`). The lowest file of the crawl: the
//! exchange, page decoding, the crawler and the produce side's failure log
//! all import it, and it imports none of them.

/// Why a page yielded nothing. `name` renders it as its stats key, in one
/// place; the variant says whether it is an error or a skip by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The request or a read timed out.
    Timeout,
    /// The host name did not resolve.
    Dns,
    /// The connection was refused or failed.
    Connect,
    /// The connection broke mid-exchange.
    Io,
    /// Any other transport failure.
    HttpError,
    /// A status that is not 2xx or a redirect (after retries, if retryable).
    Http(u16),
    /// Redirects went round in a circle or past the limit.
    RedirectLoop,
    /// Skip: not a kind the spider reads (HTML, JSON, XML, gzip, text), or bad gzip.
    NotHtml,
    /// Skip: larger than `--max-body`.
    BodyTooLarge,
    /// Skip: a redirect left the allowed domains.
    OffsiteRedirect,
    /// Skip: a form's action is not http(s) or leaves the allowed domains.
    OffsiteForm,
    /// Skip: robots.txt disallows it.
    RobotsForbidden,
    /// Skip: the host is, or resolves to, a private address (loopback,
    /// private, link-local...) and the crawl may not reach those.
    PrivateAddress,
    /// Not fetched: the run is stopping (the page goes back to the frontier).
    Shutdown,
    /// `--http-cache-mode replay` has no entry for it (no request is sent).
    NotInCache,
}

impl Reason {
    /// The stats key (`timeout`, `http_404`, `not_html`, ...).
    pub fn name(self) -> String {
        let fixed = match self {
            Reason::Http(code) => return format!("http_{code}"),
            Reason::Timeout => "timeout",
            Reason::Dns => "dns",
            Reason::Connect => "connect",
            Reason::Io => "io",
            Reason::HttpError => "http_error",
            Reason::RedirectLoop => "redirect_loop",
            Reason::NotHtml => "not_html",
            Reason::BodyTooLarge => "body_too_large",
            Reason::OffsiteRedirect => "offsite_redirect",
            Reason::OffsiteForm => "offsite_form",
            Reason::RobotsForbidden => "robots_forbidden",
            Reason::PrivateAddress => "private_address",
            Reason::Shutdown => "shutdown",
            Reason::NotInCache => "not_in_cache",
        };
        fixed.to_string()
    }

    /// Skipped by policy (not an error, does not count toward `--fail-on-errors`).
    pub fn is_skip(self) -> bool {
        matches!(
            self,
            Reason::NotHtml
                | Reason::BodyTooLarge
                | Reason::OffsiteRedirect
                | Reason::OffsiteForm
                | Reason::RobotsForbidden
                | Reason::PrivateAddress
                | Reason::Shutdown
        )
    }

    /// A transport failure worth another attempt.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Reason::Timeout | Reason::Connect | Reason::Io | Reason::HttpError
        )
    }
}

/// Why a request yielded nothing, with detail for the log.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What went wrong.
    pub reason: Reason,
    /// Human detail for the log.
    pub detail: String,
}

impl Failure {
    /// A failure (or skip, by the reason) with its detail.
    pub fn new(reason: Reason, detail: String) -> Failure {
        Failure { reason, detail }
    }
}
