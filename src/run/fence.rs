//! The run lock's fence: the moment after which this process may no longer
//! act as the lock's holder, because the lock may have expired in Redis and
//! another run may hold it. Set by the lock keeper at every renewal
//! (`cmd::locked`); read by every command that could do work past it: a
//! blocking pop waits no longer than the fence, and fenced scripts
//! (`link::FENCE`) carry it to Redis, which refuses them after it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The fence in Unix milliseconds of this machine's clock; `u64::MAX`
/// without a lock.
static UNTIL: AtomicU64 = AtomicU64::new(u64::MAX);

/// Moves the fence to `unix_ms`.
pub fn set(unix_ms: u64) {
    UNTIL.store(unix_ms, Ordering::SeqCst);
}

/// Removes the fence (the lock was released).
pub fn clear() {
    UNTIL.store(u64::MAX, Ordering::SeqCst);
}

/// The fence, if a lock is held.
pub fn until_unix_ms() -> Option<u64> {
    match UNTIL.load(Ordering::SeqCst) {
        u64::MAX => None,
        ms => Some(ms),
    }
}

/// Time left before the fence, if a lock is held (zero once it passed).
pub fn left() -> Option<Duration> {
    let until = until_unix_ms()?;
    let now = crate::run::log::unix_time().as_millis() as u64;
    Some(Duration::from_millis(until.saturating_sub(now)))
}
