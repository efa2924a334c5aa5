//! The Redis list: connecting with safe timeouts, pushing batches, popping batches.
//!
//! Every call here is a plain blocking function on one connection; the thread
//! that owns a `Queue` owns its socket.

use crate::conn::{self, Conn, Endpoint, Target};
use crate::error::Error;
use redis::{RedisResult, Value};
use std::num::NonZeroUsize;
use std::time::Duration;

/// Slack between a blocking command's own timeout and the socket read timeout.
/// PITFALLS.md: if the socket gave up first, the server could hand an item to
/// an abandoned BRPOP and the item would be lost.
const READ_SLACK: Duration = Duration::from_secs(3);

/// LPUSH a batch and record the batch number in the marker, atomically, on a
/// cluster (a script runs on the slot's node; one server uses MULTI/EXEC).
/// KEYS: list, marker. ARGV: seq, then the values.
const PUSH: &str = r"
for i = 2, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', 3600)
return #ARGV - 1";

/// LPUSH only items whose fingerprint is new to the seen set, atomically.
/// KEYS: list, seen zset, marker. ARGV: now, seq, then fingerprint/value pairs.
const PUSH_UNSEEN: &str = r"
local new = {}
for i = 3, #ARGV, 2 do
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[1], ARGV[i]) == 1 then
    new[#new + 1] = ARGV[i + 1]
  end
end
for i = 1, #new, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(new, i, math.min(i + 999, #new)))
end
redis.call('SET', KEYS[3], ARGV[2], 'EX', 3600)
return #new";

/// One connection to one list key.
pub struct Queue {
    url: String,
    target: Target,
    con: Conn,
    /// The list key items are pushed to and popped from.
    pub key: String,
    block: Duration,
}

impl Queue {
    /// Connects, sets socket timeouts longer than `block` (the BRPOP timeout),
    /// and checks that `key` is a list or absent.
    pub fn connect(ep: &Endpoint, key: &str, block: Duration) -> Result<Queue, Error> {
        let url = ep.url.as_str();
        let target = conn::target(ep)?;
        let con = conn::connect(&target, block + READ_SLACK)
            .map_err(|e| Error::redis("cannot reach Redis", url, &e))?;
        let mut q = Queue {
            url: url.to_string(),
            target,
            con,
            key: key.to_string(),
            block,
        };
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query(&mut q.con)
            .map_err(|e| Error::redis("cannot use Redis", url, &e))?;
        if kind != "list" && kind != "none" {
            return Err(Error::Usage(format!(
                "Redis key {key:?} holds a {kind}, not a list (choose another --key, or delete it if it is stale)"
            )));
        }
        Ok(q)
    }

    /// Replaces a broken connection (the sync client never reconnects by itself).
    pub fn reconnect(&mut self) -> RedisResult<()> {
        self.con = conn::connect(&self.target, self.block + READ_SLACK)?;
        Ok(())
    }

    /// The URL with any password redacted, for messages.
    pub fn redacted_url(&self) -> String {
        crate::error::redact(&self.url)
    }

    /// The connection, for commands owned by other modules (e.g. `reliable`).
    pub fn con(&mut self) -> &mut Conn {
        &mut self.con
    }

    /// The blocking-command timeout in seconds (the socket allows more).
    pub fn block_secs(&self) -> f64 {
        self.block.as_secs_f64()
    }

    /// Pushes `values` (oldest first) and sets `marker` to `seq` in one script,
    /// so a retry can tell whether this batch already landed (see `landed`).
    pub fn push(&mut self, values: &[&[u8]], marker: &str, seq: &str) -> RedisResult<()> {
        if values.is_empty() {
            return Ok(());
        }
        if let Conn::Single(con) = &mut self.con {
            // MULTI/EXEC: measured faster than the script (0.9-1.2x vs 0.75x of
            // the pipelined-LPUSH ceiling); the script is for clusters.
            return redis::pipe()
                .atomic()
                .cmd("LPUSH")
                .arg(&self.key)
                .arg(values)
                .ignore()
                .cmd("SET")
                .arg(marker)
                .arg(seq)
                .arg("EX")
                .arg(3600)
                .ignore()
                .query::<()>(con);
        }
        redis::cmd("EVAL")
            .arg(PUSH)
            .arg(2)
            .arg(&self.key)
            .arg(marker)
            .arg(seq)
            .arg(values)
            .query::<Value>(&mut self.con)
            .map(drop)
    }

    /// Pushes only the values whose fingerprint is not yet in the sorted set
    /// `seen` (score: first-pushed Unix time), atomically, with the marker.
    /// Returns how many were new.
    pub fn push_unseen(
        &mut self,
        values: &[&[u8]],
        fingerprints: &[[u8; 16]],
        seen: &str,
        marker: &str,
        seq: &str,
    ) -> RedisResult<u64> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUSH_UNSEEN)
            .arg(3)
            .arg(&self.key)
            .arg(seen)
            .arg(marker)
            .arg(now)
            .arg(seq);
        for (fp, v) in fingerprints.iter().zip(values) {
            cmd.arg(&fp[..]).arg(*v);
        }
        cmd.query(&mut self.con)
    }

    /// Forgets fingerprints first pushed more than `ttl` ago.
    pub fn trim_seen(&mut self, seen: &str, ttl: Option<Duration>) -> RedisResult<()> {
        let Some(ttl) = ttl else { return Ok(()) };
        let cutoff = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_sub(ttl)
            .as_secs();
        redis::cmd("ZREMRANGEBYSCORE")
            .arg(seen)
            .arg("-inf")
            .arg(format!("({cutoff}"))
            .query::<Value>(&mut self.con)
            .map(drop)
    }

    /// Whether batch `seq` was applied by an earlier attempt whose reply was lost.
    pub fn landed(&mut self, marker: &str, seq: &str) -> RedisResult<bool> {
        let current: Option<String> = redis::cmd("GET").arg(marker).query(&mut self.con)?;
        Ok(current.as_deref() == Some(seq))
    }

    /// Deletes a writer's marker key at the end of its run.
    pub fn forget(&mut self, marker: &str) -> RedisResult<()> {
        redis::cmd("DEL").arg(marker).query(&mut self.con)
    }

    /// Blocks up to the block timeout for one item, then takes up to `max - 1`
    /// more without blocking. Returns items oldest first (FIFO).
    pub fn pop(&mut self, max: usize) -> RedisResult<Vec<Vec<u8>>> {
        let first: Option<(Vec<u8>, Vec<u8>)> = redis::cmd("BRPOP")
            .arg(&self.key)
            .arg(self.block.as_secs_f64())
            .query(&mut self.con)?;
        let Some((_, first)) = first else {
            return Ok(Vec::new());
        };
        let mut items = vec![first];
        if let Some(more) = NonZeroUsize::new(max.saturating_sub(1)) {
            let rest: RedisResult<Option<Vec<Vec<u8>>>> = redis::cmd("RPOP")
                .arg(&self.key)
                .arg(more.get())
                .query(&mut self.con);
            // On error the BRPOP item is already out of Redis: deliver it now;
            // the broken connection shows up on the next call.
            if let Ok(rest) = rest {
                items.extend(rest.unwrap_or_default());
            }
        }
        Ok(items)
    }

    /// The list's length.
    pub fn len(&mut self) -> RedisResult<u64> {
        redis::cmd("LLEN").arg(&self.key).query(&mut self.con)
    }

    /// Puts popped items back at the consuming end of `key`, so they are
    /// popped next, in order.
    pub fn give_back(&mut self, key: &str, items: &[Vec<u8>]) -> RedisResult<()> {
        if items.is_empty() {
            return Ok(());
        }
        let reversed: Vec<&[u8]> = items.iter().rev().map(Vec::as_slice).collect();
        redis::cmd("RPUSH")
            .arg(key)
            .arg(reversed)
            .query::<Value>(&mut self.con)
            .map(drop)
    }
}
