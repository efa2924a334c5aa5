//! Reliable consumers (`consume --reliable`): who they are, their
//! heartbeats, what each holds (for `status`), and putting back the batches
//! of a consumer that stopped (its own release at exit) or died (`recover`,
//! and every `consume --reliable` at start-up). Taking and acknowledging
//! batches is in `reliable`; the key scheme is described there.

use crate::error::Error;
use crate::queue::link::Link;

/// Moves every item of KEYS[1] (a batch) back to the tail of KEYS[2], newest
/// first, so the oldest is popped first again; with ARGV[1] = 1, also drops
/// the batch from its consumer's set KEYS[3] in the same step, so a name is
/// never forgotten while it holds items. Safe to repeat.
const REQUEUE: &str = r"
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
if ARGV[1] == '1' then redis.call('SREM', KEYS[3], KEYS[1]) end
return n";

/// How the batches of a stopped or dead consumer go back to their list.
pub trait Requeue {
    /// Puts `batch` (registered in the consumer's batch set `set`) back on
    /// `list`, dropping it from `set` once empty; safe to repeat. Returns
    /// the items it dealt with.
    fn requeue(&self, link: &mut Link, list: &str, set: &str, batch: &str) -> Result<u64, Error>;
}

/// Items go back to the consuming end, oldest taken first again
/// (`consume --reliable`, `qpipe recover`).
pub struct Items;

impl Requeue for Items {
    fn requeue(&self, link: &mut Link, list: &str, set: &str, batch: &str) -> Result<u64, Error> {
        requeue_batch(link, list, set, batch)
    }
}

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
        link.call_all("renew the consumer heartbeat", &cmds)
            .map(drop)
    }

    /// At a clean exit: re-queues every batch this consumer still holds (not
    /// durable, or not acknowledged), then drops its heartbeat and
    /// registration, list by list: a list whose node is down keeps its
    /// batches for `recover`, and the others are still released. Returns how
    /// many items went back, and the first failure.
    pub fn release(
        &self,
        link: &mut Link,
        lists: &[String],
        back: &dyn Requeue,
    ) -> (u64, Option<Error>) {
        let (mut returned, mut failure) = (0, None);
        for list in lists {
            let mut del = redis::cmd("DEL");
            del.arg(heartbeat_key(list, &self.id));
            let mut rem = redis::cmd("SREM");
            rem.arg(format!("{list}:consumers")).arg(&self.id);
            let one = requeue_consumer(link, list, &self.id, back).and_then(|n| {
                link.call_all("drop the consumer heartbeat", &[del.clone(), rem.clone()])
                    .map(|_| n)
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

pub(crate) fn batches_key(list: &str, consumer: &str) -> String {
    format!("{list}:batches:{consumer}")
}

pub(crate) fn requeue_cmd(batch: &str, list: &str, set: &str, forget: bool) -> redis::Cmd {
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

/// Re-queues every batch (and the pre-batch-list processing list) of one
/// consumer of `list`, forgetting each name only as its items go back (a
/// name registered meanwhile stays). Returns the items moved.
pub fn requeue_consumer(
    link: &mut Link,
    list: &str,
    consumer: &str,
    back: &dyn Requeue,
) -> Result<u64, Error> {
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
        moved += back.requeue(link, list, &set, name)?;
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
        let replies = link.call_all("read a consumer's batches", &cmds)?;
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

/// Moves the batches of dead consumers (heartbeat expired) back to `key`,
/// the way `back` says. Live consumers, whoever they are, are left alone.
/// Returns how many items went back.
pub fn recover(link: &mut Link, key: &str, back: &dyn Requeue) -> Result<u64, Error> {
    let mut moved = 0;
    for p in processing_lists(link, key)?
        .into_iter()
        .filter(|p| !p.alive)
    {
        moved += requeue_consumer(link, key, &p.consumer, back)?;
        link.call("unregister a dead consumer", |c| {
            redis::cmd("SREM")
                .arg(format!("{key}:consumers"))
                .arg(&p.consumer)
                .query::<()>(c)
        })?;
    }
    Ok(moved)
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
