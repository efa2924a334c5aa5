//! Where `consume` takes items from: one `BatchSource` per pop mode, so the pop
//! loop has no mode switches. `BrpopSource` is BRPOP (at-most-once across a lost
//! reply); `reliable::Reliable` moves batches into processing lists
//! (at-least-once). At exit, `put_back` returns what did not become
//! durable: the lease's batches, or BRPOP's unwritten batches.

use super::settings::ConsumeConfig;
use crate::error::Error;
use crate::queue::batch::{Batch, Taken};
use crate::queue::lease::{self, Lease};
use crate::queue::reliable::Reliable;
use crate::queue::Queue;
use crate::run::log;
use std::time::Duration;

/// One list a popper thread serves, in one pop mode.
pub trait BatchSource: Send {
    /// Takes up to `max` items (and about `max_bytes`), blocking up to the
    /// block time; an empty batch means nothing arrived. `RetryAt` means
    /// Redis is unavailable for this source: the popper serves its other
    /// sources meanwhile (an outage is not an empty queue). An error ends
    /// this popper.
    fn take(&mut self, max: usize, max_bytes: usize) -> Result<Taken, Error>;

    /// The connection, for dead letters.
    fn queue(&mut self) -> &mut Queue;

    /// The sink has failed and will not take `batch`: make sure its items
    /// are not lost. Returns how many went back to Redis.
    fn abandon(&mut self, batch: Batch) -> u64;
}

/// BRPOP, then the rest of the batch without blocking.
pub struct BrpopSource {
    q: Queue,
}

impl BrpopSource {
    /// A BRPOP source on `q`'s list.
    pub fn new(q: Queue) -> BrpopSource {
        BrpopSource { q }
    }
}

impl BatchSource for BrpopSource {
    fn take(&mut self, max: usize, max_bytes: usize) -> Result<Taken, Error> {
        match self.q.pop(max, max_bytes) {
            Ok(items) => {
                self.q.link().settled();
                Ok(Taken::Batch(Batch {
                    items,
                    key: self.q.key.clone(),
                    ack: None,
                }))
            }
            Err(fault) => {
                if matches!(fault, crate::queue::link::Fault::Lost(_)) {
                    log::warn(&format!(
                        "a pop from {} lost its reply: the items Redis popped for it, if any, are lost (use --reliable for at-least-once)",
                        self.q.key
                    ));
                }
                let what = format!("pop from {} ({})", self.q.key, self.q.failed_command());
                self.q.link().defer(fault, &what).map(Taken::RetryAt)
            }
        }
    }

    fn queue(&mut self) -> &mut Queue {
        &mut self.q
    }

    fn abandon(&mut self, batch: Batch) -> u64 {
        give_back(&mut self.q, &batch)
    }
}

impl BatchSource for Reliable {
    fn take(&mut self, max: usize, max_bytes: usize) -> Result<Taken, Error> {
        Reliable::take(self, max, max_bytes)
    }

    fn queue(&mut self) -> &mut Queue {
        Reliable::queue(self)
    }

    /// The batch waits in its processing list; release re-queues it at exit.
    fn abandon(&mut self, _batch: Batch) -> u64 {
        0
    }
}

/// BRPOP mode: pushes unwritten items back to the consuming end of the list
/// they came from, in order. Returns how many went back.
pub fn give_back(q: &mut Queue, b: &Batch) -> u64 {
    match q.give_back(&b.key, &b.items) {
        Ok(()) => b.items.len() as u64,
        Err(e) => {
            log::error(&format!(
                "{} popped items could not be written nor returned to {}: {e}",
                b.items.len(),
                b.key
            ));
            0
        }
    }
}

/// At exit: re-queues what this consumer still holds (reliable), or pushes
/// back the batches the sink did not write (BRPOP). The stop flag may be up
/// (a signal, the sink's failure), so this gets its own short retry budget
/// rather than abandoning popped items at the first blip; after a signal it
/// is short enough to exit within a kill grace period. Returns how many
/// items went back.
pub fn put_back(
    cfg: &ConsumeConfig,
    keys: &[String],
    consumer: Option<&Lease>,
    unwritten: &[Batch],
    stopping: bool,
) -> u64 {
    if consumer.is_none() && unwritten.is_empty() {
        return 0;
    }
    let mut q = match lease::exit_link(&cfg.redis, cfg.retry_for, stopping) {
        Ok(l) => Queue::over(l.with_shards(keys), &keys[0], Duration::ZERO),
        Err(e) => {
            match consumer {
                Some(_) => log::warn(&format!(
                    "could not release this consumer's batches ({e}); `qpipe recover` re-queues them once its heartbeat expires"
                )),
                None => log::error(&format!(
                    "{} popped items could not be written nor put back ({e}); they are lost",
                    unwritten.iter().map(|b| b.items.len()).sum::<usize>()
                )),
            }
            return 0;
        }
    };
    match consumer {
        Some(me) => {
            // Batches the sink did not write are named here, so they go back
            // even if a racing `recover` dropped their registration.
            // Newest first onto the consuming end, so the oldest batch is
            // taken first again (as `requeue_consumer` does).
            let mut n = 0;
            for b in unwritten.iter().rev() {
                if let Some(a) = &b.ack {
                    n += lease::requeue_batch(q.link(), &b.key, &a.set, &a.list).unwrap_or(0);
                }
            }
            let (m, failure) = me.release(q.link(), &lease::Items);
            let n = n + m;
            if let Some(e) = failure {
                log::warn(&format!(
                    "could not release all of this consumer's batches ({e}); `qpipe recover` re-queues the rest once its heartbeat expires"
                ));
            }
            n
        }
        // Newest first, for the same reason.
        None => unwritten.iter().rev().map(|b| give_back(&mut q, b)).sum(),
    }
}
