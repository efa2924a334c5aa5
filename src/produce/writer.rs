//! The Redis writer stage: batch, deduplicate, push, retry through outages, spill.
//!
//! Runs on whichever thread calls `write`; that thread owns the connection.

use super::settings::WriterConfig;
use super::spill::{spill, Spilled, Unsure};
use crate::error::Error;
use crate::queue::item::Item;
use crate::queue::link::Fault;
use crate::queue::Queue;
use crate::run::log;
use crossbeam_channel::Receiver;
use std::collections::HashSet;
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
    let mut spilled = Spilled::default();
    spill(&unsent, rx, cfg, &mut spilled, unsure);
    stats.spilled += spilled.spilled;
    stats.spill_path = spilled.path;
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
