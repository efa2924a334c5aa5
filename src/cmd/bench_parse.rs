//! `qpipe bench-parse FILE` (hidden, for `scripts/bench.sh`): the parse
//! floor. Times scraper's parse plus the spec's selectors on one saved page,
//! and qpipe's whole extraction of it (`spider::scrape`), single-threaded.
//!
//! The floor is what no crawler built on scraper can go under: parse the
//! page, match the item, field and follow selectors, read the matched text
//! and `href`s. `scrape` adds the nesting cap, link resolution and item
//! encoding. Prints one JSON line of milliseconds per page on stdout: CPU
//! time of this thread, so other load on the machine moves it little.

use crate::config::cli::BenchParseArgs;
use crate::crawl::page::{Kind, Page};
use crate::crawl::spider::{self, Follow, Get, ItemSource as Source, PageCaps, Read, Rule};
use crate::error::Error;
use scraper::{ElementRef, Html};
use std::hint::black_box;
use url::Url;

/// Runs the micro-benchmark and prints its JSON line.
pub fn run(a: &BenchParseArgs) -> Result<(), Error> {
    let spec = match &a.spec {
        Some(path) => {
            let text = crate::crawl::spec::read("--spec", path).map_err(Error::Spec)?;
            crate::crawl::spec::parse(&text, path).map_err(Error::Spec)?
        }
        None => crate::crawl::spec::parse(crate::crawl::spec::QUOTES, "built-in")
            .map_err(Error::Spec)?,
    }
    .spider;
    let url = Url::parse(&a.url).map_err(|e| Error::Usage(format!("--url {}: {e}", a.url)))?;
    let rule = spec
        .rule_for(&url)
        .ok_or_else(|| Error::Usage(format!("no rule of the spec reads {url}")))?;
    let Some(first) = a.files.first() else {
        return Err(Error::Usage(
            "qpipe bench-parse: give one saved page or more".into(),
        ));
    };
    let n = a.iterations.max(1);
    let mut sum = Times::default();
    for file in &a.files {
        let body = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("cannot read {file} (give a saved page)"), e))?;
        sum.add(&time_page(&spec, rule, &url, body, n));
    }
    let pages = a.files.len() as f64;
    let line = serde_json::json!({
        "file": if a.files.len() == 1 { first.clone() } else { format!("{} pages", a.files.len()) },
        "pages": a.files.len(),
        "bytes": sum.bytes,
        "items": sum.items,
        "iterations": n,
        "parse_ms": round(sum.parse / pages),
        "floor_ms": round(sum.floor / pages),
        "scrape_ms": round(sum.scrape / pages),
    });
    crate::run::log::out(&format!("{line}\n"));
    Ok(())
}

/// One page's (or, summed, several pages') measurements.
#[derive(Default)]
struct Times {
    bytes: usize,
    items: usize,
    parse: f64,
    floor: f64,
    scrape: f64,
}

impl Times {
    fn add(&mut self, t: &Times) {
        self.bytes += t.bytes;
        self.items += t.items;
        self.parse += t.parse;
        self.floor += t.floor;
        self.scrape += t.scrape;
    }
}

/// Times `body` read as `url`, `n` times after a tenth as many to warm up:
/// milliseconds of thread CPU per parse, floor and scrape.
fn time_page(spec: &spider::Spec, rule: &Rule, url: &Url, body: String, n: usize) -> Times {
    let time = |f: &dyn Fn() -> usize| {
        for _ in 0..n.div_ceil(10) {
            black_box(f());
        }
        let t = thread_cpu_ms();
        for _ in 0..n {
            black_box(f());
        }
        (thread_cpu_ms() - t) / n as f64
    };
    let parse = time(&|| Html::parse_document(black_box(&body)).tree.nodes().count());
    let floor = time(&|| select(rule, &Html::parse_document(black_box(&body))));
    let bytes = body.len();
    let page = Page {
        body,
        kind: Kind::Html,
    };
    let caps = PageCaps {
        max_nesting: 256,
        max_links: 10_000,
    };
    let scrape = time(&|| {
        spider::scrape(spec, caps, black_box(&page), url)
            .items
            .len()
    });
    Times {
        bytes,
        items: spider::scrape(spec, caps, &page, url).items.len(),
        parse,
        floor,
        scrape,
    }
}

/// CPU time used by this thread so far, in milliseconds.
fn thread_cpu_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1000.0 + ts.tv_nsec as f64 / 1e6
}

fn round(ms: f64) -> f64 {
    (ms * 10_000.0).round() / 10_000.0
}

/// The rule's selectors over `doc`: items, their fields' values, follow
/// `href`s. Returns the bytes read, so nothing is optimised away.
fn select(rule: &Rule, doc: &Html) -> usize {
    let mut n = 0;
    let read = |how: &Read, el: ElementRef<'_>| match how {
        Read::Text => el.text().map(str::len).sum(),
        Read::Attr(name) => el.value().attr(name).map_or(0, str::len),
        Read::Html => el.inner_html().len(),
    };
    if let Some(Source::Html(item)) = &rule.source {
        for el in doc.select(item) {
            for f in &rule.fields {
                if let Get::Css {
                    selector,
                    read: how,
                    ..
                } = &f.get
                {
                    n += match selector {
                        Some(sel) => el.select(sel).map(|m| read(how, m)).sum(),
                        None => read(how, el),
                    };
                }
            }
        }
    }
    if let Follow::Css(Some(sel)) = &rule.follow {
        n += doc
            .select(sel)
            .filter_map(|a| a.value().attr("href"))
            .map(str::len)
            .sum::<usize>();
    }
    n
}
