//! Subcommands: one file each, each `run(&Config, &Signals) -> Result<Summary, Error>`.

pub mod bench;
pub mod bench_parse;
pub mod consume;
pub mod dashboard;
pub mod dead;
pub mod demo_site;
pub mod enqueue;
pub mod locked;
pub mod produce;
pub mod push;
pub mod recover;
pub mod spec;
pub mod spec_diff;
pub mod status;
pub mod try_page;
