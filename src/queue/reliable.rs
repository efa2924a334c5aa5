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
use crate::queue::batch::{Ack, Batch};
use crate::queue::conn::run_all;
use crate::queue::link::{Fault, Link};
use crate::queue::Queue;
use redis::Value;

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

/// Moves every item of KEYS[1] (a batch) back to the tail of KEYS[2], newest
/// first, so the oldest is popped first again; with ARGV[1] = 1, also drops
/// the batch from its consumer's set KEYS[3] in the same step, so a name is
/// never forgotten while it holds items. Safe to repeat.
const REQUEUE: &str = r"
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
if ARGV[1] == '1' then redis.call('SREM', KEYS[3], KEYS[1]) end
return n";

/// KEYS[1]: a consumer's batch set; KEYS[2..]: committed batches. Deletes
/// them and their registrations. Safe to repeat.
const ACK: &str = r"
for i = 2, #KEYS do
  redis.call('DEL', KEYS[i])
  redis.call('SREM', KEYS[1], KEYS[i])
end
return #KEYS - 1";

/// This process's identity as a reliable consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `host:pid:nonce`.
    pub id: String,
}

impl Consumer {
    /// A fresh identity: host, pid, and a random nonce.
    pub fn new() -> Consumer {
        Consumer {
            id: format!(
                "{}:{}:{:08x}",
                hostname(),
                std::process::id(),
                fastrand::u32(..)
            ),
        }
    }

    /// Renews the heartbeat on every list for `ttl` seconds and registers
    /// the consumer. Safe to repeat, so it retries through outages.
    pub fn beat(&self, link: &mut Link, lists: &[String], ttl: u64) -> Result<(), Error> {
        let mut cmds = Vec::with_capacity(lists.len() * 2);
        for list in lists {
            let mut set = redis::cmd("SET");
            set.arg(heartbeat_key(list, &self.id))
                .arg(crate::run::log::now_rfc3339())
                .arg("EX")
                .arg(ttl);
            let mut add = redis::cmd("SADD");
            add.arg(format!("{list}:consumers")).arg(&self.id);
            cmds.extend([set, add]);
        }
        link.call("renew the consumer heartbeat", |c| {
            run_all(c, &cmds).map(drop)
        })
    }

    /// At a clean exit: re-queues every batch this consumer still holds (not
    /// durable, or not acknowledged), then drops its heartbeat and
    /// registration, list by list: a list whose node is down keeps its
    /// batches for `recover`, and the others are still released. Returns how
    /// many items went back, and the first failure.
    pub fn release(&self, link: &mut Link, lists: &[String]) -> (u64, Option<Error>) {
        let (mut returned, mut failure) = (0, None);
        for list in lists {
            let mut del = redis::cmd("DEL");
            del.arg(heartbeat_key(list, &self.id));
            let mut rem = redis::cmd("SREM");
            rem.arg(format!("{list}:consumers")).arg(&self.id);
            let one = requeue_consumer(link, list, &self.id).and_then(|n| {
                link.call("drop the consumer heartbeat", |c| {
                    run_all(c, &[del.clone(), rem.clone()]).map(drop)
                })
                .map(|()| n)
            });
            match one {
                Ok(n) => returned += n,
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        (returned, failure)
    }
}

fn heartbeat_key(list: &str, consumer: &str) -> String {
    format!("{list}:consumer:{consumer}")
}

fn batches_key(list: &str, consumer: &str) -> String {
    format!("{list}:batches:{consumer}")
}

/// One popper thread's reliable source on one list.
pub struct Reliable {
    q: Queue,
    /// The consumer's batch set on this list.
    batches: String,
    /// Batch list names start with this; a sequence number follows.
    prefix: String,
    seq: u64,
}

impl Reliable {
    /// The source of thread `thread` of `consumer`, on `q`'s list.
    pub fn new(q: Queue, consumer: &Consumer, thread: usize) -> Reliable {
        let list = q.key.clone();
        Reliable {
            batches: batches_key(&list, &consumer.id),
            prefix: format!("{list}:processing:{}:{thread}:", consumer.id),
            q,
            seq: 0,
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
    /// `None` means a fault was waited out.
    pub fn take(&mut self, max: usize, max_bytes: usize) -> Result<Option<Batch>, Error> {
        let name = format!("{}{}", self.prefix, self.seq);
        let (key, block) = (self.q.key.clone(), self.q.block_secs());
        let what = format!("take items from {key}");
        let batches = self.batches.clone();
        // Registered before anything can be moved into it; in the same round
        // trip as the BLMOVE on one server.
        let mut register = redis::cmd("SADD");
        register.arg(&batches).arg(&name);
        let mut blmove = redis::cmd("BLMOVE");
        blmove
            .arg(&key)
            .arg(&name)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(block);
        let first = self.q.link().attempt(|c| {
            let mut replies = run_all(c, &[register.clone(), blmove.clone()])?;
            let moved = replies.pop().unwrap_or(Value::Nil);
            Ok(redis::from_redis_value::<Option<Vec<u8>>>(moved)?)
        });
        let first = match first {
            Ok(None) => {
                self.q.link().settled();
                return Ok(Some(Batch::empty(&key)));
            }
            Ok(Some(v)) => v,
            Err(fault) => {
                // Only a lost reply can have moved something; a refusal
                // (OOM, say) or no connection at all did not run.
                let lost = matches!(fault, Fault::Lost(_));
                self.q.link().recover(fault, &what)?;
                return match lost {
                    true => self.put_back(&name).map(|()| None),
                    false => Ok(None),
                };
            }
        };
        let budget = max_bytes.saturating_sub(first.len());
        let mut items = vec![first];
        if max == 1 || budget == 0 {
            // No move script to re-register the batch (see MOVE_MORE).
            let registered = self.q.link().attempt(|c| register.query::<()>(c));
            if let Err(fault) = registered {
                self.q.link().recover(fault, &what)?;
                return self.put_back(&name).map(|()| None);
            }
        } else {
            let more = self.q.link().attempt(|c| {
                redis::cmd("EVAL")
                    .arg(MOVE_MORE)
                    .arg(3)
                    .arg(&key)
                    .arg(&name)
                    .arg(&batches)
                    .arg(max - 1)
                    .arg(budget)
                    .query::<Vec<Vec<u8>>>(c)
            });
            match more {
                Ok(more) => items.extend(more),
                Err(fault) => {
                    // The first item is in the batch list either way.
                    self.q.link().recover(fault, &what)?;
                    return self.put_back(&name).map(|()| None);
                }
            }
        }
        self.seq += 1;
        self.q.link().settled();
        Ok(Some(Batch {
            items,
            key,
            ack: Some(Ack {
                set: self.batches.clone(),
                list: name,
            }),
        }))
    }

    /// Puts a batch whose take failed back on the queue. Its name stays
    /// registered (a late write could still land in it; release and recovery
    /// will find it) and is never used again.
    fn put_back(&mut self, name: &str) -> Result<(), Error> {
        self.seq += 1;
        let key = self.q.key.clone();
        let set = self.batches.clone();
        let n = self.q.call("put back a batch whose reply was lost", |c| {
            requeue_cmd(name, &key, &set, false).query::<u64>(c)
        })?;
        if n > 0 {
            crate::run::log::info(&format!(
                "put {n} items back on {key} after a lost reply (they will be taken again)"
            ));
        }
        Ok(())
    }
}

fn requeue_cmd(batch: &str, list: &str, set: &str, forget: bool) -> redis::Cmd {
    let mut c = redis::cmd("EVAL");
    c.arg(REQUEUE)
        .arg(3)
        .arg(batch)
        .arg(list)
        .arg(set)
        .arg(if forget { "1" } else { "0" });
    c
}

/// Puts one batch of a consumer back on `list` and forgets its name, in one
/// step. Returns the items moved.
pub fn requeue_batch(link: &mut Link, list: &str, set: &str, batch: &str) -> Result<u64, Error> {
    link.call("re-queue a batch", |c| {
        requeue_cmd(batch, list, set, true).query::<u64>(c)
    })
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

/// Re-queues every batch (and the pre-batch-list processing list) of one
/// consumer of `list`, forgetting each name only as its items go back (a
/// name registered meanwhile stays). Returns the items moved.
fn requeue_consumer(link: &mut Link, list: &str, consumer: &str) -> Result<u64, Error> {
    let set = batches_key(list, consumer);
    let mut names: Vec<String> = link.call("list a consumer's batches", |c| {
        redis::cmd("SMEMBERS").arg(&set).query(c)
    })?;
    // Newest first onto the tail, so the oldest batch is taken first again.
    names.sort_by_key(|n| std::cmp::Reverse(batch_order(n)));
    // Older qpipe versions kept one processing list per consumer.
    names.push(format!("{list}:processing:{consumer}"));
    let mut moved = 0;
    for name in &names {
        moved += requeue_batch(link, list, &set, name)?;
    }
    Ok(moved)
}

/// A batch name's age: its sequence number, then its thread.
fn batch_order(name: &str) -> (u64, u64) {
    let mut parts = name.rsplit(':');
    let seq = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let thread = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    (seq, thread)
}

/// A consumer's open batches and whether its heartbeat is alive.
#[derive(Debug)]
pub struct Processing {
    /// The consumer id.
    pub consumer: String,
    /// Items held in its batches.
    pub len: u64,
    /// Heartbeat present.
    pub alive: bool,
}

/// Lists every registered consumer of `key`: the items it holds and whether
/// its heartbeat is alive.
pub fn processing_lists(link: &mut Link, key: &str) -> Result<Vec<Processing>, Error> {
    let mut consumers: Vec<String> = link.call("list consumers", |c| {
        redis::cmd("SMEMBERS")
            .arg(format!("{key}:consumers"))
            .query(c)
    })?;
    consumers.sort();
    let mut out = Vec::with_capacity(consumers.len());
    for consumer in consumers {
        let mut names: Vec<String> = link.call("list a consumer's batches", |c| {
            redis::cmd("SMEMBERS")
                .arg(batches_key(key, &consumer))
                .query(c)
        })?;
        names.push(format!("{key}:processing:{consumer}"));
        let mut cmds: Vec<redis::Cmd> = names
            .iter()
            .map(|n| {
                let mut llen = redis::cmd("LLEN");
                llen.arg(n);
                llen
            })
            .collect();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(heartbeat_key(key, &consumer));
        cmds.push(exists);
        let replies = link.call("read a consumer's batches", |c| run_all(c, &cmds))?;
        let mut counts = replies
            .into_iter()
            .map(|v| redis::from_redis_value::<u64>(v).unwrap_or(0))
            .collect::<Vec<u64>>();
        let alive = counts.pop().unwrap_or(0) > 0;
        let len = counts.iter().sum();
        out.push(Processing {
            consumer,
            len,
            alive,
        });
    }
    Ok(out)
}

/// Moves the batches of dead consumers (heartbeat expired) back to the
/// consuming end of `key`. Live consumers, whoever they are, are left alone.
/// Returns how many items went back.
pub fn recover(link: &mut Link, key: &str) -> Result<u64, Error> {
    let mut moved = 0;
    for p in processing_lists(link, key)?
        .into_iter()
        .filter(|p| !p.alive)
    {
        moved += requeue_consumer(link, key, &p.consumer)?;
        link.call("unregister a dead consumer", |c| {
            redis::cmd("SREM")
                .arg(format!("{key}:consumers"))
                .arg(&p.consumer)
                .query::<()>(c)
        })?;
    }
    Ok(moved)
}

/// The host name, for consumer ids and lock tokens (`gethostname(2)`, so
/// it is right on every platform rather than falling back to a constant).
pub fn hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    match name.is_empty() {
        true => "unknown-host".into(),
        false => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_ids_are_unique_per_process_start() {
        let (a, b) = (Consumer::new(), Consumer::new());
        assert_ne!(a.id, b.id);
        assert!(a.id.contains(&format!(":{}:", std::process::id())));
        assert_eq!(a.id.rsplit(':').next().map(str::len), Some(8));
    }

    #[test]
    fn batches_are_ordered_by_sequence_then_thread() {
        let mut names = [
            "K:processing:h:1:n:1:10",
            "K:processing:h:1:n:0:2",
            "K:processing:h:1:n:1:9",
        ];
        names.sort_by_key(|n| batch_order(n));
        assert_eq!(
            names,
            [
                "K:processing:h:1:n:0:2",
                "K:processing:h:1:n:1:9",
                "K:processing:h:1:n:1:10"
            ]
        );
    }
}
