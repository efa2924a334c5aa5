//! Live counters of a `produce` or `consume` run, updated by its threads as
//! they work and read by `--metrics`, `--stats-every` and SIGUSR1.
//!
//! The run's own counters live in `Counters`, made by `cmd::produce` or
//! `cmd::consume` and lent to the stages that count. What every Redis
//! connection does (retries, reconnects, the last answer) and whether the
//! run holds its `--lock` are process-wide statics, because `Link`s and the
//! lock are made in many places.

use crate::run::log;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Redis activity of every `Link` in this process.
pub static REDIS: RedisCounters = RedisCounters {
    retries: AtomicU64::new(0),
    reconnects: AtomicU64::new(0),
    last_answer_ms: AtomicU64::new(0),
};

/// 1 while this run holds its `--lock`, set by `cmd::locked`.
pub static LOCK_HELD: AtomicBool = AtomicBool::new(false);

/// What every Redis connection of the process reports.
pub struct RedisCounters {
    /// Commands retried after a failure (each wait before another attempt).
    pub retries: AtomicU64,
    /// Connections made again after one was lost.
    pub reconnects: AtomicU64,
    /// When Redis last answered a command, in ms since the Unix epoch.
    last_answer_ms: AtomicU64,
}

impl RedisCounters {
    /// Records that Redis just answered (any reply, even an error reply).
    pub fn answered(&self) {
        let now = log::unix_time().as_millis() as u64;
        self.last_answer_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How long ago Redis last answered, if it ever did.
    pub fn since_answer(&self) -> Option<Duration> {
        match self.last_answer_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(log::unix_time().saturating_sub(Duration::from_millis(ms))),
        }
    }
}

/// Which command's counters a run shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// `qpipe produce`.
    Produce,
    /// `qpipe consume`.
    Consume,
}

/// The live counters of one run.
pub struct Counters {
    side: Side,
    /// Pages fetched and scraped (the summary's `pages_fetched`).
    pub pages: AtomicU64,
    /// HTTP responses by status class, 1xx to 5xx.
    responses: [AtomicU64; 5],
    /// Items extracted from pages.
    pub items_extracted: AtomicU64,
    /// Items that reached Redis.
    pub items_pushed: AtomicU64,
    /// Items popped from Redis.
    pub items_popped: AtomicU64,
    /// Items written to the sink.
    pub items_written: AtomicU64,
    /// Items set aside as dead letters.
    pub items_dead: AtomicU64,
    /// Items not pushed because a required field was empty.
    pub items_rejected: AtomicU64,
    /// Per field: items extracted with it, and items on which it was empty.
    pub fields: Mutex<Vec<(String, u64, u64)>>,
    /// `--auto-throttle`: each host's delay now, in ms (at most
    /// `MAX_DELAY_HOSTS` hosts shown).
    pub host_delays: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Hosts whose AutoThrottle delay is shown (metrics, summary).
const MAX_DELAY_HOSTS: usize = 100;

/// A Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One value with its name, help text and at most one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The full metric name, `qpipe_...`.
    pub name: &'static str,
    /// One line saying what it counts.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// A label name and value, e.g. `("class", "2xx")`.
    pub label: Option<(&'static str, String)>,
    /// The value now.
    pub value: u64,
}

impl Sample {
    fn new(name: &'static str, help: &'static str, kind: Kind, value: u64) -> Sample {
        Sample {
            name,
            help,
            kind,
            label: None,
            value,
        }
    }
}

/// An unlabelled counter's sample.
fn counter(name: &'static str, help: &'static str, n: &AtomicU64) -> Sample {
    Sample::new(name, help, Kind::Counter, load(n))
}

/// A counter's sample under one label.
fn labelled(
    name: &'static str,
    help: &'static str,
    label: (&'static str, String),
    value: u64,
) -> Sample {
    Sample {
        label: Some(label),
        ..Sample::new(name, help, Kind::Counter, value)
    }
}

impl Counters {
    /// All zero, for a run of `side`.
    pub fn new(side: Side) -> Counters {
        Counters {
            side,
            pages: AtomicU64::new(0),
            responses: Default::default(),
            items_extracted: AtomicU64::new(0),
            items_pushed: AtomicU64::new(0),
            items_popped: AtomicU64::new(0),
            items_written: AtomicU64::new(0),
            items_dead: AtomicU64::new(0),
            items_rejected: AtomicU64::new(0),
            fields: Mutex::new(Vec::new()),
            host_delays: Mutex::default(),
        }
    }

    /// Records AutoThrottle's delay for `host`.
    pub fn host_delay(&self, host: &str, delay: Duration) {
        let mut map = self.host_delays.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() < MAX_DELAY_HOSTS || map.contains_key(host) {
            map.insert(host.to_string(), delay.as_millis() as u64);
        }
    }

    /// Counts one HTTP response by its status class.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
    }

    /// Every counter of this run and of its Redis connections, plus the lock
    /// gauge, in a fixed order.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        match self.side {
            Side::Produce => self.add_produce_samples(&mut out),
            Side::Consume => self.add_consume_samples(&mut out),
        }
        add_process_samples(&mut out);
        out
    }

    /// Adds the crawl's counters: responses by class, pages, items, then
    /// the per-field counts.
    fn add_produce_samples(&self, out: &mut Vec<Sample>) {
        for (i, n) in self.responses.iter().enumerate() {
            out.push(labelled(
                "qpipe_pages_fetched_total",
                "HTTP responses received, by status class (every attempt and redirect hop).",
                ("class", format!("{}xx", i + 1)),
                load(n),
            ));
        }
        out.push(counter(
            "qpipe_pages_scraped_total",
            "Pages fetched and scraped (the summary's pages_fetched).",
            &self.pages,
        ));
        out.push(counter(
            "qpipe_items_extracted_total",
            "Items extracted from pages.",
            &self.items_extracted,
        ));
        out.push(counter(
            "qpipe_items_pushed_total",
            "Items pushed to Redis.",
            &self.items_pushed,
        ));
        out.push(counter(
            "qpipe_items_rejected_total",
            "Items not pushed because a required field was null or empty.",
            &self.items_rejected,
        ));
        self.add_field_samples(out);
        let delays = self.host_delays.lock().unwrap_or_else(|p| p.into_inner());
        for (host, ms) in delays.iter() {
            out.push(Sample {
                label: Some(("host", host.clone())),
                ..Sample::new(
                    "qpipe_host_delay_ms",
                    "--auto-throttle: the delay between request starts to this host now, in ms.",
                    Kind::Gauge,
                    *ms,
                )
            });
        }
    }

    /// Adds two labelled counters per field: items on which it was empty
    /// (all fields first), then items extracted with it.
    fn add_field_samples(&self, out: &mut Vec<Sample>) {
        let fields = self.fields.lock().unwrap_or_else(|p| p.into_inner());
        for (name, _, empty) in fields.iter() {
            out.push(labelled("qpipe_field_empty_total", "Items on which this field was null, \"\" or [] (a selector that stopped matching shows here).", ("field", name.clone()), *empty));
        }
        for (name, have, _) in fields.iter() {
            out.push(labelled(
                "qpipe_field_items_total",
                "Items extracted by a rule that has this field.",
                ("field", name.clone()),
                *have,
            ));
        }
    }

    /// Adds the consume side's counters: popped, written, dead.
    fn add_consume_samples(&self, out: &mut Vec<Sample>) {
        out.push(counter(
            "qpipe_items_popped_total",
            "Items popped from Redis.",
            &self.items_popped,
        ));
        out.push(counter(
            "qpipe_items_written_total",
            "Items written to the sink.",
            &self.items_written,
        ));
        out.push(counter(
            "qpipe_items_dead_total",
            "Items set aside as dead letters (KEY:dead).",
            &self.items_dead,
        ));
    }

    /// The counters as one log line: `pages_fetched_2xx=3 items_pushed=30 ...`
    /// (per-field counts left out).
    pub fn line(&self) -> String {
        // Per-field counts are for /metrics; a log line stays short.
        let words: Vec<String> = self
            .samples()
            .iter()
            .filter(|s| !s.name.starts_with("qpipe_field_"))
            .map(|s| {
                let short = s.name.trim_start_matches("qpipe_");
                let short = short.strip_suffix("_total").unwrap_or(short);
                match &s.label {
                    Some((_, v)) => format!("{short}_{v}={}", s.value),
                    None => format!("{short}={}", s.value),
                }
            })
            .collect();
        words.join(" ")
    }
}

/// Adds what every run shows, whatever its side: the process-wide Redis
/// counters and the lock gauge.
fn add_process_samples(out: &mut Vec<Sample>) {
    out.push(counter(
        "qpipe_redis_retries_total",
        "Redis commands retried after a failure.",
        &REDIS.retries,
    ));
    out.push(counter(
        "qpipe_redis_reconnects_total",
        "Redis connections made again after one was lost.",
        &REDIS.reconnects,
    ));
    out.push(Sample::new(
        "qpipe_lock_held",
        "1 while this run holds its --lock, else 0.",
        Kind::Gauge,
        u64::from(LOCK_HELD.load(Ordering::Relaxed)),
    ));
}

/// Reads a counter (relaxed: a sample need not be a consistent snapshot).
fn load(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// Logs the counters line every `every` (if set) and once per SIGUSR1
/// (`usr1`, lowered here), until `done`.
pub fn report(counters: &Counters, every: Option<Duration>, usr1: &AtomicBool, done: &AtomicBool) {
    let mut next = every.map(|e| Instant::now() + e);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let due = next.is_some_and(|t| Instant::now() >= t);
        if due {
            next = every.map(|e| Instant::now() + e);
        }
        if usr1.swap(false, Ordering::Relaxed) || due {
            log::info(&format!("stats: {}", counters.line()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_per_field_in_metrics() {
        let c = Counters::new(Side::Produce);
        use crate::run::tally::Tally;
        c.fields
            .lock()
            .unwrap()
            .tally(vec![("title".into(), 3, 0), ("h2".into(), 3, 2)]);
        c.fields.lock().unwrap().tally(vec![("h2".into(), 1, 1)]);
        c.items_rejected.fetch_add(4, Ordering::Relaxed);
        let pick = |name: &str| -> Vec<(String, u64)> {
            c.samples()
                .into_iter()
                .filter(|s| s.name == name)
                .map(|s| (s.label.map(|l| l.1).unwrap_or_default(), s.value))
                .collect()
        };
        assert_eq!(
            pick("qpipe_field_empty_total"),
            [("title".to_string(), 0), ("h2".to_string(), 3)]
        );
        assert_eq!(
            pick("qpipe_field_items_total"),
            [("title".to_string(), 3), ("h2".to_string(), 4)]
        );
        assert_eq!(pick("qpipe_items_rejected_total"), [(String::new(), 4)]);
        assert!(!c.line().contains("field_"), "{}", c.line());
        assert!(c.line().contains("items_rejected=4"), "{}", c.line());
    }

    #[test]
    fn responses_go_to_their_class() {
        let c = Counters::new(Side::Produce);
        for status in [200, 204, 301, 404, 503, 503, 99, 700] {
            c.response(status);
        }
        let classes: Vec<(String, u64)> = c
            .samples()
            .into_iter()
            .filter(|s| s.name == "qpipe_pages_fetched_total")
            .map(|s| (s.label.expect("a class").1, s.value))
            .collect();
        let want = [("1xx", 1), ("2xx", 2), ("3xx", 1), ("4xx", 1), ("5xx", 3)];
        let want: Vec<(String, u64)> = want.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(classes, want);
    }

    #[test]
    fn the_line_names_each_counter_once() {
        let c = Counters::new(Side::Consume);
        c.items_popped.store(7, Ordering::Relaxed);
        c.items_written.store(5, Ordering::Relaxed);
        c.items_dead.store(2, Ordering::Relaxed);
        let line = c.line();
        assert!(
            line.starts_with("items_popped=7 items_written=5 items_dead=2 redis_retries="),
            "{line}"
        );
        assert!(line.contains(" lock_held="), "{line}");
    }
}
