//! `qpipe dashboard`'s settings (validated from its flags in
//! `config::dashboard`).

use crate::queue::conn::Endpoint;
use std::net::SocketAddr;
use std::time::Duration;

/// `qpipe dashboard`'s settings.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// Where Redis is.
    pub redis: Endpoint,
    /// Where to serve.
    pub addr: SocketAddr,
    /// HTTP Basic credentials (`user`, `password`), if required.
    pub auth: Option<(String, String)>,
    /// No re-queue or delete.
    pub read_only: bool,
    /// What to show, if named; `None`: what SCAN finds.
    pub named: Option<Named>,
    /// Lists each named queue is split into.
    pub shards: usize,
    /// Time between samples.
    pub every: Duration,
    /// SCAN's COUNT.
    pub scan_count: u64,
}

/// Structures named on the command line.
#[derive(Debug, Clone, Default)]
pub struct Named {
    pub queues: Vec<String>,
    pub jobs: Vec<String>,
    pub frontiers: Vec<String>,
    pub locks: Vec<String>,
}
