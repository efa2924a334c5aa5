//! `qpipe spec`: print the built-in spider spec, or validate a spec file.

use crate::crawl::spec;
use crate::crawl::spider::{Follow, ItemSource as Source, Rule};
use crate::error::{Error, Exit};
use crate::run::summary::{Output, Summary};

/// `--print` writes the built-in spec to stdout; `--check FILE` validates one.
pub fn run(print: bool, check: Option<&str>) -> Result<Summary, Error> {
    let mut sum = Summary::new("spec", Exit::Ok);
    match (print, check) {
        (true, None) => {
            crate::run::log::out(spec::QUOTES);
            sum.output = Output::Silent;
        }
        (false, Some(path)) => {
            let text = spec::read("spec", path).map_err(Error::Spec)?;
            let file = spec::parse(&text, path).map_err(Error::Spec)?;
            let spider = &file.spider;
            // A rule after one that matches every page never reads a page.
            let mut shadowed = false;
            let rules: Vec<String> = spider
                .rules
                .iter()
                .map(|r| {
                    let line = describe(r, shadowed);
                    shadowed |= r.matches.is_none();
                    line
                })
                .collect();
            sum.output = Output::Stdout;
            sum.set("spec", path)
                .set("valid", true)
                .set("fields", spider.field_names().join(", "))
                .set("rules", rules.join("; "))
                .set("start_urls", file.start_urls.len() as u64)
                .set(
                    "max_depth",
                    file.max_depth.map_or(serde_json::Value::Null, Into::into),
                );
            if spider.rules.iter().any(|r| r.tagged) {
                sum.set("rule_field", spider.rule_field.as_str());
            }
            if let Some(name) = &file.name {
                sum.set("name", name.as_str());
            }
            if !file.sitemap_urls.is_empty() {
                sum.set("sitemap_urls", file.sitemap_urls.len() as u64);
            }
        }
        _ => {
            return Err(Error::Usage(
                "give either --print or --check FILE (see qpipe spec --help)".into(),
            ))
        }
    }
    Ok(sum)
}

/// One rule: `quotes: html items (quote, tags), match /page/, follows links`.
fn describe(rule: &Rule, shadowed: bool) -> String {
    let reads = match &rule.source {
        Some(Source::Html(_)) => "html items",
        Some(Source::Page) => "one item per html page",
        Some(Source::Json(_)) => "json items",
        Some(Source::Script(..)) => "script items",
        None if rule.submit.is_some() => "forms only",
        None => "follow only",
    };
    let mut line = format!("{}: {reads}", rule.name);
    if !rule.fields.is_empty() {
        let names: Vec<&str> = rule.fields.iter().map(|f| f.name.as_str()).collect();
        line.push_str(&format!(" ({})", names.join(", ")));
    }
    match &rule.matches {
        Some(m) => line.push_str(&format!(", match {}", m.as_str())),
        None => line.push_str(", every page"),
    }
    let follows = match &rule.follow {
        Follow::Css(css) => css.is_some(),
        Follow::Json(paths) => !paths.is_empty(),
    };
    if follows {
        line.push_str(", follows links");
    }
    if rule.next.is_some() {
        line.push_str(", next page");
    }
    if let Some(sub) = &rule.submit {
        line.push_str(", submits a form");
        if let Some(each) = &sub.each {
            line.push_str(&format!(" per {each} option"));
        }
        if let Some(to) = &sub.rule {
            line.push_str(&format!(" read by {to}"));
        }
    }
    if shadowed {
        line.push_str(" (never used: an earlier rule matches every page)");
    }
    line
}
