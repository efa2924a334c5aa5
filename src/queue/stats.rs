//! The fleet's counts in Redis (`KEY:stats`, a hash): items pushed (`in`)
//! and popped (`out`), ever, added by every `produce` and `consume` run
//! about once a second from its live counters. `qpipe dashboard` draws the
//! queue's rates from them. Counting is off the hot path (one HINCRBY pair
//! a second, never inside a push or a pop), so a run that dies loses at most
//! a second of counts, and a reply lost after Redis ran the HINCRBY may
//! count a second twice: the rates are a picture, not a ledger.

use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::keys;
use crate::queue::link::{Fault, Link};
use std::time::Duration;

/// Socket timeout: a hung Redis costs the counting thread this, not more
/// (and a run's exit at most twice this: connect, then the command).
const TIMEOUT: Duration = Duration::from_millis(200);

/// Adds a run's counts to `KEY:stats`.
pub struct StatsWriter {
    link: Link,
    key: String,
}

/// Why the counts could not be added.
pub enum Refused {
    /// Redis did not answer: try again later with the sum.
    Later,
    /// Redis said no for good (an ACL without HINCRBY on the key, or a key
    /// of another type): stop counting, with this to say once.
    Never(String),
}

impl StatsWriter {
    /// A writer for the queue `key` (its name, not a shard's); connects on
    /// first use and never retries, so Redis being down costs nothing now.
    pub fn new(ep: &Endpoint, key: &str) -> Result<StatsWriter, Error> {
        Ok(StatsWriter {
            link: Link::lazy(ep, TIMEOUT, Duration::ZERO, None)?,
            key: keys::stats(key),
        })
    }

    /// Adds `pushed` to `in` and `popped` to `out`.
    pub fn add(&mut self, pushed: u64, popped: u64) -> Result<(), Refused> {
        let mut cmds = Vec::new();
        for (field, n) in [("in", pushed), ("out", popped)] {
            if n > 0 {
                cmds.push(
                    redis::cmd("HINCRBY")
                        .arg(&self.key)
                        .arg(field)
                        .arg(n)
                        .clone(),
                );
            }
        }
        if cmds.is_empty() {
            return Ok(());
        }
        match self.link.attempt_all(&cmds) {
            Ok(_) => Ok(()),
            Err(Fault::Permanent(e)) => Err(Refused::Never(format!(
                "cannot count items in {} ({}); the dashboard shows no rates for this queue (grant HINCRBY on it, see docs/production.md)",
                self.key,
                e.detail().unwrap_or("refused")
            ))),
            Err(_) => Err(Refused::Later),
        }
    }
}

/// A `run::monitor::Tally` adding to the counts of the queue `key`.
pub fn tally(ep: &Endpoint, key: &str) -> Result<crate::run::monitor::Tally, Error> {
    let mut w = StatsWriter::new(ep, key)?;
    Ok(Box::new(move |pushed, popped| {
        w.add(pushed, popped).map_err(|r| match r {
            Refused::Later => None,
            Refused::Never(why) => Some(why),
        })
    }))
}

/// Adds `n` items put back on the queue `key` (by `push`, `recover`, a
/// dead-letter re-queue) to its `in` count, once; Redis down costs
/// nothing, a refusal a warning.
pub fn add_in(ep: &Endpoint, key: &str, n: u64) {
    if n == 0 {
        return;
    }
    if let Ok(mut w) = StatsWriter::new(ep, key) {
        if let Err(Refused::Never(why)) = w.add(n, 0) {
            crate::run::log::warn(&why);
        }
    }
}
