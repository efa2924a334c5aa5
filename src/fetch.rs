//! Fetching one page over HTTP with the shared ureq agent. No threads here.

use std::time::Duration;
use ureq::{Agent, ResponseExt};
use url::Url;

/// HTTP client settings, validated from the command line.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Time allowed to open a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Longest silence allowed while reading a response.
    pub read_timeout: Duration,
    /// Whole-request budget, so a trickling server is cut off.
    pub total_timeout: Duration,
    /// Largest body read, in bytes; bigger pages are skipped.
    pub max_body: u64,
    /// The User-Agent header.
    pub user_agent: String,
}

/// A fetched HTML page.
#[derive(Debug)]
pub struct Page {
    /// The URL after redirects, used as the base for links.
    pub url: Url,
    /// The decoded body.
    pub body: String,
}

/// Why a page yielded nothing; `kind` is the stats key (`http_404`, `timeout`, ...).
#[derive(Debug)]
pub struct Failure {
    /// Short stable name used as a counter key.
    pub kind: String,
    /// Human detail for the log.
    pub detail: String,
}

/// Builds the one agent that every fetcher thread shares (one keep-alive pool).
pub fn agent(cfg: &HttpConfig) -> Agent {
    Agent::config_builder()
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .timeout_global(Some(cfg.total_timeout))
        .http_status_as_error(false)
        .max_redirects(10)
        .user_agent(cfg.user_agent.as_str())
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

/// Fetches `url`; only a 2xx HTML response within the size cap is a `Page`.
pub fn fetch(agent: &Agent, url: &Url, max_body: u64) -> Result<Page, Failure> {
    let mut resp = agent.get(url.as_str()).call().map_err(failure)?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(Failure {
            kind: format!("http_{status}"),
            detail: format!("HTTP {status}"),
        });
    }
    let final_url = Url::parse(&resp.get_uri().to_string()).unwrap_or_else(|_| url.clone());
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/html")
        .to_ascii_lowercase();
    if !(ctype.starts_with("text/html") || ctype.starts_with("application/xhtml")) {
        return Err(Failure {
            kind: "not_html".into(),
            detail: format!("content-type {ctype}"),
        });
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(max_body)
        .lossy_utf8(true)
        .read_to_string()
        .map_err(failure)?;
    Ok(Page {
        url: final_url,
        body,
    })
}

fn failure(e: ureq::Error) -> Failure {
    let kind = match &e {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::HostNotFound => "dns",
        ureq::Error::ConnectionFailed => "connect",
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connect",
        ureq::Error::Io(_) => "io",
        ureq::Error::BodyExceedsLimit(_) => "body_too_large",
        ureq::Error::TooManyRedirects => "redirect_loop",
        _ => "http_error",
    };
    Failure {
        kind: kind.into(),
        detail: e.to_string(),
    }
}
