//! The input stage of `push` (and `enqueue`'s stdin): JSON Lines read from a
//! file or standard input, checked, and sent in parcels to the writer's
//! bounded channel. Standard input ends at a stop signal, even on an idle
//! pipe (`StopAwareStdin`).

use super::writer::Parcel;
use crate::error::Error;
use crate::queue::item::Item;
use crate::run::log;
use crossbeam_channel::Sender;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};

/// Lines per channel message.
const PARCEL: usize = 512;
/// Bytes of lines per channel message at most (a longer line goes alone).
const PARCEL_BYTES: usize = 1 << 20;

/// What the reader saw.
#[derive(Default)]
pub struct ReadStats {
    /// Lines read.
    pub lines: u64,
    /// Lines that are not one JSON object (named in the log).
    pub invalid: u64,
    /// Empty lines, skipped.
    pub blank: u64,
}

/// Standard input that ends (reads as end of input) once `stop` is raised,
/// instead of blocking a SIGTERM behind a pipe nobody writes to: it waits
/// for input in slices of 100 ms and checks `stop` between them.
pub struct StopAwareStdin<'a> {
    /// Raised by a signal: ends the input.
    pub stop: &'a AtomicBool,
}

impl Read for StopAwareStdin<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Bounded by `stop`: every pass waits at most 100 ms.
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let mut fd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, for the length given.
            let n = unsafe { libc::poll(&mut fd, 1, 100) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n > 0 {
                // Ready (data, end of input or an error): this read does
                // not block. Read fd 0 directly: std's Stdin buffers, and
                // bytes in its buffer would not wake `poll`.
                // SAFETY: buf is valid for buf.len() bytes.
                let got = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
                if got < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                return Ok(got as usize);
            }
        }
    }
}

/// Reads lines until end of input, or until `stop` unless `drain`.
pub fn read_lines(
    input: Box<dyn Read + Send + '_>,
    tx: &Sender<Parcel>,
    stop: &AtomicBool,
    drain: bool,
) -> Result<ReadStats, Error> {
    let mut stats = ReadStats::default();
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::new();
    let mut parcel: Parcel = Vec::new();
    let mut parcel_bytes = 0;
    while drain || !stop.load(Ordering::Relaxed) {
        // Send what we have whenever reading further could block, so a lone
        // line on a pipe is pushed at once; and before a parcel grows large,
        // so huge lines do not pile up in memory.
        let ready =
            reader.buffer().is_empty() || parcel.len() >= PARCEL || parcel_bytes >= PARCEL_BYTES;
        if !parcel.is_empty() && ready {
            parcel_bytes = 0;
            if tx.send(std::mem::take(&mut parcel)).is_err() {
                return Ok(stats);
            }
        }
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("cannot read input", e))?;
        if n == 0 {
            break;
        }
        stats.lines += 1;
        if line.last() != Some(&b'\n') && stop.load(Ordering::Relaxed) {
            // The rest of this line was still on its way when the run
            // stopped: a fragment such as `12` of `123` would be valid JSON.
            stats.invalid += 1;
            let shown = String::from_utf8_lossy(&line[..line.len().min(80)]).into_owned();
            log::warn(&format!(
                "line {}: cut off by the stop (no end of line yet), not pushed: {shown:?}",
                stats.lines
            ));
            break;
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            stats.blank += 1;
            continue;
        }
        // The same check `consume` makes, so nothing pushed here is later a
        // dead letter (and no tree of the line is built).
        if let Err(why) = crate::queue::dead_letter::verdict(&line) {
            stats.invalid += 1;
            log::warn(&format!("line {}: {why}, skipped", stats.lines));
            continue;
        }
        parcel_bytes += line.len();
        parcel.push(Item::raw(line.clone()));
    }
    if !parcel.is_empty() {
        let _ = tx.send(parcel);
    }
    Ok(stats)
}
