//! The reliable-queue pattern (`consume --reliable`): every batch is moved
//! into its own processing list, acknowledged by deleting that list once the
//! sink has committed it, and re-queued if its consumer dies.
//!
//! Keys, for list `K` (all share `K`'s hash tag, so one cluster slot):
//! - `K:processing:<consumer>:<thread>:<seq>`: one batch, moved out of `K`,
//!   not yet durable in the sink. Newest at the head.
//! - `K:batches:<consumer>`: the consumer's open batch lists. A name is added
//!   before anything is moved into it, so a crash never hides a batch.
//! - `K:consumer:<consumer>`: heartbeat with a TTL; missing means dead.
//! - `K:consumers`: the consumers that may hold batches (a registry rather
//!   than SCAN, which would see only one Redis Cluster node).
//!
//! Why one list per batch: acknowledging "the oldest n items" of a shared
//! processing list deletes the wrong items when a reply was lost and the list
//! holds moved-but-undelivered items. Deleting a batch's own list is exact and
//! safe to repeat; a batch whose take failed half-way is put back whole.
//! `<consumer>` is `host:pid:nonce`, unique per process start, so a restarted
//! container (same host name, pid 1) never adopts a crashed run's batches.

use crate::error::Error;
use crate::queue::batch::{Ack, Batch, Taken};
use crate::queue::keys;
use crate::queue::lease::{requeue_cmd, Lease};
use crate::queue::link::{Fault, Link, FENCE};
use crate::queue::Queue;
use redis::Value;
use std::time::{Duration, Instant};

/// Registers batch KEYS[2] in set KEYS[3] (again: a `recover` racing a live
/// consumer may have dropped it), then moves up to ARGV[1] more items from
/// the tail of KEYS[1] to the head of KEYS[2], stopping once ARGV[2] bytes
/// were moved.
const MOVE_MORE: &str = r"
redis.call('SADD', KEYS[3], KEYS[2])
local out, bytes = {}, 0
local budget = tonumber(ARGV[2])
for i = 1, tonumber(ARGV[1]) do
  if bytes >= budget then break end
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[#out + 1] = v
  bytes = bytes + #v
end
return out";

/// KEYS[1]: a consumer's batch set; KEYS[2..]: committed batches. Deletes
/// them and their registrations. Safe to repeat.
const ACK: &str = r"
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], KEYS[i])
end
return #KEYS - 1";

/// One popper thread's reliable source on one list.
pub struct Reliable {
    q: Queue,
    /// The consumer's batch set on this list.
    batches: String,
    /// Batch list names start with this; a sequence number follows.
    prefix: String,
    seq: u64,
    /// A batch whose take failed half-way, to put back before the next take.
    pending: Option<String>,
}

impl Reliable {
    /// The source of thread `thread` of `consumer`, on `q`'s list.
    pub fn new(q: Queue, lease: &Lease, thread: usize) -> Reliable {
        let list = q.key.clone();
        Reliable {
            batches: keys::batches(&list, &lease.id),
            prefix: keys::batch_prefix(&list, &lease.id, thread),
            q,
            seq: 0,
            pending: None,
        }
    }

    /// The connection, for dead letters.
    pub fn queue(&mut self) -> &mut Queue {
        &mut self.q
    }

    /// Blocks up to the block time for one item, moving it into a fresh batch
    /// list, then moves up to `max - 1` more (about `max_bytes` at most).
    /// Oldest first. If any reply is lost, the batch goes back to the queue
    /// whole and the next take uses a new list, so nothing half-delivered
    /// stays behind.
    /// `Taken::RetryAt` means a fault is being waited out: try again then
    /// (meanwhile the thread can serve its other shards).
    pub fn take(&mut self, max: usize, max_bytes: usize) -> Result<Taken, Error> {
        let key = self.q.key.clone();
        let Some(block) = self.q.block_for() else {
            return Ok(Taken::Batch(Batch::empty(&key)));
        };
        let what = format!("take items from {key}");
        if let Some(at) = self.put_back_pending(&what)? {
            return Ok(Taken::RetryAt(at));
        }
        let name = format!("{}{}", self.prefix, self.seq);
        let first = match self.move_first(&name, block) {
            Ok(None) => {
                self.q.link().settled();
                return Ok(Taken::Batch(Batch::empty(&key)));
            }
            Ok(Some(v)) => v,
            Err(fault) => {
                // Only a lost reply can have moved something; a refusal
                // (OOM, say) or no connection at all did not run.
                if matches!(fault, Fault::Lost(_)) {
                    self.abandon_name(name);
                }
                return self.q.link().defer(fault, &what).map(Taken::RetryAt);
            }
        };
        let budget = max_bytes.saturating_sub(first.len());
        let mut items = vec![first];
        match self.move_more(&name, max, budget) {
            Ok(more) => items.extend(more),
            Err(fault) => {
                // The first item is in the batch list either way: the whole
                // list goes back, and nothing of it is delivered.
                self.abandon_name(name);
                return self.q.link().defer(fault, &what).map(Taken::RetryAt);
            }
        }
        self.seq += 1;
        self.q.link().settled();
        Ok(Taken::Batch(Batch {
            items,
            key,
            ack: Some(Ack {
                set: self.batches.clone(),
                list: name,
            }),
        }))
    }

    /// Registers batch list `name`, then blocks up to `block` to move the
    /// oldest item into it. Registered first so that nothing can be moved
    /// into a list that recovery would not find.
    fn move_first(&mut self, name: &str, block: Duration) -> Result<Option<Vec<u8>>, Fault> {
        let mut blmove = redis::cmd("BLMOVE");
        blmove
            .arg(&self.q.key)
            .arg(name)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block.as_secs_f64());
        // Two round trips, not a pipeline: the client would wait out the
        // socket timeout once per reply of a pipeline when Redis hangs.
        self.register(name)?;
        self.q
            .link()
            .attempt(|c| blmove.query::<Option<Vec<u8>>>(c))
    }

    /// Moves up to `max - 1` more items (about `budget` bytes) into batch
    /// list `name`, registering it again on the way (a `recover` racing a
    /// live consumer may have dropped it).
    fn move_more(&mut self, name: &str, max: usize, budget: usize) -> Result<Vec<Vec<u8>>, Fault> {
        if max == 1 || budget == 0 {
            // No move script to re-register the batch (see MOVE_MORE).
            return self.register(name).map(|()| Vec::new());
        }
        let (key, batches) = (self.q.key.clone(), self.batches.clone());
        self.q.link().fenced(|| {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(format!("{FENCE}{MOVE_MORE}"))
                .arg(3)
                .arg(&key)
                .arg(name)
                .arg(&batches)
                .arg(max - 1)
                .arg(budget);
            cmd
        })
    }

    /// Adds batch list `name` to the consumer's batch set (`SADD`).
    fn register(&mut self, name: &str) -> Result<(), Fault> {
        let mut register = redis::cmd("SADD");
        register.arg(&self.batches).arg(name);
        self.q.link().attempt(|c| register.query::<()>(c))
    }

    /// Marks a batch whose take failed half-way to be put back before the
    /// next take. Its name is never used again, and stays registered (a late
    /// write could still land in it; release and recovery will find it).
    fn abandon_name(&mut self, name: String) {
        self.seq += 1;
        self.pending = Some(name);
    }

    /// Puts back the batch of a failed take, if there is one. `Some(at)`:
    /// Redis is still unavailable, try again then.
    fn put_back_pending(&mut self, what: &str) -> Result<Option<Instant>, Error> {
        let Some(name) = self.pending.clone() else {
            return Ok(None);
        };
        let (key, set) = (self.q.key.clone(), self.batches.clone());
        match self
            .q
            .link()
            .attempt(|c| requeue_cmd(&name, &key, &set, false).query::<u64>(c))
        {
            Ok(n) => {
                self.pending = None;
                if n > 0 {
                    crate::run::log::info(&format!(
                        "put {n} items back on {key} after a lost reply (they will be taken again)"
                    ));
                }
                Ok(None)
            }
            Err(fault) => self.q.link().defer(fault, what).map(Some),
        }
    }
}

/// Acknowledges committed batches of one consumer set: deletes their lists.
pub fn ack(link: &mut Link, set: &str, lists: &[&str]) -> Result<(), Error> {
    if lists.is_empty() {
        return Ok(());
    }
    link.call("acknowledge written items", |c| {
        redis::cmd("EVAL")
            .arg(ACK)
            .arg(lists.len() + 1)
            .arg(set)
            .arg(lists)
            .query::<Value>(c)
            .map(drop)
    })
}
