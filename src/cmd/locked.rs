//! Runs a subcommand while holding its `--lock`, renewed by a keeper thread.

use crate::config::LockConfig;
use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::lock::Lock;
use crate::run::counters::LOCK_HELD;
use crate::run::log;
use crate::run::renewal::renew_every_third;
use crate::run::summary::{Finish, Summary};
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `work` under `lock` (or directly without one).
///
/// If the lock cannot be renewed (Redis lost it, or it expired and another
/// run took it), `stop` is raised so the run ends cleanly, and the summary
/// carries a `Locked` failure.
pub fn run(
    ep: &Endpoint,
    lock: Option<&LockConfig>,
    stop: &AtomicBool,
    work: impl FnOnce() -> Result<Summary, Error>,
) -> Result<Summary, Error> {
    let Some(cfg) = lock else {
        return work();
    };
    let mut held = Lock::acquire(ep, &cfg.name, cfg.ttl)?;
    log::debug(&format!("holding lock {}", held.key));
    LOCK_HELD.store(true, Ordering::Relaxed);
    let done = AtomicBool::new(false);
    let lost = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| keep(&mut held, &done, &lost, stop));
        let r = work();
        done.store(true, Ordering::Relaxed);
        r
    });
    LOCK_HELD.store(false, Ordering::Relaxed);
    if let Err(e) = held.release() {
        log::warn(&format!(
            "could not release the lock (it expires by itself): {e}"
        ));
    }
    let mut sum = result?;
    if lost.load(Ordering::Relaxed) {
        sum.finish(Finish::LockLost);
        sum.failure = Some(Error::Locked(format!(
            "lost the lock {:?} mid-run (Redis unreachable for longer than --lock-ttl?); stopped early",
            cfg.name
        )));
    }
    Ok(sum)
}

/// Renews every third of the TTL until `done`; on loss raises `stop`. A
/// dropped connection is reconnected inside `renew`, which then re-checks the
/// token: the lock is only ours if Redis still says so.
fn keep(lock: &mut Lock, done: &AtomicBool, lost: &AtomicBool, stop: &AtomicBool) {
    let ttl = lock.ttl();
    renew_every_third(ttl, done, || {
        let why = match lock.renew() {
            Ok(true) => return true,
            Ok(false) => "the run lock expired (and may have been taken by another run); stopping"
                .to_string(),
            Err(e) => format!("could not renew the run lock before it expired ({e}); stopping"),
        };
        log::error(&why);
        LOCK_HELD.store(false, Ordering::Relaxed);
        lost.store(true, Ordering::Relaxed);
        stop.store(true, Ordering::Relaxed);
        false
    });
}
