//! `qpipe enqueue`: add crawl jobs for `produce --jobs`.
//!
//! Every job is read and checked first; one bad job is a usage error naming
//! where it is, and nothing is pushed. The valid jobs then go through the
//! same writer stage as `produce` and `push` (batched LPUSH, a lost reply
//! never pushes a batch twice), in the order given, so the oldest is taken
//! first.

use crate::config::EnqueueConfig;
use crate::error::{Error, Exit};
use crate::produce::writer::{self, Parcel};
use crate::queue::item::Item;
use crate::queue::job;
use crate::queue::job_list::{self, When};
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use std::io::{BufRead, BufReader, Read};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Checks every job, then pushes them all.
pub fn run(cfg: &EnqueueConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let mut jobs: Parcel = Vec::new();
    for (i, source) in cfg.sources.iter().enumerate() {
        if source.contains("://") {
            check(source.as_bytes(), &format!("argument {}", i + 1))?;
            jobs.push(Item::raw(source.trim().as_bytes().to_vec()));
        } else if source == "-" {
            let stdin = crate::produce::lines::StopAwareStdin {
                stop: &signals.stop,
            };
            read_jobs(stdin, "stdin", &mut jobs)?;
        } else {
            let file = std::fs::File::open(source).map_err(|e| {
                Error::io(
                    format!("cannot read {source} (give a job URL with its scheme, a file of jobs, or - for stdin)"),
                    e,
                )
            })?;
            read_jobs(file, source, &mut jobs)?;
        }
    }
    let count = jobs.len() as u64;
    let mut queues = cfg.writer.connect(&signals.stop)?;
    if let Some(when) = cfg.when {
        return schedule(cfg, &mut queues[0], &jobs, when, started);
    }
    // Every job is in memory already: an unbounded channel of parcels the
    // size of one LPUSH, drained on this thread.
    let (tx, rx) = crossbeam_channel::unbounded::<Parcel>();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let _ = tx.send(jobs.by_ref().take(cfg.writer.batch_size).collect());
    }
    drop(tx);
    let written = writer::write(
        &rx,
        &mut queues,
        &cfg.writer,
        &signals.stop,
        &AtomicU64::new(0),
    );
    let mut sum = Summary::new("enqueue", signals.exit().unwrap_or(Exit::Ok));
    sum.set("redis", crate::error::redact(&cfg.writer.redis.url))
        .set("key", cfg.writer.key.as_str())
        .set("jobs", count);
    written.summarize(&mut sum);
    sum.rates(started.elapsed(), &[("jobs", written.pushed)]);
    if let Some(p) = &written.spill_path {
        sum.set("spill_file", p.display().to_string());
    }
    sum.failure = written.failure;
    Ok(sum)
}

/// `--in`/`--at`: schedules every job in `J:scheduled` (one step each, safe
/// to repeat: a member names the job and this run), for any running worker
/// to move to the list when due.
fn schedule(
    cfg: &EnqueueConfig,
    q: &mut crate::queue::Queue,
    jobs: &Parcel,
    when: When,
    started: Instant,
) -> Result<Summary, Error> {
    let run = format!("{:016x}", fastrand::u64(..));
    // The list's name as the workers use it (hash-tagged on a cluster).
    let jobs_key = &cfg.writer.shard_keys()[0];
    for (i, job) in jobs.iter().enumerate() {
        job_list::schedule(q.link(), jobs_key, &job.json, when, &format!("{run}-{i}"))?;
    }
    let mut sum = Summary::new("enqueue", Exit::Ok);
    sum.set("redis", crate::error::redact(&cfg.writer.redis.url))
        .set("key", cfg.writer.key.as_str())
        .set("jobs", jobs.len() as u64)
        .set("jobs_scheduled", jobs.len() as u64);
    match when {
        When::In(d) => sum.set("due_in_secs", d.as_secs_f64()),
        When::At(t) => sum.set("due_at_unix", t.as_secs_f64()),
    };
    sum.rates(started.elapsed(), &[("jobs", jobs.len() as u64)]);
    Ok(sum)
}

/// Reads one job per line (blank lines skipped), checking each.
fn read_jobs(input: impl Read, name: &str, out: &mut Parcel) -> Result<(), Error> {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(format!("cannot read {name}"), e))?;
        if read == 0 {
            return Ok(());
        }
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        check(text, &format!("{name} line {n}"))?;
        out.push(Item::raw(text.to_vec()));
    }
    Ok(())
}

/// A usage error naming `place` unless `bytes` is a job.
fn check(bytes: &[u8], place: &str) -> Result<(), Error> {
    job::parse(bytes).map(drop).map_err(|why| {
        Error::Usage(format!(
            "{place}: {why} (a job is an absolute http(s) URL or {{\"url\": \"...\", \"meta\": {{...}}}}); nothing was enqueued"
        ))
    })
}
