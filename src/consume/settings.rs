//! Settings of the consume stage, validated once by `config`.

use crate::queue::conn::Endpoint;
use crate::run::settings::{MonitorConfig, RunLimits};
use std::path::PathBuf;
use std::time::Duration;

/// `qpipe consume`.
#[derive(Debug, Clone)]
pub struct ConsumeConfig {
    /// Popping threads.
    pub threads: usize,
    /// Where Redis is.
    pub redis: Endpoint,
    /// The list key.
    pub key: String,
    /// Output file; `None` is stdout (unless `deliver` is set).
    pub out: Option<PathBuf>,
    /// `--format csv`: the fields of each row, in order.
    pub csv: Option<Vec<String>>,
    /// Part files, when `--out` is a name template.
    pub parts: Option<crate::consume::sink::parts::PartsConfig>,
    /// A command or endpoint that takes each batch instead (`--exec`, `--post`).
    pub deliver: Option<DeliverConfig>,
    /// Idle time that ends the run; `None` runs until a signal.
    pub drain_after: Option<Duration>,
    /// Item budget.
    pub max_items: Option<u64>,
    /// Most items per pop.
    pub batch_size: usize,
    /// Most bytes per pop (one larger item still comes alone).
    pub batch_bytes: usize,
    /// fsync the file after each batch.
    pub fsync: bool,
    /// How long to keep reconnecting in an outage.
    pub retry_for: Duration,
    /// At-least-once mode: BLMOVE into processing lists, ack after commit.
    pub reliable: bool,
    /// Seconds a reliable worker's heartbeat lives.
    pub heartbeat_ttl: u64,
    /// Lists the queue is split into (`--shards`).
    pub shards: usize,
    /// Lock, time budget, failure threshold.
    pub limits: RunLimits,
    /// `--metrics` and `--stats-every`.
    pub monitor: MonitorConfig,
}

/// Where batches go.
#[derive(Debug, Clone)]
pub enum To {
    /// `sh -c CMD`, the batch on its stdin.
    Exec(String),
    /// An HTTP POST of the batch as NDJSON.
    Post {
        /// The endpoint.
        url: String,
        /// Extra request headers (`--header`).
        headers: Vec<(String, String)>,
        /// Send the body gzipped (`Content-Encoding: gzip`).
        gzip: bool,
    },
}

/// The settings of a delivering sink.
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// Where batches go.
    pub to: To,
    /// Retries after a failed attempt (`--sink-retries`).
    pub retries: u32,
    /// Most time one attempt may take (`--sink-timeout`).
    pub timeout: Duration,
}

impl DeliverConfig {
    /// How the destination is named in messages (no header values).
    pub fn name(&self) -> String {
        match &self.to {
            To::Exec(cmd) => format!("--exec {cmd:?}"),
            // Only where it goes: credentials and query strings (tokens,
            // signatures) stay out of messages.
            To::Post { url, .. } => match url::Url::parse(url) {
                Ok(u) => format!(
                    "--post {}://{}{}{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port().map_or(String::new(), |p| format!(":{p}")),
                    u.path()
                ),
                Err(_) => "--post <url>".into(),
            },
        }
    }
}
