//! Settings every run shares, validated once by `config`: the run lock,
//! the time budget and failure threshold, and how a run is watched.

use std::net::SocketAddr;
use std::time::Duration;

/// `--lock`: a Redis lock held for the whole run.
#[derive(Debug, Clone)]
pub struct LockConfig {
    /// The lock's name (key `qpipe:lock:<name>`).
    pub name: String,
    /// Its time to live without renewal.
    pub ttl: Duration,
}

/// Batch-job controls shared by `produce` and `consume`.
#[derive(Debug, Clone)]
pub struct RunLimits {
    /// The run lock, if any.
    pub lock: Option<LockConfig>,
    /// Wall-clock budget for the run.
    pub max_time: Option<Duration>,
    /// Failures (pages or dead items) that make the exit code 3; 0 never.
    pub fail_on_errors: u64,
}

/// How a long run can be watched while it goes.
#[derive(Debug, Clone, Default)]
pub struct MonitorConfig {
    /// Serve `/metrics` and `/healthz` here (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// Log a line of counters this often (`--stats-every`); `None` never.
    pub stats_every: Option<Duration>,
}
