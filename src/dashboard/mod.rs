//! `qpipe dashboard`: one web page of the fleet on a Redis, served by the
//! blocking HTTP code in `run::http` (no async runtime, no JavaScript).
//!
//! - `fleet` finds qpipe's keys (SCAN, a few calls a sample) and reads
//!   every queue, worker, job list, frontier and lock among them;
//! - `history` keeps the samples the charts and rates are drawn from;
//! - `page` draws the HTML; `web` answers requests (authentication, the
//!   Host check, CSRF, the dead-letter actions).
//!
//! One sampling thread reads Redis every `--every` seconds; pages are drawn
//! from its last sample, so the load on Redis is the same however many
//! pages are open. Dead-letter pages and actions read and write on demand
//! through one shared connection.

pub mod fleet;
pub mod history;
mod letters;
pub mod page;
pub mod settings;
mod web;

use crate::error::Error;
use crate::queue::link::Link;
use crate::run::{http, log};
use fleet::{Found, Scanner, Snapshot};
use history::History;
use settings::{DashboardConfig, Named};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// SCAN calls a sample makes at most (the first: `FIRST_SCAN_STEPS`).
const SCAN_STEPS: u32 = 10;
const FIRST_SCAN_STEPS: u32 = 100;
/// Requests answered at once; more get 503.
const MAX_CONNECTIONS: usize = 64;
/// Requests answered at once for one client address.
const MAX_PER_PEER: usize = 8;
/// Socket timeout of the dashboard's Redis connections.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// The last sample, and what came before it.
#[derive(Default)]
struct State {
    snap: Arc<Snapshot>,
    found: Found,
    history: History,
    /// When the last sample was taken (unix ms), and why it failed ("": it did not).
    sampled_ms: Option<u64>,
    error: String,
}

/// What a dashboard run did.
#[derive(Debug, Default)]
pub struct Totals {
    pub requests: u64,
    pub samples: u64,
    pub scan_calls: u64,
    pub requeued: u64,
    pub deleted: u64,
    pub refused: u64,
}

/// The dashboard: its settings, its last sample and its counters.
pub struct Board {
    cfg: DashboardConfig,
    csrf: String,
    redacted: String,
    state: Mutex<State>,
    /// Requests in progress per client address.
    peers: Mutex<HashMap<IpAddr, usize>>,
    requests: AtomicU64,
    samples: AtomicU64,
    scan_calls: AtomicU64,
    requeued: AtomicU64,
    deleted: AtomicU64,
    refused: AtomicU64,
}

impl Board {
    /// Connects (a Redis that cannot be reached now is an error at once).
    pub fn new(cfg: DashboardConfig) -> Result<Board, Error> {
        // Reachable now, or an error at once (a typo in --redis).
        let mut link = Link::open(&cfg.redis, REDIS_TIMEOUT, Duration::ZERO, None)?;
        // Answering at all is enough: an ACL without PING (the documented
        // lines) answers NOPERM, a missing password NOAUTH (an error).
        match link.attempt(|c| redis::cmd("PING").query::<String>(c)) {
            Ok(_) => {}
            Err(f) if f.error().code() == Some("NOPERM") => {}
            Err(f) => return Err(Error::redis("cannot use Redis", &cfg.redis.url, f.error())),
        }
        let redacted = link.redacted_url();
        let csrf = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        Ok(Board {
            cfg,
            csrf,
            redacted,
            state: Mutex::new(State::default()),
            peers: Mutex::new(HashMap::new()),
            requests: AtomicU64::new(0),
            samples: AtomicU64::new(0),
            scan_calls: AtomicU64::new(0),
            requeued: AtomicU64::new(0),
            deleted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Serves until `stop`: one sampling thread, one thread per request.
    pub fn serve(&self, stop: &AtomicBool) -> Result<Totals, Error> {
        let listener = http::listen(self.cfg.addr).map_err(|e| {
            Error::Http(format!(
                "cannot listen on --addr {}: {e} (pick another address, e.g. 127.0.0.1:0 for any free port)",
                self.cfg.addr
            ))
        })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Http(format!("cannot read the bound address: {e}")))?;
        let who = match &self.cfg.auth {
            Some((user, _)) => format!("HTTP Basic authentication as {user} required"),
            None => "no authentication (loopback only)".into(),
        };
        let mode = if self.cfg.read_only {
            ", read-only"
        } else {
            ""
        };
        log::info(&format!(
            "dashboard at http://{bound}/ ({who}{mode}), Redis {}",
            self.redacted
        ));
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Http(format!("cannot serve: {e}")))?;
        let active = AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| self.sample_loop(stop));
            while !stop.load(Ordering::Relaxed) {
                let Ok((conn, peer)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                if !self.admit(peer.ip(), &active) {
                    web::busy(conn);
                    continue;
                }
                let active = &active;
                s.spawn(move || {
                    self.answer(conn, peer);
                    self.leave(peer.ip(), active);
                });
            }
        });
        Ok(self.totals())
    }

    /// Takes a request slot for a client at `ip`: at most `MAX_CONNECTIONS`
    /// in all and `MAX_PER_PEER` per address, so one client holding
    /// connections open cannot lock the others out.
    fn admit(&self, ip: IpAddr, active: &AtomicUsize) -> bool {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let mine = peers.entry(ip).or_default();
        if *mine >= MAX_PER_PEER || active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            if *mine == 0 {
                peers.remove(&ip);
            }
            return false;
        }
        *mine += 1;
        active.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn leave(&self, ip: IpAddr, active: &AtomicUsize) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = peers.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&ip);
            }
        }
        active.fetch_sub(1, Ordering::AcqRel);
    }

    /// A connection of its own for one request (no request waits on
    /// another's), with short timeouts and no retry.
    fn open_link(&self) -> Result<Link, Error> {
        Link::open(&self.cfg.redis, REDIS_TIMEOUT, Duration::ZERO, None)
    }

    fn totals(&self) -> Totals {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Totals {
            requests: n(&self.requests),
            samples: n(&self.samples),
            scan_calls: n(&self.scan_calls),
            requeued: n(&self.requeued),
            deleted: n(&self.deleted),
            refused: n(&self.refused),
        }
    }

    /// Samples Redis every `--every` until `stop`, on its own connection.
    fn sample_loop(&self, stop: &AtomicBool) {
        let mut link = match Link::lazy(&self.cfg.redis, REDIS_TIMEOUT, Duration::ZERO, None) {
            Ok(l) => l,
            Err(e) => {
                log::error(&format!("the dashboard cannot sample Redis: {e}"));
                return;
            }
        };
        let mut scanner = Scanner::new(self.cfg.scan_count);
        let mut steps = FIRST_SCAN_STEPS;
        while !stop.load(Ordering::Relaxed) {
            let calls = scanner.calls;
            let result = self.sample(&mut link, &mut scanner, steps);
            steps = SCAN_STEPS;
            self.scan_calls
                .fetch_add(scanner.calls - calls, Ordering::Relaxed);
            self.samples.fetch_add(1, Ordering::Relaxed);
            let now = now_ms();
            let mut st = self.lock_state();
            match result {
                Ok((found, snap)) => {
                    st.history.record(now, &snap);
                    st.snap = Arc::new(snap);
                    st.found = found;
                    st.sampled_ms = Some(now);
                    st.error.clear();
                }
                Err(e) => st.error = e.to_string(),
            }
            drop(st);
            let until = std::time::Instant::now() + self.cfg.every;
            while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// One sample: what to show (named, or scanned a few steps further),
    /// then all of it read.
    fn sample(
        &self,
        link: &mut Link,
        scanner: &mut Scanner,
        steps: u32,
    ) -> Result<(Found, Snapshot), Error> {
        let found = match &self.cfg.named {
            Some(named) => named_found(named, self.cfg.shards, self.cfg.redis.is_cluster()),
            None => {
                scanner.step(link, steps)?;
                scanner.found.clone()
            }
        };
        let snap = fleet::read(link, &found)?;
        Ok((found, snap))
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What the command line named, as if found: each queue's lists as its
/// producers name them (`{KEY:i}` shards, or `{KEY}` on a cluster).
fn named_found(n: &Named, shards: usize, cluster: bool) -> Found {
    use crate::queue::keys::shard_keys;
    let mut f = Found::default();
    for q in &n.queues {
        f.queues
            .entry(q.clone())
            .or_default()
            .extend(shard_keys(q, shards, cluster));
    }
    f.jobs
        .extend(n.jobs.iter().map(|j| shard_keys(j, 1, cluster).remove(0)));
    f.frontiers.extend(n.frontiers.iter().cloned());
    f.locks.extend(n.locks.iter().cloned());
    f
}

fn now_ms() -> u64 {
    crate::run::log::unix_time().as_millis() as u64
}
