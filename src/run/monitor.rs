//! The watching threads of a `produce` or `consume` run, spawned beside its
//! workers: the `--metrics` HTTP endpoint (with its own Redis connection,
//! `queue::probe`, given by the command)
//! and the counters line (`--stats-every`, SIGUSR1). Both end with the run.

use crate::error::Error;
use crate::run::counters::{self, Counters};
use crate::run::metrics::{self, Levels};
use crate::run::settings::MonitorConfig;
use crate::run::{http, log, signal};
use std::net::TcpListener;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::Scope;
use std::time::Duration;

/// Reads the levels for a scrape: `None` if Redis did not answer.
pub type QueueLength = Box<dyn FnMut() -> Option<Levels> + Send>;

/// Adds a run's new counts (items pushed, items popped) to the fleet's
/// counts in Redis: `Ok`, not now (`Err(None)`: the sum is tried again), or
/// never (`Err(Some(why))`, said once).
pub type Tally = Box<dyn FnMut(u64, u64) -> Result<(), Option<String>> + Send>;

/// How often the run's counts are added to the fleet's.
const TALLY_EVERY: Duration = Duration::from_secs(1);

/// What the watching threads need, made before the workers start.
pub struct Monitor {
    endpoint: Option<(TcpListener, QueueLength)>,
    usr1: Arc<AtomicBool>,
    every: Option<Duration>,
    tally: Option<Tally>,
}

impl Monitor {
    /// Catches SIGUSR1 from now on, and binds `--metrics` (logging the
    /// address it got, so port 0 can be found). A port that cannot be bound
    /// is an error before any work starts. `probe` makes the endpoint's
    /// queue-length reader (its own Redis connection), only if it is wanted.
    pub fn start(
        cfg: &MonitorConfig,
        probe: impl FnOnce() -> Result<QueueLength, Error>,
    ) -> Result<Monitor, Error> {
        let usr1 = signal::usr1()?;
        let endpoint = match cfg.metrics {
            None => None,
            Some(addr) => {
                let cannot = |e: std::io::Error| {
                    Error::Http(format!(
                        "cannot listen on --metrics {addr}: {e} (pick another address, e.g. 127.0.0.1:0 for any free port)"
                    ))
                };
                let listener = http::listen(addr).map_err(cannot)?;
                let bound = listener.local_addr().map_err(cannot)?;
                log::info(&format!(
                    "metrics at http://{bound}/metrics (health at /healthz)"
                ));
                Some((listener, probe()?))
            }
        };
        Ok(Monitor {
            endpoint,
            usr1,
            every: cfg.stats_every,
            tally: None,
        })
    }

    /// Adds the run's counts to the fleet's through `tally` about once a
    /// second, and once more at the end.
    pub fn with_tally(mut self, tally: Tally) -> Monitor {
        self.tally = Some(tally);
        self
    }

    /// Spawns the threads on `s`; they return once `done` is raised.
    pub fn spawn<'scope, 'env>(
        self,
        s: &'scope Scope<'scope, 'env>,
        live: &'env Counters,
        done: &'env AtomicBool,
    ) {
        let (usr1, every) = (self.usr1, self.every);
        s.spawn(move || counters::report(live, every, &usr1, done));
        if let Some((listener, mut probe)) = self.endpoint {
            s.spawn(move || metrics::serve(&listener, live, &mut probe, done));
        }
        if let Some(tally) = self.tally {
            s.spawn(move || tally_loop(tally, live, done));
        }
    }
}

/// Adds what `live` counted since the last success through `tally`, every
/// `TALLY_EVERY` until `done`, then once more. A refusal for good is said
/// once and ends it; the run itself never waits on it.
fn tally_loop(mut tally: Tally, live: &Counters, done: &AtomicBool) {
    use std::sync::atomic::Ordering::Relaxed;
    let (mut pushed, mut popped) = (0u64, 0u64);
    let mut answered = true;
    loop {
        let last = done.load(Relaxed);
        // The last try only if Redis answered the one before: a hung Redis
        // must not hold the run's exit.
        if last && !answered {
            return;
        }
        let (now_pushed, now_popped) = (
            live.items_pushed.load(Relaxed),
            live.items_popped.load(Relaxed),
        );
        match tally(
            now_pushed.saturating_sub(pushed),
            now_popped.saturating_sub(popped),
        ) {
            Ok(()) => {
                (pushed, popped) = (now_pushed, now_popped);
                answered = true;
            }
            Err(Some(why)) => {
                log::warn(&why);
                return;
            }
            Err(None) => answered = false,
        }
        if last {
            return;
        }
        let until = std::time::Instant::now() + TALLY_EVERY;
        while !done.load(Relaxed) && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
