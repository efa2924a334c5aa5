//! The crawl-job list in Redis (`produce --jobs`, `enqueue`, `status --jobs`).
//!
//! Jobs are leased with the reliable-queue machinery, unchanged: a worker is
//! a `Consumer` (heartbeat `J:consumer:<worker>`, registry `J:consumers`),
//! and `Reliable::take(1, ..)` moves one job into its own processing list
//! `J:processing:<worker>:0:<seq>`, registered in `J:batches:<worker>`. A
//! dead worker's jobs go back with `consumers::recover`, a stopped one's
//! with `Consumer::release`. On top of that, this file adds:
//! - `J:done`: a counter of acknowledged jobs;
//! - `J:dead`: jobs that are not jobs (bad URL, bad JSON), set aside as dead
//!   letters in the consume side's format.
//!
//! Acknowledging deletes the job's list and counts it in one script, which
//! counts only if it deleted the list, so retrying it after a lost reply
//! never counts a job twice.

use crate::error::Error;
use crate::queue::batch::Ack;
use crate::queue::conn::run_all;
use crate::queue::consumers;
use crate::queue::link::Link;

/// The job list `enqueue`, `produce --jobs` and `status --jobs` use unless told.
pub const DEFAULT_KEY: &str = "qpipe:jobs";

/// KEYS: the worker's batch set, the job's list, the done counter, the
/// job's ack marker. Deletes the list and, only if that removed it, counts
/// the job and leaves a marker, so a retry after a lost reply still learns
/// that the job was acknowledged (1) rather than taken back by a recovery
/// while it ran (0).
const ACK_DONE: &str = r"
if redis.call('DEL', KEYS[2]) == 1 then
  redis.call('INCR', KEYS[3])
  redis.call('SET', KEYS[4], '1', 'EX', 3600)
end
redis.call('SREM', KEYS[1], KEYS[2])
return redis.call('EXISTS', KEYS[4])";

/// KEYS: the worker's batch set, the job's list, the dead-letter list.
/// ARGV[1]: the dead letter. Pushes it only if the list was still there.
const SET_ASIDE: &str = r"
if redis.call('DEL', KEYS[2]) == 1 then redis.call('LPUSH', KEYS[3], ARGV[1]) end
redis.call('SREM', KEYS[1], KEYS[2])
return 1";

/// The counter of acknowledged jobs.
pub fn done_key(jobs: &str) -> String {
    format!("{jobs}:done")
}

/// Where jobs that cannot be read go.
pub fn dead_key(jobs: &str) -> String {
    format!("{jobs}:dead")
}

/// Acknowledges a job whose items are all in Redis: deletes its list and
/// counts it in `J:done`, exactly once however often it is retried. Returns
/// false when the job was no longer this worker's (a recovery took it back
/// while this worker's heartbeat had lapsed): another worker crawls it.
pub fn ack_done(link: &mut Link, jobs: &str, ack: &Ack) -> Result<bool, Error> {
    let marker = format!("{}:acked", ack.list);
    let done = done_key(jobs);
    let acked = link.call("acknowledge a job", |c| {
        redis::cmd("EVAL")
            .arg(ACK_DONE)
            .arg(4)
            .arg(&ack.set)
            .arg(&ack.list)
            .arg(&done)
            .arg(&marker)
            .query::<u64>(c)
    })?;
    // The marker only matters while the ack could be retried.
    let _ = link.attempt(|c| redis::cmd("DEL").arg(&marker).query::<()>(c));
    Ok(acked == 1)
}

/// Moves a job that cannot be read out of the worker's hands into `J:dead`,
/// with the reason, in one step (safe to repeat).
pub fn set_aside(
    link: &mut Link,
    jobs: &str,
    ack: &Ack,
    worker: &str,
    job: &[u8],
    why: &str,
) -> Result<(), Error> {
    let letter = crate::consume::poison::letter(why, worker, job);
    link.call("set an invalid job aside", |c| {
        redis::cmd("EVAL")
            .arg(SET_ASIDE)
            .arg(3)
            .arg(&ack.set)
            .arg(&ack.list)
            .arg(dead_key(jobs))
            .arg(&letter)
            .query::<()>(c)
    })
}

/// Where the jobs of one list stand.
#[derive(Debug, Default)]
pub struct JobCounts {
    /// Waiting in the list.
    pub pending: u64,
    /// Held by workers whose heartbeat is alive.
    pub leased: u64,
    /// Held by workers whose heartbeat expired (recovery puts them back).
    pub orphaned: u64,
    /// Acknowledged, ever (`J:done`).
    pub done: u64,
    /// Set aside as unreadable (`J:dead`).
    pub dead: u64,
    /// Workers whose heartbeat is alive.
    pub workers: u64,
}

/// Reads where the jobs of `jobs` stand.
pub fn counts(link: &mut Link, jobs: &str) -> Result<JobCounts, Error> {
    let mut llen = redis::cmd("LLEN");
    llen.arg(jobs);
    let mut get = redis::cmd("GET");
    get.arg(done_key(jobs));
    let mut dead = redis::cmd("LLEN");
    dead.arg(dead_key(jobs));
    let replies = link.call("count the jobs", |c| {
        run_all(c, &[llen.clone(), get.clone(), dead.clone()])
    })?;
    let n: Vec<u64> = replies
        .into_iter()
        .map(|v| {
            redis::from_redis_value::<Option<u64>>(v)
                .ok()
                .flatten()
                .unwrap_or(0)
        })
        .collect();
    let mut out = JobCounts {
        pending: n.first().copied().unwrap_or(0),
        done: n.get(1).copied().unwrap_or(0),
        dead: n.get(2).copied().unwrap_or(0),
        ..JobCounts::default()
    };
    for p in consumers::processing_lists(link, jobs)? {
        match p.alive {
            true => {
                out.leased += p.len;
                out.workers += 1;
            }
            false => out.orphaned += p.len,
        }
    }
    Ok(out)
}
