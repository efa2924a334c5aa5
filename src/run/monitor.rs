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

/// What the watching threads need, made before the workers start.
pub struct Monitor {
    endpoint: Option<(TcpListener, QueueLength)>,
    usr1: Arc<AtomicBool>,
    every: Option<Duration>,
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
        })
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
    }
}
