//! The Redis writer stage: batch, deduplicate, push, retry through outages, spill.
//!
//! Runs on whichever thread calls `write`; that thread owns the connection.

use super::settings::WriterConfig;
use crate::error::Error;
use crate::queue::item::Item;
use crate::queue::link::Fault;
use crate::queue::Queue;
use crate::run::log;
use crossbeam_channel::Receiver;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The items of one page (or a few input lines): one channel message, so the
/// fetchers and the writer synchronise once per page, not once per item.
pub type Parcel = Vec<Item>;

/// What the writer did.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Items that reached Redis.
    pub pushed: u64,
    /// Items dropped because an equal item (all fields but url) was already pushed.
    pub duplicates: u64,
    /// Items skipped because an earlier run pushed them (`--seen-key`).
    pub seen_before: u64,
    /// LPUSH round trips.
    pub batches: u64,
    /// Failed pushes that were retried.
    pub retries: u64,
    /// Retries skipped because the earlier attempt had in fact landed.
    pub retries_already_landed: u64,
    /// Items written to the spill file.
    pub spilled: u64,
    /// The spill file, if Redis stayed down.
    pub spill_path: Option<PathBuf>,
    /// Why the writer gave up, if it did.
    pub failure: Option<Error>,
}

impl WriterStats {
    /// Adds the writer's counters to a run summary (produce and push alike).
    pub fn summarize(&self, sum: &mut crate::run::summary::Summary) {
        sum.set("items_pushed", self.pushed)
            .set("items_spilled", self.spilled)
            .set("lpush_batches", self.batches)
            .set("redis_retries", self.retries)
            .set("redis_retries_already_landed", self.retries_already_landed);
    }
}

/// Drains `rx` into Redis until every sender is gone.
///
/// Blocks for the first item, then takes whatever else is already waiting (up
/// to the batch size), so a lone item is pushed at once and a flood is pushed
/// in big LPUSHes. If Redis stays down past `retry_for`, raises `stop`, and
/// writes this batch and everything still arriving to a spill file.
/// `live` counts pushed items as they land, for the progress line.
pub fn write(
    rx: &Receiver<Parcel>,
    shards: &mut [Queue],
    cfg: &WriterConfig,
    stop: &AtomicBool,
    live: &AtomicU64,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let mut seen: HashSet<u64> = HashSet::new();
    let run = run_id();
    let markers: Vec<String> = shards
        .iter()
        .map(|q| crate::queue::keys::writer_marker(&q.key, &run))
        .collect();
    if let Some(s) = &cfg.seen {
        expire_fingerprints(shards, s.ttl);
    }
    let mut batch: Vec<Item> = Vec::with_capacity(cfg.batch_size);
    while let Ok(first) = rx.recv() {
        gather(&mut batch, first, rx, cfg);
        drop_duplicates(&mut batch, &mut seen, &mut stats);
        if batch.is_empty() {
            continue;
        }
        stats.batches += 1;
        let seq = stats.batches.to_string();
        let groups = split(std::mem::take(&mut batch), shards.len());
        for g in 0..groups.len() {
            if groups[g].is_empty() {
                continue;
            }
            let target = Target {
                marker: &markers[g],
                seq: &seq,
            };
            if let Err((e, unsure)) =
                push_shard(&mut shards[g], &groups[g], &target, &mut stats, live)
            {
                stop.store(true, Ordering::Relaxed);
                let unsure = unsure.then(|| Unsure {
                    items: groups[g].len(),
                    marker: &markers[g],
                    seq: &seq,
                });
                give_up(e, &groups[g..], unsure, rx, cfg, &mut stats);
                return stats;
            }
        }
    }
    forget_markers(shards, &markers);
    stats
}

/// Forgets fingerprints pushed more than `ttl` ago (`--seen-ttl`) from each
/// shard's seen set, once per run; a failure only warns (the run can go on).
fn expire_fingerprints(shards: &mut [Queue], ttl: Option<std::time::Duration>) {
    for q in shards.iter_mut() {
        if let Err(e) = q.trim_seen(ttl) {
            log::warn(&format!(
                "could not expire old fingerprints of {}: {e}",
                q.key
            ));
        }
    }
}

/// Makes `batch` the parcel `first` plus whatever else is already waiting,
/// up to the batch size or byte budget (without waiting for more).
fn gather(batch: &mut Vec<Item>, first: Parcel, rx: &Receiver<Parcel>, cfg: &WriterConfig) {
    batch.clear();
    batch.extend(first);
    let mut bytes: usize = batch.iter().map(|i| i.json.len()).sum();
    while batch.len() < cfg.batch_size && bytes < cfg.batch_bytes {
        match rx.try_recv() {
            Ok(parcel) => {
                bytes += parcel.iter().map(|i| i.json.len()).sum::<usize>();
                batch.extend(parcel);
            }
            Err(_) => break,
        }
    }
}

/// Drops items equal to one already pushed in this run, and counts them.
fn drop_duplicates(batch: &mut Vec<Item>, seen: &mut HashSet<u64>, stats: &mut WriterStats) {
    let before = batch.len();
    // 64 bits suffice within one run (collision odds ~1e-8 at 10M items)
    // and halve the memory of the set that grows with the run.
    batch.retain(|i| i.fingerprint.is_none_or(|f| seen.insert(f as u64)));
    stats.duplicates += (before - batch.len()) as u64;
}

/// Pushes one shard's part of a batch and counts what landed (and what its
/// seen set already had).
fn push_shard(
    q: &mut Queue,
    group: &[Item],
    target: &Target<'_>,
    stats: &mut WriterStats,
    live: &AtomicU64,
) -> Result<(), (Error, bool)> {
    let pushed = push_retrying(q, group, target, stats)?;
    stats.pushed += pushed;
    live.fetch_add(pushed, Ordering::Relaxed);
    stats.seen_before += group.len() as u64 - pushed;
    Ok(())
}

/// After a push failed for good: spills the shard batches not yet pushed
/// (the failed one first) and everything still arriving, and records why
/// the writer gave up.
fn give_up(
    e: Error,
    unsent: &[Vec<Item>],
    unsure: Option<Unsure<'_>>,
    rx: &Receiver<Parcel>,
    cfg: &WriterConfig,
    stats: &mut WriterStats,
) {
    let unsent: Vec<Item> = unsent.iter().flatten().cloned().collect();
    spill(&unsent, rx, cfg, stats, unsure);
    // Items are in a spill file, not in Redis: that needs a
    // look (exit 1), even when a signal cut the retries short.
    stats.failure = Some(match e {
        Error::Stopped(why) => Error::Redis {
            what: why,
            url: crate::error::redact(&cfg.redis.url),
            cause: "unsent items were saved to a spill file (see above)".into(),
        },
        other => other,
    });
}

/// Deletes the writer's markers at the end of a run: they only matter
/// while a batch could be retried.
fn forget_markers(shards: &mut [Queue], markers: &[String]) {
    for (q, marker) in shards.iter_mut().zip(markers) {
        let _ = q.forget(marker);
    }
}

/// Routes items to shards by fingerprint, so the same item always lands in
/// the same shard (and its seen set). Keeps order within each shard.
fn split(batch: Vec<Item>, shards: usize) -> Vec<Vec<Item>> {
    if shards == 1 {
        return vec![batch];
    }
    let mut groups: Vec<Vec<Item>> = (0..shards).map(|_| Vec::new()).collect();
    for item in batch {
        let fp = item
            .fingerprint
            .unwrap_or_else(|| crate::queue::item::fingerprint(&item.json));
        groups[(fp % shards as u128) as usize].push(item);
    }
    groups
}

/// Where one shard's batch goes.
struct Target<'a> {
    marker: &'a str,
    seq: &'a str,
}

/// A run-unique id for the writer's marker key: time, pid and a random
/// nonce (two containers can share a pid and a clock tick).
fn run_id() -> String {
    let nanos = crate::run::log::unix_time().as_nanos();
    format!(
        "{:x}-{}-{:08x}",
        nanos,
        std::process::id(),
        fastrand::u32(..)
    )
}

/// Pushes one batch, reconnecting with capped exponential backoff until `retry_for`.
///
/// The batch's LPUSH and `SET marker seq` run in one fenced script that does
/// nothing if the marker already holds `seq` or more. So a retry after a lost
/// reply, and a late first copy that reaches Redis after the retry, cannot
/// push the batch twice; and past its deadline the first copy cannot land at
/// all. On failure, says whether the batch may have landed all the same (a
/// reply was lost and no later attempt got an answer).
fn push_retrying(
    q: &mut Queue,
    batch: &[Item],
    t: &Target<'_>,
    stats: &mut WriterStats,
) -> Result<u64, (Error, bool)> {
    let (marker, seq) = (t.marker, t.seq);
    let values: Vec<&[u8]> = batch.iter().map(|i| i.json.as_slice()).collect();
    let fingerprints: Vec<[u8; 16]> = batch
        .iter()
        .map(|i| {
            i.fingerprint
                .unwrap_or_else(|| crate::queue::item::fingerprint(&i.json))
                .to_be_bytes()
        })
        .collect();
    let mut attempt = 0u32;
    let mut unsure = false;
    loop {
        match q.push(&values, &fingerprints, marker, seq) {
            Ok(pushed) => {
                q.link().settled();
                if attempt > 0 {
                    log::info(&format!("batch {seq} pushed after {attempt} retries"));
                }
                return Ok(pushed.unwrap_or_else(|| {
                    // The lost reply said how many were new; all of them is the best bound.
                    stats.retries_already_landed += 1;
                    values.len() as u64
                }));
            }
            Err(fault) => {
                attempt += 1;
                stats.retries += 1;
                // Only a push that succeeds (or finds its marker) settles
                // whether an earlier lost reply's push ran: a refusal now
                // says nothing about it.
                unsure |= matches!(fault, Fault::Lost(_));
                if let Err(e) = q.link().recover(fault, "push a batch") {
                    // Spilled only once a copy still on its way can no
                    // longer land (a signal may have cut the wait short).
                    if unsure {
                        q.link().outlive_late_copies();
                    }
                    return Err((e, unsure));
                }
            }
        }
    }
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
fn spill(
    batch: &[Item],
    rx: &Receiver<Parcel>,
    cfg: &WriterConfig,
    stats: &mut WriterStats,
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
    fn append(&mut self, items: &[Item], stats: &mut WriterStats) {
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
    rx: &Receiver<Parcel>,
    cfg: &WriterConfig,
    stats: &mut WriterStats,
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
fn report_spill(file: SpillFile, synced: bool, cfg: &WriterConfig, stats: &mut WriterStats) {
    if synced && file.lost == 0 {
        log::error(&format!(
            "{} unsent items saved to {} (send them later with: {})",
            stats.spilled,
            file.path.display(),
            resend_hint(cfg, &file.path)
        ));
        stats.spill_path = Some(file.path);
    } else {
        log::error(&format!(
            "the spill file {} could not be written: {} unsent items lost",
            file.path.display(),
            file.lost
        ));
    }
}

/// A push whose outcome is unknown: its reply never came.
struct Unsure<'a> {
    /// How many items it held (the first ones of the spill file).
    items: usize,
    marker: &'a str,
    seq: &'a str,
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
