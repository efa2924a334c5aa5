//! The `login` spec key: its types, checked as read so that errors name the
//! key (`login.fields.password.env: ...`), and the variables it names read
//! once at start. No field value is ever shown, not even in `Debug`.

use crate::crawl::origin::HttpUrl;
use crate::crawl::spider::css;
use scraper::Selector;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use url::Url;

/// The `login` spec key as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawLogin")]
pub struct Login {
    /// The page that holds the login form.
    pub url: Url,
    /// Which form to fill (default `form`: the first one).
    pub form: Css,
    /// Field name -> value, in the order written.
    pub fields: Vec<(String, FieldValue)>,
    /// A selector that matches only when the site reports a failed login.
    pub error: Option<Css>,
}

/// A login field's value: written in the spec, or read from a variable.
#[derive(Clone)]
pub enum FieldValue {
    /// The value itself.
    Text(String),
    /// The name of the environment variable holding it.
    Env(String),
}

impl fmt::Debug for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Text(_) => f.write_str("Text(***)"),
            FieldValue::Env(name) => write!(f, "Env({name})"),
        }
    }
}

/// A CSS selector with its text, for messages.
#[derive(Debug, Clone)]
pub struct Css {
    /// As written.
    pub text: String,
    /// Compiled.
    pub selector: Selector,
}

/// A login ready to run: variables read. `Debug` shows no value.
#[derive(Clone)]
pub struct LoginStep {
    /// The spec's login.
    pub login: Login,
    /// Field name -> value; none is ever shown.
    pub fields: Vec<(String, String)>,
    /// The spec's allowed domains (after `--origin`): besides the login
    /// page's host, where the form may send the credentials.
    pub allowed_domains: Vec<String>,
}

impl fmt::Debug for LoginStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginStep")
            .field("login", &self.login)
            .field("allowed_domains", &self.allowed_domains)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Reads each `{"env": VAR}` through `env` (`std::env::var(..).ok()` in a
    /// run). An unset or empty variable is an error naming it and its key.
    /// `allowed_domains` are the spec's, after `--origin`.
    pub fn resolve(
        &self,
        allowed_domains: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<LoginStep, String> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (name, value) in &self.fields {
            let value = match value {
                FieldValue::Text(t) => t.clone(),
                FieldValue::Env(var) => {
                    let v = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                        format!("login.fields.{name}.env: the environment variable {var} is not set or empty (export it before running qpipe)")
                    })?;
                    v
                }
            };
            fields.push((name.clone(), value));
        }
        Ok(LoginStep {
            login: self.clone(),
            fields,
            allowed_domains: allowed_domains.to_vec(),
        })
    }
}

/// The key as written; each part checks itself so errors name the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    url: HttpUrl,
    #[serde(default)]
    form: Option<Css>,
    fields: Fields,
    #[serde(default)]
    error: Option<Css>,
}

impl From<RawLogin> for Login {
    fn from(r: RawLogin) -> Login {
        Login {
            url: r.url.0,
            form: r.form.unwrap_or_else(|| Css {
                text: "form".into(),
                selector: Selector::parse("form").expect("a valid selector"),
            }),
            fields: r.fields.0,
            error: r.error,
        }
    }
}

impl<'de> Deserialize<'de> for Css {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Css, D::Error> {
        let text = String::deserialize(d)?;
        let selector = css::compile(&text).map_err(de::Error::custom)?;
        Ok(Css { text, selector })
    }
}

/// `fields`, in the order written.
struct Fields(Vec<(String, FieldValue)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of field name -> value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut out: Vec<(String, FieldValue)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name.is_empty() || out.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!(
                            "field {name:?} is empty or given twice"
                        )));
                    }
                    let value = map.next_value()?;
                    out.push((name, value));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `{"env": "VAR"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvRef {
    env: VarName,
}

struct VarName(String);

impl<'de> Deserialize<'de> for VarName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<VarName, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.contains(['=', '\0']) || s.trim() != s {
            return Err(de::Error::custom(format!(
                "{s:?} is not an environment variable name (e.g. \"QUOTES_PASSWORD\")"
            )));
        }
        Ok(VarName(s))
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldValue, D::Error> {
        struct V;
        // serde's own messages would quote a wrongly typed value: it may be a secret.
        fn not<E: de::Error>(what: &str) -> E {
            E::custom(format!(
                "a field value must be a string or {{\"env\": \"VAR\"}}, not {what}"
            ))
        }
        impl<'de> Visitor<'de> for V {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or {\"env\": \"VAR\"}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue::Text(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldValue, A::Error> {
                let r = EnvRef::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(FieldValue::Env(r.env.0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<FieldValue, E> {
                Err(not("a number"))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<FieldValue, E> {
                Err(not("true or false"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn login(text: &str) -> Result<Login, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize::<_, Login>(&mut de)
            .map_err(|e| format!("{}: {}", e.path().clone(), e.into_inner()))
    }

    #[test]
    fn parses_fields_in_order_with_env_references() {
        let l = login(r#"{"url":"https://x.example/login","fields":{"username":"bob","password":{"env":"PW"}},"error":"p.error"}"#).unwrap();
        assert_eq!(l.form.text, "form");
        assert_eq!(l.error.as_ref().map(|e| e.text.as_str()), Some("p.error"));
        let step = l
            .resolve(&["x.example".into()], &|k| {
                (k == "PW").then(|| "hunter2".to_string())
            })
            .unwrap();
        let want: Vec<(String, String)> = vec![
            ("username".into(), "bob".into()),
            ("password".into(), "hunter2".into()),
        ];
        assert_eq!(step.fields, want);
        assert_eq!(step.allowed_domains, ["x.example"]);
        assert!(!format!("{step:?}{l:?}").contains("hunter2") && !format!("{l:?}").contains("bob"));
        let e = l.resolve(&[], &|_| None).unwrap_err();
        assert_eq!(e, "login.fields.password.env: the environment variable PW is not set or empty (export it before running qpipe)");
    }

    #[test]
    fn errors_name_the_key_and_never_the_value() {
        let e = login(r#"{"url":"https://x/","fields":{"password":{"env":"A=B"}}}"#).unwrap_err();
        assert!(
            e.starts_with("fields.password.env: \"A=B\" is not an environment variable name"),
            "{e}"
        );
        let e =
            login(r#"{"url":"https://x/","fields":{"password":{"env":"PW","x":1}}}"#).unwrap_err();
        assert!(e.starts_with("fields.password.x: unknown field"), "{e}");
        let e = login(r#"{"url":"https://x/","fields":{"pin":123456}}"#).unwrap_err();
        assert!(
            e.starts_with("fields.pin: a field value must be a string") && !e.contains("123456"),
            "{e}"
        );
        assert!(login(r#"{"url":"/login","fields":{}}"#)
            .unwrap_err()
            .starts_with("url: \"/login\" is not an absolute"));
        assert!(login(r#"{"url":"https://x/","form":"form[","fields":{}}"#)
            .unwrap_err()
            .starts_with("form: invalid CSS selector"));
        for empty in ["", "  "] {
            let e = login(&format!(
                r#"{{"url":"https://x/","form":"{empty}","fields":{{}}}}"#
            ))
            .unwrap_err();
            assert!(e.starts_with("form: invalid CSS selector"), "{e}");
            assert!(!e.contains("report"), "scraper's own plea leaked: {e}");
        }
        let e = login(r#"{"url":"https://x/","fields":{},"error":""}"#).unwrap_err();
        assert!(
            e.starts_with("error: invalid CSS selector") && !e.contains("report"),
            "{e}"
        );
        assert!(login(r#"{"url":"https://x/","fields":{},"eror":"p"}"#)
            .unwrap_err()
            .contains("unknown field `eror`"));
        assert!(login(r#"{"url":"https://x/"}"#)
            .unwrap_err()
            .contains("missing field `fields`"));
    }
}
