//! Where popped items go: a JSON Lines file or stdout (whole lines only,
//! buffered, flushed and fsynced per commit), or a command or an HTTP
//! endpoint that takes each commit as one batch (`deliver`). Either way a
//! batch counts as written, and is acknowledged, only once committed.

pub mod commits;
pub mod deliver;
pub mod parts;

use crate::error::Error;
use crate::queue::batch::Batch;
use crate::queue::link::Link;
use crate::queue::reliable;
use crate::run::log;
use crossbeam_channel::Receiver;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const BUFFER: usize = 256 * 1024;
/// Batches held for commit at most; bounds memory and time-to-durable under load.
const MAX_UNCOMMITTED: usize = 64;

/// What `drain` did.
#[derive(Debug, Default)]
pub struct Drained {
    /// Items written and committed (flushed, and fsynced if on).
    pub written: u64,
    /// Batches not known to be durable after a sink failure, in order.
    pub unwritten: Vec<Batch>,
    /// The sink failure, if any.
    pub error: Option<io::Error>,
    /// Items whose acknowledgement failed (they will be delivered again).
    pub ack_failures: u64,
    /// An acknowledgement failure that ended the run (e.g. Redis gone for good).
    pub ack_error: Option<Error>,
    /// When the last item became durable.
    pub last_commit: Option<std::time::Instant>,
    /// Retries a command or endpoint sink needed.
    pub sink_retries: u64,
    /// Part files: (published, `--on-publish` failed).
    pub parts: Option<(u64, u64)>,
}

enum Target {
    Stdout(BufWriter<io::Stdout>),
    /// Part files from a name template.
    Parts(Box<parts::Parts>),
    /// A command or endpoint: the lines since the last commit, and their count.
    Deliver {
        body: Vec<u8>,
        items: u64,
        to: Box<deliver::Deliverer>,
    },
    File {
        /// `None` only while being rewound after a failed write.
        w: Option<BufWriter<File>>,
        /// The file's length at the last commit: everything before it is durable.
        committed: u64,
    },
}

/// Where popped items go. Owned by exactly one thread.
pub struct Sink {
    target: Target,
    fsync: bool,
    /// The `--out` path, to reopen after rotation (SIGHUP).
    path: Option<std::path::PathBuf>,
    /// `--reliable` into a file: the commits recorded beside it.
    commits: Option<commits::CommitLog>,
    /// `--format csv`: the fields of each row.
    csv: Option<Vec<String>>,
    /// Whether the CSV header is still to be written (an empty file).
    need_header: bool,
    /// An exclusive `flock` on the output file, held for the run.
    lock: Option<File>,
}

impl Sink {
    /// Opens `path` for appending (repairing a torn last line), or stdout for `None`.
    pub fn open(path: Option<&Path>, fsync: bool) -> Result<Sink, Error> {
        let target = match path {
            None => {
                if stdout_is_null() {
                    // Also what a closed stdout becomes: the runtime reopens
                    // fds 0-2 on /dev/null at start.
                    log::warn("stdout is /dev/null (or was closed): every item consumed is discarded; give --out FILE to keep them");
                }
                Target::Stdout(BufWriter::with_capacity(BUFFER, io::stdout()))
            }
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
                let committed = f.metadata().map_err(|e| Error::io(what(), e))?.len();
                Target::File {
                    w: Some(BufWriter::with_capacity(BUFFER, f)),
                    committed,
                }
            }
        };
        Ok(Sink {
            target,
            fsync,
            path: path.map(Path::to_path_buf),
            commits: None,
            csv: None,
            need_header: false,
            lock: None,
        })
    }

    /// A sink that hands each commit to a command or an endpoint.
    pub fn deliver(
        cfg: crate::consume::settings::DeliverConfig,
        stop: std::sync::Arc<AtomicBool>,
    ) -> Sink {
        Sink {
            target: Target::Deliver {
                body: Vec::new(),
                items: 0,
                to: Box::new(deliver::Deliverer::new(cfg, stop)),
            },
            fsync: false,
            path: None,
            commits: None,
            csv: None,
            need_header: false,
            lock: None,
        }
    }

    /// Writes rows of `fields` (`--format csv`) instead of the items, with
    /// a header first in an empty file (parts write their own).
    pub fn with_csv(mut self, fields: Option<Vec<String>>) -> Sink {
        self.need_header = fields.is_some()
            && match &self.target {
                Target::File { committed, .. } => *committed == 0,
                Target::Stdout(_) => true,
                _ => false,
            };
        self.csv = fields;
        self
    }

    /// Records each commit's reliable batches in `log` (see `commits`).
    pub fn with_commits(mut self, log: commits::CommitLog) -> Sink {
        self.commits = Some(log);
        self
    }

    /// After a commit: records the batches it holds, before they are
    /// acknowledged. A log that cannot be written is dropped with a warning
    /// (delivery stays at-least-once).
    fn record(&mut self, batches: &[Batch]) {
        let (Some(log), Target::File { committed, .. }) = (&mut self.commits, &self.target) else {
            return;
        };
        let acks: Vec<(&str, &str)> = batches
            .iter()
            .filter_map(|b| b.ack.as_ref().map(|a| (a.set.as_str(), a.list.as_str())))
            .collect();
        if acks.is_empty() || !self.fsync {
            return;
        }
        if let Err(e) = log.record(*committed, &acks) {
            log::warn(&format!(
                "cannot write the commit log ({e}); it is deleted, and a restart after a crash may write the last batches twice"
            ));
            if let Some(log) = self.commits.take() {
                log.discard();
            }
        }
    }

    /// Once everything recorded is acknowledged: keeps the log short
    /// (`all`: down to one line, at the end of a clean run).
    fn compact(&mut self, all: bool) {
        if let (Some(log), Target::File { committed, .. }) = (&mut self.commits, &self.target) {
            let done = match all {
                true => log.restart(*committed),
                false => log.compact(*committed),
            };
            if let Err(e) = done {
                log::warn(&format!("cannot compact the commit log ({e})"));
            }
        }
    }

    /// Holds `lock` (from `lock_file`) for as long as this sink writes.
    pub fn with_lock(mut self, lock: Option<File>) -> Sink {
        self.lock = lock;
        self
    }

    /// Part files from `cfg.template` (leftovers of earlier runs published first).
    pub fn parts(cfg: parts::PartsConfig) -> Result<Sink, Error> {
        let shown = cfg.template.display().to_string();
        let p = parts::Parts::start(cfg).map_err(|e| {
            Error::io(format!("cannot write part files for --out {shown} (check the directory exists and is writable)"), e)
        })?;
        Ok(Sink {
            target: Target::Parts(Box::new(p)),
            fsync: false,
            path: None,
            commits: None,
            csv: None,
            need_header: false,
            lock: None,
        })
    }

    /// Publishes a due part while idle; at the end, the last one.
    pub fn tick(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Parts(p) => p.rotate_if_due(),
            _ => Ok(()),
        }
    }

    /// At the end of the run: publishes what an open part committed.
    pub fn close(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Parts(p) => p.close(),
            _ => Ok(()),
        }
    }

    /// Parts published and parts whose `--on-publish` failed.
    pub fn parts_counts(&self) -> Option<(u64, u64)> {
        match &self.target {
            Target::Parts(p) => Some((p.published, p.publish_failed)),
            _ => None,
        }
    }

    /// Retries the command or endpoint needed, over the run.
    pub fn retries(&self) -> u64 {
        match &self.target {
            Target::Deliver { to, .. } => to.retries,
            _ => 0,
        }
    }

    fn writer(&mut self) -> io::Result<&mut dyn Write> {
        match &mut self.target {
            Target::Stdout(w) => Ok(w),
            Target::Deliver { body, .. } => Ok(body),
            Target::Parts(_) => Err(io::Error::other("part files are written through Parts")),
            Target::File { w: Some(w), .. } => Ok(w),
            Target::File { w: None, .. } => Err(io::Error::other("the output file was lost")),
        }
    }

    /// Buffers `items`, one per line, each exactly as popped.
    pub fn write(&mut self, items: &[Vec<u8>]) -> io::Result<()> {
        let rows: Vec<Vec<u8>>;
        let items = match &self.csv {
            Some(fields) => {
                // Screened already (`poison::screen`): every item makes a row.
                rows = items
                    .iter()
                    .map(|i| crate::consume::csv::row(i, fields).unwrap_or_default())
                    .collect();
                &rows
            }
            None => items,
        };
        if let Target::Parts(p) = &mut self.target {
            return p.write(items);
        }
        if self.need_header {
            let header = crate::consume::csv::header(self.csv.as_deref().unwrap_or_default());
            let w = self.writer()?;
            w.write_all(&header)?;
            w.write_all(b"\n")?;
            self.need_header = false;
        }
        if let Target::Deliver { items: n, .. } = &mut self.target {
            *n += items.len() as u64;
        }
        let w = self.writer()?;
        for item in items {
            w.write_all(item)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes the buffer and, for files with fsync on, makes it durable.
    pub fn commit(&mut self) -> io::Result<()> {
        let fsync = self.fsync;
        match &mut self.target {
            Target::Stdout(w) => w.flush(),
            Target::Parts(p) => p.commit(),
            Target::Deliver { body, items, to } => {
                if !body.is_empty() {
                    to.deliver(body, *items)?;
                    body.clear();
                    *items = 0;
                }
                Ok(())
            }
            Target::File { w: None, .. } => Err(io::Error::other("the output file was lost")),
            Target::File {
                w: Some(w),
                committed,
            } => {
                w.flush()?;
                if fsync {
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
                *committed = w.get_ref().metadata().map_or(*committed, |m| m.len());
                Ok(())
            }
        }
    }

    /// Commits, then opens `--out` again by its path, so a file that was
    /// renamed away (logrotate) is closed and a new one is started. Stdout
    /// stays as it is.
    pub fn reopen(&mut self) -> Result<(), Error> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        self.commit()
            .map_err(|e| Error::io("cannot commit before reopening --out", e))?;
        // The new file is opened before anything of the old sink is given
        // up: if it cannot be, writing goes on as before (CSV, log, lock).
        let new = Sink::open(Some(&path), self.fsync)?;
        let lock = match lock_file(&path) {
            Ok(l) => Some(l),
            Err(e) => {
                log::warn(&format!("{e}; writing on without the lock"));
                None
            }
        };
        let log = self.commits.take();
        let csv = self.csv.take();
        *self = new.with_csv(csv);
        self.lock = lock;
        if let (Some(mut log), Target::File { committed, .. }) = (log, &self.target) {
            // Everything recorded was acknowledged before a reopen; from
            // now on the log speaks of the new file.
            if let Err(e) = log.restart(*committed) {
                log::warn(&format!(
                    "cannot restart the commit log ({e}); it is dropped"
                ));
                log.discard();
            } else {
                self.commits = Some(log);
            }
        }
        log::info(&format!("reopened {} (SIGHUP)", path.display()));
        Ok(())
    }

    /// After a failed write: drops what is buffered and cuts the file back to
    /// its last commit, so no item is both in the file and given back, and
    /// the file does not end in a torn line. Returns the bytes cut.
    pub fn rewind(&mut self) -> io::Result<u64> {
        if let Target::Deliver { body, items, .. } = &mut self.target {
            // Not handed over: the batch goes back whole.
            body.clear();
            *items = 0;
            return Ok(0);
        }
        if let Target::Parts(p) = &mut self.target {
            return p.rewind();
        }
        let Target::File { w, committed } = &mut self.target else {
            return Ok(0);
        };
        // Cut back to an empty file: its header goes again.
        self.need_header = self.csv.is_some() && *committed == 0;
        let Some(buffered) = w.take() else {
            return Ok(0);
        };
        // Unflushed bytes are discarded, never written.
        let (f, _unwritten) = buffered.into_parts();
        let len = f.metadata()?.len();
        if len > *committed {
            f.set_len(*committed)?;
            // Best effort: the cut must survive a crash as well as the bytes did.
            let _ = f.sync_data();
        }
        *w = Some(BufWriter::with_capacity(BUFFER, f));
        Ok(len.saturating_sub(*committed))
    }
}

/// The flags the sink loop watches.
pub struct Flags<'a> {
    /// Raised by the sink when it fails, so the poppers stop.
    pub stop: &'a AtomicBool,
    /// Raised by SIGHUP: reopen `--out` after the next commit.
    pub reopen: &'a AtomicBool,
}

/// The sink loop: write batches, commit when nothing else is waiting, then
/// acknowledge them (reliable mode) on `acker`. `in_flight` counts the bytes
/// popped but not yet settled; the poppers wait while it is high.
///
/// Batches are kept until their commit succeeds. On a write or commit error
/// this rewinds the file to its last commit, raises `stop` and returns every
/// item not known to be durable, so the caller can give them back to Redis
/// (at-least-once, and nothing in both places).
pub fn drain(
    rx: &Receiver<Batch>,
    sink: &mut Sink,
    mut acker: Option<&mut Link>,
    flags: &Flags<'_>,
    live: &AtomicU64,
    in_flight: &AtomicU64,
) -> Drained {
    let mut out = Drained::default();
    let mut uncommitted: Vec<Batch> = Vec::new();
    loop {
        // Wakes now and then while idle, so a SIGHUP is acted on promptly.
        let batch = match rx.recv_timeout(std::time::Duration::from_millis(250)) {
            Ok(b) => b,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if uncommitted.is_empty() {
                    if let Err(e) = sink.tick() {
                        out.error = Some(e);
                        break;
                    }
                    reopen_if_asked(sink, flags);
                }
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
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
            sink.record(&uncommitted);
            settle(&mut uncommitted, acker.as_deref_mut(), &mut out, in_flight);
            if out.ack_error.is_none() {
                sink.compact(false);
            }
            // A full or old part is published once its items are settled.
            if let Err(e) = sink.tick() {
                out.error = Some(e);
                break;
            }
            live.store(out.written, Ordering::Relaxed);
            reopen_if_asked(sink, flags);
        }
    }
    finish(sink, &mut uncommitted, acker, flags, in_flight, &mut out);
    // After a failure, take what the poppers still send so none of it is lost.
    out.unwritten = uncommitted.into_iter().chain(rx.iter()).collect();
    out
}

/// Reopens the output (SIGHUP, for logrotate) when asked to.
fn reopen_if_asked(sink: &mut Sink, flags: &Flags<'_>) {
    if flags.reopen.swap(false, Ordering::Relaxed) {
        if let Err(e) = sink.reopen() {
            log::error(&format!("{e}; still writing to the old file"));
        }
    }
}

/// The end of [`drain`]: commits and settles what is left, or after a
/// failure raises `stop` and cuts the output back to its last commit; then
/// closes the sink and records its counts.
fn finish(
    sink: &mut Sink,
    uncommitted: &mut Vec<Batch>,
    acker: Option<&mut Link>,
    flags: &Flags<'_>,
    in_flight: &AtomicU64,
    out: &mut Drained,
) {
    if out.error.is_none() {
        match sink.commit() {
            Ok(()) => {
                sink.record(uncommitted);
                settle(uncommitted, acker, out, in_flight);
                if out.ack_error.is_none() {
                    sink.compact(true);
                }
            }
            Err(e) => out.error = Some(e),
        }
    }
    if out.error.is_some() {
        flags.stop.store(true, Ordering::Relaxed);
        match sink.rewind() {
            Ok(0) => {}
            Ok(cut) => log::warn(&format!(
                "cut {cut} bytes written since the last commit from the output, so the items given back are not also in the file"
            )),
            Err(e) => log::error(&format!(
                "could not cut the output back to its last commit ({e}); its last lines may be repeated"
            )),
        }
    }
    // The last part: what it committed is acknowledged already, so it is
    // published even after a failure.
    if let Err(e) = sink.close() {
        log::error(&format!("{e}"));
        out.error.get_or_insert(e);
    }
    out.sink_retries = sink.retries();
    out.parts = sink.parts_counts();
}

/// Counts committed batches as written and acknowledges them, one round trip
/// per consumer set.
fn settle(
    committed: &mut Vec<Batch>,
    acker: Option<&mut Link>,
    out: &mut Drained,
    in_flight: &AtomicU64,
) {
    let n = committed.iter().map(|b| b.items.len() as u64).sum::<u64>();
    if n > 0 {
        out.written += n;
        out.last_commit = Some(std::time::Instant::now());
    }
    if let Some(link) = acker {
        let mut per_set: Vec<(&str, Vec<&str>, u64)> = Vec::new();
        for b in committed.iter() {
            if let Some(a) = &b.ack {
                match per_set.iter_mut().find(|(s, _, _)| *s == a.set.as_str()) {
                    Some((_, lists, n)) => {
                        lists.push(a.list.as_str());
                        *n += b.items.len() as u64;
                    }
                    None => {
                        per_set.push((a.set.as_str(), vec![a.list.as_str()], b.items.len() as u64))
                    }
                }
            }
        }
        for (set, lists, n) in per_set {
            if out.ack_error.is_some() {
                out.ack_failures += n;
                continue;
            }
            if let Err(e) = reliable::ack(link, set, &lists) {
                out.ack_failures += n;
                if !matches!(e, Error::Stopped(_)) {
                    log::warn(&format!(
                        "could not acknowledge {n} written items (they will be delivered again): {e}"
                    ));
                    out.ack_error = Some(e);
                }
            }
        }
    }
    let bytes: u64 = committed.iter().map(Batch::bytes).sum();
    in_flight.fetch_sub(bytes, Ordering::Relaxed);
    committed.clear();
}

/// Takes an exclusive `flock` on `path` (created if missing), so two
/// consumers never write, cut or settle one file at once.
pub fn lock_file(path: &Path) -> Result<File, Error> {
    use std::os::fd::AsRawFd;
    let what = || {
        format!(
            "cannot open --out {} (check the directory exists and is writable)",
            path.display()
        )
    };
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(what(), e))?;
    // SAFETY: flock on a descriptor this function owns.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(Error::Locked(format!(
            "another qpipe consume is writing {} (one consumer per output file; give each its own --out)",
            path.display()
        )));
    }
    Ok(f)
}

/// Whether stdout is the null device.
fn stdout_is_null() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() else {
        return true;
    };
    let (Ok(out), Ok(null)) = (File::from(fd).metadata(), std::fs::metadata("/dev/null")) else {
        return false;
    };
    out.rdev() == null.rdev() && out.dev() == null.dev() && out.ino() == null.ino()
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
