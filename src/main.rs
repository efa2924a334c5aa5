//! qpipe: parse arguments, dispatch one subcommand, print the summary, exit.

//!
//! The tree follows the pipeline (the README's diagram; the code map is in
//! docs/contributing.md), top to bottom:
//! - `cmd/`: one file per subcommand, each `run(&Config, &Signals)`, wiring
//!   stages together;
//! - `config/`: the argh syntax (`cli`) validated once into each stage's
//!   settings type;
//! - `produce/`: fetcher threads -> bounded channel -> one Redis writer;
//! - `consume/`: popper threads (`BatchSource`s) -> one sink;
//! - `crawl/`: specs, spiders, fetching, politeness, frontiers;
//! - `queue/`: Redis: the reconnecting `Link`, lists, the lease, reliable
//!   batches, jobs, the lock, and the key registry (`keys`);
//! - `run/`: what every run shares: signals, logs, summaries, counters and
//!   their merge (`tally`), progress, back-off;
//! - `demo/`: the built-in demo sites; `error.rs`: errors and exit codes.

mod cmd;
mod config;
mod consume;
mod crawl;
mod dashboard;
mod demo;
mod error;
mod produce;
mod queue;
mod run;

use argh::FromArgs;
use config::cli::{Args, Command};
use config::{
    ConsumeConfig, DemoConfig, EnqueueConfig, ProduceConfig, PushConfig, StatusConfig, TryConfig,
};
use error::{Error, Exit};
use run::summary::{Output, Summary};
use run::{log, signal};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Every command logs through the facade, at the default level until a
    // command sets its own.
    log::set_verbosity(0);
    let argv: Vec<String> = std::env::args().collect();
    // Known before argh runs, so even a usage error is a JSON line.
    if argv
        .windows(2)
        .any(|w| w[0] == "--log-format" && w[1] == "json")
    {
        let _ = log::set_format(Some("json"));
    }
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    // `qpipe bench` measures memory for development; it stays out of --help.
    if strs.get(1) == Some(&"bench") {
        let code = match cmd::bench::run(&strs[2..]) {
            Ok(sum) => finish(sum, None),
            Err(e) => {
                log::fatal(&e.to_string());
                signal::exit_of(&e)
            }
        };
        return ExitCode::from(code as u8);
    }
    // Hidden from --help (argh cannot hide a subcommand): bench.sh's parse floor.
    if strs.get(1) == Some(&"bench-parse") {
        return bench_parse(&strs[2..]);
    }
    let strs = config::cli::stdin_dashes(strs.get(1..).unwrap_or(&[]));
    let args = match Args::from_args(&["qpipe"], &strs) {
        Ok(a) => a,
        Err(early) => {
            // argh would exit 1 on bad usage; qpipe documents 2.
            return match early.status {
                Ok(()) => {
                    log::out(&format!("{}\n", early.output));
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    log::fatal(&format!("{} (see qpipe --help)", early.output.trim()));
                    ExitCode::from(Exit::Usage as u8)
                }
            };
        }
    };
    let (result, stats_json) = dispatch(args);
    let code = match result {
        Ok(sum) => finish(sum, stats_json.as_deref()),
        Err(e) => {
            log::fatal(&e.to_string());
            signal::exit_of(&e)
        }
    };
    ExitCode::from(code as u8)
}

/// `qpipe bench-parse`: parses its own arguments and exits 0, 1 or 2.
fn bench_parse(args: &[&str]) -> ExitCode {
    match config::cli::BenchParseArgs::from_args(&["qpipe bench-parse"], args) {
        Ok(a) => match cmd::bench_parse::run(&a) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log::fatal(&e.to_string());
                ExitCode::from(signal::exit_of(&e) as u8)
            }
        },
        Err(early) if early.status.is_ok() => {
            log::out(&format!("{}\n", early.output));
            ExitCode::SUCCESS
        }
        Err(early) => {
            log::fatal(early.output.trim());
            ExitCode::from(Exit::Usage as u8)
        }
    }
}

/// Validates the subcommand's arguments and runs it.
fn dispatch(args: Args) -> (Result<Summary, Error>, Option<String>) {
    let signals = match signal::install() {
        Ok(s) => s,
        Err(e) => return (Err(e), None),
    };
    name_clients(&args.cmd);
    match args.cmd {
        Command::Produce(a) => produce(a, &signals),
        Command::Consume(a) => consume(a, &signals),
        Command::Push(a) => push(a, &signals),
        Command::Enqueue(a) => {
            log::set_verbosity(verbosity(a.quiet, false));
            let stats = a.stats_json.clone();
            let r = EnqueueConfig::from_args(a).and_then(|c| cmd::enqueue::run(&c, &signals));
            (r, stats)
        }
        Command::Recover(a) => {
            let stats = a.stats_json.clone();
            let r = config::RedisTarget::new(a.redis, a.tls_ca, a.key, a.shards)
                .and_then(|c| cmd::recover::run(&c, &signals));
            (r, stats)
        }
        Command::Spec(a) => (spec(a, &signals), None),
        Command::Status(a) => {
            let r = config::RedisTarget::new(a.redis, a.tls_ca, a.key, a.shards)
                .map(|t| StatusConfig {
                    keys: a.keys,
                    ..StatusConfig::new(t, a.seen_key, a.lock, a.jobs, a.json)
                })
                .and_then(|c| cmd::status::run(&c, &signals));
            (r, None)
        }
        Command::Dead(a) => {
            let stats = a.stats_json.clone();
            let r = config::DeadConfig::from_args(a).and_then(|c| cmd::dead::run(&c, &signals));
            (r, stats)
        }
        Command::Peek(a) => {
            let r = config::RedisTarget::new(a.redis, a.tls_ca, a.key, a.shards)
                .map(|t| StatusConfig::new(t, None, None, None, false))
                .and_then(|c| cmd::status::peek(&c, a.count, &signals));
            (r, None)
        }
        Command::DemoSite(a) => {
            let r = DemoConfig::from_args(a).and_then(|c| cmd::demo_site::run(&c, &signals));
            (r, None)
        }
        Command::Dashboard(a) => {
            let r = config::DashboardConfig::from_args(a)
                .and_then(|c| cmd::dashboard::run(&c, &signals));
            (r, None)
        }
    }
}

/// Names this process's Redis connections after the subcommand.
fn name_clients(cmd: &Command) {
    let name = match cmd {
        Command::Produce(_) => "produce",
        Command::Consume(_) => "consume",
        Command::Push(_) => "push",
        Command::Enqueue(_) => "enqueue",
        Command::Recover(_) => "recover",
        Command::Status(_) => "status",
        Command::Spec(_) => "spec",
        Command::Peek(_) => "peek",
        Command::Dead(_) => "dead",
        Command::DemoSite(_) => "demo-site",
        Command::Dashboard(_) => "dashboard",
    };
    queue::conn::name_clients(name);
}

/// `qpipe produce`: sets up logging, then crawls under the `--lock`, if any.
fn produce(
    a: config::cli::ProduceArgs,
    signals: &signal::Signals,
) -> (Result<Summary, Error>, Option<String>) {
    let logs = (a.log_format.clone(), verbosity(a.quiet, a.verbose));
    let stats = a.stats_json.clone();
    let r = logged(logs, || {
        let c = ProduceConfig::from_args(a)?;
        produce::parsing::set(c.max_parse_bytes);
        let lock = c.limits.lock.as_ref();
        cmd::locked::run(&c.writer.redis, lock, &signals.stop, || {
            cmd::produce::run(&c, signals)
        })
    });
    (r, stats)
}

/// `qpipe consume`: sets up logging, then consumes under the `--lock`, if any.
fn consume(
    a: config::cli::ConsumeArgs,
    signals: &signal::Signals,
) -> (Result<Summary, Error>, Option<String>) {
    let logs = (a.log_format.clone(), verbosity(a.quiet, a.verbose));
    let stats = a.stats_json.clone();
    let r = logged(logs, || {
        let c = ConsumeConfig::from_args(a)?;
        cmd::locked::run(&c.redis, c.limits.lock.as_ref(), &signals.stop, || {
            cmd::consume::run(&c, signals)
        })
    });
    (r, stats)
}

/// `qpipe push`: sets up logging, then pushes.
fn push(
    a: config::cli::PushArgs,
    signals: &signal::Signals,
) -> (Result<Summary, Error>, Option<String>) {
    let logs = (a.log_format.clone(), verbosity(a.quiet, false));
    let stats = a.stats_json.clone();
    let r = logged(logs, || {
        PushConfig::from_args(a).and_then(|c| cmd::push::run(&c, signals))
    });
    (r, stats)
}

/// Sets the log format (a bad one is the command's error) and verbosity,
/// then runs the command.
fn logged(
    (format, verbosity): (Option<String>, i8),
    run: impl FnOnce() -> Result<Summary, Error>,
) -> Result<Summary, Error> {
    log::set_format(format.as_deref())?;
    log::set_verbosity(verbosity);
    run()
}

fn verbosity(quiet: bool, verbose: bool) -> i8 {
    i8::from(verbose) - i8::from(quiet)
}

/// Prints the summary (stderr, and JSON if asked) and picks the exit code.
fn finish(sum: Summary, stats_json: Option<&str>) -> Exit {
    match sum.output {
        Output::Stderr => log::summary(&sum.human(), &sum.json_line()),
        Output::Stdout => log::out(&sum.human()),
        Output::StdoutJson => log::out(&format!("{}\n", sum.json_line())),
        Output::Silent => {}
    }
    let mut exit = sum.exit;
    if let Some(dest) = stats_json {
        if let Err(e) = sum.append_json(dest) {
            log::fatal(&e.to_string());
            exit = Exit::Fatal;
        }
    }
    if let Some(e) = &sum.failure {
        log::fatal(&e.to_string());
        exit = signal::exit_of(e);
    }
    exit
}

/// `qpipe spec`: `--print`, `--check FILE`, `--try URL` or `--diff OLD NEW`
/// with their companions.
fn spec(a: config::cli::SpecArgs, signals: &signal::Signals) -> Result<Summary, Error> {
    let companions = a.spec.is_some() || a.origin.is_some() || !a.header.is_empty();
    let modes = [a.print, a.check.is_some(), a.try_url.is_some(), a.diff];
    if modes.iter().filter(|m| **m).count() > 1 {
        return Err(Error::Usage(
            "give one of --print, --check FILE, --try URL or --diff OLD NEW (see qpipe spec --help)"
                .into(),
        ));
    }
    if !a.diff && !a.files.is_empty() {
        return Err(Error::Usage(format!(
            "unexpected argument {:?} (spec files go with --diff OLD NEW, or --check FILE)",
            a.files[0]
        )));
    }
    if a.diff {
        let (Some(dir), [old, new]) = (a.http_cache.as_deref(), a.files.as_slice()) else {
            return Err(Error::Usage(
                "--diff needs two spec files and a cache: qpipe spec --diff OLD.json NEW.json --http-cache DIR".into(),
            ));
        };
        if a.try_url.is_some() || !a.header.is_empty() || a.proxy.is_some() || a.spec.is_some() {
            return Err(Error::Usage(
                "--diff reads pages from --http-cache only; --spec, --header and --proxy do not apply".into(),
            ));
        }
        return cmd::spec_diff::run(&config::DiffConfig::new(
            old,
            new,
            dir,
            a.origin.as_deref(),
            a.examples,
        )?);
    }
    let cache_given = a.http_cache.is_some() || a.http_cache_mode != "use";
    match a.try_url {
        Some(url) => TryConfig::new(
            &url,
            a.spec.as_deref(),
            a.origin.as_deref(),
            &a.header,
            a.proxy.as_deref(),
            config::cache_config(a.http_cache.as_deref(), &a.http_cache_mode, 0)?,
        )
        .and_then(|c| cmd::try_page::run(&c, signals)),
        None if companions || a.proxy.is_some() || cache_given => Err(Error::Usage(
            "--spec, --origin, --header, --proxy and --http-cache go with --try URL (see qpipe spec --help)"
                .into(),
        )),
        None => cmd::spec::run(a.print, a.check.as_deref()),
    }
}
