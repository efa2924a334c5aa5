//! HTML form submission as a browser does it: which name=value pairs a form
//! sends, where, and by which method. Pure functions on parsed HTML.
//!
//! Kept: every named input (hidden ones such as `csrf_token` included),
//! checked checkboxes and radios, the selected options of selects (else a
//! single select's first option), textareas, and the first submit button.
//! Skipped: disabled controls, unchecked boxes, file inputs, other buttons.
//! Controls outside the form tied to it by a `form=` attribute are not seen.

use scraper::{ElementRef, Html, Selector};
use url::Url;

/// One name=value pair a form submits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The control's name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// Whether it is a password input (its value is a secret).
    pub password: bool,
}

/// A form as it would be submitted.
#[derive(Debug, Clone)]
pub struct Form {
    /// Where it goes: the `action` resolved against the page (or `<base>`).
    pub action: Url,
    /// POST (form-urlencoded body); otherwise GET with the pairs as the query.
    pub post: bool,
    /// What it sends, in document order.
    pub pairs: Vec<Pair>,
}

/// The first element matching `sel` on the page read as a form. `Err` names
/// the element when the match is not a `<form>`.
pub fn find(doc: &Html, sel: &Selector, page: &Url) -> Result<Option<Form>, String> {
    Ok(find_with_options(doc, sel, page, None)?.map(|(f, _)| f))
}

/// `find`, plus the values of the options of the form's select named
/// `each` (enabled options with a non-empty value, in document order).
pub fn find_with_options(
    doc: &Html,
    sel: &Selector,
    page: &Url,
    each: Option<&str>,
) -> Result<Option<(Form, Vec<String>)>, String> {
    let Some(el) = doc.select(sel).next() else {
        return Ok(None);
    };
    let tag = el.value().name();
    if tag != "form" {
        return Err(format!("it matches a <{tag}>, not a <form>"));
    }
    let options = each.map(|name| options(el, name)).unwrap_or_default();
    let base = Selector::parse("base[href]")
        .ok()
        .and_then(|s| doc.select(&s).next())
        .and_then(|b| page.join(b.value().attr("href")?.trim()).ok())
        .unwrap_or_else(|| page.clone());
    let action = match el.value().attr("action").map(str::trim) {
        Some(a) if !a.is_empty() => base.join(a).unwrap_or_else(|_| page.clone()),
        _ => page.clone(),
    };
    let post = el
        .value()
        .attr("method")
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("post"));
    Ok(Some((
        Form {
            action,
            post,
            pairs: pairs(el),
        },
        options,
    )))
}

/// The values of the enabled, non-empty options of the selects named
/// `name` in `form`, each once, in document order.
fn options(form: ElementRef<'_>, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let selects = form
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|e| e.value().name() == "select" && e.value().attr("name") == Some(name));
    for select in selects {
        let opts = select
            .descendants()
            .filter_map(ElementRef::wrap)
            .filter(|o| o.value().name() == "option" && !disabled(*o));
        for o in opts {
            let v = option_value(&o);
            if !v.is_empty() && seen.insert(v.clone()) {
                out.push(v);
            }
        }
    }
    out
}

/// What an option submits: its `value`, else its text, spaces collapsed.
fn option_value(o: &ElementRef<'_>) -> String {
    match o.value().attr("value") {
        Some(v) => v.to_string(),
        None => o
            .text()
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// The pairs `form` submits, in document order.
pub fn pairs(form: ElementRef<'_>) -> Vec<Pair> {
    let mut out = Vec::new();
    let mut submitter_seen = false;
    for el in form.descendants().filter_map(ElementRef::wrap) {
        let v = el.value();
        let tag = v.name();
        if !matches!(tag, "input" | "button" | "select" | "textarea") || disabled(el) {
            continue;
        }
        let name = v.attr("name").unwrap_or("");
        let value = v.attr("value").unwrap_or("");
        let kind = match tag {
            "input" => v.attr("type").unwrap_or("text").trim().to_ascii_lowercase(),
            "button" => v
                .attr("type")
                .unwrap_or("submit")
                .trim()
                .to_ascii_lowercase(),
            _ => String::new(),
        };
        let mut push = |name: &str, value: &str, password: bool| {
            if !name.is_empty() {
                out.push(Pair {
                    name: name.into(),
                    value: value.into(),
                    password,
                });
            }
        };
        match (tag, kind.as_str()) {
            ("input" | "button", "submit") | ("input", "image") => {
                // Only the first submit button is "clicked".
                if std::mem::replace(&mut submitter_seen, true) {
                    continue;
                }
                if kind == "image" {
                    let prefix = if name.is_empty() {
                        String::new()
                    } else {
                        format!("{name}.")
                    };
                    out.push(pair(&format!("{prefix}x"), "0"));
                    out.push(pair(&format!("{prefix}y"), "0"));
                } else {
                    push(name, value, false);
                }
            }
            ("button", _) | ("input", "button" | "reset" | "file") => {}
            ("input", "checkbox" | "radio") if v.attr("checked").is_some() => {
                push(name, v.attr("value").unwrap_or("on"), false);
            }
            ("input", "checkbox" | "radio") => {}
            ("input", kind) => push(name, value, kind == "password"),
            ("select", _) => {
                for chosen in selected(el) {
                    push(name, &chosen, false);
                }
            }
            ("textarea", _) => {
                let text: String = el.text().collect();
                push(
                    name,
                    &text.replace("\r\n", "\n").replace('\n', "\r\n"),
                    false,
                );
            }
            _ => {}
        }
    }
    out
}

fn pair(name: &str, value: &str) -> Pair {
    Pair {
        name: name.into(),
        value: value.into(),
        password: false,
    }
}

/// A control is disabled by its own attribute or a disabled fieldset around it.
fn disabled(el: ElementRef<'_>) -> bool {
    el.value().attr("disabled").is_some()
        || el
            .ancestors()
            .filter_map(ElementRef::wrap)
            .any(|a| a.value().name() == "fieldset" && a.value().attr("disabled").is_some())
}

/// The values a select submits: its selected options (the last one for a
/// single select), else a single select's first enabled option.
fn selected(select: ElementRef<'_>) -> Vec<String> {
    let multiple = select.value().attr("multiple").is_some();
    let options: Vec<ElementRef<'_>> = select
        .descendants()
        .filter_map(ElementRef::wrap)
        .filter(|o| o.value().name() == "option" && !disabled(*o))
        .collect();
    let value = option_value;
    let chosen: Vec<String> = options
        .iter()
        .filter(|o| o.value().attr("selected").is_some())
        .map(value)
        .collect();
    match (multiple, chosen.last(), options.first()) {
        (true, _, _) => chosen,
        (false, Some(last), _) => vec![last.clone()],
        (false, None, Some(first)) => vec![value(first)],
        (false, None, None) => Vec::new(),
    }
}

impl Form {
    /// Sets the given fields: the first control of that name takes the value
    /// and later ones of the name are dropped; a name the form lacks is added
    /// at the end. Returns the names the form lacked.
    pub fn fill(&mut self, given: &[(String, String)]) -> Vec<String> {
        let mut missing = Vec::new();
        for (name, value) in given {
            let mut first = true;
            self.pairs.retain_mut(|p| {
                if p.name != *name {
                    return true;
                }
                p.value.clone_from(value);
                std::mem::replace(&mut first, false)
            });
            if first {
                missing.push(name.clone());
                self.pairs.push(pair(name, value));
            }
        }
        missing
    }

    /// The pairs, form-urlencoded.
    pub fn encoded(&self) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for p in &self.pairs {
            ser.append_pair(&p.name, &p.value);
        }
        ser.finish()
    }

    /// The URL a GET form goes to: the action with the pairs as its query.
    pub fn get_url(&self) -> Url {
        let mut u = self.action.clone();
        u.set_query(Some(&self.encoded()));
        u.set_fragment(None);
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(html: &str) -> Form {
        let doc = Html::parse_document(html);
        let sel = Selector::parse("form").unwrap();
        let page = Url::parse("https://example.com/login?next=/").unwrap();
        find(&doc, &sel, &page).unwrap().expect("a form")
    }

    fn names_values(f: &Form) -> Vec<(String, String)> {
        f.pairs
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect()
    }

    fn nv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_hidden_inputs_checked_boxes_selects_and_the_first_submit() {
        let f = form(
            r#"<form method="POST" action="/do-login">
              <input type="hidden" name="csrf_token" value="abc123">
              <input name="username"><input type="password" name="password" value="">
              <input type="checkbox" name="remember" checked><input type="checkbox" name="spam" value="y">
              <input type="radio" name="r" value="a"><input type="radio" name="r" value="b" checked>
              <select name="lang"><option>en</option><option value="fr" selected>French</option></select>
              <select name="first"><option disabled>x</option><option> Two  words </option></select>
              <select name="m" multiple><option value="1" selected><option value="2"><option value="3" selected></select>
              <textarea name="note">a
b</textarea>
              <input name="off" disabled value="x"><fieldset disabled><input name="off2" value="y"></fieldset>
              <input type="file" name="f"><input type="reset" name="rs"><button type="button" name="b">x</button>
              <input type="submit" name="go" value="Login"><button name="other" value="no">Other</button>
              <input value="no name">
            </form>"#,
        );
        assert!(f.post);
        assert_eq!(f.action.as_str(), "https://example.com/do-login");
        assert_eq!(
            names_values(&f),
            nv(&[
                ("csrf_token", "abc123"),
                ("username", ""),
                ("password", ""),
                ("remember", "on"),
                ("r", "b"),
                ("lang", "fr"),
                ("first", "Two words"),
                ("m", "1"),
                ("m", "3"),
                ("note", "a\r\nb"),
                ("go", "Login"),
            ])
        );
        assert!(f.pairs[2].password && !f.pairs[1].password);
    }

    #[test]
    fn fill_replaces_in_place_and_reports_unknown_names() {
        let mut f = form(
            r#"<form><input type=hidden name=csrf value=t><input name=user value=old><select name=m multiple><option selected>1<option selected>2</select></form>"#,
        );
        assert!(!f.post, "no method: GET");
        assert_eq!(f.action.as_str(), "https://example.com/login?next=/");
        let missing = f.fill(&nv(&[("user", "bob"), ("m", "9"), ("extra", "e")]));
        assert_eq!(missing, ["extra"]);
        assert_eq!(
            names_values(&f),
            nv(&[("csrf", "t"), ("user", "bob"), ("m", "9"), ("extra", "e")])
        );
        assert_eq!(f.encoded(), "csrf=t&user=bob&m=9&extra=e");
        assert_eq!(
            f.get_url().as_str(),
            "https://example.com/login?csrf=t&user=bob&m=9&extra=e"
        );
    }

    #[test]
    fn action_resolves_against_base_and_image_submits_coordinates() {
        let f = form(
            r#"<head><base href="https://other.example/app/"></head><form action="post ?a=1" method=post><input type=image name=go><input type=submit name=later value=x></form>"#,
        );
        assert_eq!(f.action.as_str(), "https://other.example/app/post%20?a=1");
        assert_eq!(names_values(&f), nv(&[("go.x", "0"), ("go.y", "0")]));
        let doc = Html::parse_document("<div class=f></div>");
        let page = Url::parse("https://example.com/").unwrap();
        let e = find(&doc, &Selector::parse(".f").unwrap(), &page).unwrap_err();
        assert_eq!(e, "it matches a <div>, not a <form>");
        assert!(find(&doc, &Selector::parse("form").unwrap(), &page)
            .unwrap()
            .is_none());
    }
}
