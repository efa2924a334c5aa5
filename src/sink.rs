//! The JSON Lines sink: whole lines only, buffered, flushed and fsynced per batch.

use crate::error::Error;
use crate::log;
use crate::queue::Queue;
use crate::reliable;
use crossbeam_channel::Receiver;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const BUFFER: usize = 256 * 1024;
/// Batches held for commit at most; bounds memory and time-to-durable under load.
const MAX_UNCOMMITTED: usize = 64;

/// Popped items on their way to the sink.
#[derive(Debug)]
pub struct Batch {
    /// The items, oldest first.
    pub items: Vec<Vec<u8>>,
    /// The list they were popped from.
    pub key: String,
    /// In reliable mode, the processing list to acknowledge them in once durable.
    pub processing: Option<String>,
}

/// What `drain` did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Items written and committed (flushed, and fsynced if on).
    pub written: u64,
    /// Batches not known to be durable after a sink failure, in order.
    pub unwritten: Vec<Batch>,
    /// The sink failure, if any.
    pub error: Option<io::Error>,
    /// Acknowledgements that failed (those items will be delivered again).
    pub ack_failures: u64,
    /// When the last item became durable.
    pub last_commit: Option<std::time::Instant>,
}

enum Target {
    Stdout(BufWriter<io::Stdout>),
    File(BufWriter<File>),
}

/// Where popped items go. Owned by exactly one thread.
pub struct Sink {
    target: Target,
    fsync: bool,
}

impl Sink {
    /// Opens `path` for appending (repairing a torn last line), or stdout for `None`.
    pub fn open(path: Option<&Path>, fsync: bool) -> Result<Sink, Error> {
        let target = match path {
            None => Target::Stdout(BufWriter::with_capacity(BUFFER, io::stdout())),
            Some(p) => {
                let what = || {
                    format!(
                        "cannot open --out {} (check the directory exists and is writable)",
                        p.display()
                    )
                };
                let mut f = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::io(what(), e))?;
                let cut = repair_torn_tail(&mut f).map_err(|e| Error::io(what(), e))?;
                if cut > 0 {
                    log::warn(&format!(
                        "{} ended in a torn line ({cut} bytes, from an interrupted run); removed it",
                        p.display()
                    ));
                }
                Target::File(BufWriter::with_capacity(BUFFER, f))
            }
        };
        Ok(Sink { target, fsync })
    }

    /// Buffers `items`, one per line, each exactly as popped.
    pub fn write(&mut self, items: &[Vec<u8>]) -> io::Result<()> {
        let w: &mut dyn Write = match &mut self.target {
            Target::Stdout(w) => w,
            Target::File(w) => w,
        };
        for item in items {
            w.write_all(item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes the buffer and, for files with fsync on, makes it durable.
    pub fn commit(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(w) => w.flush(),
            Target::File(w) => {
                w.flush()?;
                if self.fsync {
                    match w.get_ref().sync_data() {
                        // A pipe or terminal (`--out /dev/stdout`) cannot be
                        // fsynced; that is not a failed write.
                        Err(e) if matches!(e.raw_os_error(), Some(22 | 95)) => {
                            log::debug(
                                "the output cannot be fsynced (not a regular file); flushing only",
                            );
                            self.fsync = false;
                        }
                        other => other?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// The sink loop: write batches, commit when nothing else is waiting, then
/// acknowledge them (reliable mode) on `acker`.
///
/// Batches are kept until their commit succeeds. On a write or commit error
/// this raises `stop` and returns every item not known to be durable, so the
/// caller can give them back to Redis (at-least-once).
pub fn drain(
    rx: &Receiver<Batch>,
    sink: &mut Sink,
    mut acker: Option<&mut Queue>,
    stop: &AtomicBool,
    live: &AtomicU64,
) -> Drained {
    let mut out = Drained::default();
    let mut uncommitted: Vec<Batch> = Vec::new();
    for batch in rx {
        let result = sink.write(&batch.items);
        uncommitted.push(batch);
        if let Err(e) = result {
            out.error = Some(e);
            break;
        }
        if rx.is_empty() || uncommitted.len() >= MAX_UNCOMMITTED {
            if let Err(e) = sink.commit() {
                out.error = Some(e);
                break;
            }
            settle(&mut uncommitted, acker.as_deref_mut(), &mut out);
            live.store(out.written, Ordering::Relaxed);
        }
    }
    if out.error.is_none() {
        match sink.commit() {
            Ok(()) => settle(&mut uncommitted, acker, &mut out),
            Err(e) => out.error = Some(e),
        }
    }
    if out.error.is_some() {
        stop.store(true, Ordering::Relaxed);
    }
    // After a failure, take what the poppers still send so none of it is lost.
    out.unwritten = uncommitted.into_iter().chain(rx.iter()).collect();
    out
}

/// Counts committed batches as written and acknowledges them in one round trip.
fn settle(committed: &mut Vec<Batch>, acker: Option<&mut Queue>, out: &mut Drained) {
    let n = committed.iter().map(|b| b.items.len() as u64).sum::<u64>();
    if n > 0 {
        out.written += n;
        out.last_commit = Some(std::time::Instant::now());
    }
    if let Some(q) = acker {
        // One RPOP per processing list for all its committed batches (in order).
        let mut per_list: Vec<(&str, usize)> = Vec::new();
        for b in committed.iter() {
            if let Some(p) = &b.processing {
                match per_list.iter_mut().find(|(k, _)| *k == p.as_str()) {
                    Some((_, n)) => *n += b.items.len(),
                    None => per_list.push((p.as_str(), b.items.len())),
                }
            }
        }
        for (list, n) in per_list {
            if let Err(e) = reliable::ack(q.con(), list, n) {
                out.ack_failures += n as u64;
                log::warn(&format!(
                    "could not acknowledge {n} written items (they will be delivered again): {e}"
                ));
                let _ = q.reconnect();
            }
        }
    }
    committed.clear();
}

/// Truncates `f` after its last newline if it does not end with one.
/// Returns the number of bytes removed.
fn repair_torn_tail(f: &mut File) -> io::Result<u64> {
    let len = f.metadata()?.len();
    let mut end = len;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let buf = &mut chunk[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(buf)?;
        if let Some(i) = buf.iter().rposition(|&b| b == b'\n') {
            end = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    if end < len {
        f.set_len(end)?;
        f.sync_data()?;
    }
    Ok(len - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_whole_lines_and_repairs_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":").unwrap();
        let mut sink = Sink::open(Some(&path), true).unwrap();
        sink.write(&[b"{\"c\":3}".to_vec(), b"{\"d\":4}".to_vec()])
            .unwrap();
        sink.commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"c\":3}\n{\"d\":4}\n"
        );
    }

    #[test]
    fn torn_file_without_any_newline_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, vec![b'x'; 100_000]).unwrap();
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&path)
            .unwrap();
        assert_eq!(repair_torn_tail(&mut f).unwrap(), 100_000);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let err = Sink::open(Some(Path::new("/nonexistent-dir/x.jsonl")), true)
            .err()
            .unwrap();
        assert!(err
            .to_string()
            .starts_with("cannot open --out /nonexistent-dir/x.jsonl"));
    }
}
