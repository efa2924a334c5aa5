//! `--metrics ADDR`: `GET /metrics` in the Prometheus text format and
//! `GET /healthz`, served on whichever thread calls `serve` (spawned in
//! `run::monitor`) with a reader of the queue length (`queue::probe`). One request per connection; each answer is bounded in
//! time, including the Redis round trip it makes.

use crate::run::counters::{Counters, Kind, Sample, REDIS};
use crate::run::http;
use std::fmt::Write as _;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a scrape reads from Redis: the queue's length and its dead letters.
#[derive(Debug, Clone, Copy)]
pub struct Levels {
    /// Items in the list (all shards).
    pub queue: u64,
    /// Dead letters (all shards).
    pub dead: u64,
}

/// `/healthz` fails once Redis has not answered anyone for this long.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(10);
/// Longest a client may take to send its request.
const REQUEST_TIME: Duration = Duration::from_secs(2);
/// The content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Answers requests on `listener` until `done`.
pub fn serve(
    listener: &TcpListener,
    counters: &Counters,
    queue_length: &mut dyn FnMut() -> Option<Levels>,
    done: &AtomicBool,
) {
    if let Err(e) = listener.set_nonblocking(true) {
        crate::run::log::error(&format!("--metrics cannot serve: {e}"));
        return;
    }
    while !done.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((conn, _)) => answer(conn, counters, queue_length),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Reads one request and answers it, closing the connection.
fn answer(
    mut conn: TcpStream,
    counters: &Counters,
    queue_length: &mut dyn FnMut() -> Option<Levels>,
) {
    let req = match http::read_one(&mut conn, REQUEST_TIME, http::MAX_BODY) {
        Ok((req, _)) => req,
        Err(Some(status)) => {
            let _ = conn.write_all(&http::response(status, "text/plain", b"", false, true));
            return;
        }
        Err(None) => return,
    };
    let path = req.path.split('?').next().unwrap_or("/");
    let (status, ctype, body) = match (req.method.as_str(), path) {
        ("GET" | "HEAD", "/metrics") => {
            let queue = queue_length();
            (200, TEXT_FORMAT, render(&samples(counters, queue)))
        }
        ("GET" | "HEAD", "/healthz") => {
            queue_length();
            health()
        }
        ("GET" | "HEAD", _) => (
            404,
            "text/plain",
            "not found: try /metrics or /healthz\n".into(),
        ),
        _ => (405, "text/plain", "method not allowed\n".into()),
    };
    let head = req.method == "HEAD";
    let _ = conn.write_all(&http::response(status, ctype, body.as_bytes(), head, true));
}

/// 200 while Redis answered within `HEALTHY_WITHIN`, else 503.
fn health() -> (u16, &'static str, String) {
    match REDIS.since_answer() {
        Some(ago) if ago <= HEALTHY_WITHIN => (200, "text/plain", "ok\n".into()),
        Some(ago) => (
            503,
            "text/plain",
            format!("Redis last answered {:.0}s ago\n", ago.as_secs_f64()),
        ),
        None => (503, "text/plain", "Redis has not answered yet\n".into()),
    }
}

/// The run's counters, then the gauges only a scrape knows.
fn samples(counters: &Counters, queue: Option<Levels>) -> Vec<Sample> {
    let mut out = counters.samples();
    let gauge = |name, help, value| Sample {
        name,
        help,
        kind: Kind::Gauge,
        label: None,
        value,
    };
    if let Some(levels) = queue {
        out.push(gauge(
            "qpipe_queue_length",
            "Items in the Redis list (all shards), read at this scrape.",
            levels.queue,
        ));
        out.push(gauge(
            "qpipe_dead_letters",
            "Dead letters in KEY:dead (all shards), read at this scrape.",
            levels.dead,
        ));
    }
    out.push(gauge(
        "qpipe_redis_up",
        "1 if Redis answered this scrape's LLEN, else 0.",
        u64::from(queue.is_some()),
    ));
    out.push(Sample {
        label: Some(("version", env!("CARGO_PKG_VERSION").to_string())),
        ..gauge(
            "qpipe_build_info",
            "Always 1; the labels say which build.",
            1,
        )
    });
    out
}

/// Prometheus text exposition: `# HELP` and `# TYPE` once per metric, then
/// its samples.
pub fn render(samples: &[Sample]) -> String {
    let mut out = String::new();
    let mut last = "";
    for s in samples {
        if s.name != last {
            let kind = match s.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", s.name, s.help);
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
            last = s.name;
        }
        match &s.label {
            Some((k, v)) => {
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = writeln!(out, "{}{{{k}=\"{v}\"}} {}", s.name, s.value);
            }
            None => {
                let _ = writeln!(out, "{} {}", s.name, s.value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::counters::Side;

    #[test]
    fn text_format_has_help_and_type_once_per_metric() {
        let c = Counters::new(Side::Produce);
        c.response(200);
        c.items_pushed.store(30, Ordering::Relaxed);
        let text = render(&samples(&c, Some(Levels { queue: 4, dead: 2 })));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# HELP qpipe_pages_fetched_total HTTP responses received, by status class (every attempt and redirect hop).");
        assert_eq!(lines[1], "# TYPE qpipe_pages_fetched_total counter");
        assert_eq!(lines[2], "qpipe_pages_fetched_total{class=\"1xx\"} 0");
        assert_eq!(lines[3], "qpipe_pages_fetched_total{class=\"2xx\"} 1");
        assert!(text.contains("\nqpipe_items_pushed_total 30\n"), "{text}");
        assert!(text.contains("\n# TYPE qpipe_queue_length gauge\nqpipe_queue_length 4\n"));
        assert!(text.contains("\n# TYPE qpipe_dead_letters gauge\nqpipe_dead_letters 2\n"));
        assert!(text.contains("\nqpipe_redis_up 1\n"));
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.ends_with(&format!("qpipe_build_info{{version=\"{version}\"}} 1\n")));
        assert_eq!(text.matches("# TYPE qpipe_pages_fetched_total").count(), 1);
        let without = render(&samples(&c, None));
        assert!(!without.contains("qpipe_queue_length"));
        assert!(without.contains("\nqpipe_redis_up 0\n"));
    }
}
