//! The session's settings, validated from the command line (and the spec's
//! `headers`): timeouts, body limit, User-Agent, headers and proxies.

use super::headers::Headers;
use super::proxy::Proxies;
use std::time::Duration;

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
    /// Headers sent with every request (`headers` in the spec, `--header`).
    pub headers: Headers,
    /// The proxy for each URL (`--proxy`, HTTP_PROXY, HTTPS_PROXY, NO_PROXY).
    pub proxies: Proxies,
    /// Connect to private addresses too (`--allow-private`, or a private
    /// start URL); see `address`.
    pub allow_private: bool,
    /// `--http-cache`, if given.
    pub cache: Option<super::cache::CacheConfig>,
}
