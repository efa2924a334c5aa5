//! The Redis writer stage: batch, deduplicate, push, retry through outages, spill.
//!
//! Runs on whichever thread calls `write`; that thread owns the connection.

use crate::config::WriterConfig;
use crate::error::Error;
use crate::queue::item::Item;
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
        .map(|q| format!("{}:writer:{run}", q.key))
        .collect();
    if let Some(s) = &cfg.seen {
        for q in shards.iter_mut() {
            if let Err(e) = q.trim_seen(s.ttl) {
                log::warn(&format!(
                    "could not expire old fingerprints of {}: {e}",
                    q.key
                ));
            }
        }
    }
    let mut batch: Vec<Item> = Vec::with_capacity(cfg.batch_size);
    while let Ok(first) = rx.recv() {
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
        let before = batch.len();
        // 64 bits suffice within one run (collision odds ~1e-8 at 10M items)
        // and halve the memory of the set that grows with the run.
        batch.retain(|i| i.fingerprint.is_none_or(|f| seen.insert(f as u64)));
        stats.duplicates += (before - batch.len()) as u64;
        if batch.is_empty() {
            continue;
        }
        stats.batches += 1;
        let seq = stats.batches.to_string();
        let mut groups = split(std::mem::take(&mut batch), shards.len());
        for g in 0..groups.len() {
            if groups[g].is_empty() {
                continue;
            }
            let target = Target {
                marker: &markers[g],
                seq: &seq,
            };
            match push_retrying(&mut shards[g], &groups[g], &target, &mut stats) {
                Ok(pushed) => {
                    stats.pushed += pushed;
                    live.fetch_add(pushed, Ordering::Relaxed);
                    stats.seen_before += groups[g].len() as u64 - pushed;
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    let unsent: Vec<Item> = groups.drain(g..).flatten().collect();
                    spill(&unsent, rx, cfg, &mut stats);
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
                    return stats;
                }
            }
        }
    }
    // The markers only matter while a batch could be retried; tidy them away.
    for (q, marker) in shards.iter_mut().zip(&markers) {
        let _ = q.forget(marker);
    }
    stats
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
/// The batch's LPUSH and `SET marker seq` run in one script. When a reply is
/// lost, the retry first asks whether the marker holds `seq`: if it does, the
/// batch landed and is not pushed twice.
fn push_retrying(
    q: &mut Queue,
    batch: &[Item],
    t: &Target<'_>,
    stats: &mut WriterStats,
) -> Result<u64, Error> {
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
    let attempt_push = |q: &mut Queue| q.push_unseen(&values, &fingerprints, marker, seq);
    let mut attempt = 0u32;
    loop {
        let result = if attempt == 0 {
            attempt_push(q)
        } else {
            match q.landed(marker, seq) {
                Ok(true) => {
                    // The lost reply said how many were new; all of them is the best bound.
                    stats.retries_already_landed += 1;
                    q.link().settled();
                    return Ok(values.len() as u64);
                }
                Ok(false) => attempt_push(q),
                Err(f) => Err(f),
            }
        };
        match result {
            Ok(pushed) => {
                q.link().settled();
                if attempt > 0 {
                    log::info(&format!("batch {seq} pushed after {attempt} retries"));
                }
                return Ok(pushed);
            }
            Err(fault) => {
                attempt += 1;
                stats.retries += 1;
                q.link().recover(fault, "push a batch")?;
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
fn spill(batch: &[Item], rx: &Receiver<Parcel>, cfg: &WriterConfig, stats: &mut WriterStats) {
    let path = cfg.spill_dir.join(format!(
        "qpipe-unsent-{}-{}.jsonl",
        log::now_compact(),
        std::process::id()
    ));
    let mut lost = 0u64;
    let mut out = match File::create(&path) {
        Ok(f) => Some(BufWriter::new(f)),
        Err(e) => {
            log::error(&format!("cannot create spill file {}: {e}", path.display()));
            None
        }
    };
    for item in batch.iter().cloned().chain(rx.iter().flatten()) {
        let ok = out
            .as_mut()
            .is_some_and(|w| w.write_all(&item.json).is_ok() && w.write_all(b"\n").is_ok());
        if ok {
            stats.spilled += 1;
        } else {
            lost += 1;
        }
    }
    let synced = out.is_some_and(|w| w.into_inner().is_ok_and(|f| f.sync_all().is_ok()));
    if synced && lost == 0 {
        log::error(&format!(
            "{} unsent items saved to {} (send them later with: {})",
            stats.spilled,
            path.display(),
            resend_hint(cfg, &path)
        ));
        stats.spill_path = Some(path);
    } else {
        log::error(&format!(
            "the spill file {} could not be written: {lost} unsent items lost",
            path.display()
        ));
    }
}
