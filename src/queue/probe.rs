//! The `--metrics` endpoint's own Redis connection: reads the queue length
//! at each scrape and proves Redis answers, never hanging on a stuck one.

use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::link::Link;
use crate::run::metrics::Levels;
use std::time::Duration;

/// Socket timeout of the probe's Redis connection: connect plus one round
/// trip stay around a second, so a scrape never hangs on a stuck Redis.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The metrics thread's own Redis connection: reads the queue length and
/// proves Redis answers.
pub struct Probe {
    link: Link,
    keys: Vec<String>,
}

impl Probe {
    /// A connection with a short timeout that never retries; if Redis is
    /// down now, the first scrape connects.
    pub fn new(ep: &Endpoint, keys: &[String]) -> Result<Probe, Error> {
        let link = match Link::open(ep, PROBE_TIMEOUT, Duration::ZERO, None) {
            Ok(link) => link,
            Err(_) => Link::lazy(ep, PROBE_TIMEOUT, Duration::ZERO, None)?,
        };
        Ok(Probe {
            link,
            keys: keys.to_vec(),
        })
    }

    /// As a `run::monitor::QueueLength`.
    pub fn boxed(
        ep: &Endpoint,
        keys: &[String],
    ) -> Result<crate::run::monitor::QueueLength, Error> {
        let mut probe = Probe::new(ep, keys)?;
        Ok(Box::new(move || probe.levels()))
    }

    /// The queue length and the dead letters (every shard), in one round
    /// trip, or `None` if Redis did not answer.
    pub fn levels(&mut self) -> Option<Levels> {
        let cmds: Vec<redis::Cmd> = self
            .keys
            .iter()
            .flat_map(|k| [k.clone(), crate::queue::keys::dead(k)])
            .map(|k| redis::cmd("LLEN").arg(k).clone())
            .collect();
        let replies = self.link.attempt_all(&cmds).ok()?;
        let lens: Vec<u64> = replies
            .into_iter()
            .map(|v| redis::from_redis_value::<u64>(v).ok())
            .collect::<Option<_>>()?;
        Some(Levels {
            queue: lens.iter().step_by(2).sum(),
            dead: lens.iter().skip(1).step_by(2).sum(),
        })
    }
}
