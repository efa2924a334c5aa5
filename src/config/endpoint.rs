//! Where Redis is: `--redis`, else `$REDIS_URL`, else the local default;
//! `$REDISCLI_AUTH` supplies a password the URL lacks; `--tls-ca` for TLS.

use super::{usage, DEFAULT_REDIS};
use crate::error::Error;
use crate::queue::conn::Endpoint;

/// `--redis`, else `$REDIS_URL`, else the local default, plus `--tls-ca`;
/// checked for syntax before anything runs.
pub(super) fn endpoint(flag: Option<String>, tls_ca: Option<String>) -> Result<Endpoint, Error> {
    let in_argv = flag
        .as_deref()
        .is_some_and(|u| crate::error::redact(u) != u);
    let url = flag
        .or_else(|| std::env::var("REDIS_URL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| DEFAULT_REDIS.to_string());
    let url = match std::env::var("REDISCLI_AUTH") {
        Ok(pw) if !pw.is_empty() => with_password(&url, &pw),
        _ => url,
    };
    let tls_ca = match tls_ca {
        None => None,
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            usage(format!(
                "cannot read --tls-ca {path}: {e} (give a PEM file with the CA certificate)"
            ))
        })?),
    };
    let ep = Endpoint { url, tls_ca };
    crate::queue::conn::target(&ep)?;
    if in_argv {
        crate::run::log::warn(
            "the password in --redis is visible to other users in `ps`; pass the URL in REDIS_URL, or the password in REDISCLI_AUTH",
        );
    }
    Ok(ep)
}

/// Adds `pw` to a Redis URL that has no credentials (redis-cli's
/// `REDISCLI_AUTH` convention); a URL with its own password keeps it.
fn with_password(url: &str, pw: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if scheme.contains("unix") {
        return url.to_string();
    }
    // A user without a password (`redis://alice@host`) gets it too.
    let user = match rest[..authority_end].rsplit_once('@') {
        Some((info, _)) if info.contains(':') => return url.to_string(),
        Some((info, _)) => info,
        None => "",
    };
    let rest = rest.strip_prefix(&format!("{user}@")).unwrap_or(rest);
    // Percent-encode everything but unreserved characters (RFC 3986).
    let encoded: String = pw
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{scheme}://{user}:{encoded}@{rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rediscli_auth_fills_in_a_missing_password_only() {
        assert_eq!(
            with_password("redis://h:1/2", "p@ss w"),
            "redis://:p%40ss%20w@h:1/2"
        );
        assert_eq!(with_password("redis://u:x@h:1", "p"), "redis://u:x@h:1");
        assert_eq!(
            with_password("redis://alice@h:1", "p"),
            "redis://alice:p@h:1"
        );
        assert_eq!(
            with_password("redis+cluster://a:1,b:2", "p"),
            "redis+cluster://:p@a:1,b:2"
        );
        assert_eq!(
            with_password("unix:///tmp/r.sock", "p"),
            "unix:///tmp/r.sock"
        );
    }
}
