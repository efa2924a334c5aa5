//! Seen keys: how Redis remembers which URLs and items were already pushed
//! (`--dedup set|bloom`). A set is exact and costs about 72 bytes per
//! fingerprint; a Bloom filter costs under 4 at P = 1e-6, and wrongly says
//! "seen" with probability P.
//!
//! For a seen key `S` (`{NAME}:seen`, an item seen key of one shard), a
//! Bloom filter lives next to it under the same hash tag:
//! - `S:bloom`: a hash of its parameters (kind, capacity, error, bits,
//!   pieces, k) and a count of fingerprints added;
//! - `S:bloom:0` … `S:bloom:{pieces-1}`: the bitmaps; or `S:bloom:bf`
//!   when RedisBloom is loaded (its BF.* commands then do the hashing).
//!
//! `S` itself is then absent, so a set and a filter can never be mixed up:
//! opening one where the other exists is refused (exit 2).

mod lua;
pub mod params;

use crate::error::{code, Error};
use crate::queue::conn::Conn;
use crate::queue::keys;
use crate::queue::link::{Fault, Link};
pub use params::Params;
use redis::{RedisResult, Value};

/// `--dedup`: how seen fingerprints are kept in Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Dedup {
    /// Exact sets (the default).
    Set,
    /// Bloom filters of this shape.
    Bloom(Params),
}

impl Dedup {
    /// The same choice for one of `n` keys that share the fingerprints
    /// (item seen keys split over shards): each is sized for its share.
    pub fn share(&self, n: usize) -> Dedup {
        match self {
            Dedup::Bloom(p) if n > 1 => Params::new(p.capacity.div_ceil(n as u64), p.error)
                .map_or_else(|_| self.clone(), Dedup::Bloom),
            _ => self.clone(),
        }
    }
}

/// Which exact set a key is under `--dedup set`.
#[derive(Debug, Clone, Copy)]
pub enum Exact {
    /// A set (the shared frontier's URLs).
    Set,
    /// A sorted set scored by first-seen time (item fingerprints).
    Zset,
}

/// One seen key as found (or created) in Redis: what its scripts run.
#[derive(Debug, Clone)]
pub enum Filter {
    /// An exact set or sorted set at this key.
    Exact(Exact, String),
    /// A Bloom filter on bitmaps next to this key.
    Bitmap(String, Params),
    /// A RedisBloom filter next to this key.
    Module(String),
}

fn bloom_key(key: &str) -> String {
    keys::bloom(key)
}

fn piece_keys(key: &str, pieces: u64) -> impl Iterator<Item = String> + '_ {
    (0..pieces).map(move |i| keys::bloom_piece(key, i))
}

impl Filter {
    /// Finds seen key `key` in Redis as `want` says, creating a Bloom filter
    /// if there is none. Refuses (usage error, exit 2) a key made with the
    /// other `--dedup` or with other Bloom parameters.
    pub fn open(link: &mut Link, key: &str, exact: Exact, want: &Dedup) -> Result<Filter, Error> {
        let stored: Vec<Option<String>> = link.call("check the seen key", |c| {
            redis::cmd("HMGET")
                .arg(bloom_key(key))
                .arg("capacity")
                .arg("error")
                .query(c)
        })?;
        let fresh = stored.iter().all(Option::is_none);
        let p = match (want, &stored[..]) {
            (Dedup::Set, [Some(cap), Some(err)]) => {
                return Err(Error::Usage(format!(
                    "the seen key {key} is a Bloom filter: run with --dedup bloom --dedup-capacity {cap} --dedup-error {err}, or delete it (--reset-frontier does, for a shared frontier) to start over"
                )))
            }
            (Dedup::Set, _) => return Ok(Filter::Exact(exact, key.to_string())),
            (Dedup::Bloom(p), _) => p,
        };
        let kind: String = link.call("check the seen key", |c| {
            redis::cmd("TYPE").arg(key).query(c)
        })?;
        if kind != "none" {
            return Err(Error::Usage(format!(
                "the seen key {key} holds a {kind} made with --dedup set: run with --dedup set, or delete it (--reset-frontier does, for a shared frontier) to start over"
            )));
        }
        let module = link
            .call("look for RedisBloom", |c| {
                redis::cmd("COMMAND")
                    .arg("INFO")
                    .arg("BF.ADD")
                    .query::<Vec<Value>>(c)
            })
            .is_ok_and(|v| v.first().is_some_and(|c| *c != Value::Nil));
        if fresh {
            room_for(link, key, p)?;
        }
        create(link, key, p, module)
    }

    /// The keys its scripts touch, all in the seen key's hash slot.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Filter::Exact(_, key) => vec![key.clone()],
            Filter::Bitmap(key, p) => std::iter::once(bloom_key(key))
                .chain(piece_keys(key, p.pieces))
                .collect(),
            Filter::Module(key) => vec![bloom_key(key), keys::bloom_module(key)],
        }
    }

    /// Its two script arguments.
    pub fn args(&self) -> [String; 2] {
        match self {
            Filter::Exact(Exact::Zset, _) => [crate::run::log::unix_secs().to_string(), "0".into()],
            Filter::Bitmap(_, p) => [p.bits.to_string(), p.k.to_string()],
            _ => ["0".into(), "0".into()],
        }
    }

    /// Appends fingerprint `fp` to a script's ARGV as this kind takes it:
    /// 16 bytes, or for a bitmap filter its piece and bit offsets.
    pub fn push_fingerprint(&self, cmd: &mut redis::Cmd, fp: &[u8; 16]) {
        match self {
            Filter::Bitmap(_, p) => {
                let (piece, offsets) = p.positions(u128::from_be_bytes(*fp));
                cmd.arg(piece).arg(offsets);
            }
            _ => {
                cmd.arg(&fp[..]);
            }
        }
    }

    /// `body` after the prelude that defines `seen_filter` for this kind.
    pub fn script(&self, body: &str) -> String {
        let prelude = match self {
            Filter::Exact(Exact::Set, _) => lua::SET,
            Filter::Exact(Exact::Zset, _) => lua::ZSET,
            Filter::Bitmap(..) => lua::BITMAP,
            Filter::Module(_) => lua::MODULE,
        };
        format!("{prelude}\n{body}")
    }

    /// Fingerprints recorded: exact for a set, new adds for a filter.
    pub fn count(&self, con: &mut Conn) -> RedisResult<u64> {
        match self {
            Filter::Exact(Exact::Set, key) => redis::cmd("SCARD").arg(key).query(con),
            Filter::Exact(Exact::Zset, key) => redis::cmd("ZCARD").arg(key).query(con),
            Filter::Bitmap(key, _) | Filter::Module(key) => redis::cmd("HGET")
                .arg(bloom_key(key))
                .arg("count")
                .query::<Option<u64>>(con)
                .map(Option::unwrap_or_default),
        }
    }

    /// Adds (or with `add == false`, only looks up) `fps`; one flag per
    /// fingerprint: new (or present). For `qpipe bench` and its tests.
    pub fn probe(&self, con: &mut Conn, fps: &[[u8; 16]], add: bool) -> RedisResult<Vec<bool>> {
        let keys = self.keys();
        let body = if add { lua::ADD_BODY } else { lua::HAS_BODY };
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(self.script(body))
            .arg(keys.len())
            .arg(&keys)
            .arg(&self.args()[..]);
        for fp in fps {
            self.push_fingerprint(&mut cmd, fp);
        }
        let flags: Vec<u8> = cmd.query(con)?;
        Ok(flags.into_iter().map(|f| f == 1).collect())
    }
}

/// Fingerprints in item seen key `key`, a sorted set or a Bloom filter
/// (for `status`, which is not told the kind).
pub fn size(con: &mut Conn, key: &str) -> RedisResult<u64> {
    let set: u64 = redis::cmd("ZCARD").arg(key).query(con)?;
    let filter: Option<u64> = redis::cmd("HGET")
        .arg(bloom_key(key))
        .arg("count")
        .query(con)?;
    Ok(set + filter.unwrap_or(0))
}

/// Deletes seen key `key` whatever its kind (set, or Bloom filter and
/// parameters), one DEL per key.
pub fn forget(link: &mut Link, key: &str) -> Result<(), Error> {
    let pieces: Option<u64> = link.call("read the Bloom filter's shape", |c| {
        redis::cmd("HGET")
            .arg(bloom_key(key))
            .arg("pieces")
            .query(c)
    })?;
    let keys = [key.to_string(), keys::bloom_module(key)]
        .into_iter()
        .chain(piece_keys(key, pieces.unwrap_or(0)))
        .chain([bloom_key(key)]);
    for k in keys {
        link.call("delete a seen key", |c| {
            redis::cmd("DEL").arg(&k).query::<()>(c)
        })?;
    }
    Ok(())
}

/// Refuses to create filter `p` if it would take one Redis server past its
/// maxmemory: the script would still run (Redis lets a script that has
/// written finish), and every later push would then fail for OOM.
fn room_for(link: &mut Link, key: &str, p: &Params) -> Result<(), Error> {
    let info: String = link.call("read Redis's memory", |c| match c {
        Conn::Single(_) => redis::cmd("INFO").arg("memory").query(c),
        // A cluster's nodes each have their own: the OOM check below stands.
        Conn::Cluster(_) => Ok(String::new()),
    })?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (used, max, bytes) = (
        field("used_memory"),
        field("maxmemory"),
        p.piece_bytes() * p.pieces,
    );
    if max > 0 && used + bytes > max {
        return Err(Error::Redis {
            what: format!("cannot create the {:.1} MB Bloom filter {key}", bytes as f64 / 1e6),
            url: link.redacted_url(),
            cause: format!(
                "it would take Redis past its maxmemory ({:.1} of {:.1} MB used; raise maxmemory, lower --dedup-capacity or raise --dedup-error)",
                used as f64 / 1e6,
                max as f64 / 1e6
            ),
        });
    }
    Ok(())
}

/// Runs `CREATE` for the filter `p` next to `key`; checks the stored
/// parameters if it existed. An OOM is reported at once with what to change.
fn create(link: &mut Link, key: &str, p: &Params, module: bool) -> Result<Filter, Error> {
    let kind = if module { "module" } else { "bitmap" };
    let mut keys = vec![bloom_key(key)];
    match module {
        true => keys.push(keys::bloom_module(key)),
        false => keys.extend(piece_keys(key, p.pieces)),
    }
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(lua::CREATE).arg(keys.len()).arg(&keys).arg(kind);
    cmd.arg(p.capacity).arg(p.error.to_string()).arg(p.bits);
    cmd.arg(p.pieces).arg(p.k).arg(p.piece_bytes());
    type Stored = Option<Vec<Option<String>>>;
    let what = "create the Bloom filter";
    let stored: Stored = match link.attempt(|c| cmd.query(c)) {
        Ok(s) => s,
        Err(Fault::Refused(e)) if code(&e).as_deref() == Some("OOM") => {
            return Err(Error::Redis {
                what: format!(
                    "cannot create the {:.1} MB Bloom filter {key}",
                    (p.piece_bytes() * p.pieces) as f64 / 1e6
                ),
                url: link.redacted_url(),
                cause: "Redis is out of memory (raise its maxmemory, lower --dedup-capacity or raise --dedup-error)".into(),
            })
        }
        Err(fault) => {
            link.recover(fault, what)?;
            link.call(what, |c| cmd.query(c))?
        }
    };
    link.settled();
    let Some(s) = stored else {
        return Ok(match module {
            true => Filter::Module(key.to_string()),
            false => Filter::Bitmap(key.to_string(), p.clone()),
        });
    };
    let field = |i: usize| s.get(i).cloned().flatten().unwrap_or_default();
    let (capacity, error) = (field(1).parse::<u64>(), field(2).parse::<f64>());
    if capacity != Ok(p.capacity) || error != Ok(p.error) {
        return Err(Error::Usage(format!(
            "the Bloom filter {key} was made with --dedup-capacity {} --dedup-error {}, not {} and {}: use the same values, or delete it (--reset-frontier does, for a shared frontier) to start over",
            field(1),
            field(2),
            p.capacity,
            p.error
        )));
    }
    let num = |i: usize| field(i).parse::<u64>().unwrap_or(0);
    match field(0).as_str() {
        "module" if module => Ok(Filter::Module(key.to_string())),
        "bitmap" if num(3) > 0 && num(4) > 0 => Ok(Filter::Bitmap(
            key.to_string(),
            Params {
                bits: num(3),
                pieces: num(4),
                k: num(5).max(1),
                ..p.clone()
            },
        )),
        other => Err(Error::Usage(format!(
            "the Bloom filter {key} is of kind {other:?}, which this Redis cannot serve (is RedisBloom no longer loaded?); delete it to start over"
        ))),
    }
}
