//! One reconnecting Redis connection, used by every thread that talks to
//! Redis: the writer, the poppers, the heartbeat, the sink's acknowledgements,
//! the run lock, the shared frontier, `status` and the progress line.
//!
//! A `Link` reconnects with the shared back-off, honours `--redis-retry-secs`
//! (the budget runs from the first failure of an outage and is reset by any
//! success), gives up at once when the stop flag is raised, and tells a lost
//! connection (retry) from a refusal that may pass (OOM, LOADING, BUSY,
//! TRYAGAIN, CLUSTERDOWN, MASTERDOWN, NOREPLICAS: retry) from a command error that will
//! not go away (WRONGTYPE, READONLY, NOPERM, ...: end the run).
//!
//! Callers decide what a retry means: `call` is for commands that are safe
//! to repeat; for the others, `attempt` runs once and says whether the reply
//! was lost, and `recover` waits out the outage.
//!
//! A command whose reply timed out may still be in a socket that hangs (a
//! partition, a stopped server) and reach Redis after the retry. Scripts
//! that must not apply late start with `FENCE` and run through `fenced`:
//! each carries a deadline in Redis's own clock (the socket timeout from
//! now, and never past the run lock's fence), and Redis refuses it after
//! that. So once a reply has timed out, the command either ran before its
//! deadline or never will.

use crate::error::{code, redact, Error};
use crate::queue::conn::{self, Conn, Endpoint, Target};
use crate::run::backoff::Backoff;
use crate::run::counters::REDIS;
use crate::run::log;
use redis::{ConnectionLike, RedisError, RedisResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first lines of every fenced script: takes the deadline (Redis
/// milliseconds) off the end of ARGV and refuses to run past it. Nothing of
/// the script has run when it refuses (`QPIPELATE`, a refusal: retried).
/// A user whose ACL denies `TIME` gets no fence (qpipe warns at connect).
pub const FENCE: &str = r"
local qpipe_until = tonumber(table.remove(ARGV))
local qpipe_now = redis.pcall('TIME')
if not qpipe_now.err and qpipe_now[1] * 1000 + math.floor(qpipe_now[2] / 1000) > qpipe_until then
  return redis.error_reply('QPIPELATE the command reached Redis after its deadline and did nothing')
end
";

/// How often a link reads Redis's clock again (clocks drift; NTP steps them).
const SKEW_EVERY: Duration = Duration::from_secs(60);

/// Why one attempt failed.
#[derive(Debug)]
pub enum Fault {
    /// No connection could be made: the command did not run.
    Unreachable(RedisError),
    /// The connection failed: the command may or may not have run.
    Lost(RedisError),
    /// Redis refused to run the command for now; it did not run.
    Refused(RedisError),
    /// Retrying will not help (wrong key type, read-only replica, ACL, ...).
    Permanent(RedisError),
}

impl Fault {
    /// The error behind the fault.
    pub fn error(&self) -> &RedisError {
        match self {
            Fault::Unreachable(e) | Fault::Lost(e) | Fault::Refused(e) | Fault::Permanent(e) => e,
        }
    }

    /// Like `classify`, for a master found through Sentinel: a node that
    /// became a replica (`READONLY`, or `UNBLOCKED` for a blocked pop) did
    /// not run the command, and a fresh connection asks the sentinels for
    /// the new master.
    pub fn classify_for(e: RedisError, sentinel: bool) -> Fault {
        match code(&e).as_deref() {
            Some("READONLY" | "UNBLOCKED" | "NOREPLICAS") if sentinel => Fault::Refused(e),
            _ => Fault::classify(e),
        }
    }

    /// Sorts a Redis error into lost, refused-for-now, or permanent.
    pub fn classify(e: RedisError) -> Fault {
        match code(&e).as_deref() {
            Some(
                "OOM" | "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN"
                | "NOREPLICAS" | "QPIPELATE",
            ) => Fault::Refused(e),
            // The node did not run it: the slot moved (a failover, a
            // reshard). Retried on a fresh connection, with a fresh slot map.
            Some("MOVED" | "ASK") => Fault::Refused(e),
            // Refused at connect: nothing was sent (the cluster client
            // reconnects to a node inside a call and reports it this way).
            _ if e.is_connection_refusal() => Fault::Unreachable(e),
            Some(_) => Fault::Permanent(e),
            // A reply cut off or garbled mid-stream (a killed connection):
            // the stream is broken, not the command. (A port that does not
            // speak Redis at all fails the same way at start-up, where there
            // is no retry budget, and is named as such.)
            None if e.is_io_error()
                || e.kind() == redis::ErrorKind::Parse
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
                || e.kind() == redis::ErrorKind::ClusterConnectionNotFound =>
            {
                Fault::Lost(e)
            }
            // Client-side errors (bad config, a reply of the wrong shape, a
            // command the connection cannot send) do not go away by retrying.
            None => Fault::Permanent(e),
        }
    }
}

/// An outage in progress: when it began and how long to wait next.
struct Outage {
    since: Instant,
    backoff: Backoff,
}

/// A Redis connection that survives outages. Owned by one thread.
pub struct Link {
    target: Target,
    url: String,
    con: Option<Conn>,
    /// Redis's clock (Unix ms) when it was last read, and that moment on
    /// our monotonic clock.
    skew: (i64, Instant),
    /// The deadline (our clock) of the last fenced command whose reply was
    /// lost: until then it may still land.
    late: Option<Instant>,
    timeout: Duration,
    retry_for: Duration,
    stop: Option<Arc<AtomicBool>>,
    outage: Option<Outage>,
    /// The list this link serves, named in wrong-type errors.
    key: Option<String>,
    /// Every shard of that list, to say which live on a lost cluster node.
    shards: Vec<String>,
    /// Reconnections made.
    pub reconnects: u64,
    /// Behind Sentinel: the master this connection reached, as named then.
    master: Option<(String, u16)>,
}

impl Link {
    /// Connects now; failing to reach Redis at start is an error at once
    /// (a cron run should not wait `retry_for` for a typo in `--redis`).
    /// `timeout` is the socket read/write timeout; `stop` ends retries early.
    pub fn open(
        ep: &Endpoint,
        timeout: Duration,
        retry_for: Duration,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Link, Error> {
        let mut link = Link::lazy(ep, timeout, retry_for, stop)?;
        let mut dropped = 0;
        let opened = loop {
            match conn::connect(&link.target, timeout) {
                Ok(c) => break c,
                // Dropped mid-handshake (a CLIENT KILL, a proxy restarting):
                // Redis was there, so this is not the typo the rule is for.
                Err(e) if e.is_connection_dropped() && dropped < 3 => {
                    dropped += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(Error::redis("cannot reach Redis", &ep.url, &e)),
            }
        };
        link.skew = redis_clock(opened.skew_ms);
        link.master = opened.master;
        link.con = Some(opened.con);
        Ok(link)
    }

    /// A link that connects on first use, so an outage at that moment is
    /// retried like any other (for pools that grow while running).
    pub fn lazy(
        ep: &Endpoint,
        timeout: Duration,
        retry_for: Duration,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Link, Error> {
        Ok(Link {
            target: conn::target(ep)?,
            url: ep.url.clone(),
            con: None,
            skew: redis_clock(0),
            late: None,
            timeout,
            retry_for,
            stop,
            outage: None,
            key: None,
            shards: Vec::new(),
            reconnects: 0,
            master: None,
        })
    }

    /// Sets how long an outage is retried, and the flag that ends retries early.
    pub fn retrying(mut self, retry_for: Duration, stop: Option<Arc<AtomicBool>>) -> Link {
        self.retry_for = retry_for;
        self.stop = stop;
        self
    }

    /// Names the list this link serves, for wrong-type errors.
    pub fn for_key(mut self, key: &str) -> Link {
        self.key = Some(key.to_string());
        self
    }

    /// Names every shard of the list, so losing a cluster node is reported
    /// with the shards that node held.
    pub fn with_shards(mut self, shards: &[String]) -> Link {
        self.shards = shards.to_vec();
        self
    }

    /// The URL with any password hidden.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }

    /// Ends the outage in progress: the operation that was failing has
    /// succeeded. A command that merely answered (a read between two failed
    /// writes) must not reset the retry budget, so `attempt` leaves this to
    /// its caller.
    pub fn settled(&mut self) {
        if let Some(o) = self.outage.take() {
            log::info(&format!(
                "Redis at {} answers again after {:.1}s",
                self.redacted_url(),
                o.since.elapsed().as_secs_f64()
            ));
        }
    }

    /// Runs `f` once. A lost connection is dropped, so the next attempt
    /// reconnects. Call `settled` once the whole operation has succeeded.
    pub fn attempt<T>(&mut self, f: impl FnOnce(&mut Conn) -> RedisResult<T>) -> Result<T, Fault> {
        self.attempt_at(|c, _| f(c))
    }

    /// Runs a script that starts with `FENCE` once: `build` writes the
    /// command (its ARGV last), and the deadline is added after it.
    pub fn fenced<T: redis::FromRedisValue>(
        &mut self,
        build: impl FnOnce() -> redis::Cmd,
    ) -> Result<T, Fault> {
        self.attempt_at(|c, deadline| {
            let mut cmd = build();
            cmd.arg(deadline);
            cmd.query(c)
        })
    }

    /// Runs `cmds` once, in one round trip where the server allows
    /// (`conn::run_all`: bounded by one socket timeout in all).
    pub fn attempt_all(&mut self, cmds: &[redis::Cmd]) -> Result<Vec<redis::Value>, Fault> {
        let timeout = self.timeout;
        self.attempt(|c| conn::run_all(c, cmds, timeout))
    }

    /// `attempt_all` until it succeeds, like `call`: only for commands that
    /// are safe to run twice.
    pub fn call_all(
        &mut self,
        what: &str,
        cmds: &[redis::Cmd],
    ) -> Result<Vec<redis::Value>, Error> {
        let timeout = self.timeout;
        self.call(what, |c| conn::run_all(c, cmds, timeout))
    }

    /// Like `attempt`, and hands `f` the deadline, in Redis's clock, for a
    /// command sent now: a little under the socket timeout from now (so it
    /// has passed in Redis when the reply is given up on), and never past
    /// the run lock's fence.
    fn attempt_at<T>(
        &mut self,
        f: impl FnOnce(&mut Conn, u64) -> RedisResult<T>,
    ) -> Result<T, Fault> {
        let con = match &mut self.con {
            Some(c) => c,
            None => {
                let opened =
                    conn::connect(&self.target, self.timeout).map_err(Fault::Unreachable)?;
                self.reconnects += 1;
                REDIS.reconnects.fetch_add(1, Ordering::Relaxed);
                self.skew = redis_clock(opened.skew_ms);
                self.master = opened.master;
                self.con.insert(opened.con)
            }
        };
        if self.skew.1.elapsed() >= SKEW_EVERY {
            match conn::read_skew(con) {
                Ok(ms) => self.skew = redis_clock(ms),
                // No answer: the command would wait another timeout.
                Err(e) if e.code().is_none() => {
                    self.con = None;
                    return Err(Fault::Lost(e));
                }
                Err(_) => self.skew.1 = Instant::now(),
            }
        }
        let margin = (self.timeout / 10).min(Duration::from_millis(250));
        let mut ahead = self.timeout - margin;
        let mut fence_passed = false;
        if let Some(left) = crate::run::fence::left() {
            ahead = ahead.min(left);
            fence_passed = left.is_zero();
        }
        // Redis's clock now: its TIME when last read, plus the monotonic
        // time since, so a step of this machine's wall clock moves nothing.
        let redis_now = self.skew.0 + self.skew.1.elapsed().as_millis() as i64;
        // Past the run lock's fence nothing may apply: a deadline long gone.
        let deadline = match fence_passed {
            true => 0,
            false => (redis_now + ahead.as_millis() as i64).max(0) as u64,
        };
        // The same moment on our clock, with room for an error in the skew.
        let late = Instant::now() + ahead + Duration::from_millis(50);
        let sentinel = matches!(self.target, Target::Sentinel(_));
        match f(con, deadline).map_err(|e| Fault::classify_for(e, sentinel)) {
            Ok(v) => {
                REDIS.answered();
                Ok(v)
            }
            Err(fault) => {
                if matches!(fault, Fault::Lost(_)) {
                    self.late = Some(late);
                }
                // A cluster connection also holds the slot map: after a node
                // is refused, a fresh one asks the live nodes who serves what
                // now (a promoted replica, say).
                // A master found through Sentinel that became a replica:
                // a fresh connection asks the sentinels for the new one.
                let moved = matches!(
                    code(fault.error()).as_deref(),
                    Some("MOVED" | "ASK" | "READONLY" | "UNBLOCKED" | "NOREPLICAS")
                );
                if moved
                    || matches!(fault, Fault::Lost(_) | Fault::Unreachable(_))
                    || !con.is_open()
                {
                    self.con = None;
                }
                Err(fault)
            }
        }
    }

    /// Acknowledges what this connection just wrote to `key` only once it
    /// will survive a failover: on a cluster, once a replica has it (if the
    /// master has any); behind Sentinel, once a replica has it, or, with no
    /// replica connected, once the sentinels still name this node as the
    /// master. (A master that hung through a failover comes back a master
    /// with no replica, until the sentinels demote it and drop its writes.)
    pub fn replicate(&mut self, key: &str) -> Result<(), Fault> {
        if !matches!(self.target, Target::Sentinel(_)) {
            return self.attempt(|c| conn::replicate(c, key));
        }
        if self.attempt(|c| conn::replicas(c, key))? > 0 {
            return self.attempt(|c| conn::wait_replica(c, key));
        }
        let Target::Sentinel(s) = &self.target else {
            return Ok(());
        };
        let named = s.master_addr(self.timeout).map_err(Fault::Lost)?;
        if self.master.as_ref() == Some(&named) {
            return Ok(());
        }
        self.con = None;
        Err(Fault::Lost(RedisError::from(std::io::Error::other(
            format!(
                "this node is no longer the master: the sentinels name {}:{}",
                named.0, named.1
            ),
        ))))
    }

    /// `replicate` until it succeeds, like `call` (it only waits).
    pub fn call_replicated(&mut self, what: &str, key: &str) -> Result<(), Error> {
        if !matches!(self.target, Target::Sentinel(_) | Target::Cluster(_)) {
            return Ok(());
        }
        let outer = self.outage.is_some();
        loop {
            match self.replicate(key) {
                Ok(()) => {
                    if !outer {
                        self.settled();
                    }
                    return Ok(());
                }
                Err(fault) => self.recover(fault, what)?,
            }
        }
    }

    /// Waits until no command this link sent, and lost the reply of, can
    /// still land in Redis (each carried a deadline, `FENCE`): from then on
    /// a command either ran or never will. At most one socket timeout.
    pub fn outlive_late_copies(&mut self) {
        if let Some(at) = self.late.take() {
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
        }
    }

    /// Waits out `fault` before the next attempt: sleeps with back-off
    /// (waking early for the stop flag) and reconnects. Fails when the fault
    /// is permanent, when the outage outlasts the retry budget, or when the
    /// stop flag is raised (`Error::Stopped`).
    pub fn recover(&mut self, fault: Fault, what: &str) -> Result<(), Error> {
        let until = self.defer(fault, what)?;
        self.sleep(until.saturating_duration_since(Instant::now()));
        Ok(())
    }

    /// Like `recover`, but returns when to try again instead of sleeping, so
    /// a thread with other work (other shards) can do it meanwhile.
    pub fn defer(&mut self, fault: Fault, what: &str) -> Result<Instant, Error> {
        let e = match fault {
            Fault::Permanent(e) => return Err(self.permanent(&e, what)),
            Fault::Unreachable(e) | Fault::Lost(e) | Fault::Refused(e) => e,
        };
        if self.stopped() {
            return Err(Error::Stopped(format!(
                "stopped while Redis was unavailable ({what})"
            )));
        }
        let retry_for = self.retry_for;
        let outage = self.outage.get_or_insert_with(|| {
            // With no budget (start-up checks), the error itself follows.
            if !retry_for.is_zero() {
                log::warn(&format!(
                    "cannot {what} at {}: {}; retrying for up to {:.0}s",
                    redact(&self.url),
                    crate::error::describe_redis(&e),
                    retry_for.as_secs_f64()
                ));
            }
            Outage {
                since: Instant::now(),
                backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(2)),
            }
        });
        let deadline = outage.since + retry_for;
        if Instant::now() >= deadline {
            if let Some(lost) = self.lost_node() {
                let what = match retry_for.is_zero() {
                    true => format!("cannot {what}: Redis Cluster node {lost}, does not answer"),
                    false => format!(
                        "gave up trying to {what} after {:.0}s: Redis Cluster node {lost}, stayed unreachable",
                        retry_for.as_secs_f64()
                    ),
                };
                return Err(Error::Redis {
                    what,
                    url: redact(&self.url),
                    cause: crate::error::describe_redis(&e),
                });
            }
            let state = if code(&e).as_deref() == Some("OOM") {
                "stayed out of memory"
            } else if code(&e).is_some() {
                "kept refusing"
            } else {
                "stayed unreachable"
            };
            return Err(Error::redis(
                format!(
                    "gave up trying to {what} after {:.0}s: Redis {state}",
                    retry_for.as_secs_f64()
                ),
                &self.url,
                &e,
            ));
        }
        REDIS.retries.fetch_add(1, Ordering::Relaxed);
        let pause = outage.backoff.step();
        let pause = pause.min(deadline.saturating_duration_since(Instant::now()));
        Ok(Instant::now() + pause)
    }

    /// Runs `f` until it succeeds, recovering between attempts. Only for
    /// commands that are safe to run twice. Called while an outage is in
    /// progress (e.g. to clean up after a failed take), its success does not
    /// end that outage.
    pub fn call<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, Error> {
        let outer = self.outage.is_some();
        loop {
            match self.attempt(&mut f) {
                Ok(v) => {
                    if !outer {
                        self.settled();
                    }
                    return Ok(v);
                }
                Err(fault) => self.recover(fault, what)?,
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Sleeps `d` in short slices, returning early once the stop flag is up.
    fn sleep(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// On a cluster, `host:port, which holds <shards>` for the node serving
    /// this link's list, asked of the nodes that still answer.
    fn lost_node(&mut self) -> Option<String> {
        let key = self.key.clone()?;
        if !matches!(self.target, Target::Cluster(_)) {
            return None;
        }
        let mut keys = self.shards.clone();
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        let nodes = self.attempt(|c| Ok(conn::nodes_of(c, &keys))).ok()??;
        let mine = keys.iter().position(|k| *k == key)?;
        let node = nodes.get(mine)?.clone();
        let held: Vec<&str> = keys
            .iter()
            .zip(&nodes)
            .filter(|(_, n)| **n == node)
            .map(|(k, _)| k.as_str())
            .collect();
        Some(format!("{node}, which holds {}", held.join(" ")))
    }

    /// The one-line error for a command Redis will never accept.
    fn permanent(&mut self, e: &RedisError, what: &str) -> Error {
        let url = redact(&self.url);
        match (code(e).as_deref(), self.key.clone()) {
            (Some("WRONGTYPE"), Some(key)) => {
                let kind = self
                    .attempt(|c| redis::cmd("TYPE").arg(&key).query::<String>(c))
                    .unwrap_or_else(|_| "value of another type".into());
                // The list itself may be fine: then another key of this
                // command (dead letters, a seen set) is at fault.
                let cause = match kind.as_str() {
                    "list" | "none" => format!(
                        "{} (a key this command uses holds another type; check the keys named above)",
                        crate::error::describe_redis(e)
                    ),
                    _ => format!(
                        "the key {key} holds a {kind}, not a list (choose another --key, or delete the key if it is stale)"
                    ),
                };
                Error::Redis {
                    what: format!("cannot {what}"),
                    url,
                    cause,
                }
            }
            (Some("READONLY"), _) => Error::Redis {
                what: format!("cannot {what}"),
                url,
                cause: "the server is a read-only replica (point --redis at the master)".into(),
            },
            _ => Error::redis(format!("cannot {what}"), &self.url, e),
        }
    }
}

/// Redis's clock now (Unix ms), from `skew_ms` (Redis's clock minus ours,
/// just measured), paired with this moment on the monotonic clock.
fn redis_clock(skew_ms: i64) -> (i64, Instant) {
    let now = crate::run::log::unix_time().as_millis() as i64;
    (now + skew_ms, Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str) -> RedisError {
        redis::make_extension_error(code.to_string(), Some("x".into()))
    }

    #[test]
    fn faults_are_sorted_by_whether_a_retry_can_help() {
        assert!(matches!(Fault::classify(server("OOM")), Fault::Refused(_)));
        assert!(matches!(
            Fault::classify(server("LOADING")),
            Fault::Refused(_)
        ));
        assert!(matches!(
            Fault::classify(server("WRONGTYPE")),
            Fault::Permanent(_)
        ));
        assert!(matches!(
            Fault::classify(server("READONLY")),
            Fault::Permanent(_)
        ));
        // Through Sentinel, a demoted master: ask the sentinels again.
        assert!(matches!(
            Fault::classify_for(server("READONLY"), true),
            Fault::Refused(_)
        ));
        assert!(matches!(
            Fault::classify_for(server("UNBLOCKED"), true),
            Fault::Refused(_)
        ));
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(matches!(Fault::classify(io), Fault::Lost(_)));
    }
}
