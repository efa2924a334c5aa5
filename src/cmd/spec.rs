//! `qpipe spec`: print the built-in spider spec, or validate a spec file.

use crate::crawl::spec;
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
            let fields: Vec<&str> = file.spider.fields.iter().map(|f| f.name.as_str()).collect();
            sum.output = Output::Stdout;
            sum.set("spec", path)
                .set("valid", true)
                .set("fields", fields.join(", "))
                .set("follow_selectors", file.spider.follow.len() as u64)
                .set("start_urls", file.start_urls.len() as u64)
                .set(
                    "max_depth",
                    file.max_depth.map_or(serde_json::Value::Null, Into::into),
                );
        }
        _ => {
            return Err(Error::Usage(
                "give either --print or --check FILE (see qpipe spec --help)".into(),
            ))
        }
    }
    Ok(sum)
}
