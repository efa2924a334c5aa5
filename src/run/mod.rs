//! What every run shares: signals (`signal`), log lines (`log`), the
//! end-of-run summary (`summary`), the live progress line (`progress`),
//! live counters (`counters`) and their `--metrics` endpoint (`metrics`),
//! the small HTTP/1.1 server side (`http`), retry back-off (`backoff`) and
//! the renew-every-third loop (`renewal`) and the run lock's fence (`fence`).

pub mod backoff;
pub mod counters;
pub mod fence;
pub mod http;
pub mod log;
pub mod metrics;
pub mod monitor;
pub mod progress;
pub mod renewal;
pub mod settings;
pub mod signal;
pub mod summary;
pub mod tally;
