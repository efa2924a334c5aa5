//! A Redis run lock, so cron runs never overlap, even across machines.
//!
//! `SET qpipe:lock:<name> <token> NX PX ttl` takes it; a heartbeat renews it
//! with a compare-and-PEXPIRE script; release is compare-and-DEL. A holder
//! that crashes stops renewing, and the lock expires by itself.
//!
//! Redis starts a lock's TTL when it runs the command, which is no earlier
//! than when the holder sent it. So the holder knows, on its own clock, a
//! moment before which the lock is surely still its own: the send time of
//! its last successful renewal plus the TTL, less a margin (`fence`). Past
//! that moment it stops, whatever Redis answers or fails to answer.

use crate::error::Error;
use crate::queue::conn::Endpoint;
use crate::queue::link::Link;
use redis::RedisResult;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

/// A held lock. Dropping it does not release it; call `release`.
pub struct Lock {
    link: Link,
    /// The Redis key.
    pub key: String,
    token: String,
    ttl: Duration,
    /// When the command that last set the lock's TTL was sent.
    since: Instant,
}

/// The Redis key of lock `name`.
pub fn key(name: &str) -> String {
    crate::queue::keys::lock(name)
}

/// Who holds lock `name` (its token: `host:pid:time`), if anyone.
pub fn holder(con: &mut dyn redis::ConnectionLike, name: &str) -> RedisResult<Option<String>> {
    redis::cmd("GET").arg(key(name)).query(con)
}

impl Lock {
    /// Takes lock `name` for `ttl`, or fails with `Error::Locked` naming the holder.
    /// `done` ends renewals that are waiting out an outage.
    pub fn acquire(
        ep: &Endpoint,
        name: &str,
        ttl: Duration,
        done: Arc<AtomicBool>,
    ) -> Result<Lock, Error> {
        // Renewals are retried through an outage only while the lock can
        // still be ours: it expires `ttl` after the last renewal, and the
        // next renewal is due a third of the way in. The socket timeout is
        // short enough for a hung Redis to be retried within that.
        let timeout = (ttl / 4).clamp(Duration::from_millis(500), Duration::from_secs(2));
        let mut link = Link::open(ep, timeout, ttl * 2 / 3, Some(done))?;
        crate::queue::acl::check(&mut link, crate::queue::acl::Needs::default().lock(name))?;
        let token = format!(
            "{}:{}:{}",
            crate::queue::conn::hostname(),
            std::process::id(),
            crate::run::log::now_rfc3339()
        );
        let key = key(name);
        // If the reply to SET NX is lost, the retry finds our own token; the
        // TTL then started at an earlier attempt, so the fence counts from
        // the first one.
        let first = Instant::now();
        let mut since = first;
        let (taken, holder) = link.call("take the lock", |c| {
            since = Instant::now();
            let ok: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .query(c)?;
            if ok.is_some() {
                return Ok((true, None));
            }
            let who: Option<String> = redis::cmd("GET").arg(&key).query(c)?;
            since = first;
            Ok((who.as_deref() == Some(token.as_str()), who))
        })?;
        // On a replica too before it counts: a failover must not hand the
        // new master a keyspace without this lock (two holders).
        if taken {
            link.call_replicated("copy the lock to a replica", &key)?;
        }
        if !taken {
            return Err(Error::Locked(format!(
                "another run holds the lock {name:?} ({}); it ends when that run does, or expires {}s after a crash",
                holder.as_deref().unwrap_or("unknown"),
                ttl.as_secs()
            )));
        }
        Ok(Lock {
            link,
            key,
            token,
            ttl,
            since,
        })
    }

    /// Extends the lock, reconnecting if need be; `Ok(false)` means it was
    /// lost (it expired, and may have been taken by another run).
    pub fn renew(&mut self) -> Result<bool, Error> {
        let (key, token, ms) = (&self.key, &self.token, self.ttl.as_millis() as u64);
        let mut sent = Instant::now();
        let n: i64 = self.link.call("renew the run lock", |c| {
            sent = Instant::now();
            redis::cmd("EVAL")
                .arg(RENEW)
                .arg(1)
                .arg(key)
                .arg(token)
                .arg(ms)
                .query(c)
        })?;
        if n == 1 {
            self.link
                .call_replicated("copy the renewed lock to a replica", key)?;
            self.since = sent;
        }
        Ok(n == 1)
    }

    /// The moment after which the lock may no longer be ours: the TTL from
    /// the last command that set it, less a margin for a clock that runs a
    /// little slower than Redis's and for the stop itself.
    pub fn fence(&self) -> Instant {
        let margin = (self.ttl / 6).clamp(Duration::from_millis(200), Duration::from_secs(5));
        self.since + self.ttl.saturating_sub(margin)
    }

    /// Releases the lock if it is still ours. One attempt: if Redis does not
    /// answer, the lock expires by itself, and the exit is not held up.
    pub fn release(mut self) -> Result<(), Error> {
        let (key, token) = (&self.key, &self.token);
        let url = self.link.redacted_url();
        self.link
            .attempt(|c| {
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(key)
                    .arg(token)
                    .query::<i64>(c)
                    .map(drop)
            })
            .map_err(|f| Error::Redis {
                what: "cannot release the run lock".into(),
                url,
                cause: crate::error::describe_redis(f.error()),
            })
    }

    /// How long the lock lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
