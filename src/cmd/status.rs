//! `qpipe status` and `qpipe peek`: read-only views of a queue for people and cron.

use crate::config::StatusConfig;
use crate::error::{Error, Exit};
use crate::lock;
use crate::queue::Queue;
use crate::reliable;
use crate::signal::Signals;
use crate::summary::{Output, Summary};
use std::io::Write;
use std::time::Duration;

/// Reports queue length, processing lists, dead letters, seen set, consumers and lock.
pub fn run(cfg: &StatusConfig, _signals: &Signals) -> Result<Summary, Error> {
    let mut q = Queue::connect(&cfg.target.redis, &cfg.target.key, Duration::from_secs(1))?;
    let key = cfg.target.key.clone();
    let fail = |e: redis::RedisError| Error::redis("cannot read status", &cfg.target.redis.url, &e);
    let queue_length: u64 = redis::cmd("LLEN").arg(&key).query(q.con()).map_err(fail)?;
    let dead: u64 = redis::cmd("LLEN")
        .arg(format!("{key}:dead"))
        .query(q.con())
        .map_err(fail)?;
    let lists = reliable::processing_lists(q.con(), &key).map_err(fail)?;
    let live = reliable::live_consumers(q.con(), &key).map_err(fail)?;
    let mut sum = Summary::new("status", Exit::Ok);
    sum.output = if cfg.json {
        Output::StdoutJson
    } else {
        Output::Stdout
    };
    sum.set("redis", q.redacted_url())
        .set("key", key.as_str())
        .set("queue_length", queue_length)
        .set("dead_letters", dead)
        .set("live_consumers", live)
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
    if let Some(seen) = &cfg.seen_key {
        let n: u64 = redis::cmd("ZCARD").arg(seen).query(q.con()).map_err(fail)?;
        sum.set("seen_key", seen.as_str()).set("seen_set_size", n);
    }
    if let Some(name) = &cfg.lock {
        let holder = lock::holder(q.con(), name).map_err(fail)?;
        sum.set("lock", name.as_str()).set(
            "lock_holder",
            holder.map_or(serde_json::Value::Null, Into::into),
        );
    }
    Ok(sum)
}

/// Prints the next `n` items to be consumed, oldest first, without removing them.
pub fn peek(cfg: &StatusConfig, n: u64, _signals: &Signals) -> Result<Summary, Error> {
    let mut q = Queue::connect(&cfg.target.redis, &cfg.target.key, Duration::from_secs(1))?;
    let mut items: Vec<Vec<u8>> = if n == 0 {
        Vec::new()
    } else {
        redis::cmd("LRANGE")
            .arg(&cfg.target.key)
            .arg(-(n.min(i64::MAX as u64) as i64))
            .arg(-1)
            .query(q.con())
            .map_err(|e| Error::redis("cannot peek", &cfg.target.redis.url, &e))?
    };
    items.reverse();
    let mut out = std::io::stdout().lock();
    for item in &items {
        out.write_all(item)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| Error::io("cannot write to stdout", e))?;
    }
    out.flush()
        .map_err(|e| Error::io("cannot write to stdout", e))?;
    let mut sum = Summary::new("peek", Exit::Ok);
    sum.output = Output::Silent;
    sum.set("items", items.len() as u64);
    Ok(sum)
}
