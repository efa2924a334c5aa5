//! `qpipe push FILE.jsonl`: enqueue JSON Lines through the produce writer path.
//!
//! A reader thread (`produce::lines`) validates lines and feeds the same
//! bounded channel and writer stage that `produce` uses, so batching,
//! retries and spilling match.

use crate::config::PushConfig;
use crate::error::{Error, Exit};
use crate::produce::lines::{read_lines, ReadStats, StopAwareStdin};
use crate::produce::writer::{self, Parcel, WriterStats};
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Instant;

/// Pushes every valid line of the file; reports invalid lines by number.
pub fn run(cfg: &PushConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    // Stdin is read to its end even after a signal (the reader then sees
    // end of input at once): lines already taken from a pipe exist nowhere
    // else, so they are pushed (or spilled), never dropped. A file keeps
    // what was not read.
    let drain = cfg.file.is_none();
    let input: Box<dyn Read + Send + '_> =
        match &cfg.file {
            None => Box::new(StopAwareStdin {
                stop: &signals.stop,
            }),
            Some(p) => Box::new(std::fs::File::open(p).map_err(|e| {
                Error::io(format!("cannot read {} (check the path)", p.display()), e)
            })?),
        };
    let mut queues = cfg.writer.connect(&signals.stop)?;
    let stop: &AtomicBool = &signals.stop;
    // Four parcels in flight: each holds up to PARCEL_BYTES (1 MiB), or one
    // line that is larger, so huge lines do not pile up in memory.
    let (tx, rx) = crossbeam_channel::bounded::<Parcel>(4);
    let (read, written) = std::thread::scope(|s| {
        let reader = s.spawn(move || read_lines(input, &tx, stop, drain));
        let written = writer::write(&rx, &mut queues, &cfg.writer, stop, &AtomicU64::new(0));
        let read = reader.join().unwrap_or_else(|_| Ok(ReadStats::default()));
        (read, written)
    });
    let read = read?;
    // The fleet's counts, once (a push is short).
    crate::queue::stats::add_in(&cfg.writer.redis, &cfg.writer.key, written.pushed);
    let exit = signals.exit().unwrap_or(if read.invalid > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    });
    let mut sum = Summary::new("push", exit);
    sum.set("redis", crate::error::redact(&cfg.writer.redis.url))
        .set("key", cfg.writer.key.as_str())
        .set("lines", read.lines)
        .set("blank_lines", read.blank)
        .set("invalid_lines", read.invalid);
    written.summarize(&mut sum);
    sum.rates(started.elapsed(), &[("items", written.pushed)]);
    let WriterStats {
        failure,
        spill_path,
        ..
    } = written;
    if let Some(p) = spill_path {
        sum.set("spill_file", p.display().to_string());
    }
    sum.failure = failure;
    Ok(sum)
}
