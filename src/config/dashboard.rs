//! `qpipe dashboard`: where to serve, who may look, what to show, checked.

use super::cli::DashboardArgs;
use super::endpoint::endpoint;
pub use crate::dashboard::settings::{DashboardConfig, Named};
use crate::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

impl DashboardConfig {
    /// Validates the flags (and `QPIPE_DASHBOARD_AUTH`).
    pub fn from_args(a: DashboardArgs) -> Result<DashboardConfig, Error> {
        let usage = Error::Usage;
        let addr: SocketAddr = a.addr.parse().map_err(|_| {
            usage(format!(
                "--addr {:?} is not an address (use IP:PORT, e.g. 127.0.0.1:9181)",
                a.addr
            ))
        })?;
        let auth = match a
            .auth
            .or_else(|| std::env::var("QPIPE_DASHBOARD_AUTH").ok())
        {
            Some(s) if !s.is_empty() => Some(credentials(&s)?),
            _ => None,
        };
        if auth.is_none() && !addr.ip().is_loopback() {
            return Err(usage(format!(
                "--addr {addr} is reachable beyond this machine, so the dashboard needs --auth user:password (or QPIPE_DASHBOARD_AUTH); or serve on 127.0.0.1"
            )));
        }
        if !(1..=3600).contains(&a.every) {
            return Err(usage(format!(
                "--every {} is out of range (use 1 to 3600)",
                a.every
            )));
        }
        if !(10..=100_000).contains(&a.scan_count) {
            return Err(usage(format!(
                "--scan-count {} is out of range (use 10 to 100000)",
                a.scan_count
            )));
        }
        let redis = endpoint(a.redis, a.tls_ca)?;
        let named = Named {
            queues: a.key,
            jobs: a.jobs,
            frontiers: a.frontier,
            locks: a.lock,
        };
        let any = !(named.queues.is_empty()
            && named.jobs.is_empty()
            && named.frontiers.is_empty()
            && named.locks.is_empty());
        if !any && redis.is_cluster() {
            return Err(usage(
                "the dashboard cannot scan a Redis Cluster's keys from one node; name what to show with --key, --jobs, --frontier or --lock".into(),
            ));
        }
        if [&named.queues, &named.jobs, &named.frontiers, &named.locks]
            .iter()
            .any(|v| v.iter().any(String::is_empty))
        {
            return Err(usage(
                "--key, --jobs, --frontier and --lock need a name".into(),
            ));
        }
        if !(1..=1024).contains(&a.shards) {
            return Err(usage(format!(
                "--shards {} is out of range (use 1 to 1024)",
                a.shards
            )));
        }
        Ok(DashboardConfig {
            shards: a.shards,
            redis,
            addr,
            auth,
            read_only: a.read_only,
            named: any.then_some(named),
            every: Duration::from_secs(a.every),
            scan_count: a.scan_count,
        })
    }
}

/// `user:password`, both non-empty.
fn credentials(s: &str) -> Result<(String, String), Error> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() && !p.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err(Error::Usage(
            "--auth (or QPIPE_DASHBOARD_AUTH) must be user:password, both non-empty".into(),
        )),
    }
}
