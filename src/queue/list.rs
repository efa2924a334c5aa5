//! The Redis list: connecting with safe timeouts, pushing batches, popping batches.
//!
//! Every call here is a plain blocking function on one `Link`; the thread
//! that owns a `Queue` owns its socket. Calls that are not safe to repeat
//! (pushes, pops) run once and return a `Fault`, so the caller decides what a
//! lost reply means; the rest retry through outages inside the `Link`.

use crate::error::Error;
use crate::queue::conn::{Conn, Endpoint};
use crate::queue::dedup::Filter;
use crate::queue::link::{Fault, Link, FENCE};
use redis::Value;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Slack between a blocking command's own timeout and the socket read timeout.
/// PITFALLS.md: if the socket gave up first, the server could hand an item to
/// an abandoned BRPOP and the item would be lost.
const READ_SLACK: Duration = Duration::from_secs(3);

/// The checks every push script makes before it writes anything (after
/// `FENCE`). KEYS: list, marker. ARGV[1]: the batch number.
/// - The user may run every write the push makes (Redis 7's ACL check), so
///   a refusal applies nothing. (Without it, an older server stops at the
///   first refused call, which is the first LPUSH, before any write.)
/// - The marker holds the number of this writer's last applied batch. A
///   copy of this batch that comes after it, or after a later batch (a late
///   copy out of a healed partition, a retry after a lost reply), does
///   nothing and returns -1. Batches are pushed in order, so that is exact.
const CHECKS: &str = r"
if redis.acl_check_cmd then
  if not redis.acl_check_cmd('LPUSH', KEYS[1], 'x') then
    return redis.error_reply('NOPERM this user may not LPUSH to ' .. KEYS[1])
  end
  if not redis.acl_check_cmd('SET', KEYS[2], 'x', 'EX', '3600') then
    return redis.error_reply('NOPERM this user may not SET the writer marker ' .. KEYS[2])
  end
  if not redis.acl_check_cmd('GET', KEYS[2]) then
    return redis.error_reply('NOPERM this user may not GET the writer marker ' .. KEYS[2] .. ' (grant +get: a retry reads it to push a batch once)')
  end
end
if (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) >= tonumber(ARGV[1]) then
  return -1
end
";

/// LPUSH a batch and record the batch number in the marker, atomically
/// (after `FENCE` and `CHECKS`). KEYS: list, marker. ARGV: seq, then the
/// values. Returns how many were pushed, or -1 if the batch had landed.
const PUSH: &str = r"
for i = 2, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', 3600)
return #ARGV - 1";

/// LPUSH only items whose fingerprint is new to the seen filter, atomically
/// (after the filter's prelude, `dedup::Filter::script`, `FENCE` and
/// `CHECKS`). KEYS: list, marker, then the filter's. ARGV: seq, the
/// filter's two arguments, then fingerprint/value pairs (a fingerprint
/// takes `width`). Returns how many were new, or -1 if the batch had landed.
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
/// Fenced: a late copy would pop items for a reply nobody reads.
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
    /// A failure of the last pop's second command, reported by the next pop
    /// (the first command's item was delivered).
    deferred: Option<Fault>,
    /// The command of the last pop that failed.
    command: &'static str,
    /// The largest item popped lately (halved each pop), which sizes how
    /// many items a pop asks for (see `pop_more`).
    recent_size: usize,
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
            deferred: None,
            command: "BRPOP",
            recent_size: 0,
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

    /// How long the next blocking pop may wait in Redis: the block time, but
    /// under a run lock never past its fence (an item handed over after it
    /// could be another run's). `None`: the fence has passed, do not pop.
    pub fn block_for(&self) -> Option<Duration> {
        match crate::run::fence::left() {
            None => Some(self.block),
            Some(left) if left < Duration::from_millis(20) => None,
            Some(left) => Some(self.block.min(left - Duration::from_millis(10))),
        }
    }

    /// Pushes `values` (oldest first) and sets `marker` to `seq` in one
    /// fenced script, unless the marker says batch `seq` (or a later one)
    /// already landed. Returns how many were pushed: all of them, only the
    /// ones new to the seen key (`--seen-key`), or `None` if the batch had
    /// landed before (a lost reply, a late copy). Runs once: a lost reply
    /// is for the caller to resolve by running it again.
    pub fn push(
        &mut self,
        values: &[&[u8]],
        fingerprints: &[[u8; 16]],
        marker: &str,
        seq: &str,
    ) -> Result<Option<u64>, Fault> {
        if values.is_empty() {
            return Ok(Some(0));
        }
        let key = self.key.as_str();
        let seen = self.seen.as_ref();
        let n: i64 = self.link.fenced(|| {
            let mut cmd = redis::cmd("EVAL");
            match seen {
                None => {
                    cmd.arg(format!("{FENCE}{CHECKS}{PUSH}"))
                        .arg(2)
                        .arg(key)
                        .arg(marker)
                        .arg(seq)
                        .arg(values);
                }
                Some(seen) => {
                    let keys = seen.keys();
                    cmd.arg(seen.script(&format!("{FENCE}{CHECKS}{PUSH_UNSEEN}")))
                        .arg(2 + keys.len())
                        .arg(key)
                        .arg(marker)
                        .arg(&keys)
                        .arg(seq)
                        .arg(&seen.args()[..]);
                    for (fp, v) in fingerprints.iter().zip(values) {
                        seen.push_fingerprint(&mut cmd, fp);
                        cmd.arg(*v);
                    }
                }
            }
            cmd
        })?;
        // Acknowledged only once a replica has it too (a cluster or a
        // Sentinel master with replicas).
        self.link.replicate(key)?;
        Ok(u64::try_from(n).ok())
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

    /// Deletes a writer's marker key at the end of its run.
    pub fn forget(&mut self, marker: &str) -> Result<(), Error> {
        self.call("delete the writer's marker", |c| {
            redis::cmd("DEL").arg(marker).query(c)
        })
    }

    /// Blocks up to the block timeout for one item, then takes up to `max - 1`
    /// more (about `max_bytes` in all, see `pop_more`) without blocking.
    /// Returns items oldest first (FIFO). Runs once: a lost reply loses what
    /// Redis popped (BRPOP mode is at-most-once; see docs/guarantees.md).
    pub fn pop(&mut self, max: usize, max_bytes: usize) -> Result<Vec<Vec<u8>>, Fault> {
        if let Some(fault) = self.deferred.take() {
            return Err(fault);
        }
        let key = self.key.as_str();
        let Some(block) = self.block_for() else {
            return Ok(Vec::new());
        };
        self.command = "BRPOP";
        let first: Option<(Vec<u8>, Vec<u8>)> = self.link.attempt(|c| {
            redis::cmd("BRPOP")
                .arg(key)
                .arg(block.as_secs_f64())
                .query(c)
        })?;
        let Some((_, first)) = first else {
            return Ok(Vec::new());
        };
        let mut items = vec![first];
        // The BRPOP item is already out of Redis: it is delivered now
        // whatever happens to the rest, and so is every earlier round's.
        if let Err((fault, asked)) = self.pop_more(&mut items, max, max_bytes) {
            self.settle_more(fault, asked);
        }
        Ok(items)
    }

    /// Takes more items after a BRPOP, until `items` holds `max` or about
    /// `max_bytes`, or the list is empty. Holding the run lock, one fenced
    /// script that stops once `max_bytes` were taken (the item that crosses
    /// is kept). Otherwise plain `RPOP key count` (Redis runs no Lua, which
    /// costs it 3x the CPU per item): each round asks for as many items as
    /// fit in the bytes left at the size of the largest item seen lately, so
    /// a batch passes `max_bytes` only when it meets items larger than
    /// those, and then by at most one round. On failure, how many the
    /// failed command asked for.
    fn pop_more(
        &mut self,
        items: &mut Vec<Vec<u8>>,
        max: usize,
        max_bytes: usize,
    ) -> Result<(), (Fault, usize)> {
        let mut bytes: usize = items.iter().map(Vec::len).sum();
        let mut size = items
            .iter()
            .map(Vec::len)
            .fold(self.recent_size, usize::max);
        let key = self.key.clone();
        let fenced = crate::run::fence::left().is_some();
        while items.len() < max && bytes < max_bytes {
            let want = (max - items.len()).min((max_bytes - bytes) / size.max(1));
            if want == 0 && !fenced {
                break;
            }
            let got: Vec<Vec<u8>> = if fenced {
                self.command = "EVAL of RPOP, which takes the rest of a batch";
                let budget = max_bytes - bytes;
                let left = max - items.len();
                self.link
                    .fenced(|| {
                        let mut cmd = redis::cmd("EVAL");
                        cmd.arg(format!("{FENCE}{POP_MORE}"))
                            .arg(1)
                            .arg(&key)
                            .arg(left)
                            .arg(budget);
                        cmd
                    })
                    .map_err(|f| (f, left))?
            } else {
                self.command = "RPOP with a count, which takes the rest of a batch";
                let got: Option<Vec<Vec<u8>>> = self
                    .link
                    .attempt(|c| redis::cmd("RPOP").arg(&key).arg(want).query(c))
                    .map_err(|f| (f, want))?;
                got.unwrap_or_default()
            };
            let n = got.len();
            for item in got {
                bytes += item.len();
                size = size.max(item.len());
                items.push(item);
            }
            if fenced || n < want {
                break;
            }
        }
        self.recent_size = (self.recent_size / 2).max(size);
        Ok(())
    }

    /// What a failed `pop_more` means for the batch, which is delivered
    /// either way: a lost reply lost what Redis popped for it (warned); a
    /// refusal for now popped nothing; a permanent fault is reported by the
    /// next pop.
    fn settle_more(&mut self, fault: Fault, asked: usize) {
        let key = &self.key;
        match fault {
            Fault::Lost(e) => crate::run::log::warn(&format!(
                "a pop from {key} lost its reply ({e}): up to {asked} items Redis popped for it are lost (use --reliable for at-least-once)"
            )),
            // Refused for now (BUSY, OOM, ...): nothing was popped; the
            // next pop tries again.
            Fault::Refused(e) => {
                crate::run::counters::REDIS
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::run::log::debug(&format!(
                    "popping more from {key} was refused for now ({e}); trying again"
                ));
            }
            // Will not pass (an ACL that denies EVAL or RPOP): reported by
            // the next pop, so the items already popped are delivered first.
            fault => self.deferred = Some(fault),
        }
    }

    /// The command the last failed `pop` ran, for its error message.
    pub fn failed_command(&self) -> &'static str {
        self.command
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
