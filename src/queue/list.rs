//! The Redis list: connecting with safe timeouts, pushing batches, popping batches.
//!
//! Every call here is a plain blocking function on one `Link`; the thread
//! that owns a `Queue` owns its socket. Calls that are not safe to repeat
//! (pushes, pops) run once and return a `Fault`, so the caller decides what a
//! lost reply means; the rest retry through outages inside the `Link`.

use crate::error::Error;
use crate::queue::conn::{self, Conn, Endpoint};
use crate::queue::dedup::Filter;
use crate::queue::link::{Fault, Link};
use redis::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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

/// LPUSH only items whose fingerprint is new to the seen filter, atomically
/// (after the filter's prelude, `dedup::Filter::script`).
/// KEYS: list, marker, then the filter's. ARGV: seq, the filter's two
/// arguments, then fingerprint/value pairs (a fingerprint takes `width`).
const PUSH_UNSEEN: &str = r"
local width, _, add, tally = seen_filter(KEYS, 3, ARGV, 2)
local new = {}
for i = 4, #ARGV, width + 1 do
  if add(i) then
    new[#new + 1] = ARGV[i + width]
  end
end
for i = 1, #new, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(new, i, math.min(i + 999, #new)))
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', 3600)
tally(#new)
return #new";

/// Pops up to ARGV[1] more items from the tail of KEYS[1], stopping once
/// ARGV[2] bytes were taken (so a batch is bounded in bytes as well as count).
const POP_MORE: &str = r"
local out, bytes = {}, 0
local budget = tonumber(ARGV[2])
for i = 1, tonumber(ARGV[1]) do
  if bytes >= budget then break end
  local v = redis.call('RPOP', KEYS[1])
  if not v then break end
  out[#out + 1] = v
  bytes = bytes + #v
end
return out";

/// One connection to one list key.
pub struct Queue {
    link: Link,
    /// The list key items are pushed to and popped from.
    pub key: String,
    block: Duration,
    /// The seen key pushes are deduplicated against (`--seen-key`), if any.
    seen: Option<Filter>,
}

impl Queue {
    /// Connects, sets socket timeouts longer than `block` (the BRPOP timeout),
    /// and checks that `key` is a list or absent. Outages are not retried
    /// until `retrying` sets a budget.
    pub fn connect(ep: &Endpoint, key: &str, block: Duration) -> Result<Queue, Error> {
        Queue::connect_shard(ep, key, &[], block)
    }

    /// Like `connect`, for one of a sharded queue's lists (`shards`: all of
    /// them), so a cluster node that is down is named with what it holds.
    pub fn connect_shard(
        ep: &Endpoint,
        key: &str,
        shards: &[String],
        block: Duration,
    ) -> Result<Queue, Error> {
        let mut q = Queue::open(ep, key, block)?.with_shards(shards);
        let kind: String = q.call("check the key's type", |c| {
            redis::cmd("TYPE").arg(key).query(c)
        })?;
        if kind != "list" && kind != "none" {
            return Err(Error::Usage(format!(
                "Redis key {key:?} holds a {kind}, not a list (choose another --key, or delete it if it is stale)"
            )));
        }
        Ok(q)
    }

    /// Connects without checking the key's type (to put items back at exit).
    pub fn open(ep: &Endpoint, key: &str, block: Duration) -> Result<Queue, Error> {
        let link = Link::open(ep, block + READ_SLACK, Duration::ZERO, None)?;
        Ok(Queue::over(link, key, block))
    }

    /// A queue on an existing link, for non-blocking commands (`block` only
    /// sizes blocking pops, which need a socket timeout longer than it).
    pub fn over(link: Link, key: &str, block: Duration) -> Queue {
        Queue {
            link: link.for_key(key),
            key: key.to_string(),
            block,
            seen: None,
        }
    }

    /// Deduplicates this list's pushes against `seen` (see `push_unseen`).
    pub fn with_seen(mut self, seen: Filter) -> Queue {
        self.seen = Some(seen);
        self
    }

    /// Retries outages for `retry_for`, giving up early once `stop` is raised.
    pub fn retrying(mut self, retry_for: Duration, stop: Option<Arc<AtomicBool>>) -> Queue {
        self.link = self.link.retrying(retry_for, stop);
        self
    }

    /// Names every shard of the list, for errors about a lost cluster node.
    pub fn with_shards(mut self, shards: &[String]) -> Queue {
        self.link = self.link.with_shards(shards);
        self
    }

    /// The connection, for other modules' commands (e.g. `reliable`).
    pub fn link(&mut self) -> &mut Link {
        &mut self.link
    }

    /// Runs a command that is safe to repeat, through outages.
    pub fn call<T>(
        &mut self,
        what: &str,
        f: impl FnMut(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, Error> {
        self.link.call(what, f)
    }

    /// The URL with any password redacted, for messages.
    pub fn redacted_url(&self) -> String {
        self.link.redacted_url()
    }

    /// The blocking-command timeout in seconds (the socket allows more).
    pub fn block_secs(&self) -> f64 {
        self.block.as_secs_f64()
    }

    /// Pushes `values` (oldest first) and sets `marker` to `seq` atomically,
    /// so a retry can tell whether this batch already landed (see `landed`).
    /// Runs once: a lost reply is for the caller to resolve.
    pub fn push(&mut self, values: &[&[u8]], marker: &str, seq: &str) -> Result<(), Fault> {
        if values.is_empty() {
            return Ok(());
        }
        let key = self.key.as_str();
        self.link.attempt(|con| {
            if let Conn::Single(con) = con {
                // MULTI/EXEC: measured faster than the script (0.9-1.2x vs
                // 0.75x of the pipelined-LPUSH ceiling); the script is for clusters.
                return redis::pipe()
                    .atomic()
                    .cmd("LPUSH")
                    .arg(key)
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
                .arg(key)
                .arg(marker)
                .arg(seq)
                .arg(values)
                .query::<Value>(con)?;
            conn::replicate(con, key)
        })
    }

    /// Pushes only the values whose fingerprint is new to the seen key (and
    /// records them there), atomically, with the marker; without a seen key,
    /// pushes them all. Returns how many were new. Runs once.
    pub fn push_unseen(
        &mut self,
        values: &[&[u8]],
        fingerprints: &[[u8; 16]],
        marker: &str,
        seq: &str,
    ) -> Result<u64, Fault> {
        let Some(seen) = &self.seen else {
            return self.push(values, marker, seq).map(|()| values.len() as u64);
        };
        let keys = seen.keys();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(seen.script(PUSH_UNSEEN))
            .arg(2 + keys.len())
            .arg(&self.key)
            .arg(marker)
            .arg(&keys)
            .arg(seq)
            .arg(&seen.args()[..]);
        for (fp, v) in fingerprints.iter().zip(values) {
            seen.push_fingerprint(&mut cmd, fp);
            cmd.arg(*v);
        }
        let key = self.key.as_str();
        self.link.attempt(|con| {
            let new = cmd.query(con)?;
            conn::replicate(con, key)?;
            Ok(new)
        })
    }

    /// Forgets fingerprints first pushed more than `ttl` ago (a sorted-set
    /// seen key only: a Bloom filter cannot forget, and config refuses that).
    pub fn trim_seen(&mut self, ttl: Option<Duration>) -> Result<(), Error> {
        let (Some(ttl), Some(Filter::Exact(_, seen))) = (ttl, &self.seen) else {
            return Ok(());
        };
        let seen = seen.clone();
        let cutoff = crate::run::log::unix_secs().saturating_sub(ttl.as_secs());
        self.call("expire old fingerprints", |c| {
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&seen)
                .arg("-inf")
                .arg(format!("({cutoff}"))
                .query::<Value>(c)
                .map(drop)
        })
    }

    /// Whether batch `seq` was applied by an earlier attempt whose reply was lost.
    pub fn landed(&mut self, marker: &str, seq: &str) -> Result<bool, Fault> {
        let key = self.key.as_str();
        self.link.attempt(|c| {
            let current: Option<String> = redis::cmd("GET").arg(marker).query(c)?;
            let landed = current.as_deref() == Some(seq);
            if landed {
                // Landed, but only acknowledged once a replica has it too.
                conn::replicate(c, key)?;
            }
            Ok(landed)
        })
    }

    /// Deletes a writer's marker key at the end of its run.
    pub fn forget(&mut self, marker: &str) -> Result<(), Error> {
        self.call("delete the writer's marker", |c| {
            redis::cmd("DEL").arg(marker).query(c)
        })
    }

    /// Blocks up to the block timeout for one item, then takes up to `max - 1`
    /// more (and at most about `max_bytes`) without blocking. Returns items
    /// oldest first (FIFO). Runs once: a lost reply loses what Redis popped
    /// (BRPOP mode is at-most-once; see the README's Guarantees).
    pub fn pop(&mut self, max: usize, max_bytes: usize) -> Result<Vec<Vec<u8>>, Fault> {
        let (key, block) = (self.key.as_str(), self.block.as_secs_f64());
        let first: Option<(Vec<u8>, Vec<u8>)> = self
            .link
            .attempt(|c| redis::cmd("BRPOP").arg(key).arg(block).query(c))?;
        let Some((_, first)) = first else {
            return Ok(Vec::new());
        };
        let budget = max_bytes.saturating_sub(first.len());
        let mut items = vec![first];
        if max > 1 && budget > 0 {
            let rest = self.link.attempt(|c| {
                redis::cmd("EVAL")
                    .arg(POP_MORE)
                    .arg(1)
                    .arg(key)
                    .arg(max - 1)
                    .arg(budget)
                    .query::<Vec<Vec<u8>>>(c)
            });
            match rest {
                Ok(rest) => items.extend(rest),
                // The BRPOP item is already out of Redis: deliver it now; the
                // broken connection shows up on the next call.
                Err(Fault::Lost(e)) => crate::run::log::warn(&format!(
                    "a pop from {key} lost its reply ({e}): up to {} items Redis popped for it are lost (use --reliable for at-least-once)",
                    max - 1
                )),
                Err(_) => {}
            }
        }
        Ok(items)
    }

    /// The list's length.
    pub fn len(&mut self) -> Result<u64, Error> {
        let key = self.key.clone();
        self.call("read the queue length", |c| {
            redis::cmd("LLEN").arg(&key).query(c)
        })
    }

    /// Puts popped items back at the consuming end of `key`, so they are
    /// popped next, in order. Retried through outages: a lost reply can
    /// put them back twice (a duplicate, never a loss).
    pub fn give_back(&mut self, key: &str, items: &[Vec<u8>]) -> Result<(), Error> {
        if items.is_empty() {
            return Ok(());
        }
        let reversed: Vec<&[u8]> = items.iter().rev().map(Vec::as_slice).collect();
        self.call("put popped items back", |c| {
            redis::cmd("RPUSH")
                .arg(key)
                .arg(&reversed)
                .query::<Value>(c)
                .map(drop)
        })
    }
}
