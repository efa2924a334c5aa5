//! What a `consume` run did, and the summary it makes.

use super::popper::{PopStats, Shared};
use super::settings::ConsumeConfig;
use super::sink::Drained;
use crate::error::Error;
use crate::run::signal::Signals;
use crate::run::summary::{Finish, Summary};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What the run learnt after its threads ended.
pub struct End {
    /// Redis connections made again.
    pub reconnects: u64,
    /// Items of dead consumers put back at start.
    pub recovered: u64,
    /// Items put back at exit.
    pub returned: u64,
    /// When the run started.
    pub started: Instant,
}

/// The run's summary: why it ended, its exit code, and its counts.
pub fn summarize(
    cfg: &ConsumeConfig,
    signals: &Signals,
    shared: Shared<'_>,
    pops: PopStats,
    drained: Drained,
    end: End,
) -> Summary {
    // A sink stopped by a signal (a try abandoned, a retry not made) is a
    // stop like any other: its batch went back.
    let sink_error = drained
        .error
        .filter(|e| !(e.kind() == std::io::ErrorKind::Interrupted && signals.exit().is_some()));
    let failure = failure_of(cfg, &shared, drained.ack_error, sink_error, end.returned);
    let reason = if let Some(f) = &failure {
        match f {
            Error::Redis { .. } => Finish::RedisUnavailable,
            Error::Internal(_) => Finish::InternalError,
            _ => Finish::Error,
        }
    } else if signals.exit().is_some() {
        Finish::Stopped
    } else if shared.drained.load(Ordering::Relaxed) {
        Finish::Drained
    } else if shared.timed_out.load(Ordering::Relaxed) {
        Finish::MaxTime
    } else {
        Finish::MaxItems
    };
    // Without --drain a signal is the normal way to stop, so it is a success.
    let exit = match (signals.exit(), cfg.drain_after) {
        (Some(code), Some(_)) => code,
        _ => cfg.limits.exit_for(pops.dead),
    };
    let mut sum = Summary::new("consume", exit);
    sum.finish(reason)
        .set("mode", if cfg.reliable { "reliable" } else { "brpop" })
        .set("redis", crate::error::redact(&cfg.redis.url))
        .set("key", cfg.key.as_str())
        .set("items_popped", pops.popped)
        .set("items_written", drained.written)
        .set("items_dead", pops.dead)
        .set("items_reformatted", pops.reformatted)
        .set("items_returned_to_queue", end.returned + pops.returned)
        .set(
            "items_recovered",
            end.recovered + shared.recovered.load(Ordering::Relaxed),
        )
        .set("ack_failures", drained.ack_failures)
        .set("redis_reconnects", end.reconnects);
    if let Some(d) = &cfg.deliver {
        sum.set("sink", d.name())
            .set("sink_retries", drained.sink_retries);
    }
    if let Some((published, failed)) = drained.parts {
        sum.set("parts_published", published)
            .set("parts_publish_failed", failed);
    }
    sum.rates(end.started.elapsed(), &[("items", drained.written)]);
    // Throughput without the trailing --idle-timeout wait: start to last commit.
    let active = drained
        .last_commit
        .map_or(Duration::ZERO, |t| t - end.started);
    sum.set("active_secs", active.as_secs_f64()).set(
        "items_per_active_sec",
        (drained.written as f64 / active.as_secs_f64().max(0.001)).round(),
    );
    sum.failure = failure;
    sum
}

/// The failure that ended the run: the sink's (naming what went back) over
/// an acknowledgement's over the first thread's.
fn failure_of(
    cfg: &ConsumeConfig,
    shared: &Shared<'_>,
    ack_error: Option<Error>,
    sink_error: Option<std::io::Error>,
    returned: u64,
) -> Option<Error> {
    let mut failure = shared.failure.lock().ok().and_then(|mut f| f.take());
    if let Some(e) = ack_error {
        failure = failure.or(Some(e));
    }
    if let Some(e) = sink_error {
        let out = match (&cfg.parts, &cfg.out) {
            (Some(p), _) => format!("the part files {}", p.template.display()),
            (None, Some(p)) => p.display().to_string(),
            (None, None) => "stdout".into(),
        };
        let held = match cfg.reliable {
            true => format!(
                "{returned} items not committed were put back on {}",
                cfg.key
            ),
            false => format!("{returned} popped items were put back on {}", cfg.key),
        };
        failure = Some(match &cfg.deliver {
            // The cause names the command or endpoint.
            Some(_) => Error::io(format!("cannot deliver a batch ({held})"), e),
            None => Error::io(format!("cannot write to {out} ({held})"), e),
        });
    }
    failure
}
