//! A crawl frontier shared by any number of `qpipe produce` processes, in Redis
//! (the scrapy-redis idea, with leases so a killed producer loses no page).
//!
//! Keys, all tagged `{NAME}` so they live in one Redis Cluster slot:
//! - `{NAME}:frontier`: list of `"<depth> <url>"` still to fetch (FIFO);
//! - `{NAME}:seen`: set of 16-byte hashes of every canonical URL ever queued,
//!   or with `--dedup bloom` a Bloom filter next to it (`queue::dedup`);
//! - `{NAME}:leases`: sorted set of URLs being fetched, scored by lease expiry (ms).
//!
//! Taking a URL moves it into the leases; completing a page adds its new links
//! and drops its lease in one script. The crawl is over for everyone when the
//! frontier is empty and nothing is leased. An expired lease (its producer
//! died) goes back to the frontier.

use super::recent::Recent;
use super::scripts::{DONE, RELEASE, TAKE};
use crate::crawl::frontier::{filter, url_hash, Bounds, CrawlFrontier, Filtered, Finish, Seen};
use crate::error::Error;
use crate::queue::conn::{Conn, Endpoint};
use crate::queue::dedup::{self, Dedup, Exact, Filter};
use crate::queue::link::Link;
use crate::run::log;
use crate::run::renewal::renew_every_third;
use redis::{RedisResult, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// The Redis keys of shared frontier `name`.
pub fn keys(name: &str) -> [String; 3] {
    crate::queue::keys::frontier(name)
}

/// Deletes a shared frontier and its item fingerprints (`item_sets`: the
/// frontier's seen key of every shard), sets or Bloom filters alike, so the
/// next run starts a new crawl. One DEL per key: on a cluster the shards'
/// seen keys live in other slots.
pub fn reset(ep: &Endpoint, name: &str, item_sets: &[String]) -> Result<(), Error> {
    let mut link = Link::open(ep, Duration::from_secs(10), Duration::ZERO, None)?;
    let [frontier, seen, leases] = keys(name);
    for key in [frontier, leases] {
        link.call("reset the shared frontier", |c| {
            redis::cmd("DEL").arg(&key).query::<()>(c)
        })?;
    }
    for key in std::iter::once(&seen).chain(item_sets) {
        dedup::forget(&mut link, key)?;
    }
    Ok(())
}

/// How one process reaches Redis: outages are retried for `retry_for`, and
/// given up at once when `stop` is raised.
pub struct Reach {
    /// Where Redis is.
    pub ep: Endpoint,
    /// `--redis-retry-secs`.
    pub retry_for: Duration,
    /// The run's stop flag.
    pub stop: Arc<AtomicBool>,
}

/// The shared frontier as seen by one process.
pub struct SharedFrontier {
    reach: Reach,
    keys: [String; 3],
    /// The seen URLs: a set, or a Bloom filter (`--dedup`).
    seen: Filter,
    /// `DONE` after the seen filter's prelude.
    done_script: String,
    /// Links known to be seen already, not sent to Redis again.
    recent: Mutex<Recent>,
    /// Idle links; each call takes one, so fetchers never share a socket.
    pool: Mutex<Vec<Link>>,
    /// Why the frontier gave up, if it did.
    failure: Mutex<Option<Error>>,
    bounds: Bounds,
    lease: Duration,
    taken: AtomicU64,
    items: AtomicU64,
    filtered: Mutex<Filtered>,
    finish: Mutex<Option<Finish>>,
    /// Leases this process holds, renewed by `maintain` while their pages load.
    /// Member -> the TAKE token key that leased it (deleted when done).
    held: Mutex<std::collections::HashMap<String, String>>,
    /// `{NAME}:take:<process nonce>:`: TAKE tokens start with this.
    token_prefix: String,
    /// TAKE requests made, for unique tokens.
    takes: AtomicU64,
}

fn now_ms() -> u64 {
    crate::run::log::unix_time().as_millis() as u64
}

fn member(depth: u32, url: &Url) -> String {
    format!("{depth} {url}")
}

impl SharedFrontier {
    /// Joins (or starts) crawl `name`: start URLs not yet seen are queued.
    /// Its seen URLs are kept as `dedup` says (a crawl keeps its kind).
    pub fn join(
        reach: Reach,
        name: &str,
        start: &[Url],
        bounds: Bounds,
        lease: Duration,
        dedup: &Dedup,
    ) -> Result<SharedFrontier, Error> {
        let mut first = Link::open(
            &reach.ep,
            Duration::from_secs(10),
            reach.retry_for,
            Some(Arc::clone(&reach.stop)),
        )?;
        let keys = keys(name);
        let seen = Filter::open(&mut first, &keys[1], Exact::Set, dedup)?;
        let f = SharedFrontier {
            reach,
            done_script: seen.script(DONE),
            recent: Mutex::new(Recent::default()),
            seen,
            keys,
            pool: Mutex::new(vec![first]),
            failure: Mutex::new(None),
            bounds: bounds.with_default_domains(start),
            lease,
            taken: AtomicU64::new(0),
            items: AtomicU64::new(0),
            filtered: Mutex::new(Filtered::default()),
            finish: Mutex::new(None),
            held: Mutex::new(std::collections::HashMap::new()),
            token_prefix: crate::queue::keys::frontier_take_prefix(name, fastrand::u64(..)),
            takes: AtomicU64::new(0),
        };
        let links: Vec<(u32, Url)> = start.iter().map(|u| (0, u.clone())).collect();
        let none = format!("{}none", f.token_prefix);
        f.call("seed the shared frontier", |con| {
            f.done(con, "", &none, &links)
        })?;
        Ok(f)
    }

    /// Runs `op` on a pooled link, through outages (every command here is
    /// safe to repeat: scripts re-check the lease and the seen set).
    fn call<T>(&self, what: &str, op: impl FnMut(&mut Conn) -> RedisResult<T>) -> Result<T, Error> {
        let taken = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut link = match taken {
            Some(l) => l,
            None => Link::lazy(
                &self.reach.ep,
                Duration::from_secs(10),
                self.reach.retry_for,
                Some(Arc::clone(&self.reach.stop)),
            )?,
        };
        let result = link.call(what, op);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(link);
        result
    }

    /// Ends the crawl for this process after `e`: a signal is a shutdown;
    /// anything else is a failure that the run reports (exit 1).
    fn give_up(&self, e: Error) -> Finish {
        if matches!(e, Error::Stopped(_)) {
            return self.set_finish(Finish::Stopped);
        }
        log::error(&format!(
            "giving up on the shared frontier ({e}); pages leased here return to it when their leases expire"
        ));
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
        self.set_finish(Finish::RedisUnavailable)
    }

    /// Drops lease `finished` and queues `links`; returns `(added,
    /// dropped_for_room, verdicts)` (see `DONE`).
    fn done(
        &self,
        con: &mut Conn,
        finished: &str,
        token: &str,
        links: &[(u32, Url)],
    ) -> RedisResult<(u64, u64, Vec<u8>)> {
        let filter = self.seen.keys();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(&self.done_script)
            .arg(3 + filter.len())
            .arg(&self.keys[0])
            .arg(&self.keys[2])
            .arg(token)
            .arg(&filter)
            .arg(finished)
            .arg(self.bounds.max_queued)
            .arg(&self.seen.args()[..]);
        for (depth, u) in links {
            self.seen
                .push_fingerprint(&mut cmd, &url_hash(u).to_be_bytes());
            cmd.arg(member(*depth, u));
        }
        cmd.query(con)
    }

    /// Forgets a lease held here; returns the key of the TAKE token that
    /// leased it (a placeholder key in the same slot if there is none).
    fn token_of(&self, member: &str) -> String {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(member)
            .unwrap_or_else(|| format!("{}none", self.token_prefix))
    }

    fn set_finish(&self, f: Finish) -> Finish {
        *self
            .finish
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(f)
    }
}

impl CrawlFrontier for SharedFrontier {
    fn next(&self, stop: &AtomicBool) -> Option<(Url, u32)> {
        loop {
            if self
                .finish
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
            {
                return None;
            }
            let taken = self.taken.load(Ordering::Relaxed);
            if let Some(f) =
                self.bounds
                    .limit_reached(stop, taken, self.items.load(Ordering::Relaxed))
            {
                self.set_finish(f);
                return None;
            }
            // One token per request, the same across its retries.
            let n = self.takes.fetch_add(1, Ordering::Relaxed);
            let token = format!("{}{n}", self.token_prefix);
            let reply = self.call("lease a URL from the shared frontier", |con| {
                redis::cmd("EVAL")
                    .arg(TAKE)
                    .arg(3)
                    .arg(&self.keys[0])
                    .arg(&self.keys[2])
                    .arg(&token)
                    .arg(now_ms())
                    .arg(self.lease.as_millis() as u64)
                    .query::<(i64, Value)>(con)
            });
            match reply {
                Ok((1, Value::BulkString(m))) => {
                    self.taken.fetch_add(1, Ordering::Relaxed);
                    let text = String::from_utf8_lossy(&m);
                    if let Some((d, u)) = text.split_once(' ') {
                        if let (Ok(d), Ok(u)) = (d.parse::<u32>(), Url::parse(u)) {
                            let mut fl = self.filtered.lock().unwrap_or_else(|p| p.into_inner());
                            fl.max_depth_reached = fl.max_depth_reached.max(d);
                            self.held
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(text.into_owned(), token);
                            return Some((u, d));
                        }
                    }
                    log::warn(&format!(
                        "dropping a malformed shared-frontier entry: {text:?}"
                    ));
                }
                Ok((_, Value::Int(0))) => {
                    self.set_finish(Finish::Finished);
                    return None;
                }
                // Other producers hold leases: their pages may add links.
                Ok(_) => std::thread::sleep(Duration::from_millis(50)),
                Err(e) => {
                    self.give_up(e);
                    return None;
                }
            }
        }
    }

    /// A shared crawl's budgets only stop a producer taking new URLs: the
    /// pages it holds are finished (scaling.md), forms included, so only a
    /// stop ends a page's forms (and the page goes back for another
    /// producer).
    fn take_extra(&self, stop: &AtomicBool, _items: u64) -> Option<Finish> {
        if stop.load(Ordering::Relaxed) {
            return Some(Finish::Stopped);
        }
        None
    }

    fn complete(&self, page: &Url, links: Vec<Url>, depth: u32, items: u64) -> usize {
        self.items.fetch_add(items, Ordering::Relaxed);
        let keep: Vec<(u32, Url)> = {
            let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            let mut fl = self.filtered.lock().unwrap_or_else(|p| p.into_inner());
            // The seen set and the queue bound are checked in Redis, by
            // `DONE`, for links not already known to be seen.
            filter(&self.bounds, links, depth + 1, &mut fl, |u| {
                match recent.contains(url_hash(u) as u64) {
                    true => Seen::Duplicate,
                    false => Seen::New,
                }
            })
            .into_iter()
            .map(|u| (depth + 1, u))
            .collect()
        };
        // The lease's member is rebuilt from the URL and depth it was taken as.
        let finished = member(depth, page);
        let token = self.token_of(&finished);
        let (added, full, verdicts) = self
            .call("record a finished page", |con| {
                self.done(con, &finished, &token, &keep)
            })
            .unwrap_or_else(|e| {
                log::error(&format!("could not record a finished page in the shared frontier ({e}); its lease will expire and it will be fetched again"));
                (0, 0, Vec::new())
            });
        {
            // Added or duplicate: seen for good. A link dropped for room is not.
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            for ((_, u), v) in keep.iter().zip(&verdicts) {
                if *v != b'f' {
                    recent.insert(url_hash(u) as u64);
                }
            }
        }
        let mut fl = self.filtered.lock().unwrap_or_else(|p| p.into_inner());
        fl.frontier_full += full;
        fl.duplicates += (keep.len() as u64).saturating_sub(added + full);
        added as usize
    }

    fn release(&self, page: &Url, depth: u32) {
        let m = member(depth, page);
        let token = self.token_of(&m);
        self.taken.fetch_sub(1, Ordering::Relaxed);
        let released = self.call("give a URL back to the shared frontier", |con| {
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(3)
                .arg(&self.keys[0])
                .arg(&self.keys[2])
                .arg(&token)
                .arg(&m)
                .query::<u64>(con)
        });
        if let Err(e) = released {
            log::warn(&format!("could not give {page} back to the shared frontier ({e}); it returns when its lease expires"));
        }
    }

    fn allows(&self, url: &Url) -> bool {
        self.bounds.allows(url)
    }

    fn take_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn finish(&self) -> Finish {
        self.finish
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(Finish::Finished)
    }

    fn filtered(&self) -> Filtered {
        *self.filtered.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen(&self) -> u64 {
        self.call("count the shared frontier's URLs", |con| {
            self.seen.count(con)
        })
        .unwrap_or(0)
    }

    /// Renews this process's leases every third of the lease time, so a slow
    /// page is never handed to another producer while it is still loading.
    /// `ZADD XX` only extends leases that still exist.
    fn maintain(&self, done: &AtomicBool) {
        renew_every_third(self.lease, done, || {
            let held: Vec<String> = self
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            if held.is_empty() {
                return true;
            }
            let expiry = now_ms() + self.lease.as_millis() as u64;
            let renewed = self.call("renew shared-frontier leases", |con| {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(&self.keys[2]).arg("XX");
                for m in &held {
                    cmd.arg(expiry).arg(m);
                }
                cmd.query::<()>(con)
            });
            if let Err(e) = renewed {
                log::warn(&format!("could not renew shared-frontier leases: {e}"));
            }
            // A failed renewal is retried at the next third.
            true
        });
    }
}
