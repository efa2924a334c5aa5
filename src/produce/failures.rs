//! Every page that failed or was skipped, named: the URL, the reason, the
//! HTTP status where there was one, and the page that linked to it. The
//! first `KEPT` of each kind go into the summary (`failed_urls`,
//! `skipped_urls`); with `--failures FILE` every one is also written to
//! FILE as a JSON line, as it happens.

use crate::crawl::fetch::{Failure, Reason};
use crate::error::Error;
use crate::run::log;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use url::Url;

/// Failed (and skipped) URLs kept for the summary, each.
pub const KEPT: usize = 100;
/// Bytes of a URL shown in the summary.
const MAX_SHOWN: usize = 1000;

#[derive(Default)]
pub struct Kept {
    failed: Vec<Value>,
    skipped: Vec<Value>,
    /// Records not kept for the summary (past `KEPT`), failed and skipped.
    more_failed: u64,
    more_skipped: u64,
    file: Option<BufWriter<File>>,
    /// The first write error of `--failures`; later records are not written.
    file_error: Option<String>,
}

/// Shared by the fetchers of a run.
#[derive(Default)]
pub struct Failures {
    kept: Mutex<Kept>,
    path: Option<String>,
}

impl Failures {
    /// Records kept in memory only, or also written to `path` (created or
    /// truncated now, so a bad path fails before the crawl).
    pub fn open(path: Option<&Path>) -> Result<Failures, Error> {
        let mut kept = Kept::default();
        if let Some(p) = path {
            let f = File::create(p).map_err(|e| {
                Error::io(
                    format!("cannot write --failures {} (check the path)", p.display()),
                    e,
                )
            })?;
            kept.file = Some(BufWriter::new(f));
        }
        Ok(Failures {
            kept: Mutex::new(kept),
            path: path.map(|p| p.display().to_string()),
        })
    }

    /// Records that `url` (linked from `from`) failed or was skipped.
    pub fn record(&self, url: &Url, f: &Failure, from: Option<&str>) {
        let status = match f.reason {
            Reason::Http(code) => Value::from(code),
            _ => Value::Null,
        };
        let skipped = f.reason.is_skip();
        let rec = json!({
            "url": url.as_str(),
            "reason": f.reason.name(),
            "status": status,
            "from": from,
            "skipped": skipped,
            "detail": f.detail,
        });
        let mut guard = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let k = &mut *guard;
        if let Some(file) = &mut k.file {
            let mut line = rec.to_string();
            line.push('\n');
            // Flushed per record: a crash loses none that were recorded.
            if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
                k.file = None;
                k.file_error = Some(e.to_string());
            }
        }
        let (list, more) = if skipped {
            (&mut k.skipped, &mut k.more_skipped)
        } else {
            (&mut k.failed, &mut k.more_failed)
        };
        if list.len() < KEPT {
            let mut short = rec;
            if let Some(o) = short.as_object_mut() {
                // A hostile page can link to a 100 KB URL: the summary shows
                // its start (the file has it whole).
                for key in ["url", "from"] {
                    if let Some(Value::String(u)) = o.get_mut(key) {
                        if u.len() > MAX_SHOWN {
                            let mut cut = MAX_SHOWN;
                            while !u.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            let n = u.len();
                            u.truncate(cut);
                            u.push_str(&format!("... ({n} bytes)"));
                        }
                    }
                }
                // The summary names the failure; the detail is in the file and `-v`.
                o.remove("detail");
                o.remove("skipped");
                if o.get("from").is_some_and(Value::is_null) {
                    o.remove("from");
                }
                if o.get("status").is_some_and(Value::is_null) {
                    o.remove("status");
                }
            }
            list.push(short);
        } else {
            *more += 1;
        }
    }

    /// Flushes `--failures` and adds the kept records to the summary:
    /// `failed_urls` and `skipped_urls`, with `*_not_listed` counts when
    /// there were more. Warns if the file could not be written in full.
    pub fn summarize(&self, sum: &mut crate::run::summary::Summary) {
        let mut k = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = &mut k.file {
            if let Err(e) = file.flush() {
                k.file_error = Some(e.to_string());
            }
        }
        if let (Some(e), Some(p)) = (&k.file_error, &self.path) {
            log::warn(&format!(
                "--failures {p} is incomplete: {e} (the summary still lists the first {KEPT})"
            ));
        }
        sum.set("failed_urls", Value::Array(k.failed.clone()));
        if k.more_failed > 0 {
            sum.set("failed_urls_not_listed", k.more_failed);
        }
        sum.set("skipped_urls", Value::Array(k.skipped.clone()));
        if k.more_skipped > 0 {
            sum.set("skipped_urls_not_listed", k.more_skipped);
        }
        if let Some(p) = &self.path {
            sum.set("failures_file", p.as_str());
        }
    }
}
