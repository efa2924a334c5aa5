//! `qpipe push FILE.jsonl`: enqueue JSON Lines through the produce writer path.
//!
//! A reader thread validates lines and feeds the same bounded channel and
//! writer stage that `produce` uses, so batching, retries and spilling match.

use crate::config::PushConfig;
use crate::error::{Error, Exit};
use crate::queue::item::Item;
use crate::queue::writer::{self, Parcel, WriterStats};
use crate::run::log;
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use crossbeam_channel::Sender;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Lines per channel message.
const PARCEL: usize = 512;

/// What the reader saw.
#[derive(Default)]
struct ReadStats {
    lines: u64,
    invalid: u64,
    blank: u64,
}

/// Pushes every valid line of the file; reports invalid lines by number.
pub fn run(cfg: &PushConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let input: Box<dyn Read + Send> =
        match &cfg.file {
            None => Box::new(std::io::stdin()),
            Some(p) => Box::new(std::fs::File::open(p).map_err(|e| {
                Error::io(format!("cannot read {} (check the path)", p.display()), e)
            })?),
        };
    let mut queues = cfg.writer.connect(&signals.stop)?;
    let stop: &AtomicBool = &signals.stop;
    let (tx, rx) = crossbeam_channel::bounded::<Parcel>(64);
    let (read, written) = std::thread::scope(|s| {
        let reader = s.spawn(move || read_lines(input, &tx, stop));
        let written = writer::write(&rx, &mut queues, &cfg.writer, stop, &AtomicU64::new(0));
        let read = reader.join().unwrap_or_else(|_| Ok(ReadStats::default()));
        (read, written)
    });
    let read = read?;
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

fn read_lines(
    input: Box<dyn Read + Send>,
    tx: &Sender<Parcel>,
    stop: &AtomicBool,
) -> Result<ReadStats, Error> {
    let mut stats = ReadStats::default();
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::new();
    let mut parcel: Parcel = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        // Send what we have whenever reading further could block, so a lone
        // line on a pipe is pushed at once.
        let ready = reader.buffer().is_empty() || parcel.len() >= PARCEL;
        if !parcel.is_empty() && ready && tx.send(std::mem::take(&mut parcel)).is_err() {
            return Ok(stats);
        }
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("cannot read input", e))?;
        if n == 0 {
            break;
        }
        stats.lines += 1;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            stats.blank += 1;
            continue;
        }
        if serde_json::from_slice::<serde_json::Value>(&line).is_err() {
            stats.invalid += 1;
            log::warn(&format!("line {}: not valid JSON, skipped", stats.lines));
            continue;
        }
        parcel.push(Item::raw(line.clone()));
    }
    if !parcel.is_empty() {
        let _ = tx.send(parcel);
    }
    Ok(stats)
}
