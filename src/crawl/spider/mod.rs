//! Spiders: what to extract from a page and which links to follow. Pure, no I/O.
//!
//! A spider is a list of rules; the first whose `match` regex fits the page
//! URL reads the page. Sitemaps (and robots.txt `Sitemap:` lines) are read
//! before any rule: they only yield links.

pub mod css;
mod html;
mod json;
pub mod nesting;
mod page_links;
mod post;
mod sitemap;
mod template;
#[cfg(test)]
mod tests;

pub use json::Path;
pub use page_links::LinkFilter;
pub use post::Post;
pub use template::Template;

use crate::crawl::page::{Accept, Kind, Page};
use crate::queue::item::Item;
use regex::Regex;
use scraper::Selector;
use url::Url;

/// How a field's value is read from a matched element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The element's text content, trimmed.
    Text,
    /// The value of an attribute (`attr:NAME`).
    Attr(String),
    /// The element's inner HTML.
    Html,
}

/// Where a field's raw value comes from.
#[derive(Debug, Clone)]
pub enum Get {
    /// From HTML, relative to the item element.
    Css {
        /// Matches inside the element; `None`: the element itself.
        selector: Option<Selector>,
        /// How the value is read.
        read: Read,
        /// All matches as an array (true) or the first match or null (false).
        all: bool,
        /// Look in the item's N-th following element sibling (0: the item).
        sibling: usize,
    },
    /// From JSON: a path inside the item value.
    Json(Path),
}

/// One named field of an item.
#[derive(Debug, Clone)]
pub struct Field {
    /// The JSON key.
    pub name: String,
    /// Where the raw value is.
    pub get: Get,
    /// What is done to the raw value.
    pub post: Post,
}

/// What makes a page's items.
#[derive(Debug, Clone)]
pub enum ItemSource {
    /// HTML: each element the selector matches (outermost only).
    Html(Selector),
    /// HTML: the page is the item; fields are read from the whole document
    /// (`<head>` included, so `title` works). A spec with `fields` and no
    /// `item`, `json` or `script`.
    Page,
    /// A JSON body: the array (or single object) at the path.
    Json(Path),
    /// HTML: JSON captured from a `<script>` by the regex (group 1, else the
    /// whole match), then the array (or object) at the path inside it.
    Script(Regex, Path),
}

/// Which links a rule follows.
#[derive(Debug, Clone)]
pub enum Follow {
    /// HTML: `href`s of the elements one selector list matches (`None`: none).
    Css(Option<Selector>),
    /// JSON: URL strings (or arrays of them) at these paths.
    Json(Vec<Path>),
}

/// The next page of a JSON API, read from the body.
#[derive(Debug, Clone)]
pub enum Next {
    /// The URL string at this path.
    Path(Path),
    /// A URL built from body values, only if the `when` path is truthy.
    Template(Template, Option<Path>),
}

/// One kind of page: which URLs, and what to extract there.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The value of the rule field on this rule's items.
    pub name: String,
    /// Whether items carry the rule field (rules do; the top level does not).
    pub tagged: bool,
    /// Pages whose URL this matches; `None`: every page.
    pub matches: Option<Regex>,
    /// The items' source; `None`: a follow-only rule.
    pub source: Option<ItemSource>,
    /// The fields of each item, in output order.
    pub fields: Vec<Field>,
    /// Links to follow.
    pub follow: Follow,
    /// JSON rules: the next page.
    pub next: Option<Next>,
    /// This rule's own allow/deny, on top of the spec-wide ones.
    pub links: LinkFilter,
    /// A form this rule submits (HTML rules).
    pub submit: Option<Submit>,
}

/// `submit`: a form on the page, sent once, or once per option of a select.
#[derive(Debug, Clone)]
pub struct Submit {
    /// The form (the first element matching; default `form`).
    pub form: scraper::Selector,
    /// The select whose options each make one submission.
    pub each: Option<String>,
    /// Fields set (added if the form lacks them), in spec order.
    pub values: Vec<(String, String)>,
    /// The rule that reads the answers (`None`: the rule matching their URL).
    pub rule: Option<String>,
}

/// One form submission a page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Where it goes (a GET form: with the fields as its query).
    pub url: Url,
    /// A POST form's body (form-urlencoded); `None`: a GET.
    pub body: Option<String>,
    /// The rule that reads the answer, if the spec names one.
    pub rule: Option<String>,
    /// What this submission chose (`author=Albert Einstein`), for messages.
    pub label: String,
}

/// Form answers that may ask for more forms (search -> author -> tag ->
/// results is three).
pub const MAX_FORM_DEPTH: u32 = 4;

/// Submissions kept per page; more are counted in `forms_cut`.
pub const MAX_SUBMISSIONS_PER_PAGE: usize = 10_000;

/// A compiled spider: its rules, link filters and sitemap settings.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Tried in order; the first whose `matches` fits the page URL is used.
    pub rules: Vec<Rule>,
    /// The key that carries the rule name on items of tagged rules.
    pub rule_field: String,
    /// Spec-wide allow/deny on every extracted link (sitemap pages included).
    pub links: LinkFilter,
    /// Which sub-sitemaps of a sitemap index are followed (empty: all).
    pub sitemap_follow: Vec<Regex>,
    /// What makes two items the same, for in-run dedup and `--seen-key`.
    pub identity: crate::queue::item::Identity,
    /// Fields an item must have (not null, "" or []); an item without one is
    /// not pushed, and counted.
    pub required: Vec<String>,
    /// The kinds of body besides HTML that the crawl fetches for this spec.
    pub accept: Accept,
}

impl Field {
    /// Where the field is read from, for messages: `css "h1"`.
    pub fn source(&self) -> String {
        use scraper::selector::ToCss;
        match &self.get {
            Get::Css {
                selector: Some(sel),
                ..
            } => format!("css {:?}", sel.to_css_string()),
            Get::Css { selector: None, .. } => "the item element itself".into(),
            Get::Json(_) => "its JSON path".into(),
        }
    }
}

impl Spec {
    /// Where the field `name` is read from, by every rule that has it.
    pub fn field_sources(&self, name: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        for f in self.rules.iter().flat_map(|r| &r.fields) {
            let src = f.source();
            if f.name == name && !out.contains(&src) {
                out.push(src);
            }
        }
        out.join(" or ")
    }

    /// The rule that reads the page at `url`, if any.
    pub fn rule_for(&self, url: &Url) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.matches.as_ref().is_none_or(|m| m.is_match(url.as_str())))
    }

    /// Every field name of every rule, once each, in spec order.
    pub fn field_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for f in self.rules.iter().flat_map(|r| &r.fields) {
            if !names.contains(&f.name.as_str()) {
                names.push(&f.name);
            }
        }
        names
    }
}

/// Items kept per page; more are counted in `items_cut` and dropped. Items
/// already cost input linear in their number; this bounds one page's batch.
pub const MAX_ITEMS_PER_PAGE: usize = 100_000;

/// Per-page caps that keep the time and memory of any page near-linear in
/// its size, whatever the site sends.
#[derive(Debug, Clone, Copy)]
pub struct PageCaps {
    /// Elements that would open deeper than this are cut before parsing.
    pub max_nesting: usize,
    /// Followed links kept per page; the rest are counted and dropped.
    pub max_links: usize,
}

/// What one page yielded.
#[derive(Debug, Default)]
pub struct Scraped {
    /// Encoded items, in page order.
    pub items: Vec<Item>,
    /// Absolute http(s) links, fragment removed, in page order, each once.
    pub links: Vec<Url>,
    /// Followed `href`s that are not http(s) (`mailto:`, `javascript:`, ...).
    pub ignored_links: u64,
    /// Links dropped by an `allow`/`deny`/`sitemap_follow` filter.
    pub links_filtered: u64,
    /// Elements cut because they were nested deeper than `max_nesting`.
    pub elements_cut: u64,
    /// JSON bodies or script captures that did not parse (or nest past 128).
    pub bad_json: u64,
    /// Distinct followed links dropped beyond `max_links`.
    pub links_cut: u64,
    /// Links to a URL this page already linked to, or to the page itself.
    pub links_repeated: u64,
    /// For each field of the page's items: (items that have it, items on
    /// which it is null, "" or []), in rule order.
    pub fields: Vec<(String, u64, u64)>,
    /// Items dropped beyond `MAX_ITEMS_PER_PAGE`.
    pub items_cut: u64,
    /// Items not pushed because a required field was empty.
    pub items_rejected: u64,
    /// Per required field, the items on which it was empty (spec order).
    pub required_missing: Vec<(String, u64)>,
    /// Item matches inside another item, which are not items of their own.
    pub nested_items: u64,
    /// The name of the rule that read the page (`None`: no rule, or a sitemap).
    pub rule: Option<String>,
    /// The page was a sitemap or robots.txt (links only).
    pub sitemap: bool,
    /// The page's kind is not what its rule reads (HTML for a JSON rule, say).
    pub wrong_kind: bool,
    /// Forms to submit from this page (its rule's `submit`).
    pub submissions: Vec<Submission>,
    /// Submissions beyond `MAX_SUBMISSIONS_PER_PAGE`, dropped.
    pub forms_cut: u64,
    /// Why the rule's form could not be read (none on the page, say).
    pub form_problem: Option<String>,
}

/// Whether a field's value says nothing: null, "", or [].
fn is_empty(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Parses `html` as scraper's `Html::parse_document` does, into a tree
/// whose node store is sized up front (one node per `<`, and as many text
/// nodes): grown by doubling instead, a large page's store is copied each
/// time it doubles and briefly held twice, the largest single peak in
/// memory on multi-MB pages (heaptrack). Unused room is never touched, so
/// it costs address space, not memory.
pub fn parse(html: &str) -> scraper::Html {
    use html5ever::tendril::TendrilSink;
    let tags = memchr::memchr_iter(b'<', html.as_bytes()).count();
    let doc = scraper::Html {
        quirks_mode: html5ever::tree_builder::QuirksMode::NoQuirks,
        tree: ego_tree::Tree::with_capacity(scraper::Node::Document, 2 * tags + 16),
    };
    html5ever::driver::parse_document(scraper::HtmlTreeSink::new(doc), Default::default()).one(html)
}

/// `scrape_job` without a job (`spec --try`, tests).
pub fn scrape(spec: &Spec, caps: PageCaps, page: &Page, url: &Url) -> Scraped {
    scrape_job(spec, caps, page, url, None)
}

/// Extracts items and links from `page`, fetched from `url`, within `caps`.
///
/// A sitemap (or robots.txt) yields only links. Any other page is read by
/// the first rule whose `match` fits `url`; a page of another kind than the
/// rule reads (HTML for a JSON rule, say) yields nothing. With a crawl job's
/// `meta` (compact JSON text), every item carries it right after its `url`
/// (see `item::encode_with_meta`).
pub fn scrape_job(
    spec: &Spec,
    caps: PageCaps,
    page: &Page,
    url: &Url,
    meta: Option<&str>,
) -> Scraped {
    scrape_by(spec, caps, page, url, meta, None)
}

/// `scrape_job`, read by the rule named `rule` if given (the answer to a
/// form whose `submit` names the rule that reads it), else by the first
/// rule whose `match` fits `url`.
pub fn scrape_by(
    spec: &Spec,
    caps: PageCaps,
    page: &Page,
    url: &Url,
    meta: Option<&str>,
    rule: Option<&str>,
) -> Scraped {
    let mut out = Scraped::default();
    let none = LinkFilter::NONE;
    let mut links = page_links::PageLinks::new(&mut out, caps, url, [&spec.links, &none]);
    if rule.is_none() && sitemap::read(spec, page, url, &mut links) {
        out.sitemap = true;
        return out;
    }
    let chosen = match rule {
        Some(name) => spec.rules.iter().find(|r| r.name == name),
        None => spec.rule_for(url),
    };
    let Some(rule) = chosen else {
        return out;
    };
    links.filters[1] = &rule.links;
    let tag = rule
        .tagged
        .then_some((spec.rule_field.as_str(), rule.name.as_str()));
    let id = &spec.identity;
    let encode = |fields| crate::queue::item::encode_with_meta(fields, url.as_str(), id, tag, meta);
    let (mut items, mut items_cut, mut rejected) = (Vec::new(), 0, 0);
    let mut health: Vec<(String, u64, u64)> =
        rule.fields.iter().map(|f| (f.name.clone(), 0, 0)).collect();
    // Required fields this rule has (a rule without the field is not held to it).
    let mut required: Vec<(String, u64)> = spec
        .required
        .iter()
        .filter(|n| rule.fields.iter().any(|f| &f.name == *n))
        .map(|n| (n.clone(), 0))
        .collect();
    let mut emit = |f: serde_json::Map<String, serde_json::Value>| {
        if items.len() + rejected as usize >= MAX_ITEMS_PER_PAGE {
            items_cut += 1;
            return;
        }
        for (name, have, empty) in health.iter_mut() {
            *have += 1;
            if f.get(name.as_str()).is_none_or(is_empty) {
                *empty += 1;
            }
        }
        let mut ok = true;
        for (name, missing) in required.iter_mut() {
            if f.get(name.as_str()).is_none_or(is_empty) {
                *missing += 1;
                ok = false;
            }
        }
        if ok {
            items.push(encode(f));
        } else {
            rejected += 1;
        }
    };
    // A rule's follow kind says what it reads: paths (JSON) or CSS (HTML).
    let mut wrong_kind = false;
    match (&rule.follow, page.kind) {
        (Follow::Json(_), Kind::Json) => json::read(rule, &page.body, &mut links, &mut emit),
        (Follow::Css(_), Kind::Html) => html::read(rule, caps, &page.body, &mut links, &mut emit),
        _ => wrong_kind = true,
    }
    out.wrong_kind = wrong_kind;
    out.fields = health;
    out.items = items;
    out.items_cut = items_cut;
    out.items_rejected = rejected;
    out.required_missing = required;
    out.rule = Some(rule.name.clone());
    out
}
