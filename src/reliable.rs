//! The reliable-queue pattern: per-consumer processing lists, heartbeats,
//! acknowledgement after the sink commits, and recovery of dead consumers.
//!
//! Keys, for list `K`:
//! - `K:processing:<consumer>`: items moved out of `K`, not yet durable in the sink;
//!   newest at the head, so the oldest `n` are acknowledged with `RPOP .. n`.
//! - `K:consumer:<consumer>`: heartbeat with a TTL; missing means the consumer is dead.
//! - `K:consumers`: the set of consumer ids that may hold a processing list
//!   (a registry rather than SCAN, which would see only one Redis Cluster node).

use redis::{ConnectionLike, RedisResult};

/// Moves up to ARGV[1] more items from the tail of KEYS[1] to the head of KEYS[2].
const MOVE_MORE: &str = r"
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
end
return out";

/// One consumer thread's identity and keys.
#[derive(Debug, Clone)]
pub struct Lease {
    /// `<host>:<pid>:<thread>`.
    pub consumer: String,
    /// Its processing list.
    pub processing: String,
    /// Its heartbeat key.
    pub heartbeat: String,
    /// The registry of consumers of this list.
    pub registry: String,
    /// The list it takes from.
    pub list: String,
}

impl Lease {
    /// The lease of thread `n` of this process, on list `key`.
    pub fn new(key: &str, n: usize) -> Lease {
        let consumer = format!("{}:{}:{n}", hostname(), std::process::id());
        Lease {
            processing: format!("{key}:processing:{consumer}"),
            heartbeat: format!("{key}:consumer:{consumer}"),
            registry: format!("{key}:consumers"),
            list: key.to_string(),
            consumer,
        }
    }

    /// Renews the heartbeat for `ttl` seconds (and registers the consumer).
    pub fn beat(&self, con: &mut dyn ConnectionLike, ttl: u64) -> RedisResult<()> {
        redis::cmd("SET")
            .arg(&self.heartbeat)
            .arg(crate::log::now_rfc3339())
            .arg("EX")
            .arg(ttl)
            .query::<()>(con)?;
        redis::cmd("SADD")
            .arg(&self.registry)
            .arg(&self.consumer)
            .query(con)
    }

    /// Removes the heartbeat and registration at a clean exit (the processing
    /// list is empty then).
    pub fn release(&self, con: &mut dyn ConnectionLike) -> RedisResult<()> {
        redis::cmd("DEL").arg(&self.heartbeat).query::<()>(con)?;
        redis::cmd("SREM")
            .arg(&self.registry)
            .arg(&self.consumer)
            .query(con)
    }
}

/// The host name, for consumer ids.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into())
}

/// Blocks up to `block` seconds for one item, moving it into the processing
/// list, then moves up to `max - 1` more without blocking. Oldest first.
pub fn take(
    con: &mut dyn ConnectionLike,
    key: &str,
    lease: &Lease,
    max: usize,
    block: f64,
) -> RedisResult<Vec<Vec<u8>>> {
    let first: Option<Vec<u8>> = redis::cmd("BLMOVE")
        .arg(key)
        .arg(&lease.processing)
        .arg("RIGHT")
        .arg("LEFT")
        .arg(block)
        .query(con)?;
    let Some(first) = first else {
        return Ok(Vec::new());
    };
    let mut items = vec![first];
    if max > 1 {
        // On error the first item is safe in the processing list; deliver it.
        if let Ok(more) = redis::cmd("EVAL")
            .arg(MOVE_MORE)
            .arg(2)
            .arg(key)
            .arg(&lease.processing)
            .arg(max - 1)
            .query::<Vec<Vec<u8>>>(con)
        {
            items.extend(more);
        }
    }
    Ok(items)
}

/// Acknowledges the oldest `n` items of a processing list (they are durable). Batches from one consumer are committed in the order they were taken,
/// so the oldest `n` are exactly the batch just made durable.
pub fn ack(con: &mut dyn ConnectionLike, processing: &str, n: usize) -> RedisResult<()> {
    if n == 0 {
        return Ok(());
    }
    redis::cmd("RPOP")
        .arg(processing)
        .arg(n)
        .query::<redis::Value>(con)
        .map(drop)
}

/// A consumer's processing list and whether its heartbeat is alive.
#[derive(Debug)]
pub struct Processing {
    /// The consumer id.
    pub consumer: String,
    /// Items held.
    pub len: u64,
    /// Heartbeat present.
    pub alive: bool,
}

/// Lists every registered consumer of `key`: its processing list and heartbeat.
pub fn processing_lists(con: &mut dyn ConnectionLike, key: &str) -> RedisResult<Vec<Processing>> {
    let mut consumers: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{key}:consumers"))
        .query(con)?;
    consumers.sort();
    let mut out = Vec::with_capacity(consumers.len());
    for consumer in consumers {
        let len: u64 = redis::cmd("LLEN")
            .arg(format!("{key}:processing:{consumer}"))
            .query(con)?;
        let alive: bool = redis::cmd("EXISTS")
            .arg(format!("{key}:consumer:{consumer}"))
            .query(con)?;
        out.push(Processing {
            consumer,
            len,
            alive,
        });
    }
    Ok(out)
}

/// Moves the items of dead consumers back to the consuming end of `key`.
/// Returns how many items went back.
pub fn recover(con: &mut dyn ConnectionLike, key: &str) -> RedisResult<u64> {
    let mut moved = 0;
    for p in processing_lists(con, key)?.into_iter().filter(|p| !p.alive) {
        moved += requeue(con, key, &format!("{key}:processing:{}", p.consumer))?;
        redis::cmd("SREM")
            .arg(format!("{key}:consumers"))
            .arg(&p.consumer)
            .query::<()>(con)?;
    }
    Ok(moved)
}

/// Moves every item of `processing` back to the tail of `key`, so the oldest
/// is popped first again. Each move is atomic: an item is always in one list.
pub fn requeue(con: &mut dyn ConnectionLike, key: &str, processing: &str) -> RedisResult<u64> {
    let mut moved = 0;
    // Newest first onto the tail, so the oldest ends up at the very tail.
    while redis::cmd("LMOVE")
        .arg(processing)
        .arg(key)
        .arg("LEFT")
        .arg("RIGHT")
        .query::<Option<Vec<u8>>>(con)?
        .is_some()
    {
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_keys_follow_the_documented_scheme() {
        let l = Lease::new("Q", 3);
        assert!(l.consumer.ends_with(&format!(":{}:3", std::process::id())));
        assert_eq!(l.processing, format!("Q:processing:{}", l.consumer));
        assert_eq!(l.heartbeat, format!("Q:consumer:{}", l.consumer));
    }
}
