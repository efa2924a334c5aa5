//! The run lock's fence: the moment after which this process may no longer
//! act as the lock's holder, because the lock may have expired in Redis and
//! another run may hold it. Set by the lock keeper at every renewal
//! (`cmd::locked`); read by every command that could do work past it: a
//! blocking pop waits no longer than the fence, and fenced scripts
//! (`link::FENCE`) carry it to Redis, which refuses them after it.
//!
//! The fence is kept twice: as an `Instant` (monotonic, for every local
//! decision, so a wall-clock step cannot stretch it) and in Unix
//! milliseconds (what a script carries to Redis, translated to Redis's clock
//! by the measured skew).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fence in Unix milliseconds of this machine's clock; `u64::MAX`
/// without a lock.
static UNTIL: AtomicU64 = AtomicU64::new(u64::MAX);
/// The same fence on the monotonic clock; `None` without a lock.
static UNTIL_INSTANT: Mutex<Option<Instant>> = Mutex::new(None);

/// Moves the fence to `at`.
pub fn set(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    let unix_ms = (crate::run::log::unix_time() + left).as_millis() as u64;
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    UNTIL.store(unix_ms, Ordering::SeqCst);
}

/// Closes the fence now: nothing fenced may run any more (the lock is lost).
pub fn close() {
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    UNTIL.store(0, Ordering::SeqCst);
}

/// Removes the fence (the lock was released).
pub fn clear() {
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = None;
    UNTIL.store(u64::MAX, Ordering::SeqCst);
}

/// The fence, if a lock is held.
pub fn until_unix_ms() -> Option<u64> {
    match UNTIL.load(Ordering::SeqCst) {
        u64::MAX => None,
        ms => Some(ms),
    }
}

/// Time left before the fence, if a lock is held (zero once it passed),
/// on the monotonic clock.
pub fn left() -> Option<Duration> {
    let at = (*UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()))?;
    Some(at.saturating_duration_since(Instant::now()))
}
