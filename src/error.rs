//! The one error type, its exit codes, and Redis URL redaction for messages.

use std::fmt;

/// Documented process exit codes; each means one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was done.
    Ok = 0,
    /// A setup failure: Redis, the sink, the spec or the network.
    Fatal = 1,
    /// Bad command-line usage.
    Usage = 2,
    /// The run finished, but pages or items failed (see `--fail-on-errors`).
    Partial = 3,
    /// Another run holds the `--lock`.
    Locked = 4,
    /// Stopped at once by a second SIGINT.
    Interrupted = 130,
    /// Stopped at once by a second SIGTERM.
    Terminated = 143,
}

/// Everything that can end a run, one variant per boundary.
#[derive(Debug)]
pub enum Error {
    /// The command line or its values are wrong; the text says how to fix it.
    Usage(String),
    /// Talking to Redis failed; `url` is already redacted.
    Redis {
        what: String,
        url: String,
        cause: String,
    },
    /// A file or stream could not be read or written.
    Io { what: String, cause: std::io::Error },
    /// A spider spec is missing or invalid; the text names the key.
    Spec(String),
    /// HTTP setup failed (e.g. the demo site cannot bind).
    Http(String),
    /// A bug: a worker thread panicked.
    Internal(String),
    /// Another run holds the lock.
    Locked(String),
    /// The stop flag (a signal) ended a wait for Redis; not a failure by itself.
    Stopped(String),
}

impl Error {
    /// Builds a Redis error, redacting any password in `url` and explaining next steps.
    pub fn redis(what: impl Into<String>, url: &str, cause: &redis::RedisError) -> Error {
        // A TLS client talking to a plaintext Redis: the server waits for a
        // line that never comes, and the handshake runs out of time.
        let silent = cause.is_timeout()
            || cause.to_string().contains("os error 11")
            || cause.to_string().contains("timed out");
        let cause = if url.starts_with("rediss") && silent {
            format!(
                "no TLS handshake reply: {} (is this a plaintext Redis? use redis:// instead of rediss://)",
                scrub(&cause.to_string())
            )
        } else {
            describe_redis(cause)
        };
        Error::Redis {
            what: what.into(),
            url: redact(url),
            cause,
        }
    }

    /// Builds an IO error with context.
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            cause,
        }
    }

    /// The exit code this error maps to. A stop's code is the signal's,
    /// which only `run::signal::exit_of` knows.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Locked(_) => Exit::Locked,
            _ => Exit::Fatal,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg)
            | Error::Http(msg)
            | Error::Locked(msg)
            | Error::Spec(msg)
            | Error::Stopped(msg) => f.write_str(msg),
            Error::Internal(msg) => write!(f, "internal error: {msg}"),
            Error::Redis { what, url, cause } => write!(f, "{what} at {url}: {cause}"),
            Error::Io { what, cause } => write!(f, "{what}: {cause}"),
        }
    }
}

impl std::error::Error for Error {}

/// The server's error code (`OOM`, `WRONGTYPE`, ...), also when the error
/// came inside a pipeline or an aborted transaction (then the first one's).
pub fn code(e: &redis::RedisError) -> Option<String> {
    e.clone()
        .into_server_errors()
        .and_then(|errs| errs.first().map(|(_, se)| se.code().to_string()))
        .or_else(|| e.code().map(str::to_string))
}
/// One-line description of a Redis failure with a hint at the fix.
pub fn describe_redis(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if e.kind() == redis::ErrorKind::Parse || lower.contains("parse error") {
        // Another protocol (HTTP, say) answered: its bytes make no sense.
        return "the server at this address does not answer as Redis (is this the right port?)"
            .into();
    }
    if lower.contains("db index is out of range") {
        return "the database index in the URL does not exist on this server (use one below `databases` in redis.conf, usually 0-15)".into();
    }
    let hint = if lower.contains("sentinel") {
        "check the sentinel addresses, the service name and ?sentinel_password= in --redis or REDIS_URL"
    } else if lower.contains("refused") || e.is_connection_refusal() {
        "is redis-server running? set --redis or REDIS_URL"
    } else if lower.contains("wrongpass")
        || lower.contains("noauth")
        || lower.contains("authentication")
    {
        "check the user and password in --redis or REDIS_URL"
    } else if code(e).as_deref() == Some("OOM") {
        "Redis is out of memory: raise maxmemory, free memory, or drain the queue"
    } else if code(e).as_deref() == Some("READONLY") {
        "the server is a read-only replica; point --redis at the master"
    } else if lower.contains("wrongtype") {
        "the key holds another type; choose another --key or delete it"
    } else if lower.contains("no replica acknowledged") {
        "a replica is behind or down; the batch is retried until one has it"
    } else if e.is_timeout() || lower.contains("timed out") {
        "is the host reachable? check --redis"
    } else if e.is_io_error() || e.is_connection_dropped() {
        "the connection was lost; check that redis-server is up"
    } else {
        "check --redis and the server's log"
    };
    // Some redis errors echo the URL; never let a password through. One line.
    let text = scrub(&text)
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    format!("{text} ({hint})")
}

/// Returns `url` with any password replaced by `***` (the one before `@`,
/// and any `...password=` parameter); unparsable input is hidden whole.
/// Multi-host URLs (`+cluster`, `+sentinel`) are redacted by hand, as the
/// URL parser refuses their host lists.
pub fn redact(url: &str) -> String {
    let multi = url.contains("+cluster://") || url.contains("+sentinel://");
    match url::Url::parse(url) {
        _ if multi => redact_by_hand(url),
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            match u.query() {
                Some(q)
                    if q.split('&')
                        .any(|p| secret_param(p.split('=').next().unwrap_or(""))) =>
                {
                    let q = hide_passwords(q);
                    u.set_query(Some(&q));
                }
                _ => {}
            }
            u.to_string()
        }
        Err(_) if url.contains('@') || url.contains("password") => {
            "<redis url with credentials>".to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// `scheme://user:***@hosts/path?x_password=***#f`, without parsing hosts.
/// A password may hold `#`, `?` or `@` unencoded: the userinfo ends at the
/// last `@` whose host part (up to the next `/`) has no `@`, `?` or `#`, and
/// a password parameter's value runs to the next `&`, `#` included. When
/// in doubt more is hidden, never less.
fn redact_by_hand(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let at = rest.match_indices('@').map(|(i, _)| i).rev().find(|&i| {
        let hosts = rest[i + 1..].split('/').next().unwrap_or("");
        !hosts.contains(['@', '?', '#'])
    });
    let (userinfo, after) = match at {
        Some(i) => {
            let info = &rest[..i];
            let user = info.split_once(':').map_or(info, |(u, _)| u);
            let shown = match info.contains(':') {
                true => format!("{user}:***@"),
                false => format!("{user}@"),
            };
            (shown, &rest[i + 1..])
        }
        None => (String::new(), rest),
    };
    let tail = match after.split_once('?') {
        Some((path, query)) => format!("{path}?{}", hide_passwords(query)),
        None => after.to_string(),
    };
    format!("{scheme}://{userinfo}{tail}")
}

/// A query string (with any fragment) with the value of every
/// `...password` parameter hidden, up to the next `&` (a `#` in it too).
fn hide_passwords(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if secret_param(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a URL query parameter holds a password: `password`,
/// `sentinel_password`, or redis-rs's `pass` (unix socket URLs).
fn secret_param(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k == "pass"
}

/// Removes anything that looks like `scheme://user:pass@` from free text.
fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.contains("://") {
                redact(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_password_only() {
        assert_eq!(
            redact("redis://bob:s3cret@host:6380/2"),
            "redis://bob:***@host:6380/2"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("redis://:pw@host"), "redis://:***@host");
        assert_eq!(
            redact("unix:///tmp/r.sock?user=bob&pass=s3cret&db=2"),
            "unix:///tmp/r.sock?user=bob&pass=***&db=2"
        );
        assert_eq!(redact("redis://h/?passenger=1"), "redis://h/?passenger=1");
    }

    #[test]
    fn redact_hides_passwords_of_multi_host_urls() {
        assert_eq!(
            redact("redis+sentinel://app:pw@h1:1,h2:2/orders/1?sentinel_password=s3&sentinel_user=u#insecure"),
            "redis+sentinel://app:***@h1:1,h2:2/orders/1?sentinel_password=***&sentinel_user=u#insecure"
        );
        assert_eq!(
            redact("rediss+cluster://:pw@h1:1,h2:2"),
            "rediss+cluster://:***@h1:1,h2:2"
        );
        assert_eq!(
            redact("redis+sentinel://h1:1/m?sentinel_password=p%40ss"),
            "redis+sentinel://h1:1/m?sentinel_password=***"
        );
        assert_eq!(redact("redis+cluster://u@h1:1"), "redis+cluster://u@h1:1");
        // Unencoded #, ? and @ in passwords never leak.
        assert_eq!(
            redact("redis+sentinel://:my#sec?r@t@h1:1,h2:2/m?sentinel_password=ab#cd&x=1"),
            "redis+sentinel://:***@h1:1,h2:2/m?sentinel_password=***&x=1"
        );
        assert_eq!(
            redact("redis+cluster://:p#ss@h1:1"),
            "redis+cluster://:***@h1:1"
        );
    }

    #[test]
    fn redact_hides_unparsable_credentials() {
        assert_eq!(redact("redis://a:pw@[bad"), "<redis url with credentials>");
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(Error::Usage("x".into()).exit() as i32, 2);
        assert_eq!(Error::Http("x".into()).exit() as i32, 1);
    }
}
