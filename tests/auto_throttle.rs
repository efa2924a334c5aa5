//! `--auto-throttle`: each host's delay follows the latency it measures and
//! grows when the host answers 429. A loopback server whose latency steps
//! up and back down, and that answers 429 when more than two requests are in
//! flight, is crawled with and without it. Only lower bounds on gaps between
//! requests are asserted (a busy machine makes gaps longer, never shorter),
//! plus exact counts.

mod common;

use common::web::{Req, Resp, Server};
use common::{stats, Args, Redis};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Pages in the crawl besides the start page.
const PAGES: usize = 60;

struct Load {
    arrivals: Mutex<Vec<Instant>>,
    in_flight: AtomicUsize,
    throttled: AtomicUsize,
}

/// The start page links to `PAGES` pages. Requests 1-20 take 20 ms, 21-40
/// take 300 ms, the rest 20 ms again; with more than two requests in
/// flight, a request is answered 429 at once.
fn site() -> (Server, Arc<Load>) {
    let load = Arc::new(Load {
        arrivals: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        throttled: AtomicUsize::new(0),
    });
    let l = Arc::clone(&load);
    let server = Server::start(move |r: &Req| {
        if r.path == "/robots.txt" {
            return Resp::not_found();
        }
        let n = {
            let mut a = l.arrivals.lock().unwrap();
            a.push(Instant::now());
            a.len()
        };
        if l.in_flight.fetch_add(1, Ordering::SeqCst) >= 2 {
            l.in_flight.fetch_sub(1, Ordering::SeqCst);
            l.throttled.fetch_add(1, Ordering::SeqCst);
            return Resp {
                code: 429,
                headers: Vec::new(),
                body: String::new(),
            };
        }
        let latency = if (21..=40).contains(&n) { 300 } else { 20 };
        std::thread::sleep(Duration::from_millis(latency));
        let body = match r.path.as_str() {
            "/" => (1..=PAGES)
                .map(|i| format!("<li class=next><a href=/p/{i}>p</a></li>"))
                .collect::<String>(),
            _ => format!(
                "<div class=quote><span class=text>{}</span><small class=author>a</small></div>",
                r.path
            ),
        };
        l.in_flight.fetch_sub(1, Ordering::SeqCst);
        Resp::html(&body)
    });
    (server, load)
}

/// The mean gap between request arrivals `from..to` (1-based, inclusive).
fn mean_gap(arrivals: &[Instant], from: usize, to: usize) -> Duration {
    let span = arrivals[to - 1] - arrivals[from - 1];
    span / (to - from) as u32
}

fn crawl(extra: &[&str]) -> (Value, Vec<Instant>, usize) {
    let (server, load) = site();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("st.json");
    Args::produce(&redis.url(), &format!("{}/", server.base))
        .threads(4)
        .opt("--fail-on-errors", 0)
        .opt("--retry-backoff-ms", 50)
        .args(extra)
        .stats_json(&st)
        .run_expect(None, 0);
    let arrivals = load.arrivals.lock().unwrap().clone();
    (stats(&st), arrivals, load.throttled.load(Ordering::SeqCst))
}

#[test]
fn the_delay_follows_latency_and_429s_fall() {
    let (s, arrivals, throttled) = crawl(&["--auto-throttle", "--auto-throttle-start-ms", "100"]);
    // Every page, none lost to a 429.
    assert_eq!(s["pages_fetched"], PAGES as u64 + 1, "{s}");
    assert_eq!(s["pages_failed"], 0, "{s}");
    assert!(arrivals.len() >= 50, "{}", arrivals.len());
    // While requests take 300 ms, they start about 300 ms apart (the
    // first few of the step still adapt); once they are fast again, the
    // delay comes back down.
    let slow = mean_gap(&arrivals, 25, 40);
    let fast_again = mean_gap(&arrivals, 45, arrivals.len().min(60));
    assert!(slow >= Duration::from_millis(200), "{slow:?}: {s}");
    assert!(fast_again * 2 < slow, "{fast_again:?} vs {slow:?}");
    // The summary shows the host's delay now: back near 20 ms, within bounds.
    let host = "127.0.0.1";
    let now = s["auto_throttle_delay_ms"][host].as_u64().unwrap();
    assert!(now < 150, "{s}");
    // Without it: four requests in flight, so the server pushes back.
    let (plain, plain_arrivals, plain_throttled) = crawl(&[]);
    let plain_slow = mean_gap(&plain_arrivals, 25, 40);
    assert!(plain_throttled >= 10, "{plain_throttled}: {plain}");
    assert!(
        throttled * 3 <= plain_throttled,
        "429s: {throttled} with --auto-throttle, {plain_throttled} without"
    );
    assert!(plain.get("auto_throttle_delay_ms").is_none(), "{plain}");
    eprintln!(
        "auto-throttle: slow-step gap {slow:?} (without: {plain_slow:?}), fast-again gap {fast_again:?}, 429s {throttled} (without: {plain_throttled})"
    );
}

#[test]
fn auto_throttle_flags_are_checked() {
    for (args, words) in [
        (vec!["--auto-throttle-target", "2"], "need --auto-throttle"),
        (
            vec!["--auto-throttle", "--auto-throttle-target", "0"],
            "0.1 to 100",
        ),
        (
            vec![
                "--auto-throttle",
                "--auto-throttle-start-ms",
                "5000",
                "--auto-throttle-max-ms",
                "1000",
            ],
            "at least --auto-throttle-start-ms",
        ),
    ] {
        let run = Args::produce("redis://127.0.0.1:9", "http://127.0.0.1:9/")
            .args(args)
            .run_expect(None, 2);
        assert!(run.stderr.contains(words), "{run}");
        assert_eq!(run.stderr.lines().count(), 1, "{run}");
    }
}
