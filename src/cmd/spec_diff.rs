//! `qpipe spec --diff OLD NEW --http-cache DIR`: scrape every page in an
//! HTTP cache with two specs and say what the change does to the items:
//! added, removed and changed (per field), with examples. Nothing is
//! fetched. Exit 3 if anything changed, so it can guard a spec in CI.
//!
//! Items are compared page by page: equal items pair off first, then the
//! rest pair in page order (a change), and what is left over was added or
//! removed.

use crate::config::DiffConfig;
use crate::crawl::fetch;
use crate::crawl::page;
use crate::crawl::session::cache;
use crate::crawl::spec::SpecFile;
use crate::crawl::spider::{self, Submission, MAX_FORM_DEPTH};
use crate::error::{redact, Error, Exit};
use crate::run::log;
use crate::run::summary::{Output, Summary};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use url::Url;

/// What the comparison found.
#[derive(Default)]
struct Report {
    /// Entries in the cache, and those read as pages by either spec.
    entries: u64,
    pages: u64,
    /// Form answers read (a spec's `submit`, found in the cache).
    answers: u64,
    /// Form answers a spec sends that the cache lacks: not compared.
    answers_missing: u64,
    /// Entries that did not decode.
    unreadable: u64,
    /// Items made by each spec.
    old_items: u64,
    new_items: u64,
    unchanged: u64,
    added: Vec<(String, Value)>,
    removed: Vec<(String, Value)>,
    /// Changed items, and per field how many changed with examples.
    changed: u64,
    fields: BTreeMap<String, (u64, Vec<String>)>,
}

/// What one spec made of one cached answer: its items, and the forms it
/// would send from there.
#[derive(Default)]
struct Reading {
    items: Vec<Value>,
    subs: Vec<Submission>,
}

/// A cached answer that a spec's forms reach: how examples name it, and
/// the rule each spec reads it by (`None`: that spec's forms never reach
/// it; it may still read it as a page).
struct Answer {
    at: String,
    rules: [Option<Option<String>>; 2],
}

/// Runs the diff and prints the report on stdout.
pub fn run(cfg: &DiffConfig) -> Result<Summary, Error> {
    let mut report = Report::default();
    let entries = cache::entries(&cfg.dir);
    report.entries = entries.len() as u64;
    if entries.is_empty() {
        return Err(Error::Usage(format!(
            "--http-cache {} holds no pages (fill it first: qpipe produce --http-cache DIR, or qpipe spec --try URL --http-cache DIR)",
            cfg.dir.display()
        )));
    }
    // The forms each spec sends from the pages it reads by their URL...
    let specs = [&cfg.old.0, &cfg.new.0];
    let mut forms = VecDeque::new();
    for path in &entries {
        let Some((entry, url)) = answer_at(path, cfg, Some(&mut report.unreadable)) else {
            continue;
        };
        if entry.meta.method != "GET" || url.path() == "/robots.txt" {
            continue;
        }
        for (side, spec) in specs.iter().enumerate() {
            let subs = reading(spec, cfg, &entry, &url, None).map(|r| r.subs);
            forms.extend(subs.into_iter().flatten().map(|s| (side, s, 1)));
        }
    }
    // ...followed through the cache, then every answer compared as each
    // spec reads it: by the rule its form names, or as a page.
    let answers = answers(cfg, forms, &mut report);
    for path in &entries {
        compare_entry(path, answers.get(path), cfg, &mut report);
    }
    if report.answers_missing > 0 {
        log::warn(&format!(
            "{} form answers a spec sends are not in the cache and were not compared (crawl with that spec and --http-cache to add them)",
            report.answers_missing
        ));
    }
    if report.pages + report.answers == 0 {
        return Err(Error::Usage(format!(
            "neither spec reads any of the {} cached pages in --http-cache {}, so nothing was compared (check --origin, or fill the cache with these specs)",
            report.entries,
            cfg.dir.display()
        )));
    }
    log::out(&render(&report, cfg));
    let changes = report.added.len() as u64 + report.removed.len() as u64 + report.changed;
    let exit = if changes > 0 { Exit::Partial } else { Exit::Ok };
    let mut sum = Summary::new("spec", exit);
    sum.output = Output::Silent;
    Ok(sum)
}

/// A cached 2xx answer with its body, and its URL; `None` for anything
/// else (counted in `unreadable` if given and it does not decode).
fn answer_at(
    path: &Path,
    cfg: &DiffConfig,
    unreadable: Option<&mut u64>,
) -> Option<(cache::Entry, Url)> {
    let parsed = cache::read(path, cfg.max_body)
        .ok()
        .and_then(|e| Url::parse(&e.meta.url).ok().map(|u| (e, u)));
    let Some((entry, url)) = parsed else {
        if let Some(n) = unreadable {
            *n += 1;
        }
        return None;
    };
    let m = &entry.meta;
    (!m.unread && (200..300).contains(&m.status)).then_some((entry, url))
}

/// Compares one cached answer as each spec reads it, if either does.
fn compare_entry(path: &Path, answer: Option<&Answer>, cfg: &DiffConfig, r: &mut Report) {
    let Some((entry, url)) = answer_at(path, cfg, None) else {
        return;
    };
    let page = entry.meta.method == "GET" && url.path() != "/robots.txt";
    let specs = [&cfg.old.0, &cfg.new.0];
    let [old, new] = [0, 1].map(|side| match answer.and_then(|a| a.rules[side].as_ref()) {
        Some(rule) => reading(specs[side], cfg, &entry, &url, Some(rule.as_deref())),
        None if page => reading(specs[side], cfg, &entry, &url, None),
        None => None,
    });
    if old.is_none() && new.is_none() {
        return;
    }
    match answer {
        Some(_) => r.answers += 1,
        None => r.pages += 1,
    }
    // Examples name the page; never with a password from its URL.
    let at = answer.map_or_else(|| redact(url.as_str()), |a| a.at.clone());
    let items = |x: Option<Reading>| x.map(|x| x.items).unwrap_or_default();
    compare(&at, items(old), items(new), r, cfg.examples);
}

/// Where a cached request's answer ends: its redirects followed through
/// the cache (a 301, 302 or 303 turns a POST into a GET).
enum Ends {
    /// A 2xx answer: its entry path, URL and entry.
    Page(PathBuf, Url, Box<cache::Entry>),
    /// Another final status (a 404, say): answered, nothing to read.
    Status,
    /// Not in the cache.
    Missing(PathBuf),
}

fn resolve(cfg: &DiffConfig, sub: &Submission) -> Ends {
    let (mut url, mut body) = (sub.url.clone(), sub.body.clone());
    let mut path = PathBuf::new();
    for _ in 0..=crate::crawl::session::exchange::MAX_REDIRECTS {
        let verb = if body.is_some() { "POST" } else { "GET" };
        path = cache::entry_path(&cfg.dir, verb, &url, body.as_deref().unwrap_or(""));
        let Ok(entry) = cache::read(&path, cfg.max_body) else {
            return Ends::Missing(path);
        };
        let status = entry.meta.status;
        let next = entry.header("location").and_then(|l| url.join(l).ok());
        match (status, next) {
            (200..=299, _) if !entry.meta.unread => return Ends::Page(path, url, Box::new(entry)),
            (300..=399, Some(to)) => {
                if !matches!(status, 307 | 308) {
                    body = None;
                }
                url = to;
            }
            _ => return Ends::Status,
        }
    }
    Ends::Missing(path)
}

/// Follows the `forms` each spec sends (`(side, submission, depth)`)
/// through the cache as a crawl would, breadth first (so an answer is
/// first reached at its shallowest): each answer is read by the rule its
/// form names, and the forms it asks for in turn are followed,
/// `MAX_FORM_DEPTH` deep. Returns the answers, by entry path.
fn answers(
    cfg: &DiffConfig,
    mut forms: VecDeque<(usize, Submission, u32)>,
    report: &mut Report,
) -> BTreeMap<PathBuf, Answer> {
    let specs = [&cfg.old.0, &cfg.new.0];
    let mut found: BTreeMap<PathBuf, Answer> = BTreeMap::new();
    let mut missing = std::collections::BTreeSet::new();
    while let Some((side, sub, depth)) = forms.pop_front() {
        let (path, url, entry) = match resolve(cfg, &sub) {
            Ends::Page(path, url, entry) => (path, url, entry),
            Ends::Status => continue,
            Ends::Missing(path) => {
                missing.insert(path);
                continue;
            }
        };
        let slot = found.entry(path).or_insert_with(|| {
            let verb = if sub.body.is_some() { "POST" } else { "GET" };
            Answer {
                at: format!("{} ({verb} {})", redact(sub.url.as_str()), sub.label),
                rules: [None, None],
            }
        });
        if slot.rules[side].is_some() {
            continue;
        }
        slot.rules[side] = Some(sub.rule.clone());
        if depth < MAX_FORM_DEPTH {
            let read = reading(specs[side], cfg, &entry, &url, Some(sub.rule.as_deref()));
            let subs = read.map(|r| r.subs).unwrap_or_default();
            forms.extend(subs.into_iter().map(|s| (side, s, depth + 1)));
        }
    }
    report.answers_missing = missing.len() as u64;
    found
}

/// What `spec` makes of a cached answer from `url`: read by the rule its
/// URL matches, or by `rule` for a form's answer. `None` if the spec does
/// not read pages of its type.
fn reading(
    spec: &SpecFile,
    cfg: &DiffConfig,
    entry: &cache::Entry,
    url: &Url,
    rule: Option<Option<&str>>,
) -> Option<Reading> {
    let ctype = entry.header("content-type").unwrap_or("text/html");
    let lower = ctype.to_ascii_lowercase();
    let format = page::format(&lower, url, spec.spider.accept)?;
    let page = fetch::decode(entry.body.clone(), &lower, format, cfg.max_body).ok()?;
    let scraped = match rule {
        Some(rule) => spider::scrape_by(&spec.spider, cfg.caps, &page, url, None, rule),
        None => spider::scrape(&spec.spider, cfg.caps, &page, url),
    };
    let items = scraped
        .items
        .iter()
        .filter_map(|i| serde_json::from_slice(&i.json).ok())
        .collect();
    Some(Reading {
        items,
        subs: scraped.submissions,
    })
}

/// Pairs the items of one page (named `url` in examples) and records the
/// differences.
fn compare(url: &str, old: Vec<Value>, mut new: Vec<Value>, r: &mut Report, examples: usize) {
    r.old_items += old.len() as u64;
    r.new_items += new.len() as u64;
    let mut left = Vec::new();
    for (i, o) in old.into_iter().enumerate() {
        match new.iter().position(|n| *n == o) {
            Some(j) => {
                new.remove(j);
                r.unchanged += 1;
            }
            None => left.push((i, o)),
        }
    }
    // Each remaining old item pairs with the new one that shares most of
    // its field values; with none shared, with the next one in page order.
    let mut pairs = Vec::new();
    let mut unpaired = Vec::new();
    for (i, o) in left {
        let best = new
            .iter()
            .enumerate()
            .map(|(j, n)| (shared(&o, n), j))
            .filter(|(s, _)| *s > 0)
            .max_by_key(|(s, j)| (*s, std::cmp::Reverse(*j)));
        match best {
            Some((_, j)) => pairs.push((i, o, new.remove(j))),
            None => unpaired.push((i, o)),
        }
    }
    let mut new = new.into_iter();
    for (i, o) in unpaired {
        match new.next() {
            Some(n) => pairs.push((i, o, n)),
            None => r.removed.push((format!("{url} #{}", i + 1), o)),
        }
    }
    pairs.sort_by_key(|p| p.0);
    for (i, o, n) in pairs {
        r.changed += 1;
        for (field, before, after) in field_changes(&o, &n) {
            let slot = r.fields.entry(field.clone()).or_default();
            slot.0 += 1;
            if slot.1.len() < examples {
                slot.1
                    .push(format!("{url} #{}: {before} -> {after}", i + 1));
            }
        }
    }
    for n in new {
        r.added.push((url.to_string(), n));
    }
}

/// How many fields two items have with equal values.
fn shared(a: &Value, b: &Value) -> usize {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => a.iter().filter(|(k, v)| b.get(*k) == Some(*v)).count(),
        _ => 0,
    }
}

/// The fields that differ between two items: (name, old JSON, new JSON),
/// a missing field shown as `(none)`.
fn field_changes(old: &Value, new: &Value) -> Vec<(String, String, String)> {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return vec![("(item)".into(), old.to_string(), new.to_string())];
    };
    let mut names: Vec<&String> = o.keys().collect();
    names.extend(n.keys().filter(|k| !o.contains_key(*k)));
    let show = |v: Option<&Value>| v.map_or("(none)".to_string(), |v| clip(&v.to_string()));
    names
        .into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| ((*k).clone(), show(o.get(k)), show(n.get(k))))
        .collect()
}

/// At most 120 characters of a value, for an example line.
fn clip(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

fn render(r: &Report, cfg: &DiffConfig) -> String {
    let mut out = format!(
        "# spec diff: {} -> {} over {} cached answers ({} pages read",
        cfg.old.1, cfg.new.1, r.entries, r.pages
    );
    if r.answers > 0 {
        out.push_str(&format!(", {} form answers", r.answers));
    }
    if r.unreadable > 0 {
        out.push_str(&format!(", {} unreadable entries skipped", r.unreadable));
    }
    out.push_str(")\n");
    out.push_str(&format!(
        "# items: {} before, {} after: {} unchanged, {} changed, {} added, {} removed\n",
        r.old_items,
        r.new_items,
        r.unchanged,
        r.changed,
        r.added.len(),
        r.removed.len()
    ));
    if r.changed + r.added.len() as u64 + r.removed.len() as u64 == 0 {
        out.push_str("# no change\n");
        return out;
    }
    for (field, (n, ex)) in &r.fields {
        out.push_str(&format!("# field {field}: changed in {n} items\n"));
        for e in ex {
            out.push_str(&format!("~ {field} {e}\n"));
        }
    }
    for (sign, list) in [("+", &r.added), ("-", &r.removed)] {
        for (at, v) in list.iter().take(cfg.examples) {
            out.push_str(&format!("{sign} {at}: {}\n", clip(&v.to_string())));
        }
        if list.len() > cfg.examples {
            out.push_str(&format!(
                "{sign} ... and {} more\n",
                list.len() - cfg.examples
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_items_pair_first_then_by_order() {
        let url = "http://h/p";
        let mut r = Report::default();
        let old = vec![
            json!({"a":1,"b":"x"}),
            json!({"a":2,"b":"y"}),
            json!({"a":3}),
        ];
        // One item inserted at the top, one changed, one gone.
        let new = vec![
            json!({"a":0}),
            json!({"a":1,"b":"x"}),
            json!({"a":2,"b":"Y"}),
        ];
        compare(url, old, new, &mut r, 3);
        assert_eq!(
            (r.unchanged, r.changed, r.added.len(), r.removed.len()),
            (1, 2, 0, 0)
        );
        assert_eq!(r.fields["a"].0, 1);
        assert_eq!(r.fields["b"].0, 1);
        assert_eq!(r.fields["b"].1, ["http://h/p #2: \"y\" -> \"Y\""]);
        assert_eq!(r.fields["a"].1, ["http://h/p #3: 3 -> 0"]);
        let mut r = Report::default();
        compare(
            url,
            vec![json!({"a":1})],
            vec![json!({"a":1}), json!({"a":5})],
            &mut r,
            3,
        );
        assert_eq!(
            (r.unchanged, r.changed, r.added.len(), r.removed.len()),
            (1, 0, 1, 0)
        );
    }
}
