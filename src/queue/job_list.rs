//! The crawl-job list in Redis (`produce --jobs`, `enqueue`, `status --jobs`).
//!
//! Jobs are leased with the reliable-queue machinery, unchanged: a worker is
//! a `Consumer` (heartbeat `J:consumer:<worker>`, registry `J:consumers`),
//! and `Reliable::take(1, ..)` moves one job into its own processing list
//! `J:processing:<worker>:0:<seq>`, registered in `J:batches:<worker>`. A
//! dead worker's jobs go back with `lease::recover`, a stopped one's
//! with `Consumer::release`, both through `JobRequeue`. On top of that,
//! this file adds:
//! - `J:done`: a counter of acknowledged jobs;
//! - `J:dead`: jobs that are not jobs (bad URL, bad JSON, credentials) and
//!   jobs put back more than `--job-attempts` times, set aside as dead
//!   letters in the consume side's format;
//! - `J:attempts`: a hash of how often each job went back, keyed by the
//!   SHA-1 of its bytes (computed in the scripts); the ack drops the entry.
//!
//! A job goes back to the far end of the list (LPUSH, where `enqueue` adds
//! jobs), so one that never finishes cannot keep the others from running.
//!
//! Acknowledging deletes the job's list and counts it in one script, which
//! counts only if the list was there, so retrying it after a lost reply
//! never counts a job twice.

use crate::error::Error;
use crate::queue::batch::Ack;
use crate::queue::keys;
use crate::queue::lease;
use crate::queue::link::Link;
use std::time::Duration;

/// The job list `enqueue`, `produce --jobs` and `status --jobs` use unless told.
pub const DEFAULT_KEY: &str = "qpipe:jobs";

/// KEYS: the worker's batch set, the job's list, the done counter, the
/// job's ack marker, the attempts hash. Only if the list is there: counts
/// the job, forgets its attempts, deletes the list and leaves a marker, so
/// a retry after a lost reply still learns that the job was acknowledged
/// (1) rather than taken back by a recovery while it ran (0). The steps that
/// can fail (a key of the wrong type) come before the DEL: a script is not
/// rolled back, and an error must leave the job leased, not lost.
const ACK_DONE: &str = r"
local job = redis.call('LINDEX', KEYS[2], 0)
if job then
  local t = redis.call('TYPE', KEYS[5])['ok']
  if t ~= 'none' and t ~= 'hash' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[5] .. ' is not a hash')
  end
  redis.call('INCR', KEYS[3])
  redis.call('HDEL', KEYS[5], redis.sha1hex(job))
  redis.call('DEL', KEYS[2])
  redis.call('SET', KEYS[4], '1', 'EX', 3600)
end
redis.call('SREM', KEYS[1], KEYS[2])
return redis.call('EXISTS', KEYS[4])";

/// KEYS: a job's list (taken from its tail), the job list, the attempts
/// hash, the dead-letter list, the worker's batch set, the delayed set.
/// ARGV: the job as last read, the most attempts, its dead letter, the
/// first retry delay and the longest (ms), a nonce. Counts one more
/// attempt and puts the job back (1): after a delay that doubles with each
/// attempt (in Redis's clock, into the delayed set, member `nonce|job`), or
/// at once to the far end of the list when the first delay is 0; past the
/// most attempts, into the dead letters (2). -1 if the job is no longer the
/// one read (read again). Drops the emptied list from the set. Safe to
/// repeat: a retry finds the job gone from its list.
const JOB_BACK: &str = r"
local job = redis.call('LINDEX', KEYS[1], -1)
local out = 0
if job then
  if job ~= ARGV[1] then return -1 end
  local fp = redis.sha1hex(job)
  -- A script is not rolled back: the job is written where it goes first,
  -- and only then taken out of its list, so a refused write (an ACL, a key
  -- of the wrong type) leaves it held, never nowhere.
  local n = tonumber(redis.call('HGET', KEYS[3], fp) or '0') + 1
  local base = tonumber(ARGV[4])
  if n > tonumber(ARGV[2]) then
    redis.call('LPUSH', KEYS[4], ARGV[3])
    out = 2
  elseif base == 0 then
    redis.call('LPUSH', KEYS[2], job)
    out = 1
  else
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local delay = math.min(tonumber(ARGV[5]), base * 2 ^ (n - 1))
    redis.call('ZADD', KEYS[6], now + delay, ARGV[6] .. '|' .. job)
    out = 1
  end
  redis.call('RPOP', KEYS[1])
  if out == 2 then redis.call('HDEL', KEYS[3], fp)
  else redis.call('HINCRBY', KEYS[3], fp, 1) end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('SREM', KEYS[5], KEYS[1]) end
return out";

/// KEYS: the worker's batch set, the job's list, the dead-letter list.
/// ARGV[1]: the dead letter. Pushes it only if the list was still there.
const SET_ASIDE: &str = r"
if redis.call('DEL', KEYS[2]) == 1 then redis.call('LPUSH', KEYS[3], ARGV[1]) end
redis.call('SREM', KEYS[1], KEYS[2])
return 1";

/// KEYS: the delayed set, the scheduled set, the job list. ARGV[1]: the
/// most to move. Moves every job due by Redis's clock (members `nonce|job`)
/// to the far end of the list, each once: the ZREM and the LPUSH are one
/// step, so two workers moving at once, or a retry after a lost reply,
/// never move a job twice.
const MOVE_DUE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local moved = 0
for i = 1, 2 do
  local due = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
  for _, m in ipairs(due) do
    local bar = string.find(m, '|', 1, true)
    redis.call('LPUSH', KEYS[3], string.sub(m, bar + 1))
    redis.call('ZREM', KEYS[i], m)
    moved = moved + 1
  end
end
return moved";

/// KEYS: the scheduled set. ARGV: when (ms since the epoch, or 0 with a
/// delay), the delay (ms), the member (`nonce|job`). Schedules the job in
/// Redis's clock; the same member again changes nothing.
const SCHEDULE: &str = r"
local at = tonumber(ARGV[1])
if at == 0 then
  local t = redis.call('TIME')
  at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
end
redis.call('ZADD', KEYS[1], 'NX', at, ARGV[3])
return 1";

/// Jobs due at most per move, so one call stays short.
const MOVE_AT_MOST: u64 = 1000;

/// Moves the jobs of `jobs` whose delay or schedule is up to the list;
/// returns how many. Any worker may call it, at any time.
pub fn move_due(link: &mut Link, jobs: &str) -> Result<u64, Error> {
    link.call("move due jobs to the list", |c| {
        redis::cmd("EVAL")
            .arg(MOVE_DUE)
            .arg(3)
            .arg(keys::jobs_delayed(jobs))
            .arg(keys::jobs_scheduled(jobs))
            .arg(jobs)
            .arg(MOVE_AT_MOST)
            .query(c)
    })
}

/// When a scheduled job is due.
#[derive(Debug, Clone, Copy)]
pub enum When {
    /// This long after now, in Redis's clock.
    In(Duration),
    /// At this time (since the Unix epoch).
    At(Duration),
}

/// Schedules `job` for `when` in `jobs`'s scheduled set; `nonce` makes the
/// member unique per job and run, so a retry after a lost reply adds it
/// once and identical jobs stay two.
pub fn schedule(
    link: &mut Link,
    jobs: &str,
    job: &[u8],
    when: When,
    nonce: &str,
) -> Result<(), Error> {
    let (at, delay) = match when {
        When::In(d) => (0, d.as_millis() as u64),
        When::At(t) => (t.as_millis() as u64, 0),
    };
    let mut member = format!("{nonce}|").into_bytes();
    member.extend_from_slice(job);
    link.call("schedule a job", |c| {
        redis::cmd("EVAL")
            .arg(SCHEDULE)
            .arg(1)
            .arg(keys::jobs_scheduled(jobs))
            .arg(at)
            .arg(delay)
            .arg(&member)
            .query::<()>(c)
    })
}

/// The counter of acknowledged jobs.
pub fn done_key(jobs: &str) -> String {
    keys::jobs_done(jobs)
}

/// Where jobs that cannot be read, or never finish, go.
pub fn dead_key(jobs: &str) -> String {
    keys::dead(jobs)
}

/// How often each job went back, by the SHA-1 of its bytes.
pub fn attempts_key(jobs: &str) -> String {
    keys::job_attempts(jobs)
}

/// How a stopped or dead worker's jobs go back: counted, after a delay that
/// doubles with each attempt (or at once to the far end of the list), and
/// into `J:dead` once put back more than `attempts` times.
pub struct JobRequeue {
    /// The most times a job may go back.
    pub attempts: u64,
    /// Who puts it back (for the dead letter).
    pub worker: String,
    /// The delay before the first retry; 0 puts jobs back at once.
    pub backoff: Duration,
    /// The longest delay.
    pub backoff_max: Duration,
}

impl lease::Requeue for JobRequeue {
    fn requeue(&self, link: &mut Link, list: &str, set: &str, batch: &str) -> Result<u64, Error> {
        let why = format!(
            "put back more than {} times without finishing (--job-attempts)",
            self.attempts
        );
        let mut handled = 0;
        // A job's list holds one job; each round moves one, so this ends.
        loop {
            let job: Option<Vec<u8>> = link.call("read a job to put back", |c| {
                redis::cmd("LINDEX").arg(batch).arg(-1).query(c)
            })?;
            let job = job.unwrap_or_default();
            let letter = crate::queue::dead_letter::letter(&why, &self.worker, &job);
            let out = link.call("put a job back", |c| {
                redis::cmd("EVAL")
                    .arg(JOB_BACK)
                    .arg(6)
                    .arg(batch)
                    .arg(list)
                    .arg(attempts_key(list))
                    .arg(dead_key(list))
                    .arg(set)
                    .arg(keys::jobs_delayed(list))
                    .arg(&job)
                    .arg(self.attempts)
                    .arg(&letter)
                    .arg(self.backoff.as_millis() as u64)
                    .arg(self.backoff_max.as_millis() as u64)
                    .arg(format!("{:016x}", fastrand::u64(..)))
                    .query::<i64>(c)
            })?;
            match out {
                0 => return Ok(handled),
                1 => handled += 1,
                2 => {
                    handled += 1;
                    let text = String::from_utf8_lossy(&job[..job.len().min(200)]);
                    crate::run::log::warn(&format!(
                        "job {} was {why}; set aside in {}",
                        crate::queue::job::shown(&text),
                        dead_key(list)
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Acknowledges a job whose items are all in Redis: deletes its list and
/// counts it in `J:done`, exactly once however often it is retried. Returns
/// false when the job was no longer this worker's (a recovery took it back
/// while this worker's heartbeat had lapsed): another worker crawls it.
pub fn ack_done(link: &mut Link, jobs: &str, ack: &Ack) -> Result<bool, Error> {
    let marker = keys::job_acked(&ack.list);
    let done = done_key(jobs);
    let acked = link.call("acknowledge a job", |c| {
        redis::cmd("EVAL")
            .arg(ACK_DONE)
            .arg(5)
            .arg(&ack.set)
            .arg(&ack.list)
            .arg(&done)
            .arg(&marker)
            .arg(attempts_key(jobs))
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
    let letter = crate::queue::dead_letter::letter(why, worker, job);
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
    /// Put back, waiting out their retry delay (`J:delayed`).
    pub delayed: u64,
    /// Scheduled for later by `enqueue --in/--at` (`J:scheduled`).
    pub scheduled: u64,
}

/// Reads where the jobs of `jobs` stand.
pub fn counts(link: &mut Link, jobs: &str) -> Result<JobCounts, Error> {
    let mut llen = redis::cmd("LLEN");
    llen.arg(jobs);
    let mut get = redis::cmd("GET");
    get.arg(done_key(jobs));
    let mut dead = redis::cmd("LLEN");
    dead.arg(dead_key(jobs));
    let mut delayed = redis::cmd("ZCARD");
    delayed.arg(keys::jobs_delayed(jobs));
    let mut scheduled = redis::cmd("ZCARD");
    scheduled.arg(keys::jobs_scheduled(jobs));
    let replies = link.call_all("count the jobs", &[llen, get, dead, delayed, scheduled])?;
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
        delayed: n.get(3).copied().unwrap_or(0),
        scheduled: n.get(4).copied().unwrap_or(0),
        ..JobCounts::default()
    };
    for p in lease::processing_lists(link, jobs)? {
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
