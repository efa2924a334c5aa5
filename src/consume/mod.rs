//! The consume stage: where popped items come from (`source`: a
//! `BatchSource`, BRPOP or reliable batches), the loop each popper thread
//! runs (`popper`), what is set aside (`poison`: dead letters), where they
//! go (`sink`: the JSON Lines file, committed then acknowledged), and the
//! run's summary (`totals`). `pump` runs the threads:
//!
//! ```text
//!  LPUSH ... key ... BRPOP/BLMOVE ─> popper 1 ─┐
//!                    BRPOP/BLMOVE ─> popper 2 ─┼─> bounded channel (batches) ─> sink (this thread)
//!                    BRPOP/BLMOVE ─> popper N ─┘                                  │ commit, then
//!                                                 heartbeat thread (reliable)      └─ ack (reliable)
//! ```

pub mod csv;
pub mod poison;
pub mod popper;
pub mod settings;
pub mod sink;
pub mod source;
pub mod totals;

use crate::error::Error;
use crate::queue::batch::Batch;
use crate::queue::lease::{self, Lease, Orphans};
use crate::queue::link::Link;
use crate::queue::reliable::Reliable;
use crate::queue::Queue;
use crate::run::monitor::Monitor;
use crate::run::progress;
use crate::run::signal::Signals;
use crate::run::tally::Tally;
use popper::{assigned, pop_loop, PopStats, Shared};
use settings::ConsumeConfig;
use sink::{Drained, Sink};
use source::{BatchSource, BrpopSource};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The sources popper thread `t` takes from: one per shard it serves, each
/// on its own connection, reliable batches or plain BRPOP.
pub fn sources_of(
    t: usize,
    cfg: &ConsumeConfig,
    consumer: Option<&Lease>,
    block: Duration,
    keys: &[String],
    connect: &dyn Fn(&str, Duration) -> Result<Queue, Error>,
) -> Result<Vec<Box<dyn BatchSource>>, Error> {
    let mine = assigned(t, cfg.threads, keys.len());
    // Each shard gets its share of the block time, so a round stays short.
    let each = block
        .div_f64(mine.len() as f64)
        .max(Duration::from_millis(50));
    mine.into_iter()
        .map(|i| {
            let q = connect(&keys[i], each)?;
            Ok(match consumer {
                Some(me) => Box::new(Reliable::new(q, me, t)) as Box<dyn BatchSource>,
                None => Box::new(BrpopSource::new(q)) as Box<dyn BatchSource>,
            })
        })
        .collect()
}

/// What `pump` runs: the poppers' sources, the sink, and the watchers.
pub struct Stages<'a> {
    pub workers: Vec<Vec<Box<dyn BatchSource>>>,
    pub sink: &'a mut Sink,
    /// Acknowledges reliable batches (and is the run's control connection).
    pub control: &'a mut Queue,
    /// The reliable lease and its heartbeat link.
    pub lease: Option<(&'a Lease, Link)>,
    pub monitor: Monitor,
    pub progress_queue: Option<Queue>,
}

/// Runs the popper threads, the heartbeat and the watchers beside the sink
/// (on this thread) until the poppers end and the sink has drained them.
pub fn pump(st: Stages<'_>, shared: &Shared<'_>, signals: &Signals) -> (PopStats, Drained) {
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(shared.cfg.threads * 4);
    let done = AtomicBool::new(false);
    let live = shared.live;
    let Stages {
        workers,
        sink,
        control,
        lease,
        monitor,
        progress_queue,
    } = st;
    std::thread::scope(|s| {
        if let Some(mut pq) = progress_queue {
            s.spawn(|| {
                progress::draw(
                    &[("written", &live.items_written)],
                    move || pq.len().ok(),
                    &done,
                )
            });
        }
        monitor.spawn(s, live, &done);
        let acker = lease.is_some().then_some(control.link());
        if let Some((me, mut link)) = lease {
            let done = &done;
            let orphans = Orphans {
                back: &lease::Items,
                recovered: &shared.recovered,
                what: "items",
            };
            s.spawn(move || me.keep_alive(&mut link, done, &orphans, |e| shared.fail(e)));
        }
        let poppers: Vec<_> = workers
            .into_iter()
            .map(|sources| {
                let tx = tx.clone();
                s.spawn(move || pop_loop(sources, &tx, shared))
            })
            .collect();
        drop(tx);
        let flags = sink::Flags {
            stop: shared.stop,
            reopen: &signals.hup,
        };
        let drained = sink::drain(
            &rx,
            sink,
            acker,
            &flags,
            &live.items_written,
            &shared.in_flight,
        );
        let mut pops = PopStats::default();
        for p in poppers {
            match p.join() {
                Ok(one) => pops.tally(one),
                Err(_) => shared.fail(Error::Internal(
                    "a popper thread panicked (please report this bug)".into(),
                )),
            }
        }
        done.store(true, Ordering::Relaxed);
        (pops, drained)
    })
}
