//! A live progress line on stderr, drawn only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a progress line should be drawn at all.
pub fn wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// Redraws `name value (rate/s)` for each counter, plus the queue depth (if
/// `depth` knows it), every
/// second until `done`; then erases the line so the summary starts clean.
pub fn draw(
    counters: &[(&str, &AtomicU64)],
    mut depth: impl FnMut() -> Option<u64>,
    done: &AtomicBool,
) {
    let started = Instant::now();
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let mut line = format!("{:>6.0}s", secs);
        for (name, n) in counters {
            let n = n.load(Ordering::Relaxed);
            line.push_str(&format!("  {name} {n} ({:.0}/s)", n as f64 / secs));
        }
        if let Some(depth) = depth() {
            line.push_str(&format!("  queue {depth}"));
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }
    let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
}
