//! What the login may show and where it may send the credentials: every
//! value it fills or sends in a header is masked in its messages (a site may
//! echo any of them), and the form goes only to the login page's host or the
//! spec's allowed domains.

use crate::crawl::frontier::Bounds;
use url::Url;

/// Values shorter than this are masked only where they stand alone as a
/// word: masked anywhere, a `1` or `en` would garble every address and word.
const SHORT: usize = 4;

/// The values never to show, and how to mask them.
#[derive(Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// Adds `values`; empty ones are skipped. A value is also masked in its
    /// form-urlencoded spelling, as it appears in a query or a body.
    pub fn extend<'a>(&mut self, values: impl IntoIterator<Item = &'a str>) {
        for v in values.into_iter().filter(|v| !v.is_empty()) {
            let encoded: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            for s in [v.to_string(), encoded] {
                if !self.0.contains(&s) {
                    self.0.push(s);
                }
            }
        }
        // Longest first, so that a value inside another is not unmasked by halves.
        self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }

    /// `msg` with every value replaced by `***`.
    pub fn hide(&self, msg: &str) -> String {
        self.0.iter().fold(msg.to_string(), |m, s| match s.len() {
            n if n < SHORT => replace_words(&m, s),
            _ => m.replace(s.as_str(), "***"),
        })
    }
}

/// `msg` with the occurrences of `word` that are not part of a longer word
/// (nor of a dotted name or address such as `127.0.0.1`) replaced by `***`.
fn replace_words(msg: &str, word: &str) -> String {
    let wordy = |mut near: std::iter::Peekable<std::str::Chars<'_>>| match near.next() {
        Some(c) if c.is_alphanumeric() => true,
        Some('.') => near.peek().is_some_and(|c| c.is_alphanumeric()),
        _ => false,
    };
    let mut out = String::with_capacity(msg.len());
    let mut from = 0;
    for (at, _) in msg.match_indices(word) {
        let end = at + word.len();
        if at < from {
            continue;
        }
        let before = msg[..at].chars().rev().collect::<String>();
        let alone = !wordy(before.chars().peekable()) && !wordy(msg[end..].chars().peekable());
        if alone {
            out.push_str(&msg[from..at]);
            out.push_str("***");
            from = end;
        }
    }
    out.push_str(&msg[from..]);
    out
}

/// Where the credentials may go: `to` must be on the host of the login page
/// (as configured, or where it ended after redirects) or within the spec's
/// allowed domains. The error names both hosts and the fix.
pub fn vet(
    to: &Url,
    login_url: &Url,
    page: &Url,
    allowed_domains: &[String],
) -> Result<(), String> {
    let host = to.host_str().unwrap_or_default();
    let own = [login_url, page].iter().any(|u| u.host_str() == Some(host));
    let bounds = Bounds {
        domains: allowed_domains.to_vec(),
        ..Bounds::default()
    };
    if own || bounds.allows(to) {
        return Ok(());
    }
    Err(format!(
        "login: refusing to send the credentials to {host}: it is neither the login page's host {} nor in the spec's allowed_domains (if {host} is the site's own, add it to allowed_domains; a mirror's form must post to the mirror)",
        page.host_str().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Secrets {
        let mut s = Secrets::default();
        s.extend(values.iter().copied());
        s
    }

    #[test]
    fn every_value_is_masked_short_ones_only_as_words() {
        let s = secrets(&["LITERALPW", "HDRSECRET", "bob", "1", "", "pw s3cret"]);
        assert_eq!(
            s.hide("Wrong password LITERALPW for bob. Also header: HDRSECRET"),
            "Wrong password *** for ***. Also header: ***"
        );
        assert_eq!(
            s.hide("at http://127.0.0.1:18904/bobby?x=1 bob1 1."),
            "at http://127.0.0.1:18904/bobby?x=*** bob1 ***."
        );
        assert_eq!(s.hide("xxLITERALPWxx"), "xx***xx");
        assert_eq!(
            s.hide("/fail?pw=pw+s3cret or pw s3cret"),
            "/fail?pw=*** or ***"
        );
        assert_eq!(secrets(&["ab", "abcdef"]).hide("abcdef ab"), "*** ***");
    }

    #[test]
    fn the_form_goes_only_to_the_login_host_or_allowed_domains() {
        let u = |s: &str| Url::parse(s).unwrap();
        let login = u("http://127.0.0.1:18904/login");
        let none: &[String] = &[];
        assert!(vet(&u("http://127.0.0.1:9/do"), &login, &login, none).is_ok());
        let e = vet(&u("http://127.0.0.2:18904/steal"), &login, &login, none).unwrap_err();
        assert!(
            e.starts_with("login: refusing to send the credentials to 127.0.0.2: it is neither the login page's host 127.0.0.1 nor in the spec's allowed_domains (if 127.0.0.2 is the site's own, add it to allowed_domains"),
            "{e}"
        );
        let shop = u("https://www.shop.example/login");
        let allowed = ["shop.example".to_string()];
        assert!(vet(&u("https://auth.shop.example/"), &shop, &shop, &allowed).is_ok());
        assert!(vet(&u("https://shop.example.evil/"), &shop, &shop, &allowed).is_err());
        // Redirected to the site's own login server: its form may post there.
        let sso = u("https://sso.example/login");
        assert!(vet(&u("https://sso.example/do"), &shop, &sso, none).is_ok());
        assert!(vet(&u("https://www.shop.example/cb"), &shop, &sso, none).is_ok());
        // A mirror (--origin made allowed_domains its host) naming production.
        let mirror = u("http://127.0.0.1:8000/login");
        let origin = ["127.0.0.1".to_string()];
        let e = vet(
            &u("https://quotes.toscrape.com/login"),
            &mirror,
            &mirror,
            &origin,
        );
        assert!(e.unwrap_err().contains("to quotes.toscrape.com:"));
    }
}
