//! `qpipe dashboard`: serves the fleet's page until a signal, then reports
//! what it served and did.

use crate::config::DashboardConfig;
use crate::dashboard::Board;
use crate::error::{Error, Exit};
use crate::run::signal::Signals;
use crate::run::summary::{Output, Summary};

/// Serves until SIGINT or SIGTERM.
pub fn run(cfg: &DashboardConfig, signals: &Signals) -> Result<Summary, Error> {
    let board = Board::new(cfg.clone())?;
    let t = board.serve(&signals.stop)?;
    let mut sum = Summary::new("dashboard", Exit::Ok);
    sum.output = Output::Stderr;
    sum.set("requests", t.requests)
        .set("requests_refused", t.refused)
        .set("samples", t.samples)
        .set("scan_calls", t.scan_calls)
        .set("dead_letters_requeued", t.requeued)
        .set("dead_letters_deleted", t.deleted);
    Ok(sum)
}
