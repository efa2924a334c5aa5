//! A Redis run lock, so cron runs never overlap, even across machines.
//!
//! `SET qpipe:lock:<name> <token> NX PX ttl` takes it; a heartbeat renews it
//! with a compare-and-PEXPIRE script; release is compare-and-DEL. A holder
//! that crashes stops renewing, and the lock expires by itself.

use crate::conn::{self, Conn, Endpoint};
use crate::error::Error;
use redis::RedisResult;
use std::time::Duration;

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
    con: Conn,
    /// The Redis key.
    pub key: String,
    token: String,
    ttl: Duration,
}

/// The Redis key of lock `name`.
pub fn key(name: &str) -> String {
    format!("qpipe:lock:{name}")
}

/// Who holds lock `name` (its token: `host:pid:time`), if anyone.
pub fn holder(con: &mut dyn redis::ConnectionLike, name: &str) -> RedisResult<Option<String>> {
    redis::cmd("GET").arg(key(name)).query(con)
}

impl Lock {
    /// Takes lock `name` for `ttl`, or fails with `Error::Locked` naming the holder.
    pub fn acquire(ep: &Endpoint, name: &str, ttl: Duration) -> Result<Lock, Error> {
        let fail = |e: redis::RedisError| Error::redis("cannot take the lock", &ep.url, &e);
        let mut con = conn::open(ep, Duration::from_secs(5))?;
        let token = format!(
            "{}:{}:{}",
            crate::reliable::hostname(),
            std::process::id(),
            crate::log::now_rfc3339()
        );
        let key = key(name);
        let ok: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query(&mut con)
            .map_err(fail)?;
        if ok.is_none() {
            let who = holder(&mut con, name)
                .ok()
                .flatten()
                .unwrap_or_else(|| "unknown".into());
            return Err(Error::Locked(format!(
                "another run holds the lock {name:?} ({who}); it ends when that run does, or expires {}s after a crash",
                ttl.as_secs()
            )));
        }
        Ok(Lock {
            con,
            key,
            token,
            ttl,
        })
    }

    /// Extends the lock; `Ok(false)` means it was lost (expired and taken).
    pub fn renew(&mut self) -> RedisResult<bool> {
        let n: i64 = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .arg(self.ttl.as_millis() as u64)
            .query(&mut self.con)?;
        Ok(n == 1)
    }

    /// Releases the lock if it is still ours.
    pub fn release(mut self) -> RedisResult<()> {
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(&self.key)
            .arg(&self.token)
            .query::<i64>(&mut self.con)
            .map(drop)
    }

    /// How often to renew: a third of the TTL.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}
