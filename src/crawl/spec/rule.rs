//! One rule, from its keys to a `spider::Rule`: what kind of page it reads
//! decides whether strings are CSS selectors or JSON paths, so those are
//! compiled here, with the key path (`rules[2].fields.tags`) in each error.

use super::raw::{FieldDef, Fields, FullField, RawNext, RawSubmit, Re, RuleKeys};
use crate::crawl::spider::css::compile;
use crate::crawl::spider::{
    Field, Follow, Get, ItemSource, LinkFilter, Next, Path, Post, Read, Rule, Submit,
};

/// What a rule reads, by its keys.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// `item`: HTML elements; fields are CSS.
    Html,
    /// `json`: a JSON body; fields and follow are paths.
    Json,
    /// `script`: JSON in an HTML page; fields are paths, follow is CSS.
    Script,
    /// None of them, with `fields`: the page is the item; fields are CSS.
    Page,
    /// None of them: follow links only (CSS).
    FollowOnly,
}

/// Where a rule sits in the spec, for error messages.
pub(super) struct At<'a> {
    /// `spec x.json`.
    pub origin: &'a str,
    /// `""` for the top level, `rules[2].` in `rules`.
    pub prefix: String,
    /// The key items of this rule carry the rule name in (tagged rules only).
    pub rule_field: Option<&'a str>,
}

/// The farthest `sibling` a field may read.
const MAX_SIBLING: usize = 16;

impl At<'_> {
    /// `spec x.json: rules[2].key: msg`.
    pub fn err(&self, key: &str, msg: &str) -> String {
        format!("spec {}: {}{key}: {msg}", self.origin, self.prefix)
    }
}

/// Compiles one rule's keys; `tagged` rules add the rule field to items.
pub(super) fn compile_rule(
    name: String,
    tagged: bool,
    k: RuleKeys,
    at: &At<'_>,
) -> Result<Rule, String> {
    let reads = reads(&k, at)?;
    let fields = fields(k.fields, reads, at)?;
    let follow = follow(&k.follow, reads, at)?;
    let next = match (k.next, reads) {
        (None, _) => None,
        (Some(n), Reads::Json) => Some(next(n, at)?),
        (Some(_), _) => {
            return Err(at.err(
                "next",
                "only in a json rule (a JSON body); follow a link with follow",
            ))
        }
    };
    let source = match (k.item, k.json, k.script) {
        (Some(css), _, _) => Some(ItemSource::Html(css.0)),
        (None, None, None) if reads == Reads::Page => Some(ItemSource::Page),
        (None, path, Some(re)) => Some(ItemSource::Script(
            re.0,
            path.map_or_else(Path::whole, |p| p.0),
        )),
        // A json rule without fields follows links only.
        (None, Some(path), None) if !fields.is_empty() => Some(ItemSource::Json(path.0)),
        _ => None,
    };
    let submit = match (k.submit, reads) {
        (None, _) => None,
        (Some(_), Reads::Json) => {
            return Err(at.err(
                "submit",
                "only in a rule that reads HTML (a form is on an HTML page)",
            ))
        }
        (Some(raw), _) => Some(submit(raw, at)?),
    };
    Ok(Rule {
        name,
        tagged,
        matches: k.matches.map(|m| m.0),
        source,
        fields,
        follow,
        next,
        links: filter(k.allow, k.deny),
        submit,
    })
}

/// A rule's `submit`, checked: string values, a non-empty `each`.
fn submit(raw: RawSubmit, at: &At<'_>) -> Result<Submit, String> {
    let form = match raw.form {
        Some(css) => css.0,
        None => compile("form").map_err(|e| at.err("submit.form", &e))?,
    };
    if raw.each.as_deref().is_some_and(str::is_empty) {
        return Err(at.err("submit.each", "the name of a select in the form"));
    }
    let mut values = Vec::with_capacity(raw.values.len());
    for (name, v) in raw.values {
        let serde_json::Value::String(v) = v else {
            return Err(at.err(
                &format!("submit.values.{name}"),
                "a string (the value the field is sent with)",
            ));
        };
        values.push((name, v));
    }
    Ok(Submit {
        form,
        each: raw.each,
        values,
        rule: raw.rule,
    })
}

/// What a rule reads, by which of `item`, `json` and `script` it has.
fn reads(k: &RuleKeys, at: &At<'_>) -> Result<Reads, String> {
    match (&k.item, &k.json, &k.script) {
        (Some(_), None, None) => Ok(Reads::Html),
        (None, Some(_), None) => Ok(Reads::Json),
        (None, _, Some(_)) => Ok(Reads::Script),
        // Fields without an item selector: the page is the item.
        (None, None, None) if k.fields.is_some() => Ok(Reads::Page),
        (None, None, None) => Ok(Reads::FollowOnly),
        _ => {
            let key = if k.item.is_some() { "item" } else { "json" };
            Err(at.err(key, "a rule reads items by one of item (CSS), json (a JSON body) or script (a regex), not two"))
        }
    }
}

/// The rule's fields, which it must have unless it only follows links.
fn fields(defs: Option<Fields>, reads: Reads, at: &At<'_>) -> Result<Vec<Field>, String> {
    match (defs, reads) {
        (None, Reads::Html | Reads::Script | Reads::Page) => {
            Err(at.err("fields", "missing or not an object of name -> selector"))
        }
        (Some(_), Reads::FollowOnly) => Err(at.err(
            "item",
            "missing (a CSS selector for each item element; or json or script)",
        )),
        (None, _) => Ok(Vec::new()),
        (Some(defs), _) if defs.0.is_empty() => Err(at.err("fields", "needs at least one field")),
        (Some(defs), _) => {
            let mut fields: Vec<Field> = Vec::with_capacity(defs.0.len());
            for (fname, def) in defs.0 {
                check_name(&fname, &fields, at)?;
                fields.push(field(fname, def, reads, at)?);
            }
            Ok(fields)
        }
    }
}

/// The links a rule follows: JSON paths in a json rule, else CSS selectors.
fn follow(follow: &[String], reads: Reads, at: &At<'_>) -> Result<Follow, String> {
    if reads == Reads::Json {
        let paths = follow
            .iter()
            .enumerate()
            .map(|(i, p)| Path::parse(p).map_err(|e| at.err(&format!("follow[{i}]"), &e)));
        return Ok(Follow::Json(paths.collect::<Result<_, _>>()?));
    }
    for (i, css) in follow.iter().enumerate() {
        compile(css).map_err(|e| at.err(&format!("follow[{i}]"), &e))?;
    }
    // Each follow selector was checked alone (so errors name it); they are
    // joined into one selector list: one pass over the page instead of N.
    let joined = (!follow.is_empty()).then(|| compile(&follow.join(", ")));
    Ok(Follow::Css(
        joined.transpose().map_err(|m| at.err("follow", &m))?,
    ))
}

/// A link filter from `allow`/`deny` lists.
pub(super) fn filter(allow: Vec<Re>, deny: Vec<Re>) -> LinkFilter {
    LinkFilter {
        allow: allow.into_iter().map(|r| r.0).collect(),
        deny: deny.into_iter().map(|r| r.0).collect(),
    }
}

fn check_name(name: &str, before: &[Field], at: &At<'_>) -> Result<(), String> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(at.err(
            &format!("fields.{name:?}"),
            "a field name must be non-empty and printable",
        ));
    }
    if before.iter().any(|f| f.name == name) {
        return Err(at.err(
            &format!("fields.{name}"),
            "defined twice (each field name once)",
        ));
    }
    if name == "url" {
        return Err(at.err(
            "fields.url",
            "\"url\" is added to every item by qpipe; rename the field",
        ));
    }
    if at.rule_field == Some(name) {
        return Err(at.err(
            &format!("fields.{name}"),
            "is the rule_field, which qpipe adds to items of rules; rename the field or set rule_field",
        ));
    }
    Ok(())
}

/// One field: a CSS selector or JSON path (by what the rule reads), or its
/// full form with the reading and post-processing keys.
fn field(name: String, def: FieldDef, reads: Reads, at: &At<'_>) -> Result<Field, String> {
    let html = matches!(reads, Reads::Html | Reads::Page);
    let full = match def {
        FieldDef::Short(s) => return short_field(name, &s, html, at),
        FieldDef::Full(f) => *f,
    };
    check_keys(&name, &full, html, at)?;
    let FullField {
        css,
        path,
        read,
        all,
        sibling,
        re,
        normalize,
        join,
        default,
        absolute,
    } = full;
    let get = match html {
        true => Get::Css {
            selector: css.map(|c| c.0),
            read: read.map_or(Read::Text, |r| r.0),
            all: all.unwrap_or(false),
            sibling: sibling.unwrap_or(0),
        },
        false => Get::Json(path.map_or_else(Path::whole, |p| p.0)),
    };
    Ok(Field {
        name,
        get,
        post: Post {
            normalize,
            re: re.map(|r| r.0),
            absolute,
            join,
            default,
        },
    })
}

/// A field written as a string: the text of the first match of a CSS
/// selector (HTML rules), or the value at a JSON path.
fn short_field(name: String, s: &str, html: bool, at: &At<'_>) -> Result<Field, String> {
    let key = format!("fields.{name}");
    let get = match html {
        true => Get::Css {
            selector: Some(compile(s).map_err(|e| at.err(&key, &e))?),
            read: Read::Text,
            all: false,
            sibling: 0,
        },
        false => Get::Json(Path::parse(s).map_err(|e| at.err(&key, &e))?),
    };
    Ok(Field {
        get,
        name,
        post: Post::default(),
    })
}

/// A full field's keys fit its rule: CSS keys in HTML rules, `path` in
/// json and script rules, and `sibling` within `MAX_SIBLING`.
fn check_keys(name: &str, full: &FullField, html: bool, at: &At<'_>) -> Result<(), String> {
    let key = |k: &str| format!("fields.{name}{k}");
    if full.sibling.is_some_and(|n| n > MAX_SIBLING) {
        // Each item walks this far sideways: keep a page linear in its size.
        return Err(at.err(
            &key(".sibling"),
            &format!("at most {MAX_SIBLING} (the item's N-th following sibling element)"),
        ));
    }
    if html && full.path.is_some() {
        return Err(at.err(&key(".path"), "only in json and script rules (use css)"));
    }
    let html_only = [
        ("css", full.css.is_some()),
        ("read", full.read.is_some()),
        ("all", full.all.is_some()),
        ("sibling", full.sibling.is_some()),
    ];
    match html_only.iter().find(|(_, given)| *given) {
        Some((k, _)) if !html => {
            Err(at.err(&key(&format!(".{k}")), "only in HTML item rules (use path)"))
        }
        _ => Ok(()),
    }
}

fn next(n: RawNext, at: &At<'_>) -> Result<Next, String> {
    match (n.path, n.url) {
        (Some(path), None) => {
            if n.when.is_some() {
                return Err(at.err(
                    "next.if",
                    "only with next.url (a next.path that is missing is no next page)",
                ));
            }
            Ok(Next::Path(path.0))
        }
        (None, Some(url)) => Ok(Next::Template(url.0, n.when.map(|w| w.0))),
        _ => Err(at.err(
            "next",
            "give either path (where the next URL is) or url (a template like /api?page={page+1})",
        )),
    }
}
