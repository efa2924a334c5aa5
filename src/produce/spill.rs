//! The writer's last resort: when Redis stays down past `--redis-retry-secs`
//! (or the run is stopping during an outage), the batch in hand and
//! everything still arriving go to a spill file, fsynced as they come and
//! named at once, with the command that sends it later (`push`/`enqueue`).

use super::settings::WriterConfig;
use crate::queue::item::Item;
use crate::run::log;
use crossbeam_channel::Receiver;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

/// What went to the spill file.
#[derive(Debug, Default)]
pub struct Spilled {
    /// Items written to it.
    pub spilled: u64,
    /// The file, if every item in it is on disk.
    pub path: Option<PathBuf>,
}

/// The command that sends a spill file to the list it was meant for.
fn resend_hint(cfg: &WriterConfig, path: &std::path::Path) -> String {
    let shards = match cfg.shards {
        1 => String::new(),
        n => format!(" --shards {n}"),
    };
    format!(
        "qpipe {} --key {}{shards} {}",
        cfg.resend,
        cfg.key,
        path.display()
    )
}

/// Writes `batch` and everything still arriving on `rx` to a spill file.
///
/// What has arrived is made durable (flushed and fsynced) before waiting for
/// more, and the file is named at once: after a signal the fetchers may
/// still be finishing pages, and the stop watchdog may end the process
/// before they do. `unsure`: the first items of `batch` were in a push whose
/// reply never came, so they may be in Redis too; the log says how to tell.
pub fn spill(
    batch: &[Item],
    rx: &Receiver<Vec<Item>>,
    cfg: &WriterConfig,
    stats: &mut Spilled,
    unsure: Option<Unsure<'_>>,
) {
    let mut file = SpillFile::create(&cfg.spill_dir);
    file.append(batch, stats);
    let (named, synced) = drain(&mut file, rx, cfg, stats, unsure.as_ref());
    if !named && synced {
        if let Some(u) = &unsure {
            unsure_note(u, &file.path, cfg);
        }
    }
    report_spill(file, synced, cfg, stats);
}

/// A spill file being written.
struct SpillFile {
    path: PathBuf,
    /// `None` if the file could not be created: every item is then lost.
    out: Option<BufWriter<File>>,
    /// Items that could not be written.
    lost: u64,
}

impl SpillFile {
    /// Creates a spill file named after the time and pid in `dir`; logs it
    /// if that fails.
    fn create(dir: &std::path::Path) -> SpillFile {
        let path = dir.join(format!(
            "qpipe-unsent-{}-{}.jsonl",
            log::now_compact(),
            std::process::id()
        ));
        let out = match File::create(&path) {
            Ok(f) => Some(BufWriter::new(f)),
            Err(e) => {
                log::error(&format!("cannot create spill file {}: {e}", path.display()));
                None
            }
        };
        SpillFile { path, out, lost: 0 }
    }

    /// Appends `items`, one JSON line each, counting each as spilled or lost.
    fn append(&mut self, items: &[Item], stats: &mut Spilled) {
        for item in items {
            let ok = self
                .out
                .as_mut()
                .is_some_and(|w| w.write_all(&item.json).is_ok() && w.write_all(b"\n").is_ok());
            if ok {
                stats.spilled += 1;
            } else {
                self.lost += 1;
            }
        }
    }

    /// Flushes and fsyncs the file; false if it is missing or either failed.
    fn sync(&mut self) -> bool {
        self.out
            .as_mut()
            .is_some_and(|w| w.flush().is_ok() && w.get_ref().sync_data().is_ok())
    }
}

/// Appends everything arriving on `rx` until every sender is gone, syncing
/// whenever the channel runs dry, and names the file in the log after its
/// first good sync. Returns whether it was named and whether the last sync
/// succeeded.
fn drain(
    file: &mut SpillFile,
    rx: &Receiver<Vec<Item>>,
    cfg: &WriterConfig,
    stats: &mut Spilled,
    unsure: Option<&Unsure<'_>>,
) -> (bool, bool) {
    let mut named = false;
    let mut synced;
    loop {
        match rx.try_recv() {
            Ok(parcel) => {
                file.append(&parcel, stats);
                continue;
            }
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                synced = file.sync();
                break;
            }
            Err(crossbeam_channel::TryRecvError::Empty) => synced = file.sync(),
        }
        if !named && synced {
            named = true;
            log::warn(&format!(
                "saving unsent items to {} ({} so far; more follow as pages in flight finish)",
                file.path.display(),
                stats.spilled
            ));
            if let Some(u) = unsure {
                unsure_note(u, &file.path, cfg);
            }
        }
        match rx.recv() {
            Ok(parcel) => file.append(&parcel, stats),
            Err(_) => {
                synced = file.sync();
                break;
            }
        }
    }
    (named, synced)
}

/// Logs where the unsent items went and how to resend them, or how many
/// were lost; the stats keep the path only if every item is on disk.
fn report_spill(file: SpillFile, synced: bool, cfg: &WriterConfig, stats: &mut Spilled) {
    if synced && file.lost == 0 {
        log::error(&format!(
            "{} unsent items saved to {} (send them later with: {})",
            stats.spilled,
            file.path.display(),
            resend_hint(cfg, &file.path)
        ));
        stats.path = Some(file.path);
    } else {
        log::error(&format!(
            "the spill file {} could not be written: {} unsent items lost",
            file.path.display(),
            file.lost
        ));
    }
}

/// A push whose outcome is unknown: its reply never came.
pub struct Unsure<'a> {
    /// How many items it held (the first ones of the spill file).
    pub items: usize,
    /// The writer's marker key of its shard.
    pub marker: &'a str,
    /// The batch number the push carried.
    pub seq: &'a str,
}

/// Says how to tell whether a push whose reply never came landed.
fn unsure_note(u: &Unsure<'_>, path: &std::path::Path, cfg: &WriterConfig) {
    let when = if crate::queue::conn::time_refused() {
        // Unfenced (the user may not run TIME): a late copy can still land.
        "it may have run, or may still run if a late copy reaches Redis (this user may not run TIME, so it carries no deadline); check again after a while"
    } else {
        "Redis refuses it after its deadline, but it may have run before"
    };
    log::warn(&format!(
        "the first {} items of {} were in a push (batch {}) whose reply never came: {when}; if `GET {}` says {} or more (it expires in an hour), they are already in {}: drop those lines before resending",
        u.items,
        path.display(),
        u.seq,
        u.marker,
        u.seq,
        cfg.key
    ));
}
