//! `qpipe dead`: the dead letters of a queue (`KEY:dead`, every shard) or of
//! a job list (`J:dead`): list them a page at a time, show one, re-queue
//! items byte for byte, or delete them. Each letter is re-queued or deleted
//! in one step that names it by its bytes, so a retry after a lost reply
//! never pushes an item twice.

use crate::config::{DeadAction, DeadConfig};
use crate::error::{Error, Exit};
use crate::queue::dead_letter::{self, Back, Letter};
use crate::queue::keys;
use crate::queue::Queue;
use crate::run::signal::Signals;
use crate::run::summary::{Output, Summary};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// How long an outage is retried.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// One dead list and where its items go back to.
struct Dead {
    dead: String,
    list: String,
    attempts: Option<String>,
}

/// Runs one `qpipe dead` action and reports what it did.
pub fn run(cfg: &DeadConfig, signals: &Signals) -> Result<Summary, Error> {
    let lists = dead_lists(cfg);
    // Every step is safe to repeat, so an outage or a lost reply is retried.
    let mut q = Queue::connect(&cfg.target.redis, &lists[0].list, Duration::from_secs(1))?
        .retrying(RETRY_FOR, Some(Arc::clone(&signals.stop)));
    // Every letter of every list, oldest first (by the time it was set
    // aside): the index `list` prints. New letters take new indexes, so an
    // index seen in a listing still names that letter while others arrive.
    let mut all: Vec<(usize, Letter)> = Vec::new();
    for (i, d) in lists.iter().enumerate() {
        let mut letters = dead_letter::read(q.link(), &d.dead)?;
        letters.reverse();
        all.extend(letters.into_iter().map(|l| (i, l)));
    }
    all.sort_by(|a, b| a.1.at.cmp(&b.1.at));
    let picked = pick(cfg, &all)?;
    let mut sum = Summary::new("dead", Exit::Ok);
    sum.output = Output::Stderr;
    sum.set("redis", q.redacted_url())
        .set("dead_letters", all.len() as u64)
        .set("matched", picked.len() as u64);
    match cfg.action {
        DeadAction::List => print(cfg, &all, &picked)?,
        DeadAction::Show => show(cfg, &all, &picked)?,
        DeadAction::Requeue | DeadAction::Delete => {
            let (done, gone, unreadable) = apply(cfg, &mut q, &lists, &all, &picked)?;
            let name = match cfg.action {
                DeadAction::Requeue => "requeued",
                _ => "deleted",
            };
            sum.set(name, done).set("already_gone", gone);
            if cfg.action == DeadAction::Requeue && cfg.jobs.is_none() {
                crate::queue::stats::add_in(&cfg.target.redis, &cfg.target.key, done);
            }
            if unreadable > 0 {
                sum.set("unreadable_left", unreadable);
                crate::run::log::warn(&format!(
                    "{unreadable} letters hold no item qpipe can read back (not written by qpipe); they stay in the dead list (qpipe dead delete removes them)"
                ));
            }
        }
    }
    Ok(sum)
}

/// The dead lists this run reads: the job list's, or each shard's.
fn dead_lists(cfg: &DeadConfig) -> Vec<Dead> {
    match &cfg.jobs {
        Some(j) => vec![Dead {
            dead: keys::dead(j),
            list: j.clone(),
            attempts: Some(keys::job_attempts(j)),
        }],
        None => cfg
            .target
            .shard_keys()
            .into_iter()
            .map(|k| Dead {
                dead: keys::dead(&k),
                list: k,
                attempts: None,
            })
            .collect(),
    }
}

/// The indexes of the letters the flags pick: `--index` (one that exists),
/// else those whose reason starts with `--reason`, the oldest `--count`.
fn pick(cfg: &DeadConfig, all: &[(usize, Letter)]) -> Result<Vec<usize>, Error> {
    if let Some(i) = cfg.index {
        if i >= all.len() {
            return Err(Error::Usage(format!(
                "there is no dead letter #{i} ({} in all; see qpipe dead list)",
                all.len()
            )));
        }
        return Ok(vec![i]);
    }
    let wanted = |l: &Letter| {
        cfg.reason
            .as_ref()
            .is_none_or(|r| l.reason.starts_with(r.as_str()))
    };
    let mut picked: Vec<usize> = (0..all.len()).filter(|&i| wanted(&all[i].1)).collect();
    if let Some(n) = cfg.count {
        // The oldest: `all` is oldest first.
        picked.truncate(n);
    }
    Ok(picked)
}

/// `text` with control characters escaped (`\n`, `\u{1b}`): a dead item is
/// untrusted and must not drive the terminal or split a listing's lines.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c.is_control() {
            true => c.escape_default().collect::<Vec<_>>(),
            false => vec![c],
        })
        .collect()
}

/// `list`: one line a letter (or its JSON), from `--offset`, `--limit` of them.
fn print(cfg: &DeadConfig, all: &[(usize, Letter)], picked: &[usize]) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    for &i in picked.iter().skip(cfg.offset).take(cfg.limit) {
        let l = &all[i].1;
        let line = match cfg.json {
            true => String::from_utf8_lossy(&l.raw).into_owned(),
            false => {
                let item = l.item.as_deref().map(String::from_utf8_lossy);
                let item = item.as_deref().unwrap_or("(unreadable)");
                let short: String = item.chars().take(80).collect();
                let (reason, who) = (printable(&l.reason), printable(&l.consumer));
                format!("#{i}\t{}\t{reason}\t{who}\t{}", l.at, printable(&short))
            }
        };
        write_line(&mut out, &line)?;
    }
    Ok(())
}

/// `show`: the letter whole, then its item on a line of its own (control
/// characters escaped, unless `--json`).
fn show(cfg: &DeadConfig, all: &[(usize, Letter)], picked: &[usize]) -> Result<(), Error> {
    let Some(&i) = picked.first() else {
        return Ok(());
    };
    let mut out = std::io::stdout().lock();
    let raw = String::from_utf8_lossy(&all[i].1.raw);
    if cfg.json {
        return write_line(&mut out, &raw);
    }
    write_line(&mut out, &printable(&raw))?;
    let item = all[i].1.item.as_deref().map(String::from_utf8_lossy);
    write_line(
        &mut out,
        &printable(item.as_deref().unwrap_or("(unreadable)")),
    )
}

/// Re-queues or deletes the picked letters; returns how many it did, how
/// many were already gone (taken by someone else), and how many hold no
/// readable item (left in place by a requeue). Items go back so that the
/// oldest letter is taken first again: onto the consuming end newest
/// first, or (jobs) onto the far end oldest first.
fn apply(
    cfg: &DeadConfig,
    q: &mut Queue,
    lists: &[Dead],
    all: &[(usize, Letter)],
    picked: &[usize],
) -> Result<(u64, u64, u64), Error> {
    let (mut done, mut gone, mut unreadable) = (0, 0, 0);
    // `picked` is oldest first.
    let mut order = picked.to_vec();
    if cfg.jobs.is_none() {
        order.reverse();
    }
    for i in order {
        let (list, letter) = (&lists[all[i].0], &all[i].1);
        if cfg.action == DeadAction::Requeue && letter.item.is_none() {
            unreadable += 1;
            continue;
        }
        let ok = match cfg.action {
            DeadAction::Requeue => {
                let back = Back {
                    list: &list.list,
                    jobs_attempts: list.attempts.as_deref(),
                };
                dead_letter::requeue(q.link(), &list.dead, &back, letter)?
            }
            _ => dead_letter::delete(q.link(), &list.dead, letter)?,
        };
        match ok {
            true => done += 1,
            false => gone += 1,
        }
    }
    Ok((done, gone, unreadable))
}

/// Writes one line to stdout; a reader that went away ends the listing
/// quietly (`qpipe dead list | head`).
fn write_line(out: &mut impl Write, line: &str) -> Result<(), Error> {
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| Error::io("cannot write to stdout", e)),
    }
}
