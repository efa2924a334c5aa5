//! What every run shares: signals (`signal`), log lines (`log`), the
//! end-of-run summary (`summary`), the live progress line (`progress`),
//! retry back-off (`backoff`) and the renew-every-third loop (`renewal`).

pub mod backoff;
pub mod log;
pub mod progress;
pub mod renewal;
pub mod signal;
pub mod summary;
