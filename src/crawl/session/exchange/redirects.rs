//! Following redirects hop by hop: at most `Redirects::max` of them, each
//! target checked by the caller before it is requested, and a form POST
//! turned into a GET where browsers do. Pure: the caller makes the requests.

use super::Method;
use url::Url;

/// Where one hop of an exchange led.
pub enum Hop<T> {
    /// A redirect to `to` with status `code`, to be followed.
    Redirect {
        /// The target, as the caller wants it requested.
        to: Url,
        /// The 3xx status (whether a form is resent: 307, 308).
        code: u16,
    },
    /// The end of the exchange, with the caller's result.
    Done(T),
}

/// A check of a redirect target: the target, the method it will be
/// requested with, and the URLs requested so far.
pub type Check<'a, E> = &'a dyn Fn(&Url, &Method, &[Url]) -> Result<(), E>;

/// How many redirects an exchange follows, and which.
pub struct Redirects<'a, E> {
    /// Redirects followed at most; one more ends the exchange with `too_many`.
    pub max: usize,
    /// Checks each redirect target before it is requested, given the method
    /// the request will use and the URLs requested so far.
    pub check: Check<'a, E>,
    /// The error for a redirect past `max`: the URLs requested so far, and
    /// where it led.
    pub too_many: &'a dyn Fn(&[Url], &Url) -> E,
}

impl<E> Redirects<'_, E> {
    /// No check: any redirect target is followed.
    pub fn anywhere(_: &Url, _: &Method, _: &[Url]) -> Result<(), E> {
        Ok(())
    }
}

/// Requests `url` with `method`, then each redirect target in turn, until
/// `hop` (one request, plus whatever the caller adds: retries, politeness,
/// a stop check) says it is done. Past `redirects.max` redirects the
/// exchange ends with `too_many`; before that each target must pass
/// `redirects.check`. Returns the last URL requested and `hop`'s result.
pub fn follow<T, E>(
    url: &Url,
    method: Method,
    redirects: &Redirects<'_, E>,
    mut hop: impl FnMut(&Url, &Method) -> Result<Hop<T>, E>,
) -> Result<(Url, T), E> {
    let mut chain = vec![url.clone()];
    let mut method = method;
    loop {
        let current = &chain[chain.len() - 1];
        match hop(current, &method)? {
            Hop::Done(result) => return Ok((current.clone(), result)),
            Hop::Redirect { to, code } => {
                if chain.len() > redirects.max {
                    return Err((redirects.too_many)(&chain, &to));
                }
                method = method.after_redirect(code);
                (redirects.check)(&to, &method, &chain)?;
                chain.push(to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A site of redirects: `/N` leads to `/N+1` with `code`, up to `/last`.
    fn chain_of(
        code: u16,
        last: usize,
    ) -> impl FnMut(&Url, &Method) -> Result<Hop<Method>, String> {
        move |url, method| {
            let n: usize = url.path()[1..].parse().unwrap();
            Ok(match n < last {
                true => Hop::Redirect {
                    to: u(&format!("http://h/{}", n + 1)),
                    code,
                },
                false => Hop::Done(method.clone()),
            })
        }
    }

    fn limited(max: usize) -> Redirects<'static, String> {
        Redirects {
            max,
            check: &Redirects::anywhere,
            too_many: &|chain, to| format!("{} redirects, then {to}", chain.len()),
        }
    }

    #[test]
    fn follows_up_to_the_limit_and_not_one_more() {
        let (url, _) = follow(
            &u("http://h/0"),
            Method::Get,
            &limited(10),
            chain_of(302, 10),
        )
        .unwrap();
        assert_eq!(url, u("http://h/10"), "10 redirects, 11 requests");
        let err = follow(
            &u("http://h/0"),
            Method::Get,
            &limited(10),
            chain_of(302, 11),
        )
        .unwrap_err();
        assert_eq!(err, "11 redirects, then http://h/11");
        let err = follow(&u("http://h/0"), Method::Get, &limited(5), chain_of(302, 6)).unwrap_err();
        assert_eq!(err, "6 redirects, then http://h/6");
    }

    #[test]
    fn a_form_is_resent_only_on_307_and_308() {
        let form = Method::Form {
            body: "a=1".into(),
            from: u("http://h/login"),
        };
        for (code, resent) in [
            (301, false),
            (302, false),
            (303, false),
            (307, true),
            (308, true),
        ] {
            let (_, last) = follow(
                &u("http://h/0"),
                form.clone(),
                &limited(10),
                chain_of(code, 2),
            )
            .unwrap();
            assert_eq!(last == form, resent, "{code}");
        }
        assert_eq!(Method::Get.after_redirect(307), Method::Get);
    }

    #[test]
    fn each_target_is_checked_with_its_method_and_the_chain_before_it_is_requested() {
        let seen = std::cell::RefCell::new(Vec::new());
        let check = |to: &Url, m: &Method, chain: &[Url]| {
            seen.borrow_mut()
                .push((to.path().to_string(), m.clone(), chain.len()));
            match to.path() == "/2" {
                true => Err(format!("refused {to}")),
                false => Ok(()),
            }
        };
        let redirects = Redirects {
            max: 10,
            check: &check,
            too_many: &|_, _| "too many".to_string(),
        };
        let form = Method::Form {
            body: "a=1".into(),
            from: u("http://h/login"),
        };
        let mut requested = Vec::new();
        let mut site = chain_of(303, 5);
        let err = follow(&u("http://h/0"), form, &redirects, |url, m| {
            requested.push(url.path().to_string());
            site(url, m)
        })
        .unwrap_err();
        assert_eq!(err, "refused http://h/2");
        assert_eq!(
            requested,
            ["/0", "/1"],
            "the refused target is never requested"
        );
        let seen = seen.into_inner();
        assert_eq!(
            seen,
            [("/1".into(), Method::Get, 1), ("/2".into(), Method::Get, 2)]
        );
    }

    #[test]
    fn the_limit_is_checked_before_the_target() {
        let redirects = Redirects {
            max: 1,
            check: &|_, _, _| Err("checked".to_string()),
            too_many: &|_, _| "too many".to_string(),
        };
        let looped = |_: &Url, _: &Method| -> Result<Hop<()>, String> {
            Ok(Hop::Redirect {
                to: u("http://h/0"),
                code: 302,
            })
        };
        let err = follow(&u("http://h/0"), Method::Get, &redirects, looped).unwrap_err();
        assert_eq!(err, "checked", "the first redirect is within the limit");
        let none = Redirects {
            max: 0,
            ..redirects
        };
        let err = follow(&u("http://h/0"), Method::Get, &none, looped).unwrap_err();
        assert_eq!(err, "too many");
    }
}
