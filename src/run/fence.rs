//! The run lock's fence: the moment after which this process may no longer
//! act as the lock's holder, because the lock may have expired in Redis and
//! another run may hold it. Set by the lock keeper at every renewal
//! (`cmd::locked`); read by every command that could do work past it: a
//! blocking pop waits no longer than the fence, and fenced scripts
//! (`link::FENCE`) carry it to Redis, which refuses them after it.
//!
//! The fence is an `Instant` (monotonic): a step of the wall clock cannot
//! stretch it. A script carries it to Redis as "Redis's clock when last
//! read, plus the monotonic time since, plus what is left" (`link`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The fence; `None` without a lock.
static UNTIL_INSTANT: Mutex<Option<Instant>> = Mutex::new(None);

/// Moves the fence to `at`.
pub fn set(at: Instant) {
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
}

/// Closes the fence now: nothing fenced may run any more (the lock is lost).
pub fn close() {
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
}

/// Removes the fence (the lock was released).
pub fn clear() {
    *UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// Time left before the fence, if a lock is held (zero once it passed),
/// on the monotonic clock.
pub fn left() -> Option<Duration> {
    let at = (*UNTIL_INSTANT.lock().unwrap_or_else(|p| p.into_inner()))?;
    Some(at.saturating_duration_since(Instant::now()))
}
