//! What every run shares: signals (`signal`), log lines (`log`), the
//! end-of-run summary (`summary`), the live progress line (`progress`) and
//! retry back-off (`backoff`).

pub mod backoff;
pub mod log;
pub mod progress;
pub mod signal;
pub mod summary;
