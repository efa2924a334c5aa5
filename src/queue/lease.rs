//! The one lease mechanism, for `consume --reliable` and `produce --jobs`:
//! a holder (`Lease`) registers with a heartbeat, renews it from its own
//! thread, takes batches into lists of its own (`reliable`), and at exit
//! releases what it still holds; the batches of a holder whose heartbeat
//! lapsed are recovered (`recover`: by `qpipe recover`, at every holder's
//! start, and by job workers every TTL). What goes back, and how, is a
//! `Requeue`: items to the consuming end (`Items`), jobs with an attempt
//! count (`job_list::JobRequeue`). Key names are in `keys`.

use crate::error::Error;
use crate::queue::conn::{hostname, Endpoint};
use crate::queue::keys;
use crate::queue::link::Link;
use crate::run::log;
use crate::run::renewal::renew_every_third;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Socket timeout for a lease's links that never block in Redis (the
/// heartbeat, the release at exit), so a hung server cannot hold up a stop.
pub const QUICK: Duration = Duration::from_secs(1);

/// One process's lease on some lists (`consume --reliable` on its shards,
/// `produce --jobs` on its job list): its identity, registered with a
/// heartbeat. What it takes stays in its own batch lists until it is
/// acknowledged, released at exit, or recovered by any other holder or
/// `qpipe recover` once the heartbeat has lapsed.
#[derive(Debug, Clone)]
pub struct Lease {
    /// `host:pid:nonce`.
    pub id: String,
    /// The lists it takes from.
    pub lists: Vec<String>,
    /// Seconds the heartbeat lives without renewal.
    pub ttl: u64,
}

impl Lease {
    /// A fresh identity on `lists` (host, pid, and a random nonce); not
    /// registered until `start`.
    pub fn new(lists: &[String], ttl: u64) -> Lease {
        Lease {
            id: format!(
                "{}:{}:{:08x}",
                hostname(),
                std::process::id(),
                fastrand::u32(..)
            ),
            lists: lists.to_vec(),
            ttl,
        }
    }

    /// Puts back what dead holders held (the way `back` says), then
    /// registers this holder: before its first take, so a recovery never
    /// misses it. Returns what went back.
    pub fn start(&self, link: &mut Link, back: &dyn Requeue) -> Result<u64, Error> {
        let n = self.recover(link, back)?;
        self.beat(link)?;
        Ok(n)
    }

    /// Puts back the batches of every dead holder of these lists.
    pub fn recover(&self, link: &mut Link, back: &dyn Requeue) -> Result<u64, Error> {
        let mut n = 0;
        for list in &self.lists {
            n += recover(link, list, back)?;
        }
        Ok(n)
    }

    /// Renews the heartbeat on every list and registers the holder. Safe
    /// to repeat, so it retries through outages.
    pub fn beat(&self, link: &mut Link) -> Result<(), Error> {
        let mut cmds = Vec::with_capacity(self.lists.len() * 2);
        for list in &self.lists {
            let mut set = redis::cmd("SET");
            set.arg(keys::heartbeat(list, &self.id))
                .arg(crate::run::log::now_rfc3339())
                .arg("EX")
                .arg(self.ttl);
            let mut add = redis::cmd("SADD");
            add.arg(keys::holders(list)).arg(&self.id);
            cmds.extend([set, add]);
        }
        link.call_all("renew the consumer heartbeat", &cmds)
            .map(drop)
    }

    /// The heartbeat thread's body: renews every third of the TTL on its
    /// own `link` (from `heartbeat_link`) until `done`, so a holder stalled
    /// in its work never looks dead; and about once a TTL (with jitter, so
    /// a fleet does not check in step) puts back the batches of holders
    /// whose heartbeat expired, so a worker that died and was never
    /// restarted (or restarted under a new id) does not strand them. Two
    /// holders recovering at once move each batch once: a batch goes back
    /// in one script, and the second finds it empty. A failure to renew
    /// other than a stop goes to `lapsed` and ends the heartbeat: others
    /// may take this holder's batches now, so the caller must stop. A
    /// failed recovery only warns; the next one tries again.
    pub fn keep_alive(
        &self,
        link: &mut Link,
        done: &AtomicBool,
        orphans: &Orphans<'_>,
        lapsed: impl Fn(Error),
    ) {
        let ttl = Duration::from_secs(self.ttl);
        let mut next_check = Instant::now() + jittered(ttl);
        // When the heartbeat was last renewed: past a TTL since, it had
        // expired (a stall: SIGSTOP, a paused VM), and others may have put
        // this holder's batches back. Measured here, at no cost to Redis.
        let mut renewed = Instant::now();
        renew_every_third(ttl, done, || {
            let asked = Instant::now();
            match self.beat(link) {
                Ok(()) => {
                    if asked.duration_since(renewed) >= ttl {
                        log::warn(&format!(
                            "this worker's heartbeat had expired (stalled for longer than --heartbeat-ttl {}s?): other workers may have put its {} back, and whatever it still delivers of them is delivered twice",
                            self.ttl, orphans.what
                        ));
                    }
                    renewed = asked;
                }
                Err(Error::Stopped(_)) => return false,
                Err(e) => {
                    lapsed(e);
                    return false;
                }
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + jittered(ttl);
                match self.recover(link, orphans.back) {
                    Ok(0) => {}
                    Ok(n) => {
                        orphans.recovered.fetch_add(n, Ordering::Relaxed);
                        log::info(&format!(
                            "put back {n} {} held by holders whose heartbeat expired",
                            orphans.what
                        ));
                    }
                    Err(Error::Stopped(_)) => return false,
                    Err(e) => log::warn(&format!(
                        "could not check for dead holders' batches ({e}); trying again in a TTL"
                    )),
                }
            }
            true
        });
    }

    /// At exit: re-queues every batch this holder still holds (not
    /// durable, or not acknowledged), then drops its heartbeat and
    /// registration, list by list: a list whose node is down keeps its
    /// batches for `recover`, and the others are still released. Returns how
    /// many went back, and the first failure.
    pub fn release(&self, link: &mut Link, back: &dyn Requeue) -> (u64, Option<Error>) {
        let (mut returned, mut failure) = (0, None);
        for list in &self.lists {
            let mut del = redis::cmd("DEL");
            del.arg(keys::heartbeat(list, &self.id));
            let mut rem = redis::cmd("SREM");
            rem.arg(keys::holders(list)).arg(&self.id);
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

/// What a holder's heartbeat thread puts back of dead holders: how, and
/// where it counts what it did.
pub struct Orphans<'a> {
    /// How their batches go back.
    pub back: &'a (dyn Requeue + Sync),
    /// Adds what went back.
    pub recovered: &'a AtomicU64,
    /// What the batches hold, for the log line ("items", "jobs").
    pub what: &'a str,
}

/// One TTL plus up to half a TTL more, at random.
fn jittered(ttl: Duration) -> Duration {
    ttl + ttl.mul_f64(fastrand::f64() / 2.0)
}

/// The heartbeat thread's own link: it never blocks in Redis, so a short
/// socket timeout lets it notice a stop quickly even when Redis hangs.
pub fn heartbeat_link(
    ep: &Endpoint,
    retry_for: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Link, Error> {
    Link::open(ep, QUICK, retry_for, stop)
}

/// The link for putting things back at exit. The stop flag may be up (a
/// signal, a failure), so it has its own retry budget rather than
/// abandoning what was taken at the first blip: after a signal (`stopping`)
/// 2 s, to exit within a kill grace period; otherwise up to 10 s.
pub fn exit_link(ep: &Endpoint, retry_for: Duration, stopping: bool) -> Result<Link, Error> {
    let budget = match stopping {
        true => Duration::from_secs(2),
        false => retry_for.min(Duration::from_secs(10)),
    };
    Link::open(ep, QUICK, budget, None)
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

/// Re-queues every batch (and the pre-batch-list processing list) of one
/// consumer of `list`, forgetting each name only as its items go back (a
/// name registered meanwhile stays). Returns the items moved.
pub fn requeue_consumer(
    link: &mut Link,
    list: &str,
    consumer: &str,
    back: &dyn Requeue,
) -> Result<u64, Error> {
    let set = keys::batches(list, consumer);
    let mut names: Vec<String> = link.call("list a consumer's batches", |c| {
        redis::cmd("SMEMBERS").arg(&set).query(c)
    })?;
    // Newest first onto the tail, so the oldest batch is taken first again.
    names.sort_by_key(|n| std::cmp::Reverse(batch_order(n)));
    // Older qpipe versions kept one processing list per consumer.
    names.push(keys::legacy_processing(list, consumer));
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
        redis::cmd("SMEMBERS").arg(keys::holders(key)).query(c)
    })?;
    consumers.sort();
    let mut out = Vec::with_capacity(consumers.len());
    for consumer in consumers {
        let mut names: Vec<String> = link.call("list a consumer's batches", |c| {
            redis::cmd("SMEMBERS")
                .arg(keys::batches(key, &consumer))
                .query(c)
        })?;
        names.push(keys::legacy_processing(key, &consumer));
        let mut cmds: Vec<redis::Cmd> = names
            .iter()
            .map(|n| {
                let mut llen = redis::cmd("LLEN");
                llen.arg(n);
                llen
            })
            .collect();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(keys::heartbeat(key, &consumer));
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
                .arg(keys::holders(key))
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
        let (a, b) = (Lease::new(&[], 1), Lease::new(&[], 1));
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
