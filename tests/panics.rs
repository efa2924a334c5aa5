//! A panic in a fetcher or in the writer ends the run with exit 1 and an
//! "internal error" line, never a hang.

mod common;

use common::{qpipe_env, Redis, Site};
use std::time::{Duration, Instant};

fn run_with_panic(which: &str) {
    let site = Site::start(200);
    let redis = Redis::start();
    let url = redis.url();
    let t0 = Instant::now();
    let run = qpipe_env(
        &[
            "produce",
            "--redis",
            &url,
            "--start-url",
            &site.url,
            "--threads",
            "2",
            "--channel-capacity",
            "1",
        ],
        None,
        &[("QPIPE_TEST_PANIC", which)],
    );
    assert_eq!(run.code, 1, "{run}");
    assert!(
        run.stderr.contains("qpipe: internal error: "),
        "no internal error line: {run}"
    );
    assert!(t0.elapsed() < Duration::from_secs(30), "{run}");
}

#[test]
fn a_fetcher_panic_exits_1_with_an_internal_error() {
    run_with_panic("fetch");
}

#[test]
fn a_writer_panic_exits_1_with_an_internal_error() {
    run_with_panic("writer");
}
