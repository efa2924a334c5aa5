//! Runs a subcommand while holding its `--lock`, renewed by a keeper thread.

use crate::config::LockConfig;
use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::lock::Lock;
use crate::run::counters::LOCK_HELD;
use crate::run::fence;
use crate::run::log;
use crate::run::renewal::renew_every_third;
use crate::run::summary::{Finish, Summary};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs `work` under `lock` (or directly without one).
///
/// If the lock cannot be renewed (Redis lost it, or it expired and another
/// run took it), or its fence passes without a renewal (Redis hangs), `stop`
/// is raised so the run ends cleanly, and the summary carries a `Locked`
/// failure (exit 4).
pub fn run(
    ep: &Endpoint,
    lock: Option<&LockConfig>,
    stop: &AtomicBool,
    work: impl FnOnce() -> Result<Summary, Error>,
) -> Result<Summary, Error> {
    let Some(cfg) = lock else {
        return work();
    };
    let done = Arc::new(AtomicBool::new(false));
    let mut held = Lock::acquire(ep, &cfg.name, cfg.ttl, Arc::clone(&done))?;
    log::debug(&format!("holding lock {}", held.key));
    LOCK_HELD.store(true, Ordering::Relaxed);
    let fence = Mutex::new(held.fence());
    fence::set(held.fence());
    let lost = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        s.spawn(|| keep(&mut held, &done, &fence, &lost, stop));
        s.spawn(|| guard(&fence, &done, &lost, stop));
        let r = work();
        done.store(true, Ordering::Relaxed);
        r
    });
    LOCK_HELD.store(false, Ordering::Relaxed);
    fence::clear();
    // Past the fence the lock is no longer ours to release (and Redis may
    // not be answering at all): it expires by itself.
    if !lost.load(Ordering::Relaxed) {
        if let Err(e) = held.release() {
            log::warn(&format!(
                "could not release the lock (it expires by itself): {e}"
            ));
        }
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

/// Publishes a new fence to the guard and to every fenced command
/// (`run::fence`).
fn move_fence(fence: &Mutex<Instant>, at: Instant) {
    *fence.lock().unwrap_or_else(|p| p.into_inner()) = at;
    fence::set(at);
}

/// Renews every third of the TTL until `done`, moving the fence after each
/// renewal; on loss raises `stop`. A dropped connection is reconnected
/// inside `renew`, which then re-checks the token: the lock is only ours if
/// Redis still says so.
fn keep(
    lock: &mut Lock,
    done: &AtomicBool,
    fence: &Mutex<Instant>,
    lost: &AtomicBool,
    stop: &AtomicBool,
) {
    let ttl = lock.ttl();
    renew_every_third(ttl, done, || {
        let why = match lock.renew() {
            Ok(true) if !lost.load(Ordering::SeqCst) => {
                move_fence(fence, lock.fence());
                return true;
            }
            // The guard already stopped the run: a renewal that succeeds
            // after the fence does not undo that.
            Ok(true) => return false,
            Ok(false) => "the run lock expired (and may have been taken by another run); stopping"
                .to_string(),
            Err(Error::Stopped(_)) => return false,
            Err(e) => format!("could not renew the run lock before it expired ({e}); stopping"),
        };
        lose(&why, lost, stop);
        false
    });
}

/// Stops the run once the fence passes without a renewal, whatever the
/// renewal thread is waiting for (a Redis that hangs holds it for a socket
/// timeout or more).
fn guard(fence: &Mutex<Instant>, done: &AtomicBool, lost: &AtomicBool, stop: &AtomicBool) {
    // Bounded by `done`, raised when the work ends.
    while !done.load(Ordering::Relaxed) && !lost.load(Ordering::SeqCst) {
        let at = *fence.lock().unwrap_or_else(|p| p.into_inner());
        if Instant::now() >= at {
            lose(
                "the run lock could not be renewed in time (Redis does not answer); stopping before it expires",
                lost,
                stop,
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records that the lock is lost and stops the run (once).
fn lose(why: &str, lost: &AtomicBool, stop: &AtomicBool) {
    if lost.swap(true, Ordering::SeqCst) {
        return;
    }
    // Nothing fenced may run from now on.
    fence::close();
    log::error(why);
    LOCK_HELD.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
}
