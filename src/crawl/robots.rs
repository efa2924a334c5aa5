//! robots.txt: fetched once per origin (through the session's `exchange`),
//! parsed by `texting_robots`, cached.
//!
//! The cache holds at most `MAX_ORIGINS` origins, so a site with endless
//! subdomains cannot grow it without limit: the least recently used half is
//! forgotten when it is full, and fetched again if needed.

use crate::crawl::session::exchange::{self, Answer, Hop, Method, Redirects};
use crate::crawl::session::Session;
use crate::run::log;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use texting_robots::Robot;
use url::Url;

/// The rules for one origin. `None`: everything allowed (no robots.txt, 4xx, or unreachable).
struct Rules {
    robot: Option<Robot>,
}

/// Origins whose robots.txt rules are cached at once (each file is read up
/// to 512 KiB). Entries being fetched or read are never evicted, and there
/// are at most `--threads` of those.
pub const MAX_ORIGINS: usize = 1_000;

/// Per-origin robots.txt cache shared by the fetchers.
pub struct Robots {
    agent_name: String,
    cache: Cache<Rules>,
}

/// Each origin's cell, and when it was last used (a tick of the cache's clock).
type Entries<T> = HashMap<String, (Arc<OnceLock<T>>, u64)>;

/// A bounded map from origin to a value computed once, least recently used
/// half evicted when full.
struct Cache<T> {
    /// The entries and the clock.
    map: Mutex<(Entries<T>, u64)>,
    cap: usize,
}

impl<T> Cache<T> {
    fn new(cap: usize) -> Cache<T> {
        Cache {
            map: Mutex::new((HashMap::new(), 0)),
            cap: cap.max(2),
        }
    }

    /// The cell for `key`, created empty if new, and marked as just used.
    fn cell(&self, key: String) -> Arc<OnceLock<T>> {
        let mut guard = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (map, clock) = &mut *guard;
        *clock += 1;
        if map.len() >= self.cap && !map.contains_key(&key) {
            evict_oldest_half(map);
        }
        let entry = map.entry(key).or_insert_with(|| (Arc::default(), 0));
        entry.1 = *clock;
        Arc::clone(&entry.0)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap().0.len()
    }
}

/// Forgets the least recently used half of the entries nobody holds. Linear,
/// and run once per `cap / 2` new keys, so constant per key.
fn evict_oldest_half<T>(map: &mut Entries<T>) {
    let mut ages: Vec<u64> = map.values().map(|(_, used)| *used).collect();
    let mid = ages.len() / 2;
    let (_, median, _) = ages.select_nth_unstable(mid);
    let median = *median;
    map.retain(|_, (cell, used)| *used >= median || Arc::strong_count(cell) > 1);
}

impl Robots {
    /// Rules are matched for `user_agent` (its product token, e.g. `qpipe`).
    pub fn new(user_agent: &str) -> Robots {
        let token = user_agent
            .split(['/', ' '])
            .next()
            .unwrap_or("qpipe")
            .to_string();
        Robots {
            agent_name: token,
            cache: Cache::new(MAX_ORIGINS),
        }
    }

    fn rules(&self, session: &Session, url: &Url) -> Arc<OnceLock<Rules>> {
        let cell = self.cache.cell(url.origin().ascii_serialization());
        // The first caller for an origin fetches; others for it wait here.
        cell.get_or_init(|| self.fetch(session, url));
        cell
    }

    fn fetch(&self, session: &Session, url: &Url) -> Rules {
        let Ok(robots_url) = url.join("/robots.txt") else {
            return Rules { robot: None };
        };
        match fetch_text(session, &robots_url) {
            Ok(Some(text)) => Rules {
                robot: Robot::new(&self.agent_name, text.as_bytes()).ok(),
            },
            // No robots.txt (4xx): everything is allowed.
            Ok(None) => Rules { robot: None },
            Err(e) => {
                log::warn(&format!("{robots_url}: {e}; crawling without robots rules"));
                Rules { robot: None }
            }
        }
    }

    /// Whether `url` may be fetched, and the origin's Crawl-delay, from one
    /// cache lookup.
    pub fn check(&self, session: &Session, url: &Url) -> (bool, Option<Duration>) {
        let cell = self.rules(session, url);
        let Some(robot) = cell.get().and_then(|r| r.robot.as_ref()) else {
            return (true, None);
        };
        let delay = robot
            .delay
            .filter(|d| d.is_finite() && *d > 0.0)
            .map(|d| Duration::from_secs_f32(d.min(60.0)));
        (robot.allowed(url.as_str()), delay)
    }
}

/// Redirects followed for robots.txt (a sixth is an error, as ureq's own
/// redirect following had it).
const MAX_REDIRECTS: usize = 5;
/// The most of a robots.txt read.
const MAX_BYTES: u64 = 512 * 1024;

/// GET of robots.txt (any content type, redirects followed anywhere but
/// without the `Authorization` header, 512 KiB cap). `Ok(None)` for a
/// non-2xx answer.
fn fetch_text(session: &Session, url: &Url) -> Result<Option<String>, String> {
    let redirects = Redirects {
        max: MAX_REDIRECTS,
        check: &Redirects::anywhere,
        too_many: &|_, _| "too many redirects".to_string(),
    };
    let (_, text) = exchange::follow(url, Method::Get, &redirects, |at, method| {
        let method = match at == url {
            true => method,
            false => &Method::GetUnvetted,
        };
        let resp = match exchange::send(session, at, method).map_err(|f| f.detail)? {
            Answer::Redirect { to, code } => return Ok(Hop::Redirect { to, code }),
            Answer::Response(resp) => resp,
        };
        if !resp.is_success() {
            return Ok(Hop::Done(None));
        }
        let bytes = resp.read(MAX_BYTES, 0).map_err(|f| f.detail)?;
        Ok(Hop::Done(Some(
            String::from_utf8_lossy(&bytes).into_owned(),
        )))
    })?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_forgets_the_least_recently_used_half() {
        let cache: Cache<u32> = Cache::new(4);
        let mut held = None;
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            let cell = cache.cell(k.to_string());
            let _ = cell.set(i as u32);
            if *k == "b" {
                held = Some(cell); // a fetcher is reading b's rules
            }
        }
        let _ = cache.cell("a".into());
        assert_eq!(cache.len(), 4);
        // Full: the older half by last use is b and c; b is held, so only c goes.
        let _ = cache.cell("e".into());
        assert_eq!(cache.len(), 4, "a, b, d and e");
        assert_eq!(cache.cell("a".into()).get(), Some(&0));
        assert_eq!(cache.cell("b".into()).get(), Some(&1));
        assert_eq!(held.and_then(|c| c.get().copied()), Some(1));
        assert_eq!(cache.cell("c".into()).get(), None, "c was forgotten");
    }
}
