//! `qpipe spec --try URL`: fetch one page with a spec and show what a crawl
//! would make of it (the rule, the items, the links it would follow), like
//! `scrapy parse`. Nothing goes to Redis; people write specs with it.

use crate::config::TryConfig;
use crate::crawl::crawler::{CrawlCounts, Crawler, Got};
use crate::crawl::frontier::Bounds;
use crate::crawl::hosts::Hosts;
use crate::crawl::session::{login, Session};
use crate::crawl::spider::{self, Scraped};
use crate::error::{Error, Exit};
use crate::run::counters::{Counters, Side};
use crate::run::log;
use crate::run::signal::Signals;
use crate::run::summary::{Output, Summary};
use std::time::Duration;
use url::Url;

/// Logs in if the spec says so, fetches the page (redirects followed, no
/// retries beyond the crawler's own), scrapes it and prints the result.
pub fn run(cfg: &TryConfig, signals: &Signals) -> Result<Summary, Error> {
    let session = open_session(cfg, signals)?;
    // The page stands for `--start-url`: the allowed domains are the spec's,
    // else the page's host.
    let bounds = Bounds {
        domains: cfg.file.allowed_domains.clone(),
        ..Bounds::default()
    }
    .with_default_domains(std::slice::from_ref(&cfg.url));
    let got = fetch(cfg, &session, &bounds, signals)?;
    let scraped = spider::scrape(&cfg.file.spider, cfg.caps, &got.page, &got.url);
    log::out(&render(&got, &scraped, &bounds));
    let mut sum = Summary::new("spec", Exit::Ok);
    sum.output = Output::Silent;
    Ok(sum)
}

/// Opens a session whose cookies cover the page, the spec's start URLs and
/// its login page, and logs in if the spec says so.
fn open_session(cfg: &TryConfig, signals: &Signals) -> Result<Session, Error> {
    let mut cookie_urls = vec![cfg.url.clone()];
    cookie_urls.extend(cfg.file.start_urls.iter().cloned());
    cookie_urls.extend(cfg.login.iter().map(|l| l.login.url.clone()));
    let session = Session::new(&cfg.http, &cookie_urls).map_err(Error::Usage)?;
    if let Some(step) = &cfg.login {
        login::log_in(&session, step, cfg.http.max_body, &signals.stop)?;
    }
    Ok(session)
}

/// Fetches the page as a crawl would: one host slot, no delay, every
/// redirect hop checked against `bounds`.
fn fetch(
    cfg: &TryConfig,
    session: &Session,
    bounds: &Bounds,
    signals: &Signals,
) -> Result<Got, Error> {
    let allowed = |u: &Url| bounds.allows(u);
    let hosts = Hosts::new(1);
    let live = Counters::new(Side::Produce);
    let crawler = Crawler {
        session,
        robots: None,
        hosts: &hosts,
        delay: Duration::ZERO,
        accept: cfg.file.spider.accept,
        max_body: cfg.http.max_body,
        backoff: Duration::from_millis(500),
        allowed: &allowed,
        live: &live,
    };
    let mut counts = CrawlCounts::default();
    crawler
        .get(&cfg.url, &mut counts, &signals.stop)
        .map_err(|f| {
            if f.reason == crate::crawl::fetch::Reason::NotInCache {
                return Error::Http(format!("cannot try {}: {}", cfg.url, f.detail));
            }
            Error::Http(format!(
                "cannot try {}: {} ({}) (check the URL, or the site's robots and login)",
                cfg.url,
                f.reason.name(),
                f.detail
            ))
        })
}

/// Names the rule that read the page, and says so when that rule does not
/// read pages of this kind.
fn describe_rule(scraped: &Scraped, got: &Got) -> String {
    let rule = match (&scraped.rule, scraped.sitemap) {
        (_, true) => "(sitemap)".to_string(),
        (Some(r), _) => format!("{r:?}"),
        (None, _) => "(no rule matches this URL)".to_string(),
    };
    match scraped.wrong_kind {
        true => format!(
            "{rule}, which does not read a page of this kind ({:?})",
            got.page.kind
        ),
        false => rule,
    }
}

/// The report: the page and its rule, the items as JSON lines, then the
/// links a crawl would follow (with counts of those it would not).
fn render(got: &Got, scraped: &Scraped, bounds: &Bounds) -> String {
    let rule = describe_rule(scraped, got);
    let (on_site, off_site): (Vec<&Url>, Vec<&Url>) =
        scraped.links.iter().partition(|u| bounds.allows(u));
    let mut out = String::new();
    out.push_str(&format!("# page: {}\n# rule: {rule}\n", got.url));
    out.push_str(&format!("# items: {}\n", scraped.items.len()));
    for item in &scraped.items {
        out.push_str(&String::from_utf8_lossy(&item.json));
        out.push('\n');
    }
    out.push_str(&format!(
        "# links followed: {} distinct ({} off-site, {} dropped by allow/deny, {} not http, {} repeats of a link already listed or of this page, {} beyond --max-links-per-page)\n",
        on_site.len(),
        off_site.len(),
        scraped.links_filtered,
        scraped.ignored_links,
        scraped.links_repeated,
        scraped.links_cut
    ));
    if !off_site.is_empty() {
        out.push_str(&format!(
            "# off-site: outside the allowed domains ({}); --origin moves a spec onto a mirror\n",
            bounds.domains.join(", ")
        ));
    }
    for u in on_site {
        out.push_str(u.as_str());
        out.push('\n');
    }
    if let Some(problem) = &scraped.form_problem {
        out.push_str(&format!("# forms: nothing submitted: {problem}\n"));
    }
    if !scraped.submissions.is_empty() || scraped.forms_cut > 0 {
        let read_by = scraped.submissions.first().and_then(|s| s.rule.clone());
        out.push_str(&format!(
            "# forms: {} submissions{} (a crawl sends each and reads the answer{})\n",
            scraped.submissions.len(),
            match scraped.forms_cut {
                0 => String::new(),
                n => format!(", {n} more cut"),
            },
            read_by.map_or_else(String::new, |r| format!(" with rule {r:?}")),
        ));
        for sub in scraped.submissions.iter().take(20) {
            let verb = if sub.body.is_some() { "POST" } else { "GET" };
            out.push_str(&format!("{verb} {} {}\n", sub.url, sub.label));
        }
        if scraped.submissions.len() > 20 {
            out.push_str(&format!(
                "# ... and {} more\n",
                scraped.submissions.len() - 20
            ));
        }
    }
    out
}
