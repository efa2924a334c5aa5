//! `qpipe spec --try URL`: the spec, session and page to try, validated.

use super::produce::{load_spec, session, start_url};
use crate::crawl::fetch::HttpConfig;
use crate::crawl::session::address;
use crate::crawl::session::cache::CacheConfig;
use crate::crawl::session::login::LoginStep;
use crate::crawl::spec::SpecFile;
use crate::crawl::spider::PageCaps;
use crate::error::Error;
use std::time::Duration;
use url::Url;

/// One page to fetch and scrape with a spec, printed rather than pushed.
pub struct TryConfig {
    /// The page.
    pub url: Url,
    /// The spec (moved onto `--origin` if given).
    pub file: SpecFile,
    /// The spec's login step, run before the page is fetched.
    pub login: Option<LoginStep>,
    /// HTTP settings: `produce`'s defaults with the spec's headers.
    pub http: HttpConfig,
    /// `produce`'s default page caps.
    pub caps: PageCaps,
}

impl TryConfig {
    /// Validates `spec --try` and its companions.
    pub fn new(
        url: &str,
        spec: Option<&str>,
        origin: Option<&str>,
        header: &[String],
        proxy: Option<&str>,
        cache: Option<CacheConfig>,
    ) -> Result<TryConfig, Error> {
        let (file, origin) = load_spec(spec, origin)?;
        let url = try_url(url)?;
        let url = origin.map_or_else(|| url.clone(), |o| o.rebase(&url));
        let (login, headers, user_agent, proxies) = session(&file, spec, header, None, proxy)?;
        // The page asked for may be private; where it redirects to is
        // checked like a crawl's.
        let allow_private = address::url_is_private(&url);
        Ok(TryConfig {
            url,
            file,
            login,
            // The defaults of `produce`'s flags.
            http: HttpConfig {
                connect_timeout: Duration::from_secs(10),
                read_timeout: Duration::from_secs(30),
                total_timeout: Duration::from_secs(60),
                max_body: 10 * 1024 * 1024,
                user_agent,
                headers,
                proxies,
                allow_private,
                cache,
            },
            caps: PageCaps {
                max_nesting: 256,
                max_links: 10_000,
            },
        })
    }
}

/// Parses `--try`. A URL with a user name or password is refused without
/// being shown: the page is printed, and credentials belong in the spec's
/// login or a header.
fn try_url(s: &str) -> Result<Url, Error> {
    let refuse = || {
        Error::Usage(
            "invalid --try URL: it has a user name or password, not shown here (drop them; log in with the spec's login or --header 'Authorization: ...')".into(),
        )
    };
    match Url::parse(s) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => Err(refuse()),
        // Unparsable, so where the host starts is unknown: an `@` may end a password.
        Err(_) if s.contains('@') => Err(refuse()),
        _ => start_url(s).map_err(|e| Error::Usage(e.to_string().replace("--start-url", "--try"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn try_urls_with_credentials_are_refused_unseen() {
        for url in [
            "http://u:s3cret@h/",
            "http://s3cret@h/",
            "http://s3cret:@h/",
            "http://u:s3cret@[bad/",
        ] {
            let e = try_url(url).unwrap_err().to_string();
            assert!(
                e.starts_with("invalid --try URL: it has a user name or password"),
                "{e}"
            );
            assert!(!e.contains("s3cret"), "{e}");
        }
        assert_eq!(try_url("http://h/a@b").unwrap().as_str(), "http://h/a@b");
        let e = try_url("ftp://h/").unwrap_err().to_string();
        assert!(e.starts_with("invalid --try \"ftp://h/\""), "{e}");
    }
}
