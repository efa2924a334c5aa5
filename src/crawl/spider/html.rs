//! HTML pages: items by CSS selector (fields from the item element or a
//! sibling row), items from JSON inside `<script>`s, and `follow` links.

use super::page_links::PageLinks;
use super::{
    json, nesting, Field, Follow, Get, ItemSource, PageCaps, Read, Rule, Scraped, Submission,
    Submit, MAX_SUBMISSIONS_PER_PAGE,
};
use crate::crawl::session::form;
use scraper::{ElementRef, Html, Selector};
use serde_json::{Map, Value};
use url::Url;

/// Reads an HTML page by `rule`, after cutting nesting beyond the cap.
///
/// An element matched by the item selector inside another matched item is
/// not an item of its own: items are disjoint subtrees, so reading their
/// fields visits each element once (a `sibling` field adds a bounded
/// number of visits: its walks are as deep as the nesting cap at most).
pub(super) fn read(
    rule: &Rule,
    caps: PageCaps,
    body: &str,
    links: &mut PageLinks<'_>,
    emit: &mut dyn FnMut(Map<String, Value>),
) {
    let capped = nesting::cap(body, caps.max_nesting);
    let doc = super::parse(&capped.html);
    links.out.elements_cut = capped.elements_cut;
    let base = links.base().clone();
    match &rule.source {
        Some(ItemSource::Html(item)) => {
            let mut outer: Option<ElementRef<'_>> = None;
            for el in doc.select(item) {
                // Document order: an element inside an earlier item is inside
                // the latest one. The walk up is bounded by the nesting cap.
                if outer.is_some_and(|o| el.ancestors().any(|a| a.id() == o.id())) {
                    links.out.nested_items += 1;
                    continue;
                }
                outer = Some(el);
                emit(fields(&rule.fields, el, &base));
            }
        }
        Some(ItemSource::Page) => emit(fields(&rule.fields, doc.root_element(), &base)),
        Some(ItemSource::Script(re, path)) => {
            let scripts = Selector::parse("script").unwrap_or_else(|e| unreachable!("{e}"));
            for script in doc.select(&scripts) {
                let text: String = script.text().collect();
                let Some(caps) = re.captures(&text) else {
                    continue;
                };
                let Some(m) = caps.get(1).or_else(|| caps.get(0)) else {
                    continue;
                };
                match json::parse_bounded(m.as_str()) {
                    Some(v) => json::items(path, &v, &rule.fields, &base, emit),
                    None => links.out.bad_json += 1,
                }
            }
        }
        Some(ItemSource::Json(_)) | None => {}
    }
    if let Follow::Css(Some(follow)) = &rule.follow {
        for href in doc.select(follow).filter_map(|a| a.value().attr("href")) {
            links.add(href);
        }
    }
    if let Some(submit) = &rule.submit {
        forms(submit, &doc, &base, links.out);
    }
}

/// The submissions `submit` asks for on this page: its form once, or once
/// per option of its `each` select, with its `values` set.
fn forms(submit: &Submit, doc: &Html, page: &Url, out: &mut Scraped) {
    let found = form::find_with_options(doc, &submit.form, page, submit.each.as_deref());
    let (form, options) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            out.form_problem = Some("no element matches the submit form selector".into());
            return;
        }
        Err(e) => {
            out.form_problem = Some(format!("the submit form selector: {e}"));
            return;
        }
    };
    let choices: Vec<Option<&String>> = match &submit.each {
        Some(name) if options.is_empty() => {
            out.form_problem = Some(format!("the form's select {name:?} has no options"));
            return;
        }
        Some(_) => options.iter().map(Some).collect(),
        None => vec![None],
    };
    let (kept, cut) = match choices.len() > MAX_SUBMISSIONS_PER_PAGE {
        true => (
            &choices[..MAX_SUBMISSIONS_PER_PAGE],
            choices.len() - MAX_SUBMISSIONS_PER_PAGE,
        ),
        false => (&choices[..], 0),
    };
    out.forms_cut += cut as u64;
    for choice in kept {
        let mut f = form.clone();
        let mut given = submit.values.clone();
        let mut label = Vec::new();
        if let (Some(name), Some(v)) = (&submit.each, choice) {
            given.insert(0, (name.clone(), (*v).clone()));
            label.push(format!("{name}={v}"));
        }
        f.fill(&given);
        let (url, body) = match f.post {
            true => (f.action.clone(), Some(f.encoded())),
            false => (f.get_url(), None),
        };
        out.submissions.push(Submission {
            url,
            body,
            rule: submit.rule.clone(),
            label: label.join(", "),
        });
    }
}

fn fields(fields: &[Field], el: ElementRef<'_>, base: &Url) -> Map<String, Value> {
    let mut map = Map::with_capacity(fields.len());
    for f in fields {
        let raw = match &f.get {
            Get::Css {
                selector,
                read: how,
                all,
                sibling,
            } => {
                let target = match sibling {
                    0 => Some(el),
                    n => el.next_siblings().filter_map(ElementRef::wrap).nth(n - 1),
                };
                let mut values: Box<dyn Iterator<Item = String>> = match (target, selector) {
                    (None, _) => Box::new(std::iter::empty()),
                    (Some(t), Some(sel)) => {
                        Box::new(t.select(sel).filter_map(|m| read_value(how, m)))
                    }
                    (Some(t), None) => Box::new(read_value(how, t).into_iter()),
                };
                if *all {
                    Value::Array(values.map(Value::String).collect())
                } else {
                    values.next().map_or(Value::Null, Value::String)
                }
            }
            Get::Json(_) => Value::Null,
        };
        map.insert(f.name.clone(), f.post.apply(raw, base));
    }
    map
}

fn read_value(how: &Read, el: ElementRef<'_>) -> Option<String> {
    match how {
        Read::Text => Some(el.text().collect::<String>().trim().to_string()),
        Read::Attr(name) => el.value().attr(name).map(str::to_string),
        Read::Html => Some(el.inner_html()),
    }
}
