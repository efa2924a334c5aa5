//! The HTTP cache (`--http-cache DIR`): every answer the session gets, kept
//! on disk by request fingerprint, so a spec can be tried and re-run
//! without fetching the site again (Scrapy's HTTPCACHE, Colly's CacheDir).
//!
//! - The fingerprint is XXH3-128 of the method, the URL as parsed (fragment
//!   removed) and the request body. An entry is `DIR/ab/<32 hex>`: one gzip
//!   stream of a JSON header line (URL, method, status, headers, time) and
//!   the body as read (after any transfer decoding).
//! - An entry is written to a temporary name in its directory and renamed
//!   into place, so producers sharing DIR never read a torn one; a file
//!   that does not decode is a miss (and counted).
//! - Cached: 2xx, redirects and other final statuses (404, 410...). Not
//!   cached: transport failures and the statuses a crawl retries (408, 429,
//!   5xx), so a site's bad minute is not replayed forever.
//! - Modes: `use` (hits from the cache, misses fetched and stored),
//!   `replay` (no request at all: a miss is a `not_in_cache` failure) and
//!   `refresh` (everything fetched and stored again).

use serde::{Deserialize, Serialize};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use url::Url;

/// How the cache is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hits from the cache; misses fetched and stored.
    Use,
    /// Hits from the cache; no request ever (a miss is a failure).
    Replay,
    /// Every request fetched and stored again.
    Refresh,
}

impl Mode {
    /// Parses `--http-cache-mode`.
    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "use" => Ok(Mode::Use),
            "replay" => Ok(Mode::Replay),
            "refresh" => Ok(Mode::Refresh),
            other => Err(format!(
                "--http-cache-mode {other:?} is not a mode (use one of use, replay, refresh)"
            )),
        }
    }

    /// The flag's word for it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Use => "use",
            Mode::Replay => "replay",
            Mode::Refresh => "refresh",
        }
    }
}

/// `--http-cache*`, validated.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// The cache directory.
    pub dir: PathBuf,
    /// How it is used.
    pub mode: Mode,
    /// Entries older than this are misses in `use` mode (`None`: never).
    pub expiry: Option<Duration>,
}

/// An entry's header line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// The request URL (the page's URL for a 2xx).
    pub url: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The HTTP status.
    pub status: u16,
    /// The response headers kept (lowercase names).
    pub headers: Vec<(String, String)>,
    /// Unix seconds when it was stored.
    pub stored: u64,
    /// The body was never read (a page the crawl skipped by its type or
    /// size): the entry answers the status and headers only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unread: bool,
}

/// One cached answer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What was asked and answered.
    pub meta: Meta,
    /// The body as read.
    pub body: Vec<u8>,
}

impl Entry {
    /// The `Set-Cookie` values the answer carried.
    pub fn set_cookies(&self) -> Vec<String> {
        self.meta
            .headers
            .iter()
            .filter(|(n, _)| n == "set-cookie")
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The header `name` (lowercase), if kept.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.meta
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Headers that describe one transfer, not the content: not kept.
/// (`Set-Cookie` is kept: a hit puts its cookies in the jar, as the
/// request it replaces would have, so a cached login still logs in.)
const HOP_HEADERS: [&str; 5] = [
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
];

/// The cache and what this run did with it.
#[derive(Debug)]
pub struct Cache {
    cfg: CacheConfig,
    /// Requests answered from the cache.
    pub hits: AtomicU64,
    /// Requests fetched because the cache had no fresh (or readable) entry.
    pub misses: AtomicU64,
    /// Entries written.
    pub stored: AtomicU64,
    /// Requests `replay` could not answer.
    pub not_in_cache: AtomicU64,
    /// Entries that did not decode (read as misses).
    pub unreadable: AtomicU64,
    /// Entries that could not be written (the page was used uncached).
    pub unwritten: AtomicU64,
    seq: AtomicU64,
}

/// What the cache holds for a request.
pub enum Lookup {
    /// A fresh entry.
    Hit(Box<Entry>),
    /// Nothing usable: fetch it (or fail, in `replay`).
    Miss,
}

impl Cache {
    /// Opens `cfg.dir`, creating it unless in `replay` mode.
    pub fn open(cfg: CacheConfig) -> Result<Cache, String> {
        let shown = cfg.dir.display().to_string();
        match cfg.mode {
            Mode::Replay if !cfg.dir.is_dir() => {
                return Err(format!(
                    "--http-cache {shown} is not a directory (replay needs a cache filled by an earlier run with --http-cache-mode use)"
                ))
            }
            Mode::Replay => {}
            _ => std::fs::create_dir_all(&cfg.dir).map_err(|e| {
                format!("cannot create --http-cache {shown}: {e} (give a writable directory)")
            })?,
        }
        Ok(Cache {
            cfg,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            not_in_cache: AtomicU64::new(0),
            unreadable: AtomicU64::new(0),
            unwritten: AtomicU64::new(0),
            seq: AtomicU64::new(0),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// Whether no request may be sent.
    pub fn replay(&self) -> bool {
        self.cfg.mode == Mode::Replay
    }

    /// Where the entry for this request lives.
    fn path(&self, method: &str, url: &Url, body: &str) -> PathBuf {
        entry_path(&self.cfg.dir, method, url, body)
    }

    /// Whether a lookup would hit, from the file's age alone (the crawler
    /// skips its host slot and delay for these).
    pub fn fresh(&self, method: &str, url: &Url, body: &str) -> bool {
        match self.cfg.mode {
            Mode::Refresh => false,
            Mode::Replay => self.path(method, url, body).is_file(),
            Mode::Use => std::fs::metadata(self.path(method, url, body))
                .ok()
                .is_some_and(|m| self.young(&m)),
        }
    }

    fn young(&self, m: &std::fs::Metadata) -> bool {
        let Some(expiry) = self.cfg.expiry else {
            return true;
        };
        m.modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < expiry)
    }

    /// The entry for a request, if fresh; counts the hit or miss.
    pub fn lookup(&self, method: &str, url: &Url, body: &str, limit: u64) -> Lookup {
        let found = match self.cfg.mode {
            Mode::Refresh => None,
            _ => {
                let path = self.path(method, url, body);
                match std::fs::metadata(&path) {
                    Ok(m) if self.cfg.mode == Mode::Replay || self.young(&m) => {
                        match read(&path, limit) {
                            Ok(e) if e.meta.url == shown(url).as_str() => Some(e),
                            _ => {
                                self.unreadable.fetch_add(1, Relaxed);
                                None
                            }
                        }
                    }
                    _ => None,
                }
            }
        };
        match found {
            Some(e) => {
                self.hits.fetch_add(1, Relaxed);
                Lookup::Hit(Box::new(e))
            }
            None if self.replay() => {
                self.not_in_cache.fetch_add(1, Relaxed);
                Lookup::Miss
            }
            // Counted as fetched when it is (`exchange::send_live`).
            None => Lookup::Miss,
        }
    }

    /// A hit that could not answer after all (kept without the body this
    /// run wants): not a hit, but fetched (`use`) or not in the cache
    /// (`replay`).
    pub fn hit_unusable(&self) {
        self.hits.fetch_sub(1, Relaxed);
        if self.replay() {
            self.not_in_cache.fetch_add(1, Relaxed);
        }
    }

    /// Stores an answer (write to a temporary name, then rename). A failure
    /// to store is a warning, once per run: the crawl goes on uncached.
    pub fn store(
        &self,
        method: &str,
        url: &Url,
        body: &str,
        status: u16,
        headers: Vec<(String, String)>,
        content: Option<&[u8]>,
    ) {
        if !cacheable(status) || self.replay() {
            return;
        }
        let headers = headers
            .into_iter()
            // A page kept without its body keeps its Content-Length, so a
            // re-run skips it for its size as the live run did.
            .filter(|(n, _)| {
                !HOP_HEADERS.contains(&n.as_str()) || (content.is_none() && n == "content-length")
            })
            .collect();
        let meta = Meta {
            url: shown(url).to_string(),
            method: method.to_string(),
            status,
            headers,
            stored: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            unread: content.is_none(),
        };
        let path = self.path(method, url, body);
        let seq = self.seq.fetch_add(1, Relaxed);
        match write(&path, &meta, content.unwrap_or_default(), seq) {
            Ok(()) => {
                self.stored.fetch_add(1, Relaxed);
            }
            Err(e) => {
                // Warned once a run; the summary counts them all.
                if self.unwritten.fetch_add(1, Relaxed) == 0 {
                    crate::run::log::warn(&format!(
                        "cannot write the HTTP cache entry {} ({e}); the page is used uncached (http_cache_unwritten counts every such page)",
                        path.display()
                    ));
                }
            }
        }
    }
}

impl Cache {
    /// This run's use of the cache, and what the directory holds now.
    pub fn summarize(&self, sum: &mut crate::run::summary::Summary) {
        let (entries, bytes) = size(&self.cfg.dir);
        sum.set("http_cache_mode", self.cfg.mode.name())
            .set("http_cache_hits", self.hits.load(Relaxed))
            .set("http_cache_fetched", self.misses.load(Relaxed))
            .set("http_cache_stored", self.stored.load(Relaxed))
            .set("http_cache_entries", entries)
            .set("http_cache_bytes", bytes);
        for (key, n) in [
            ("http_cache_not_in_cache", self.not_in_cache.load(Relaxed)),
            ("http_cache_unreadable", self.unreadable.load(Relaxed)),
            ("http_cache_unwritten", self.unwritten.load(Relaxed)),
        ] {
            if n > 0 {
                sum.set(key, n);
            }
        }
    }
}

/// Statuses worth keeping: not those a crawl retries.
pub fn cacheable(status: u16) -> bool {
    !matches!(status, 408 | 429) && status < 500
}

/// The URL as an entry records it: without its fragment or any password
/// (the fingerprint still tells two passwords apart).
pub fn shown(url: &Url) -> Url {
    let mut u = strip(url);
    let _ = u.set_password(None);
    u
}

/// The URL without its fragment.
fn strip(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_fragment(None);
    u
}

/// Where the entry for a request lives in the cache `dir`.
pub fn entry_path(dir: &Path, method: &str, url: &Url, body: &str) -> PathBuf {
    let key = fingerprint(method, url, body);
    dir.join(&key[..2]).join(key)
}

/// The request's fingerprint, 32 hex digits.
pub fn fingerprint(method: &str, url: &Url, body: &str) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(strip(url).as_str().as_bytes());
    h.update(b"\n");
    h.update(body.as_bytes());
    format!("{:032x}", h.digest128())
}

/// Writes an entry: gzip of the header line and the body, renamed into place.
fn write(path: &Path, meta: &Meta, content: &[u8], seq: u64) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let result = (|| {
        // Pages fetched with the user's cookies or Authorization header may
        // be private: readable by their owner only.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        );
        serde_json::to_writer(&mut gz, meta)?;
        gz.write_all(b"\n")?;
        gz.write_all(content)?;
        gz.finish()?.flush()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads an entry whose body is at most `limit` bytes.
/// An entry larger than the limit is an error (read as a miss, so the page
/// is fetched and judged again), never a body cut short.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Entry> {
    use std::io::BufRead;
    let file = std::fs::File::open(path)?;
    let mut gz = std::io::BufReader::new(flate2::read::GzDecoder::new(file));
    let mut line = Vec::new();
    (&mut gz)
        .take(MAX_HEADER_LINE)
        .read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        return Err(std::io::Error::other("no header line"));
    }
    let meta: Meta = serde_json::from_slice(&line[..line.len() - 1])?;
    let mut body = Vec::new();
    gz.take(limit.saturating_add(1)).read_to_end(&mut body)?;
    if body.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "the stored body is larger than {limit} bytes"
        )));
    }
    Ok(Entry { meta, body })
}

/// The longest header line read (status, URL and headers, JSON-escaped).
const MAX_HEADER_LINE: u64 = 4 << 20;

/// Every entry file under `dir` (for `spec --diff` and the summary).
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(top) = std::fs::read_dir(dir) else {
        return out;
    };
    for sub in top.flatten() {
        let Ok(files) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            if name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push(f.path());
            }
        }
    }
    out.sort();
    out
}

/// Entries under `dir` and their bytes on disk.
pub fn size(dir: &Path) -> (u64, u64) {
    entries(dir).iter().fold((0, 0), |(n, b), p| {
        (n + 1, b + std::fs::metadata(p).map_or(0, |m| m.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, mode: Mode) -> Cache {
        Cache::open(CacheConfig {
            dir: dir.to_path_buf(),
            mode,
            expiry: None,
        })
        .unwrap()
    }

    #[test]
    fn an_entry_keeps_no_password_and_only_its_owner_reads_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), Mode::Use);
        let url = Url::parse("http://user:s3cret@h/a").unwrap();
        c.store("GET", &url, "", 200, Vec::new(), Some(b"x"));
        let Lookup::Hit(e) = c.lookup("GET", &url, "", 100) else {
            panic!("no hit")
        };
        assert_eq!(e.meta.url, "http://user@h/a");
        let other = Url::parse("http://user:other@h/a").unwrap();
        assert!(matches!(c.lookup("GET", &other, "", 100), Lookup::Miss));
        let files = entries(dir.path());
        assert_eq!(files.len(), 1);
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_entry_round_trips_and_keys_ignore_the_fragment_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), Mode::Use);
        let url = Url::parse("http://h/a?b=1#frag").unwrap();
        assert!(matches!(c.lookup("GET", &url, "", 100), Lookup::Miss));
        let headers = vec![
            ("content-type".into(), "text/html".into()),
            ("set-cookie".into(), "a=b".into()),
        ];
        c.store("GET", &url, "", 200, headers, Some(b"<p>hi</p>"));
        let plain = Url::parse("http://h/a?b=1").unwrap();
        let Lookup::Hit(e) = c.lookup("GET", &plain, "", 100) else {
            panic!("no hit")
        };
        assert_eq!(e.body, b"<p>hi</p>");
        assert_eq!(e.meta.status, 200);
        assert_eq!(e.header("content-type"), Some("text/html"));
        assert_eq!(e.set_cookies(), ["a=b"]);
        assert!(matches!(c.lookup("POST", &plain, "", 100), Lookup::Miss));
        assert!(matches!(
            c.lookup("GET", &Url::parse("http://h/a?b=2").unwrap(), "", 100),
            Lookup::Miss
        ));
        // Retried statuses are not kept.
        let u5 = Url::parse("http://h/5").unwrap();
        c.store("GET", &u5, "", 503, vec![], Some(b""));
        assert!(!c.fresh("GET", &u5, ""));
        assert_eq!(size(dir.path()).0, 1);
        // A torn entry is a miss, never a page.
        let path = c.path("GET", &plain, "");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(c.lookup("GET", &plain, "", 100), Lookup::Miss));
        assert_eq!(c.unreadable.load(Relaxed), 1);
    }

    #[test]
    fn refresh_never_hits_and_replay_never_stores() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::parse("http://h/").unwrap();
        cache(dir.path(), Mode::Use).store("GET", &url, "", 200, vec![], Some(b"x"));
        let r = cache(dir.path(), Mode::Refresh);
        assert!(matches!(r.lookup("GET", &url, "", 10), Lookup::Miss));
        let p = cache(dir.path(), Mode::Replay);
        assert!(matches!(p.lookup("GET", &url, "", 10), Lookup::Hit(_)));
        let other = Url::parse("http://h/other").unwrap();
        p.store("GET", &other, "", 200, vec![], Some(b"y"));
        assert!(matches!(p.lookup("GET", &other, "", 10), Lookup::Miss));
        assert_eq!(p.not_in_cache.load(Relaxed), 1);
        assert!(Mode::parse("nope")
            .unwrap_err()
            .contains("use, replay, refresh"));
    }

    #[test]
    fn a_body_over_the_limit_is_a_miss_and_a_long_header_line_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path(), Mode::Use);
        let url = Url::parse("http://h/big").unwrap();
        // 70,000 quotes escape to a header line over the old 64 KiB margin.
        let headers = vec![("x-long".into(), "\"".repeat(70_000))];
        let body = format!("START{}END", "x".repeat(99_000));
        c.store("GET", &url, "", 200, headers, Some(body.as_bytes()));
        let Lookup::Hit(e) = c.lookup("GET", &url, "", 100_000) else {
            panic!("no hit")
        };
        assert_eq!(e.body, body.as_bytes());
        // Read with a smaller limit: a miss (fetched and judged again), never cut.
        assert!(matches!(c.lookup("GET", &url, "", 1_000), Lookup::Miss));
        assert_eq!(c.unreadable.load(Relaxed), 1);
        // A page kept without its body keeps its length, so a re-run skips
        // it for its size again; a page with its body does not.
        let skipped = Url::parse("http://h/skipped").unwrap();
        let len = vec![("content-length".to_string(), "5000".to_string())];
        c.store("GET", &skipped, "", 200, len.clone(), None);
        let Lookup::Hit(e) = c.lookup("GET", &skipped, "", 1_000) else {
            panic!("no hit")
        };
        assert!(e.meta.unread);
        assert_eq!(e.header("content-length"), Some("5000"));
        c.store("GET", &url, "", 200, len, Some(b"abc"));
        let Lookup::Hit(e) = c.lookup("GET", &url, "", 1_000) else {
            panic!("no hit")
        };
        assert_eq!(e.header("content-length"), None);
    }
}
