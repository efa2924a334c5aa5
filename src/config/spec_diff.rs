//! `qpipe spec --diff OLD NEW --http-cache DIR`: the two specs and the
//! cache whose pages they are compared on, validated.

use super::produce::load_spec;
use crate::crawl::spec::SpecFile;
use crate::crawl::spider::PageCaps;
use crate::error::Error;
use std::path::PathBuf;

/// Two specs to compare over the pages of an HTTP cache.
pub struct DiffConfig {
    /// The spec before the change, and its file name.
    pub old: (SpecFile, String),
    /// The spec after it.
    pub new: (SpecFile, String),
    /// The HTTP cache (read only).
    pub dir: PathBuf,
    /// Examples printed per kind of change.
    pub examples: usize,
    /// `produce`'s default page caps.
    pub caps: PageCaps,
    /// `produce`'s default `--max-body`.
    pub max_body: u64,
}

impl DiffConfig {
    /// Loads both specs (moved onto `--origin` if given) and checks the cache.
    pub fn new(
        old: &str,
        new: &str,
        dir: &str,
        origin: Option<&str>,
        examples: usize,
    ) -> Result<DiffConfig, Error> {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "--http-cache {} is not a directory (fill one first: qpipe produce --http-cache DIR, or qpipe spec --try URL --http-cache DIR)",
                dir.display()
            )));
        }
        let (old_spec, _) = load_spec(Some(old), origin)?;
        let (new_spec, _) = load_spec(Some(new), origin)?;
        Ok(DiffConfig {
            old: (old_spec, old.to_string()),
            new: (new_spec, new.to_string()),
            dir,
            examples,
            caps: PageCaps {
                max_nesting: 256,
                max_links: 10_000,
            },
            max_body: 10 * 1024 * 1024,
        })
    }
}
