//! `produce --jobs`: a worker that crawls jobs taken from a Redis list, one
//! at a time, leased with the reliable-queue machinery (`queue::job_list`).
//!
//! ```text
//!  J ─take (BLMOVE)─> J:processing:<worker>:0:<seq> ─crawl─> items pushed ─> ack: DEL + INCR J:done
//!                         ^ J:consumer:<worker>: heartbeat from its own thread, every third of the TTL
//! ```
//! - One job at a time: the job is one crawl (`super::crawl`) whose writer
//!   has returned before the ack, so "acknowledged" means "every item is in
//!   Redis". Fetcher threads still work the job's pages in parallel.
//! - A job stopped by a signal or by `--max-time`, or whose crawl failed
//!   (items spilled, a panic), is not acknowledged: at exit it goes back
//!   whole to the far end of the list (`Consumer::release`), or, if Redis
//!   is down then, through recovery once the heartbeat has expired. A job
//!   put back more than `--job-attempts` times is set aside in `J:dead`
//!   (`job_list::JobRequeue`).
//! - A job that fetched no page is acknowledged (it was crawled), but
//!   counted as `jobs_empty` and named in a warning.
//! - A worker killed with `kill -9` stops beating; the lease's recovery, run
//!   at start and about every heartbeat TTL from every worker's heartbeat
//!   thread (busy or idle), puts its job back for another worker.

use super::settings::JobsConfig;
use super::totals::{JobStats, Totals};
use super::{crawl, Kit};
use crate::crawl::frontier::{Bounds, Finish, Frontier};
use crate::crawl::session::address;
use crate::error::Error;
use crate::queue::acl;
use crate::queue::batch::{Ack, Taken};
use crate::queue::job_list;
use crate::queue::lease::{self, Lease, Orphans};
use crate::queue::reliable::Reliable;
use crate::queue::{job, Queue};
use crate::run::log;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest blocking take, so the stop flag and the clock are re-checked.
const MAX_BLOCK: Duration = Duration::from_secs(1);
/// How long a higher-priority list is waited on: a glance (0 would block
/// forever).
const PEEK: Duration = Duration::from_millis(10);

/// What one round of takes found.
enum Took {
    /// A job, from list `0` of the priority order.
    Job(usize, crate::queue::batch::Batch),
    /// Every list was empty.
    Nothing,
    /// Redis is unavailable for now (the wait is over).
    Outage,
}

/// Takes and crawls jobs until a signal, `--max-time`, a failure, or (with
/// `--drain`) an idle list, then gives back whatever job it still holds.
pub fn serve(kit: &Kit<'_>, jc: &JobsConfig, queues: &mut [Queue]) -> Result<Totals, Error> {
    let cfg = kit.cfg;
    let stop = Some(Arc::clone(&kit.signals.stop));
    let block = jc.drain_after.map_or(MAX_BLOCK, |idle| idle.min(MAX_BLOCK));
    let me = Lease::new(&jc.lists, jc.heartbeat_ttl);
    let mut takers = takers(kit, jc, &me, block)?;
    let mut needs = acl::Needs::default();
    for list in &jc.lists {
        needs.holder(list, &me.id).job_worker(list, &me.id);
    }
    acl::check(takers[0].queue().link(), &needs)?;
    let mut stats = JobStats {
        recovered: me.start(takers[0].queue().link(), &jc.requeue(&me))?,
        ..JobStats::default()
    };
    let mut beats = lease::heartbeat_link(&cfg.writer.redis, cfg.writer.retry_for, stop)?;
    let beat_failure = Mutex::new(None);
    let done = AtomicBool::new(false);
    let (back, recovered) = (jc.requeue(&me), AtomicU64::new(0));
    let orphans = Orphans {
        back: &back,
        recovered: &recovered,
        what: "jobs",
    };
    let mut totals = Totals::default();
    let (finish, failure) = std::thread::scope(|s| {
        let (me, done, beat_failure, orphans) = (&me, &done, &beat_failure, &orphans);
        let beats = &mut beats;
        s.spawn(move || {
            me.keep_alive(beats, done, orphans, |e| {
                // Our job may be recovered by others now: stop.
                if let Ok(mut f) = beat_failure.lock() {
                    f.get_or_insert(e);
                }
                kit.stop.store(true, Ordering::Relaxed);
            })
        });
        let mut worker = Worker {
            kit,
            jc,
            me,
            takers: &mut takers,
            current: 0,
            queues,
            totals: &mut totals,
            stats: &mut stats,
        };
        let end = worker.work();
        done.store(true, Ordering::Relaxed);
        end
    });
    stats.recovered += recovered.load(Ordering::Relaxed);
    stats.released = release(kit, jc, &me);
    // Jobs still waiting out a delay or a schedule: a drained run ends
    // without them, so it says how many (another run takes them when due).
    // Not after a stop or a failure: Redis may be hanging, and the stop
    // must fit its watchdog.
    if matches!(finish, Finish::Drained) {
        count_waiting(takers[0].queue().link(), jc, &mut stats);
    }
    totals.finish = Some(finish);
    totals.failure = failure.or(beat_failure.into_inner().ok().flatten());
    totals.jobs = Some(stats);
    Ok(totals)
}

/// One taker per job list, in priority order: the higher lists are only
/// peeked at, the last one is waited on (up to `block`).
fn takers(
    kit: &Kit<'_>,
    jc: &JobsConfig,
    me: &Lease,
    block: Duration,
) -> Result<Vec<Reliable>, Error> {
    let w = &kit.cfg.writer;
    let stop = Some(Arc::clone(&kit.signals.stop));
    jc.lists
        .iter()
        .enumerate()
        .map(|(i, list)| {
            let wait = if i + 1 == jc.lists.len() { block } else { PEEK };
            let q = Queue::connect(&w.redis, list, wait)?;
            Ok(Reliable::new(q.retrying(w.retry_for, stop.clone()), me, 0))
        })
        .collect()
}

/// Counts the jobs still waiting out a delay or a schedule: a --drain run
/// ends without them, so it says how many (a worker running when they are
/// due takes them).
fn count_waiting(link: &mut crate::queue::link::Link, jc: &JobsConfig, stats: &mut JobStats) {
    for list in &jc.lists {
        let Ok(c) = job_list::counts(link, list) else {
            continue;
        };
        stats.waiting_delayed += c.delayed;
        stats.waiting_scheduled += c.scheduled;
        if c.delayed + c.scheduled > 0 {
            log::info(&format!(
                "{} jobs wait for a retry and {} are scheduled for later in {list}; a worker running when they are due takes them",
                c.delayed, c.scheduled
            ));
        }
    }
}

/// The job loop's state.
pub struct Worker<'a, 'k> {
    kit: &'a Kit<'k>,
    jc: &'a JobsConfig,
    me: &'a Lease,
    /// One per job list, in priority order.
    takers: &'a mut [Reliable],
    /// Which list the job in hand came from.
    current: usize,
    queues: &'a mut [Queue],
    totals: &'a mut Totals,
    stats: &'a mut JobStats,
}

impl Worker<'_, '_> {
    /// Takes jobs until told to end; returns why, and the failure if any.
    fn work(&mut self) -> (Finish, Option<Error>) {
        let stop = self.kit.stop;
        let mut idle_since: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return (Finish::Stopped, None);
            }
            if self.kit.deadline.is_some_and(|d| Instant::now() >= d) {
                return (Finish::MaxTime, None);
            }
            // Jobs whose retry delay or schedule is up go to their list
            // first, by whichever worker gets here: idle workers keep them
            // moving.
            let jc = self.jc;
            for (taker, list) in self.takers.iter_mut().zip(&jc.lists) {
                if let Err(e) = job_list::move_due(taker.queue().link(), list) {
                    return ended_by(e);
                }
            }
            let asked = Instant::now();
            let (i, batch) = match self.take_first() {
                Ok(Took::Job(i, b)) => (i, b),
                Ok(Took::Outage) => continue,
                Ok(Took::Nothing) => {
                    let since = *idle_since.get_or_insert(asked);
                    if self.jc.drain_after.is_some_and(|d| since.elapsed() >= d) {
                        return (Finish::Drained, None);
                    }
                    continue;
                }
                Err(e) => return ended_by(e),
            };
            let (Some(job), Some(ack)) = (batch.items.first(), &batch.ack) else {
                continue;
            };
            idle_since = None;
            self.current = i;
            match self.one(job, ack) {
                Ok(None) => {}
                Ok(Some(end)) => return (end, None),
                Err(e) => return ended_by(e),
            }
        }
    }

    /// The first job waiting, by priority: each list in turn, the higher
    /// ones peeked at, the last one waited on.
    fn take_first(&mut self) -> Result<Took, Error> {
        for (i, taker) in self.takers.iter_mut().enumerate() {
            match taker.take(1, usize::MAX)? {
                Taken::Batch(b) if !b.items.is_empty() => return Ok(Took::Job(i, b)),
                Taken::Batch(_) => {}
                Taken::RetryAt(at) => {
                    // Bounded by `at` and the stop flag.
                    while Instant::now() < at && !self.kit.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(Took::Outage);
                }
            }
        }
        Ok(Took::Nothing)
    }

    /// Crawls one job and acknowledges it if it ran to its end. `Some`: the
    /// run must end (the job is still held, and goes back at exit).
    fn one(&mut self, bytes: &[u8], ack: &Ack) -> Result<Option<Finish>, Error> {
        let Some(job) = self.admit(bytes, ack)? else {
            return Ok(None);
        };
        let jc = self.jc;
        let key = &jc.lists[self.current];
        let kit = self.kit;
        let bounds = Bounds {
            deadline: kit.deadline,
            ..kit.cfg.bounds.clone()
        };
        // Allowed domains default to the job URL's host (see `Frontier::new`).
        let frontier = Frontier::new(std::slice::from_ref(&job.url), bounds);
        let (fetched, written) = crawl(kit, &frontier, self.queues, job.meta.as_deref());
        let (pages, pushed) = (fetched.pages, written.pushed);
        let broken = written.failure.is_some() || fetched.panic.is_some();
        self.totals.add(fetched, written, &frontier);
        let finish = frontier.finish();
        let url = &job.url;
        if broken {
            self.stats.failed += 1;
            log::warn(&format!(
                "job {url}: not acknowledged, its crawl failed (it goes back to {key})"
            ));
            return Ok(Some(Finish::Error));
        }
        if matches!(finish, Finish::Stopped | Finish::MaxTime) {
            log::info(&format!(
                "job {url}: stopped after {pages} pages ({}); it goes back to {key}",
                finish.name()
            ));
            return Ok(Some(finish));
        }
        if job_list::ack_done(self.takers[self.current].queue().link(), key, ack)? {
            self.stats.done += 1;
            if pages == 0 {
                self.stats.empty += 1;
                log::warn(&format!(
                    "job {url}: done, but no page was fetched (its start page failed, was refused, or is outside the allowed domains)"
                ));
            } else {
                log::info(&format!(
                    "job {url}: done, {pages} pages, {pushed} items pushed ({})",
                    finish.name()
                ));
            }
        } else {
            self.stats.failed += 1;
            log::warn(&format!(
                "job {url}: its items are pushed, but the job was no longer leased to this worker: a recovery put it back on {key} (this worker's heartbeat lapsed), and another worker crawls it again; or Redis lost its data (a restart without persistence), and the job is gone"
            ));
        }
        Ok(None)
    }

    /// The job in `bytes`, if it is one this worker may crawl; otherwise it
    /// is set aside in `J:dead` with the reason, and counted.
    fn admit(&mut self, bytes: &[u8], ack: &Ack) -> Result<Option<job::Job>, Error> {
        let jc = self.jc;
        let key = &jc.lists[self.current];
        let job = match job::parse(bytes) {
            Ok(job) => job,
            Err(why) => {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]);
                log::warn(&format!(
                    "job {} is not a job ({why}); set aside in {}",
                    job::shown(&text),
                    job_list::dead_key(key)
                ));
                let link = self.takers[self.current].queue().link();
                job_list::set_aside(link, key, ack, &self.me.id, bytes, &why)?;
                self.stats.failed += 1;
                return Ok(None);
            }
        };
        // A job's URL is untrusted input: it may not point the crawler at
        // this host, the private network or a metadata address.
        if !self.kit.cfg.http.allow_private && address::url_is_private(&job.url) {
            let why = "private address (a job may not crawl loopback, private or link-local addresses; run the worker with --allow-private to let it)";
            log::warn(&format!(
                "job {}: refused, {why}; set aside in {}",
                job.url,
                job_list::dead_key(key)
            ));
            let link = self.takers[self.current].queue().link();
            job_list::set_aside(link, key, ack, &self.me.id, bytes, why)?;
            self.stats.failed += 1;
            self.stats.refused += 1;
            return Ok(None);
        }
        Ok(Some(job))
    }
}

/// How a Redis error ends the job loop: a stop is not a failure.
fn ended_by(e: Error) -> (Finish, Option<Error>) {
    match e {
        Error::Stopped(_) => (Finish::Stopped, None),
        e => (Finish::RedisUnavailable, Some(e)),
    }
}

/// At exit: puts back the job this worker still holds (a signal,
/// `--max-time`, a failure) and drops its heartbeat. The stop flag may be
/// up, so this gets its own short retry budget. Returns the jobs put back.
fn release(kit: &Kit<'_>, jc: &JobsConfig, me: &Lease) -> u64 {
    let w = &kit.cfg.writer;
    let (n, failure) = match lease::exit_link(&w.redis, w.retry_for, kit.signals.exit().is_some()) {
        Ok(mut link) => me.release(&mut link, &jc.requeue(me)),
        Err(e) => (0, Some(e)),
    };
    if let Some(e) = failure {
        log::warn(&format!(
            "could not put this worker's job back ({e}); `qpipe recover --key {}` or any worker re-queues it once the heartbeat expires",
            jc.key
        ));
    }
    n
}
