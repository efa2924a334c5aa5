//! The end-of-run summary: one JSON object, rendered for people on stderr.

use crate::error::{Error, Exit};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Counters keyed by a short stable name, e.g. errors by kind.
pub type Counts = BTreeMap<String, u64>;

/// Where `main` prints a summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Human text on stderr (runs: stdout is for data).
    Stderr,
    /// Human text on stdout (`status`: the summary is the data).
    Stdout,
    /// One JSON object on stdout (`status --json`).
    StdoutJson,
    /// Nothing (`peek` printed its data already).
    Silent,
}

/// What a subcommand reports when it ends normally.
#[derive(Debug)]
pub struct Summary {
    /// The subcommand name.
    pub command: &'static str,
    /// Fields in display order.
    pub fields: Map<String, Value>,
    /// The process exit code this run earned.
    pub exit: Exit,
    /// A fatal error that ended the run after work was done; printed after the summary.
    pub failure: Option<Error>,
    /// Where it is printed.
    pub output: Output,
}

impl Summary {
    /// An empty summary for `command` that will exit with `exit`.
    pub fn new(command: &'static str, exit: Exit) -> Summary {
        let mut fields = Map::new();
        fields.insert("command".into(), command.into());
        fields.insert("finished_at".into(), crate::run::log::now_rfc3339().into());
        Summary {
            command,
            fields,
            exit,
            failure: None,
            output: Output::Stderr,
        }
    }

    /// Appends a field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Summary {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// Appends `elapsed_secs`, for each named count a per-second rate, and
    /// the process's peak resident memory (`peak_rss_mb`, where known).
    pub fn rates(&mut self, elapsed: Duration, counts: &[(&str, u64)]) -> &mut Summary {
        let secs = elapsed.as_secs_f64();
        self.set("elapsed_secs", round(secs));
        if let Some(kb) = peak_rss_kb() {
            self.set("peak_rss_mb", round(kb as f64 / 1024.0));
        }
        for (name, n) in counts {
            let rate = if secs > 0.0 { *n as f64 / secs } else { 0.0 };
            self.set(&format!("{name}_per_sec"), round(rate));
        }
        self
    }

    /// The summary as aligned `key  value` lines for stderr.
    pub fn human(&self) -> String {
        let width = self.fields.keys().map(String::len).max().unwrap_or(0);
        // A run ends with a summary; `status` output is the report itself.
        let title = if self.output == Output::Stdout {
            ""
        } else {
            " summary"
        };
        let mut out = format!("qpipe {}{title}:\n", self.command);
        for (k, v) in &self.fields {
            let shown = match v {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.is_empty() => "none".into(),
                Value::Object(m) => m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
                Value::Array(a) if a.is_empty() => "none".into(),
                // One element per line, under the first.
                Value::Array(a) => a
                    .iter()
                    .map(element)
                    .collect::<Vec<_>>()
                    .join(&format!("\n  {:width$}  ", "")),
                other => other.to_string(),
            };
            out.push_str(&format!("  {k:<width$}  {shown}\n"));
        }
        out
    }

    /// The summary as one line of JSON.
    pub fn json_line(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// Appends the summary as one JSON line to `dest` (a path, or `-` for stdout).
    pub fn append_json(&self, dest: &str) -> Result<(), Error> {
        let mut line = self.json_line();
        line.push('\n');
        let result = if dest == "-" {
            // A closed pipe means the reader did not want it; not a failure.
            match std::io::stdout().lock().write_all(line.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dest)
                .and_then(|mut f| f.write_all(line.as_bytes()))
        };
        result.map_err(|e| Error::io(format!("cannot write --stats-json {dest}"), e))
    }
}

/// One element of a listed field: a named URL (`reason url, linked from
/// page`), or `key=value` pairs, or the value.
fn element(v: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v {
        Value::Object(m) if m.contains_key("url") && m.contains_key("reason") => {
            let mut line = format!("{} {}", text(&m["reason"]), text(&m["url"]));
            if let Some(from) = m.get("from").filter(|f| !f.is_null()) {
                line.push_str(&format!(" (linked from {})", text(from)));
            }
            line
        }
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => text(other),
    }
}

/// Converts counters to a JSON object.
pub fn counts_json(c: &Counts) -> Value {
    Value::Object(c.iter().map(|(k, v)| (k.clone(), (*v).into())).collect())
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Why a run ended: its `finish_reason`, rendered by `name` in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Every reachable page was fetched.
    Finished,
    /// The queue stayed empty for `--idle-timeout` (`consume --drain`).
    Drained,
    /// `--max-pages` was reached.
    MaxPages,
    /// `--max-items` was reached.
    MaxItems,
    /// `--max-time` ran out.
    MaxTime,
    /// A signal (or the run itself) raised the stop flag.
    Stopped,
    /// Redis stayed unreachable or refused past `--redis-retry-secs`.
    RedisUnavailable,
    /// A fatal error other than Redis (the sink, say).
    Error,
    /// A thread panicked (a bug).
    InternalError,
    /// The `--lock` was lost mid-run.
    LockLost,
}

impl Finish {
    /// The `finish_reason` written in stats.
    pub fn name(self) -> &'static str {
        match self {
            Finish::Finished => "finished",
            Finish::Drained => "drained",
            Finish::MaxPages => "max_pages",
            Finish::MaxItems => "max_items",
            Finish::MaxTime => "max_time",
            Finish::Stopped => "shutdown",
            Finish::RedisUnavailable => "redis_unavailable",
            Finish::Error => "error",
            Finish::InternalError => "internal_error",
            Finish::LockLost => "lock_lost",
        }
    }
}

impl Summary {
    /// Records why the run ended.
    pub fn finish(&mut self, why: Finish) -> &mut Summary {
        self.set("finish_reason", why.name())
    }
}

/// The process's peak resident set (`VmHWM`), in KiB, on Linux.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lists_fields_in_order() {
        let mut s = Summary::new("produce", Exit::Ok);
        s.fields.remove("finished_at");
        let mut errs = Counts::new();
        errs.insert("http_404".into(), 2);
        s.set("pages", 10).set("errors", counts_json(&errs));
        s.rates(Duration::from_secs(2), &[("pages", 10)]);
        assert!(s.fields.remove("peak_rss_mb").is_some());
        assert_eq!(
            s.human(),
            "qpipe produce summary:\n  command        produce\n  pages          10\n  errors         http_404=2\n  elapsed_secs   2.0\n  pages_per_sec  5.0\n"
        );
    }

    #[test]
    fn human_lists_named_urls_one_per_line() {
        let mut s = Summary::new("produce", Exit::Ok);
        s.fields.remove("finished_at");
        s.set(
            "failed_urls",
            serde_json::json!([
                {"url": "http://h/x", "reason": "http_404", "status": 404, "from": "http://h/"},
                {"url": "http://h/y", "reason": "timeout"}
            ]),
        )
        .set("skipped_urls", serde_json::json!([]));
        assert_eq!(
            s.human(),
            "qpipe produce summary:\n  command       produce\n  failed_urls   http_404 http://h/x (linked from http://h/)\n                timeout http://h/y\n  skipped_urls  none\n"
        );
    }
}
