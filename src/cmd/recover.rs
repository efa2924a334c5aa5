//! `qpipe recover`: put the items of dead reliable consumers back on the queue.

use crate::config::RedisTarget;
use crate::error::{Error, Exit};
use crate::queue::lease;
use crate::queue::Queue;
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use std::time::Duration;

/// Re-queues every processing list whose consumer's heartbeat has expired.
pub fn run(cfg: &RedisTarget, _signals: &Signals) -> Result<Summary, Error> {
    let keys = cfg.shard_keys();
    let mut q = Queue::connect(&cfg.redis, &keys[0], Duration::from_secs(1))?;
    let (mut lists, mut recovered) = (Vec::new(), 0);
    for key in &keys {
        lists.extend(lease::processing_lists(q.link(), key)?);
        recovered += lease::recover(q.link(), key, &lease::Items)?;
    }
    crate::queue::stats::add_in(&cfg.redis, &cfg.key, recovered);
    let live: Vec<_> = lists.iter().filter(|p| p.alive).collect();
    let held_by_live: u64 = live.iter().map(|p| p.len).sum();
    let mut sum = Summary::new("recover", Exit::Ok);
    sum.set("redis", q.redacted_url())
        .set("key", cfg.key.as_str())
        .set("dead_consumers", (lists.len() - live.len()) as u64)
        .set("items_recovered", recovered)
        .set("live_consumers", live.len() as u64)
        .set("items_held_by_live_consumers", held_by_live);
    Ok(sum)
}
