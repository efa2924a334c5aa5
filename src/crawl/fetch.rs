//! One HTTP exchange with the shared ureq agent: no redirects, no retries, no
//! threads. `crawl` builds redirects, retries and politeness on top.

use std::time::Duration;
use ureq::Agent;
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

/// What one request got back.
#[derive(Debug)]
pub enum Reply {
    /// A 2xx HTML page, decoded to text.
    Page(String),
    /// A 3xx with a usable `Location`, resolved against the request URL.
    Redirect(Url),
    /// Any other status; `retry_after` from the header, if given in seconds.
    Status {
        /// The HTTP status.
        code: u16,
        /// The server's `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
    },
}

/// Why a request yielded nothing; `kind` is the stats key.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Short stable name used as a counter key (`timeout`, `http_404`, ...).
    pub kind: String,
    /// Human detail for the log.
    pub detail: String,
    /// Skipped by policy (not HTML, too large, robots, offsite): not an error.
    pub skipped: bool,
}

impl Failure {
    /// An error that counts against `--fail-on-errors`.
    pub fn error(kind: &str, detail: String) -> Failure {
        Failure {
            kind: kind.into(),
            detail,
            skipped: false,
        }
    }

    /// A page skipped on purpose.
    pub fn skip(kind: &str, detail: String) -> Failure {
        Failure {
            kind: kind.into(),
            detail,
            skipped: true,
        }
    }
}

/// Builds the one agent that every fetcher thread shares (one keep-alive pool).
/// Redirects are followed by `crawl`, so each hop can be checked.
pub fn agent(cfg: &HttpConfig) -> Agent {
    Agent::config_builder()
        .timeout_connect(Some(cfg.connect_timeout))
        .timeout_per_read(Some(cfg.read_timeout))
        .timeout_global(Some(cfg.total_timeout))
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(cfg.user_agent.as_str())
        .max_idle_connections_per_host(64)
        .build()
        .into()
}

/// Sends one GET for `url` and classifies the answer.
pub fn request(agent: &Agent, url: &Url, max_body: u64) -> Result<Reply, Failure> {
    let mut resp = agent.get(url.as_str()).call().map_err(transport)?;
    let code = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if (300..400).contains(&code) {
        if let Some(next) = header("location").and_then(|l| url.join(&l).ok()) {
            return Ok(Reply::Redirect(next));
        }
    }
    if !(200..300).contains(&code) {
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Ok(Reply::Status { code, retry_after });
    }
    let ctype = header("content-type").unwrap_or_else(|| "text/html".into());
    let lower = ctype.to_ascii_lowercase();
    if !(lower.starts_with("text/html") || lower.starts_with("application/xhtml")) {
        return Err(Failure::skip("not_html", format!("content-type {ctype}")));
    }
    if let Some(len) = header("content-length").and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > max_body {
            return Err(Failure::skip(
                "body_too_large",
                format!("{len} bytes (over --max-body {max_body})"),
            ));
        }
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(max_body)
        .read_to_vec()
        .map_err(transport)?;
    Ok(Reply::Page(decode(&bytes, &lower)))
}

/// Decodes by the Content-Type charset, else `<meta charset>`, else UTF-8.
pub fn decode(bytes: &[u8], content_type: &str) -> String {
    let label = charset_param(content_type).or_else(|| meta_charset(bytes));
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_with_bom_removal(bytes).0.into_owned()
}

fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == "charset").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `<meta charset="x">` or `<meta http-equiv content="...; charset=x">` in the first 1 KiB.
fn meta_charset(bytes: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let rest = head[at..].trim_start_matches(['"', '\'']);
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))?;
    Some(rest[..end].to_string()).filter(|s| !s.is_empty())
}

fn transport(e: ureq::Error) -> Failure {
    let kind = match &e {
        ureq::Error::Timeout(_) => "timeout",
        ureq::Error::HostNotFound => "dns",
        ureq::Error::ConnectionFailed => "connect",
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => "connect",
        ureq::Error::Io(_) => "io",
        ureq::Error::BodyExceedsLimit(_) => {
            return Failure::skip("body_too_large", e.to_string());
        }
        _ => "http_error",
    };
    Failure::error(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_header_then_meta_then_utf8() {
        let latin1 = b"<p>caf\xe9</p>";
        assert_eq!(
            decode(latin1, "text/html; charset=ISO-8859-1"),
            "<p>café</p>"
        );
        let meta = b"<meta charset=\"windows-1252\"><p>\x93hi\x94</p>";
        assert_eq!(
            decode(meta, "text/html"),
            "<meta charset=\"windows-1252\"><p>“hi”</p>"
        );
        let equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\xe9";
        assert!(decode(equiv, "text/html").ends_with('é'));
        assert_eq!(decode("ünï".as_bytes(), "text/html"), "ünï");
    }
}
