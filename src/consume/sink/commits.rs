//! Exactly-once into a file across a restart (`consume --reliable --out
//! FILE`). After each commit of the file (flushed and fsynced), the sink
//! appends to `FILE.qpipe-commits` one JSON line: the file's length and the
//! reliable batches that commit holds, and fsyncs it; only then are the
//! batches acknowledged in Redis. A consumer killed in between leaves
//! batches that are in the file but still held in Redis.
//!
//! A consumer that starts on the same FILE reads the log first:
//! - it cuts the file back to the last recorded length (bytes after it
//!   belong to batches that were never recorded, which come back by
//!   recovery and are written once);
//! - it acknowledges every recorded batch still held (deleting a list that
//!   is already gone does nothing);
//! - then recovery puts back what is left.
//!
//! So the batch is written once. It is written twice only if another
//! consumer (or `qpipe recover`) put it back before the restart.

use crate::queue::link::Link;
use crate::queue::reliable;
use crate::run::log;
use serde_json::json;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// Rewritten down to one line once it grows past this.
const COMPACT_AT: u64 = 1 << 20;

/// The log of commits beside an output file.
pub struct CommitLog {
    file: File,
    path: PathBuf,
    bytes: u64,
}

/// The log's path for output `out`: `out.qpipe-commits`.
pub fn path_for(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_os_string();
    name.push(".qpipe-commits");
    PathBuf::from(name)
}

/// What a log says: the last recorded length and every recorded batch as
/// (consumer set, batch list).
type Recorded = (Option<u64>, Vec<(String, String)>);

fn read(path: &Path) -> io::Result<Recorded> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((None, Vec::new())),
        Err(e) => return Err(e),
    };
    let (mut len, mut batches) = (None, Vec::new());
    for line in BufReader::new(f).lines() {
        // A torn last line (a crash while appending) is not a record.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line?) else {
            break;
        };
        let Some(n) = v["len"].as_u64() else { break };
        len = Some(n);
        for pair in v["acks"].as_array().into_iter().flatten() {
            if let (Some(set), Some(list)) = (pair[0].as_str(), pair[1].as_str()) {
                batches.push((set.to_string(), list.to_string()));
            }
        }
    }
    Ok((len, batches))
}

impl CommitLog {
    /// Settles what a previous run on `out` left, then opens a fresh log:
    /// cuts `out` back to its last recorded commit, acknowledges the
    /// recorded batches on `link`, and records the current length.
    pub fn settle(out: &Path, link: &mut Link) -> Result<CommitLog, crate::error::Error> {
        let what = |e: io::Error| {
            crate::error::Error::io(
                format!(
                    "cannot use the commit log {} (delete it to start over; items may then repeat once)",
                    path_for(out).display()
                ),
                e,
            )
        };
        let (recorded, batches) = read(&path_for(out)).map_err(what)?;
        let current = match std::fs::metadata(out) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(what(e)),
        };
        let mut len = current;
        match recorded {
            Some(r) if current > r => {
                let f = OpenOptions::new().write(true).open(out).map_err(what)?;
                f.set_len(r).map_err(what)?;
                f.sync_all().map_err(what)?;
                log::warn(&format!(
                    "cut {} bytes from the end of {}: written after its last recorded commit, their items come back from Redis",
                    current - r,
                    out.display()
                ));
                len = r;
            }
            Some(r) if current < r => log::warn(&format!(
                "{} is shorter than its commit log says ({current} < {r} bytes; rotated or edited?): nothing is cut",
                out.display()
            )),
            _ => {}
        }
        let mut per_set: Vec<(&str, Vec<&str>)> = Vec::new();
        for (set, list) in &batches {
            match per_set.iter_mut().find(|(s, _)| s == set) {
                Some((_, lists)) => lists.push(list),
                None => per_set.push((set, vec![list])),
            }
        }
        for (set, lists) in &per_set {
            reliable::ack(link, set, lists)?;
        }
        if !batches.is_empty() {
            log::info(&format!(
                "acknowledged {} batches a previous run had written to {} but not acknowledged",
                batches.len(),
                out.display()
            ));
        }
        let mut log = CommitLog {
            file: create(&path_for(out), len).map_err(what)?,
            path: path_for(out),
            bytes: 0,
        };
        log.bytes = log.file.metadata().map_err(what)?.len();
        Ok(log)
    }

    /// Records a commit: the file's length now and the batches it holds.
    pub fn record(&mut self, len: u64, batches: &[(&str, &str)]) -> io::Result<()> {
        let line = json!({"len": len, "acks": batches}).to_string() + "\n";
        self.file.write_all(line.as_bytes())?;
        self.file.sync_data()?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Deletes the log: it no longer describes the file (a run that does
    /// not record, or a record that failed). A restart then cuts nothing.
    pub fn discard(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn(&format!(
                "cannot delete the commit log {} ({e}); delete it by hand before the next restart",
                self.path.display()
            ));
        }
    }

    /// Starts the log over at `len` (a new file after a reopen).
    pub fn restart(&mut self, len: u64) -> io::Result<()> {
        self.file = create(&self.path, len)?;
        self.bytes = self.file.metadata()?.len();
        Ok(())
    }

    /// Once every recorded batch is acknowledged: shrinks a long log to one
    /// line (written beside it and renamed over it, so a crash leaves the
    /// old log or the new one).
    pub fn compact(&mut self, len: u64) -> io::Result<()> {
        if self.bytes < COMPACT_AT {
            return Ok(());
        }
        self.restart(len)
    }
}

/// A log holding only `len`, put in place atomically; open for appending.
fn create(path: &Path, len: u64) -> io::Result<File> {
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut f = File::create(&tmp)?;
    f.write_all((json!({"len": len, "acks": []}).to_string() + "\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: the rename itself survives a crash.
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    OpenOptions::new().append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_not_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.qpipe-commits");
        std::fs::write(
            &p,
            "{\"len\":10,\"acks\":[[\"s\",\"a\"]]}\n{\"len\":20,\"acks\":[[\"s\",\"b\"]]}\n{\"len\":3",
        )
        .unwrap();
        let (len, batches) = read(&p).unwrap();
        assert_eq!(len, Some(20));
        assert_eq!(
            batches,
            [("s".into(), "a".into()), ("s".into(), "b".into())]
        );
    }
}
