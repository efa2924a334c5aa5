//! What the dashboard shows, read from Redis: the qpipe keys it finds
//! (`Found`, by SCAN a few steps at a time, never KEYS) and one `Snapshot`
//! of every queue, job list, shared frontier and lock among them, each read
//! in a fixed number of pipelined round trips whatever the number of
//! workers. Names are classified by the key registry's shapes (`classify`,
//! pure and unit-tested).

use crate::error::Error;
use crate::queue::keys;
use crate::queue::link::{Fault, Link};
use redis::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What one name found by SCAN says exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A queue (its name, and the list holding it: itself or a shard).
    Queue(String, String),
    /// A queue's counts (`KEY:stats`): the queue exists, its lists are
    /// found by their own names.
    Stats(String),
    /// A crawl-job list.
    Jobs(String),
    /// A shared frontier, by its NAME.
    Frontier(String),
    /// A run lock, by its name.
    Lock(String),
}

/// Which qpipe structure `name` belongs to, if any.
pub fn classify(name: &str) -> Option<Kind> {
    if let Some(lock) = name.strip_prefix("qpipe:lock:") {
        return Some(Kind::Lock(lock.to_string()));
    }
    if let Some((tag, rest)) = braced(name) {
        if shard_of(tag).is_none() && matches!(rest, ":frontier" | ":leases") {
            return Some(Kind::Frontier(tag.to_string()));
        }
        // A shard's own list, `{KEY:i}`.
        if let (Some(queue), "") = (shard_of(tag), rest) {
            return Some(Kind::Queue(queue.to_string(), name.to_string()));
        }
    }
    for suffix in [":done", ":delayed", ":scheduled", ":attempts"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return (!base.is_empty()).then(|| Kind::Jobs(base.to_string()));
        }
    }
    if name == "qpipe:jobs" {
        return Some(Kind::Jobs(name.to_string()));
    }
    if name == "DATA-PIPELINE-KEY" {
        return Some(Kind::Queue(name.to_string(), name.to_string()));
    }
    if let Some(queue) = name.strip_suffix(":stats") {
        // A queue's counts live under its own name, never a shard's.
        let shard =
            braced(queue).is_some_and(|(tag, rest)| rest.is_empty() && shard_of(tag).is_some());
        return (!queue.is_empty() && !shard && !queue.contains(":processing:"))
            .then(|| Kind::Stats(queue.to_string()));
    }
    for suffix in [":dead", ":consumers"] {
        if let Some(list) = name.strip_suffix(suffix) {
            if list.is_empty() || list.contains(":processing:") {
                return None;
            }
            let queue = braced(list)
                .filter(|(_, rest)| rest.is_empty())
                .and_then(|(tag, _)| shard_of(tag))
                .unwrap_or(list);
            return Some(Kind::Queue(queue.to_string(), list.to_string()));
        }
    }
    None
}

/// `{TAG}rest` as (TAG, rest).
fn braced(name: &str) -> Option<(&str, &str)> {
    let inner = name.strip_prefix('{')?;
    let end = inner.find('}')?;
    Some((&inner[..end], &inner[end + 1..]))
}

/// The queue a shard tag `KEY:i` belongs to.
fn shard_of(tag: &str) -> Option<&str> {
    let (key, i) = tag.rsplit_once(':')?;
    let digits = !i.is_empty() && i.len() <= 4 && i.bytes().all(|b| b.is_ascii_digit());
    (digits && i.parse::<usize>().is_ok_and(|n| n < MAX_SHARDS)).then_some(key)
}

/// Everything found so far: queues (with their lists), job lists,
/// frontiers and locks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Found {
    pub queues: BTreeMap<String, BTreeSet<String>>,
    pub jobs: BTreeSet<String>,
    pub frontiers: BTreeSet<String>,
    pub locks: BTreeSet<String>,
}

impl Found {
    /// Adds what `name` says exists. A dead list or lease registry of a job
    /// list looks like a queue's: the job list's own keys decide (`tidy`).
    pub fn add(&mut self, name: &str) {
        match classify(name) {
            Some(Kind::Queue(q, list)) => {
                self.queues.entry(q).or_default().insert(list);
            }
            Some(Kind::Stats(q)) => {
                self.queues.entry(q).or_default();
            }
            Some(Kind::Jobs(j)) => {
                self.jobs.insert(j);
            }
            Some(Kind::Frontier(f)) => {
                self.frontiers.insert(f);
            }
            Some(Kind::Lock(l)) => {
                self.locks.insert(l);
            }
            None => {}
        }
    }

    /// Drops the queues that are job lists; a queue known only by its
    /// counts is its own plain list.
    pub fn tidy(&mut self) {
        let jobs = &self.jobs;
        self.queues.retain(|q, _| !jobs.contains(q));
        for (q, lists) in self.queues.iter_mut() {
            if lists.is_empty() {
                lists.insert(q.clone());
            }
        }
    }
}

/// SCAN, a few steps at a time: `step` continues a pass, and a finished
/// pass replaces what the last one found (so deleted keys go away).
pub struct Scanner {
    cursor: u64,
    /// Found in the pass under way.
    partial: Found,
    /// Found by the last complete pass, plus the one under way.
    pub found: Found,
    /// Complete passes.
    pub passes: u64,
    /// SCAN calls made, ever.
    pub calls: u64,
    count: u64,
}

impl Scanner {
    /// A scanner asking `count` keys per SCAN call.
    pub fn new(count: u64) -> Scanner {
        Scanner {
            cursor: 0,
            partial: Found::default(),
            found: Found::default(),
            passes: 0,
            calls: 0,
            count,
        }
    }

    /// At most `steps` SCAN calls, going on from where the last ended.
    pub fn step(&mut self, link: &mut Link, steps: u32) -> Result<(), Error> {
        for _ in 0..steps {
            let (next, names): (u64, Vec<Vec<u8>>) = link.call("scan for qpipe's keys", |c| {
                redis::cmd("SCAN")
                    .arg(self.cursor)
                    .arg("COUNT")
                    .arg(self.count)
                    .query(c)
            })?;
            self.calls += 1;
            // qpipe's names are text: others (binary) are not its keys.
            for n in names.iter().filter_map(|n| std::str::from_utf8(n).ok()) {
                self.partial.add(n);
                self.found.add(n);
            }
            self.cursor = next;
            if next == 0 {
                self.passes += 1;
                self.found = std::mem::take(&mut self.partial);
                break;
            }
        }
        self.found.tidy();
        Ok(())
    }
}

/// A lease holder (a reliable consumer or a job worker) on one list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// `host:pid:nonce`.
    pub id: String,
    /// The list it is registered on.
    pub list: String,
    /// Its last heartbeat (RFC 3339), if alive.
    pub beat: Option<String>,
    /// Items held in its batches.
    pub held: u64,
    /// Its batch lists holding items.
    pub batches: u64,
}

/// One queue as read.
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    pub name: String,
    pub lists: Vec<String>,
    pub length: u64,
    pub dead: u64,
    /// Per list: its dead letters.
    pub dead_lists: Vec<(String, u64)>,
    /// The fleet's counts (`KEY:stats`): in and out, ever.
    pub pushed: Option<u64>,
    pub popped: Option<u64>,
    pub workers: Vec<Worker>,
}

/// One job list as read.
#[derive(Debug, Clone, Default)]
pub struct JobsState {
    pub name: String,
    pub pending: u64,
    pub done: u64,
    pub dead: u64,
    pub delayed: u64,
    pub scheduled: u64,
    pub workers: Vec<Worker>,
}

/// One shared frontier as read.
#[derive(Debug, Clone, Default)]
pub struct FrontierState {
    pub name: String,
    pub queued: u64,
    pub leased: u64,
    /// URLs seen (`None`: a kind this reader does not size).
    pub seen: Option<u64>,
}

/// One lock as read.
#[derive(Debug, Clone, Default)]
pub struct LockState {
    pub name: String,
    /// Its holder's token (`host:pid:time`), if held.
    pub holder: Option<String>,
    /// Milliseconds left.
    pub ttl_ms: i64,
}

/// The fleet at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub queues: Vec<QueueState>,
    pub jobs: Vec<JobsState>,
    pub frontiers: Vec<FrontierState>,
    pub locks: Vec<LockState>,
    /// Names that look like qpipe's but whose keys hold other types.
    pub foreign: Vec<String>,
    /// Structures found beyond `MAX_SHOWN` of a kind.
    pub not_shown: u64,
}

/// Runs `cmds` in one round trip: their replies, or `None` when Redis
/// refuses them for good (a key of another type than qpipe's, an ACL that
/// does not cover it): then the structure is not qpipe's, and only it is
/// skipped. A failure to reach Redis fails the sample.
fn pipe(link: &mut Link, what: &str, cmds: &[redis::Cmd]) -> Result<Option<Vec<Value>>, Error> {
    if cmds.is_empty() {
        return Ok(Some(Vec::new()));
    }
    match link.attempt_all(cmds) {
        Ok(v) => Ok(Some(v)),
        Err(Fault::Permanent(_)) => Ok(None),
        Err(f) => Err(Error::redis(
            format!("cannot {what}"),
            &link.redacted_url(),
            f.error(),
        )),
    }
}

/// `pipe`, or return `Ok(None)` from the caller.
macro_rules! ours {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

fn as_u64(v: Value) -> u64 {
    redis::from_redis_value::<Option<u64>>(v)
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn cmd(name: &str, key: &str) -> redis::Cmd {
    let mut c = redis::cmd(name);
    c.arg(key);
    c
}

/// Structures of each kind shown at most (a keyspace full of look-alike
/// names must not make the page unbounded).
pub const MAX_SHOWN: usize = 200;
/// Candidates of each kind read per sample at most (so look-alikes cannot
/// make a sample unbounded either).
pub const MAX_READ: usize = 1_000;
/// Lists one queue may have (qpipe's largest `--shards`).
pub const MAX_SHARDS: usize = 1024;
/// Lists read per sample at most, over all queues.
pub const MAX_LISTS_READ: usize = 4096;

/// Reads every structure `found` names (`MAX_READ` candidates and
/// `MAX_SHOWN` shown of each kind). One whose keys are not qpipe's kinds
/// (a `user:42:stats` string, a list named `crawl:done`, a key this user's
/// ACL does not cover, a hash with none of qpipe's fields) is skipped and
/// named in `Snapshot::foreign`, never a failed sample.
pub fn read(link: &mut Link, found: &Found) -> Result<Snapshot, Error> {
    let mut snap = Snapshot::default();
    let mut lists_left = MAX_LISTS_READ;
    for (name, lists) in found.queues.iter().take(MAX_READ) {
        if lists.len() > MAX_SHARDS {
            snap.foreign.push(name.clone());
        } else if lists.len() > lists_left {
            snap.not_shown += 1;
        } else {
            lists_left -= lists.len();
            let q = read_queue(link, name, lists)?;
            snap.not_shown += shown(&mut snap.queues, &mut snap.foreign, name, q);
        }
    }
    for name in found.jobs.iter().take(MAX_READ) {
        snap.not_shown += shown(
            &mut snap.jobs,
            &mut snap.foreign,
            name,
            read_jobs(link, name)?,
        );
    }
    for name in found.frontiers.iter().take(MAX_READ) {
        snap.not_shown += shown(
            &mut snap.frontiers,
            &mut snap.foreign,
            name,
            read_frontier(link, name)?,
        );
    }
    for name in found.locks.iter().take(MAX_READ) {
        snap.not_shown += shown(
            &mut snap.locks,
            &mut snap.foreign,
            name,
            read_lock(link, name)?,
        );
    }
    let over = |n: usize| n.saturating_sub(MAX_READ) as u64;
    snap.not_shown += over(found.queues.len())
        + over(found.jobs.len())
        + over(found.frontiers.len())
        + over(found.locks.len());
    Ok(snap)
}

/// Keeps a structure read (up to `MAX_SHOWN`), or names it as not qpipe's;
/// 1 if it was qpipe's but past the limit (counted as not shown).
fn shown<T>(into: &mut Vec<T>, foreign: &mut Vec<String>, name: &str, got: Option<T>) -> u64 {
    match got {
        Some(_) if into.len() >= MAX_SHOWN => return 1,
        Some(t) => into.push(t),
        None => foreign.push(name.to_string()),
    }
    0
}

/// Whether every key is missing or of one of its types (one round trip).
fn typed(link: &mut Link, want: &[(String, &[&str])]) -> Result<Option<bool>, Error> {
    Ok(types_fit(link, want)?.map(|fits| fits.iter().all(|ok| *ok)))
}

/// Whether each key is missing or of one of its types, key by key.
fn types_fit(link: &mut Link, want: &[(String, &[&str])]) -> Result<Option<Vec<bool>>, Error> {
    let cmds: Vec<redis::Cmd> = want.iter().map(|(k, _)| cmd("TYPE", k)).collect();
    let replies = ours!(pipe(link, "check the types of qpipe's keys", &cmds));
    Ok(Some(
        replies
            .into_iter()
            .zip(want)
            .map(|(v, (_, types))| {
                let t = redis::from_redis_value::<String>(v).unwrap_or_default();
                t == "none" || types.contains(&t.as_str())
            })
            .collect(),
    ))
}

/// `typed`, as the `Option` the readers return: `None` unless all fit.
fn check(link: &mut Link, want: &[(String, &[&str])]) -> Result<Option<()>, Error> {
    Ok(typed(link, want)?.and_then(|ok| ok.then_some(())))
}

/// A queue: its lists' lengths and dead letters, its counts, its workers.
/// A list whose keys are of other types than qpipe's is left out (a stray
/// key shaped like a shard never hides the rest); counts of another type
/// make the queue not qpipe's.
fn read_queue(
    link: &mut Link,
    name: &str,
    lists: &BTreeSet<String>,
) -> Result<Option<QueueState>, Error> {
    let candidates: Vec<String> = lists.iter().cloned().collect();
    let mut want: Vec<(String, &[&str])> = vec![(keys::stats(name), &["hash"])];
    for l in &candidates {
        want.extend([
            (l.clone(), &["list"][..]),
            (keys::dead(l), &["list"][..]),
            (keys::holders(l), &["set"][..]),
        ]);
    }
    let fits = ours!(types_fit(link, &want));
    if !fits[0] {
        return Ok(None);
    }
    let lists: Vec<String> = candidates
        .into_iter()
        .zip(fits[1..].chunks(3))
        .filter(|(_, f)| f.iter().all(|ok| *ok))
        .map(|(l, _)| l)
        .collect();
    if lists.is_empty() {
        return Ok(None);
    }
    let mut cmds: Vec<redis::Cmd> = lists
        .iter()
        .flat_map(|l| [cmd("LLEN", l), cmd("LLEN", &keys::dead(l))])
        .collect();
    let mut stats = cmd("HMGET", &keys::stats(name));
    stats.arg("in").arg("out");
    cmds.push(stats);
    let mut replies = ours!(pipe(link, "read a queue", &cmds));
    let stats = replies.pop().unwrap_or(Value::Nil);
    let n: Vec<u64> = replies.into_iter().map(as_u64).collect();
    let (pushed, popped) =
        redis::from_redis_value::<(Option<u64>, Option<u64>)>(stats).unwrap_or((None, None));
    let dead_lists: Vec<(String, u64)> = lists
        .iter()
        .zip(n.iter().skip(1).step_by(2))
        .map(|(l, d)| (keys::dead(l), *d))
        .collect();
    let registries: Vec<redis::Cmd> = lists
        .iter()
        .map(|l| cmd("SMEMBERS", &keys::holders(l)))
        .collect();
    let ids = ours!(pipe(link, "list the workers", &registries));
    let mut workers = Vec::new();
    for (l, ids) in lists.iter().zip(ids) {
        workers.extend(ours!(workers_of(link, l, ids)));
    }
    let q = QueueState {
        name: name.to_string(),
        length: n.iter().step_by(2).sum(),
        dead: dead_lists.iter().map(|(_, d)| d).sum(),
        dead_lists,
        lists,
        pushed,
        popped,
        workers,
    };
    // Only a hash of the right name, with none of qpipe's fields: not a queue.
    let nothing = q.pushed.is_none()
        && q.popped.is_none()
        && q.length == 0
        && q.dead == 0
        && q.workers.is_empty();
    Ok((!nothing).then_some(q))
}

/// The lease holders registered on `list`, in three round trips: the
/// registry; every heartbeat and batch set; every batch's length.
pub fn read_workers(link: &mut Link, list: &str) -> Result<Option<Vec<Worker>>, Error> {
    let reply = ours!(pipe(
        link,
        "list the workers",
        &[cmd("SMEMBERS", &keys::holders(list))]
    ));
    workers_of(link, list, reply.into_iter().next().unwrap_or(Value::Nil))
}

/// The lease holders `ids` (a registry's SMEMBERS reply) of `list`.
fn workers_of(link: &mut Link, list: &str, ids: Value) -> Result<Option<Vec<Worker>>, Error> {
    let raw: Vec<Vec<u8>> = redis::from_redis_value(ids).unwrap_or_default();
    let mut ids: Vec<String> = raw
        .into_iter()
        .filter_map(|id| String::from_utf8(id).ok())
        .collect();
    ids.sort();
    if ids.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let cmds: Vec<redis::Cmd> = ids
        .iter()
        .flat_map(|id| {
            [
                cmd("GET", &keys::heartbeat(list, id)),
                cmd("SMEMBERS", &keys::batches(list, id)),
            ]
        })
        .collect();
    let replies = ours!(pipe(link, "read the workers' heartbeats", &cmds));
    let mut beats = Vec::with_capacity(ids.len());
    let mut names: Vec<Vec<String>> = Vec::with_capacity(ids.len());
    let mut it = replies.into_iter();
    for id in &ids {
        let beat = it
            .next()
            .and_then(|v| redis::from_redis_value::<Option<String>>(v).ok().flatten());
        let mut batch: Vec<String> = it
            .next()
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or_default();
        // Only qpipe's own batch names: anything else in the set is not ours.
        batch.retain(|b| b.starts_with(&keys::legacy_processing(list, id)));
        batch.push(keys::legacy_processing(list, id));
        beats.push(beat);
        names.push(batch);
    }
    let lens_cmds: Vec<redis::Cmd> = names.iter().flatten().map(|n| cmd("LLEN", n)).collect();
    let lens: Vec<u64> = ours!(pipe(link, "read the workers' batches", &lens_cmds))
        .into_iter()
        .map(as_u64)
        .collect();
    let mut lens = lens.into_iter();
    let mut out = Vec::with_capacity(ids.len());
    for ((id, beat), batch) in ids.into_iter().zip(beats).zip(names) {
        let sizes: Vec<u64> = lens.by_ref().take(batch.len()).collect();
        out.push(Worker {
            id,
            list: list.to_string(),
            beat,
            held: sizes.iter().sum(),
            batches: sizes.iter().filter(|n| **n > 0).count() as u64,
        });
    }
    Ok(Some(out))
}

/// A job list: its counts in one round trip, and its workers.
fn read_jobs(link: &mut Link, name: &str) -> Result<Option<JobsState>, Error> {
    let want: [(String, &[&str]); 6] = [
        (name.to_string(), &["list"]),
        (keys::jobs_done(name), &["string"]),
        (keys::dead(name), &["list"]),
        (keys::jobs_delayed(name), &["zset"]),
        (keys::jobs_scheduled(name), &["zset"]),
        (keys::holders(name), &["set"]),
    ];
    ours!(check(link, &want));
    let cmds = [
        cmd("LLEN", name),
        cmd("GET", &keys::jobs_done(name)),
        cmd("LLEN", &keys::dead(name)),
        cmd("ZCARD", &keys::jobs_delayed(name)),
        cmd("ZCARD", &keys::jobs_scheduled(name)),
    ];
    let n: Vec<u64> = ours!(pipe(link, "read a job list", &cmds))
        .into_iter()
        .map(as_u64)
        .collect();
    let workers = ours!(read_workers(link, name));
    Ok(Some(JobsState {
        name: name.to_string(),
        pending: n[0],
        done: n[1],
        dead: n[2],
        delayed: n[3],
        scheduled: n[4],
        workers,
    }))
}

/// A shared frontier: URLs queued, leased and seen.
fn read_frontier(link: &mut Link, name: &str) -> Result<Option<FrontierState>, Error> {
    let [queued, seen, leases] = keys::frontier(name);
    let bloom = keys::bloom(&seen);
    let want: [(String, &[&str]); 4] = [
        (queued.clone(), &["list"]),
        (leases.clone(), &["zset"]),
        (seen.clone(), &["set", "zset"]),
        (bloom.clone(), &["hash"]),
    ];
    ours!(check(link, &want));
    let mut count = cmd("HGET", &bloom);
    count.arg("count");
    let cmds = [
        cmd("LLEN", &queued),
        cmd("ZCARD", &leases),
        cmd("TYPE", &seen),
        count,
    ];
    let r = ours!(pipe(link, "read a shared frontier", &cmds));
    let mut it = r.into_iter();
    let (queued_n, leased_n) = (it.next().map_or(0, as_u64), it.next().map_or(0, as_u64));
    let kind = it
        .next()
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
        .unwrap_or_default();
    let in_bloom = it
        .next()
        .and_then(|v| redis::from_redis_value::<Option<u64>>(v).ok().flatten());
    let size = match kind.as_str() {
        "set" => Some("SCARD"),
        "zset" => Some("ZCARD"),
        _ => None,
    };
    let seen_n = match size {
        Some(c) => ours!(pipe(link, "size a frontier's seen set", &[cmd(c, &seen)]))
            .into_iter()
            .next()
            .map(as_u64),
        None => in_bloom,
    };
    Ok(Some(FrontierState {
        name: name.to_string(),
        queued: queued_n,
        leased: leased_n,
        seen: seen_n,
    }))
}

/// A lock: its holder and time left.
fn read_lock(link: &mut Link, name: &str) -> Result<Option<LockState>, Error> {
    let key = keys::lock(name);
    ours!(check(link, &[(key.clone(), &["string"][..])]));
    let replies = ours!(pipe(
        link,
        "read a lock",
        &[cmd("GET", &key), cmd("PTTL", &key)]
    ));
    let mut it = replies.into_iter();
    let holder = it
        .next()
        .and_then(|v| redis::from_redis_value::<Option<String>>(v).ok().flatten());
    let ttl_ms = it
        .next()
        .and_then(|v| redis::from_redis_value::<i64>(v).ok())
        .unwrap_or(-2);
    Ok(Some(LockState {
        name: name.to_string(),
        holder,
        ttl_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_into_what_they_belong_to() {
        let q = |a: &str, b: &str| Some(Kind::Queue(a.into(), b.into()));
        assert_eq!(
            classify("DATA-PIPELINE-KEY"),
            q("DATA-PIPELINE-KEY", "DATA-PIPELINE-KEY")
        );
        assert_eq!(classify("books:dead"), q("books", "books"));
        assert_eq!(classify("books:stats"), Some(Kind::Stats("books".into())));
        assert_eq!(classify("{books:3}:stats"), None);
        assert_eq!(classify("{books:3}:consumers"), q("books", "{books:3}"));
        assert_eq!(classify("{books:3}:dead"), q("books", "{books:3}"));
        assert_eq!(classify("{books}:dead"), q("{books}", "{books}"));
        assert_eq!(classify("{books:3}"), q("books", "{books:3}"));
        assert_eq!(
            classify("qpipe:jobs:done"),
            Some(Kind::Jobs("qpipe:jobs".into()))
        );
        assert_eq!(classify("J:attempts"), Some(Kind::Jobs("J".into())));
        assert_eq!(
            classify("{site}:frontier"),
            Some(Kind::Frontier("site".into()))
        );
        assert_eq!(
            classify("{site}:leases"),
            Some(Kind::Frontier("site".into()))
        );
        assert_eq!(
            classify("qpipe:lock:nightly"),
            Some(Kind::Lock("nightly".into()))
        );
        for none in [
            "books",
            ":dead",
            "books:processing:h:1:n:0:7",
            "books:consumer:h:1:n",
            "books:processing:h:1:n:dead",
            "{site}:seen",
            "SEEN:bloom",
        ] {
            assert_eq!(classify(none), None, "{none}");
        }
    }

    #[test]
    fn job_lists_are_not_queues_and_shards_replace_the_plain_list() {
        let mut f = Found::default();
        for n in [
            "J:dead",
            "J:consumers",
            "J:done",
            "{Q:0}:dead",
            "{Q:1}:consumers",
            "Q:stats",
        ] {
            f.add(n);
        }
        f.tidy();
        assert_eq!(f.jobs, BTreeSet::from(["J".to_string()]));
        let lists: Vec<&String> = f.queues["Q"].iter().collect();
        assert_eq!(lists, ["{Q:0}", "{Q:1}"]);
        assert_eq!(f.queues.len(), 1);
    }
}
