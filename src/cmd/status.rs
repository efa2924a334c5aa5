//! `qpipe status` and `qpipe peek`: read-only views of a queue for people and cron.

use crate::config::StatusConfig;
use crate::error::{Error, Exit};
use crate::queue::dead_letter;
use crate::queue::job_list;
use crate::queue::keys::{self, Family};
use crate::queue::lease;
use crate::queue::lock;
use crate::queue::Queue;
use crate::run::signal::Signals;
use crate::run::summary::{Output, Summary};
use std::io::Write;
use std::time::Duration;

/// Dead letters read per shard to count them by reason: enough to see what
/// is failing, bounded for a dead list that grew large.
const DEAD_SAMPLE: i64 = 10_000;

/// Reports queue length, processing lists, dead letters, seen set, consumers
/// and lock, summed over the queue's shards, and the job list if asked.
pub fn run(cfg: &StatusConfig, _signals: &Signals) -> Result<Summary, Error> {
    if cfg.keys && cfg.target.redis.is_cluster() {
        return Err(Error::Usage(
            "status --keys reads one server; on a cluster, give the URL of one node at a time (redis://host:port)".into(),
        ));
    }
    let keys = cfg.target.shard_keys();
    let mut q = Queue::connect(&cfg.target.redis, &keys[0], Duration::from_secs(1))?;
    let (length, dead, seen, lists) = count_shards(cfg, &mut q, &keys)?;
    let mut sum = Summary::new("status", Exit::Ok);
    sum.output = if cfg.json {
        Output::StdoutJson
    } else {
        Output::Stdout
    };
    sum.set("redis", q.redacted_url())
        .set("key", cfg.target.key.as_str())
        .set("shards", keys.len() as u64)
        .set("queue_length", length)
        .set("dead_letters", dead)
        .set("dead_by_reason", dead_by_reason(&mut q, &keys)?)
        .set(
            "live_consumers",
            lists.iter().filter(|p| p.alive).count() as u64,
        )
        .set(
            "processing_lists",
            lists.iter().filter(|p| p.len > 0).count() as u64,
        )
        .set("processing_items", lists.iter().map(|p| p.len).sum::<u64>())
        .set(
            "orphaned_items",
            lists
                .iter()
                .filter(|p| !p.alive)
                .map(|p| p.len)
                .sum::<u64>(),
        );
    if let Some(s) = &cfg.seen_key {
        sum.set("seen_key", s.as_str()).set("seen_set_size", seen);
    }
    if let Some(key) = &cfg.jobs {
        let j = job_list::counts(q.link(), key)?;
        sum.set("jobs_key", key.as_str())
            .set("jobs_pending", j.pending)
            .set("jobs_leased", j.leased)
            .set("jobs_orphaned", j.orphaned)
            .set("jobs_done", j.done)
            .set("jobs_dead", j.dead)
            .set("jobs_delayed", j.delayed)
            .set("jobs_scheduled", j.scheduled)
            .set("job_workers", j.workers);
    }
    if cfg.keys {
        let found = registered_keys(cfg, &mut q, &keys)?;
        sum.set("keys_found", found.len() as u64);
        if cfg.json {
            sum.set("keys", serde_json::Value::Object(found));
        } else {
            print_keys(&found)?;
        }
    }
    if let Some(name) = &cfg.lock {
        let holder = q.call("read the lock holder", |c| lock::holder(c, name))?;
        sum.set("lock", name.as_str()).set(
            "lock_holder",
            holder.map_or(serde_json::Value::Null, Into::into),
        );
    }
    Ok(sum)
}

/// Summed over the shards: the queue length, the dead letters, the seen
/// set's size (with `--seen-key`), and every consumer's processing lists.
fn count_shards(
    cfg: &StatusConfig,
    q: &mut Queue,
    keys: &[String],
) -> Result<(u64, u64, u64, Vec<lease::Processing>), Error> {
    let seen_sets = cfg
        .seen_key
        .as_ref()
        .map(|s| crate::queue::keys::seen_sets(s, keys, cfg.target.redis.is_cluster()));
    let (mut length, mut dead, mut seen, mut lists) = (0u64, 0u64, 0u64, Vec::new());
    for (i, key) in keys.iter().enumerate() {
        length += q.call("read the queue length", |c| {
            redis::cmd("LLEN").arg(key).query::<u64>(c)
        })?;
        dead += q.call("count dead letters", |c| {
            redis::cmd("LLEN")
                .arg(crate::queue::keys::dead(key))
                .query::<u64>(c)
        })?;
        lists.extend(lease::processing_lists(q.link(), key)?);
        if let Some(sets) = &seen_sets {
            seen += q.call("count the seen set", |c| {
                crate::queue::dedup::size(c, &sets[i])
            })?;
        }
    }
    Ok((length, dead, seen, lists))
}

/// The dead letters counted by the kind of their reason ("invalid JSON",
/// "not valid UTF-8"...), over the newest `DEAD_SAMPLE` of each shard.
fn dead_by_reason(q: &mut Queue, shards: &[String]) -> Result<serde_json::Value, Error> {
    let mut counts = crate::run::summary::Counts::new();
    for key in shards {
        for l in dead_letter::read_newest(q.link(), &keys::dead(key), DEAD_SAMPLE)? {
            *counts.entry(l.kind().to_string()).or_default() += 1;
        }
    }
    Ok(crate::run::summary::counts_json(&counts))
}

/// Every key in Redis that qpipe made for this queue (each shard), its
/// `--jobs` list, its `--seen-key` and its `--lock`, by the key registry:
/// name -> "pattern (type; lifetime): owner". Reads with SCAN, so it does
/// not block the server on a large keyspace.
fn registered_keys(
    cfg: &StatusConfig,
    q: &mut Queue,
    shards: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    let mut bases: Vec<(String, Family)> =
        shards.iter().map(|k| (k.clone(), Family::Queue)).collect();
    bases.extend(cfg.jobs.iter().map(|j| (j.clone(), Family::Jobs)));
    bases.extend(cfg.seen_key.iter().map(|s| (s.clone(), Family::Seen)));
    let mut found = serde_json::Map::new();
    for (base, family) in &bases {
        for name in scan(q, &format!("{}*", glob_escape(base)))? {
            if let Some(k) = keys::classify(&name, base, *family) {
                found.insert(name, describe(k).into());
            }
        }
    }
    if let Some(name) = &cfg.lock {
        let lock = keys::lock(name);
        let there: bool = q.call("look for the lock", |c| {
            redis::cmd("EXISTS").arg(&lock).query(c)
        })?;
        if let (true, Some(k)) = (
            there,
            keys::REGISTRY
                .iter()
                .find(|k| k.pattern == "qpipe:lock:LOCK"),
        ) {
            found.insert(lock, describe(k).into());
        }
    }
    found.sort_keys();
    Ok(found)
}

/// A registry row in one line.
fn describe(k: &keys::KeyKind) -> String {
    format!("{} ({}; {}): {}", k.pattern, k.kind, k.lifetime, k.owner)
}

/// The names matching `glob`, by SCAN.
fn scan(q: &mut Queue, glob: &str) -> Result<Vec<String>, Error> {
    let (mut cursor, mut out) = (0u64, Vec::new());
    // Bounded: a keyspace changing under SCAN still ends.
    for _ in 0..100_000 {
        let (next, names): (u64, Vec<String>) = q.call("list the queue's keys", |c| {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(glob)
                .arg("COUNT")
                .arg(1000)
                .query(c)
        })?;
        out.extend(names);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(out)
}

/// `--keys` as text: a line a key, on stdout before the summary.
fn print_keys(found: &serde_json::Map<String, serde_json::Value>) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    for (name, what) in found {
        let line = format!("{name}\t{}\n", what.as_str().unwrap_or_default());
        match out.write_all(line.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other.map_err(|e| Error::io("cannot write to stdout", e))?,
        }
    }
    Ok(())
}

/// `s` as a SCAN MATCH pattern that matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// Prints the next `n` items to be consumed, oldest first, without removing
/// them; with shards, shard by shard.
pub fn peek(cfg: &StatusConfig, n: u64, _signals: &Signals) -> Result<Summary, Error> {
    let keys = cfg.target.shard_keys();
    let mut q = Queue::connect(&cfg.target.redis, &keys[0], Duration::from_secs(1))?;
    let mut items: Vec<Vec<u8>> = Vec::new();
    for key in &keys {
        let left = n.saturating_sub(items.len() as u64);
        if left == 0 {
            break;
        }
        let mut some: Vec<Vec<u8>> = q.call("peek at the queue", |c| {
            redis::cmd("LRANGE")
                .arg(key)
                .arg(-(left.min(i64::MAX as u64) as i64))
                .arg(-1)
                .query(c)
        })?;
        some.reverse();
        items.extend(some);
    }
    let mut out = std::io::stdout().lock();
    let written = items
        .iter()
        .try_for_each(|item| out.write_all(item).and_then(|()| out.write_all(b"\n")))
        .and_then(|()| out.flush());
    match written {
        // The reader stopped reading (`qpipe peek | head -1`): nothing is lost.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.map_err(|e| Error::io("cannot write to stdout", e))?,
    }
    let mut sum = Summary::new("peek", Exit::Ok);
    sum.output = Output::Silent;
    sum.set("items", items.len() as u64);
    Ok(sum)
}
