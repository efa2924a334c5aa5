//! robots.txt: fetched once per origin, parsed by `texting_robots`, cached.

use crate::log;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use texting_robots::Robot;
use ureq::Agent;
use url::Url;

/// The rules for one origin. `None`: everything allowed (no robots.txt, 4xx, or unreachable).
struct Rules {
    robot: Option<Robot>,
}

/// Per-origin robots.txt cache shared by the fetchers.
pub struct Robots {
    agent_name: String,
    cache: Mutex<HashMap<String, Arc<OnceLock<Rules>>>>,
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
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn rules(&self, agent: &Agent, url: &Url) -> Arc<OnceLock<Rules>> {
        let origin = url.origin().ascii_serialization();
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(cache.entry(origin).or_default())
        };
        // The first caller for an origin fetches; others for it wait here.
        cell.get_or_init(|| self.fetch(agent, url));
        cell
    }

    fn fetch(&self, agent: &Agent, url: &Url) -> Rules {
        let Ok(robots_url) = url.join("/robots.txt") else {
            return Rules { robot: None };
        };
        match fetch_text(agent, &robots_url) {
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
    pub fn check(&self, agent: &Agent, url: &Url) -> (bool, Option<Duration>) {
        let cell = self.rules(agent, url);
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

/// GET of robots.txt (any content type, redirects followed, 512 KiB cap).
/// `Ok(None)` for a non-2xx answer.
fn fetch_text(agent: &Agent, url: &Url) -> Result<Option<String>, String> {
    let mut resp = agent
        .get(url.as_str())
        .config()
        .max_redirects(5)
        .build()
        .call()
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(512 * 1024)
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
