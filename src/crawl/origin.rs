//! The URLs a spec names: absolute http(s) URLs only (`HttpUrl`), and
//! `--origin URL`, which runs a spec against another host, such as a
//! staging copy or a local mirror, by moving every one of them onto it.

use serde::de::{self, Deserialize, Deserializer};
use url::Url;

/// An absolute http(s) URL, as every URL a spec names must be.
pub struct HttpUrl(pub Url);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HttpUrl, D::Error> {
        let s = String::deserialize(d)?;
        match Url::parse(&s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Ok(HttpUrl(u))
            }
            _ => Err(de::Error::custom(format!(
                "{s:?} is not an absolute http(s) URL"
            ))),
        }
    }
}

/// The scheme, host and port that replace those of every URL in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(Url);

impl Origin {
    /// Parses `--origin`: an http(s) URL with a host and nothing but `/` after it.
    pub fn parse(s: &str) -> Result<Origin, String> {
        let bad = |why: &str| {
            format!("invalid --origin {s:?}: {why} (give scheme, host and port only, e.g. http://127.0.0.1:8000)")
        };
        let u = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(bad("not an http(s) URL with a host"));
        }
        if !u.username().is_empty() || u.password().is_some() {
            // Not echoed: it may carry a password.
            return Err("invalid --origin: it has a user name or password (give scheme, host and port only)".into());
        }
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            return Err(bad("it has a path, query or fragment"));
        }
        Ok(Origin(u))
    }

    /// `url` with this origin's scheme, host and port; path and query kept.
    pub fn rebase(&self, url: &Url) -> Url {
        let mut out = self.0.clone();
        out.set_path(url.path());
        out.set_query(url.query());
        out.set_fragment(url.fragment());
        out
    }

    /// The host that replaces the spec's allowed domains.
    pub fn host(&self) -> String {
        self.0.host_str().unwrap_or_default().to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_keeps_path_and_query_and_replaces_the_rest() {
        let o = Origin::parse("http://127.0.0.1:8000").unwrap();
        let u = Url::parse("https://quotes.toscrape.com/api/quotes?page=2#x").unwrap();
        assert_eq!(
            o.rebase(&u).as_str(),
            "http://127.0.0.1:8000/api/quotes?page=2#x"
        );
        let o = Origin::parse("https://staging.example/").unwrap();
        let u = Url::parse("http://quotes.toscrape.com:8080/login").unwrap();
        assert_eq!(o.rebase(&u).as_str(), "https://staging.example/login");
        assert_eq!(o.host(), "staging.example");
    }

    #[test]
    fn only_scheme_host_and_port_are_accepted() {
        for bad in [
            "ftp://x/",
            "localhost:8000",
            "http://h/path",
            "http://h/?q=1",
            "http://u:secret@h/",
        ] {
            let e = Origin::parse(bad).expect_err(bad);
            assert!(e.starts_with("invalid --origin"), "{e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
