//! One crawl's HTTP session: the agent every fetcher shares (one connection
//! pool and one cookie jar), the headers sent with every request, and the
//! proxy picked per URL (its settings: `config`); the one HTTP `exchange`
//! (request, redirects, body limit) that the crawler, robots.txt and the
//! login all use; and the `login` step that fills the jar first.
//!
//! The jar is ureq's (`cookies` feature, RFC 6265 via `cookie_store`): it
//! stores the Set-Cookie headers of every response, redirects included, and
//! sends each request only the cookies whose domain and path match its URL.
//! The agent follows no redirects itself (`exchange` checks each hop), so
//! every hop goes through the jar, and through `cookies::Pruner`, which keeps the
//! jar within browsers' limits. Host names are resolved once a minute
//! (`resolve`), not once per request.

pub mod address;
pub mod cache;
mod config;
pub mod cookies;
pub mod exchange;
pub mod form;
pub mod headers;
pub mod login;
pub mod proxy;
mod resolve;

pub use config::HttpConfig;

use cookies::{Cap, Limits, Pruner};
use std::sync::Arc;
use ureq::typestate::{WithBody, WithoutBody};
use ureq::{Agent, RequestBuilder};
use url::Url;

/// The shared agent, plus what every request carries.
pub struct Session {
    /// Shared so that the jar's `Cap` can hold it weakly.
    agent: Arc<Agent>,
    /// The jar's limits (and the way in for cookies the cache answers).
    cap: Arc<Cap>,
    headers: Vec<(String, String)>,
    proxies: proxy::Proxies,
    secrets: Vec<String>,
    /// `--http-cache`, opened.
    cache: Option<Arc<cache::Cache>>,
    /// `--max-body`: the most a cached body may hold.
    max_body: u64,
}

impl Session {
    /// Builds the one session every fetcher thread shares. A `Cookie` header
    /// given by the user goes into the jar for the hosts of `cookie_urls`
    /// only (host-only cookies, path `/`), so it never reaches other sites.
    pub fn new(cfg: &HttpConfig, cookie_urls: &[Url]) -> Result<Session, String> {
        let cap = Arc::new(Cap::new(Limits::BROWSER));
        let config = Agent::config_builder()
            .timeout_connect(Some(cfg.connect_timeout))
            .timeout_per_read(Some(cfg.read_timeout))
            .timeout_global(Some(cfg.total_timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(cfg.user_agent.as_str())
            .max_idle_connections_per_host(64)
            // Not from the environment: `proxy::Proxies` picks one per request.
            .proxy(None)
            .middleware(Pruner(Arc::clone(&cap)))
            .build();
        let agent = Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::new(),
            resolve::CachingResolver::guarded((!cfg.allow_private).then(|| cfg.proxies.hosts())),
        );
        let agent = Arc::new(agent);
        cap.attach(&agent);
        if let Some(cookie) = &cfg.headers.cookie {
            for url in cookie_urls {
                let Ok(origin) = Url::parse(&url.origin().ascii_serialization()) else {
                    continue;
                };
                for pair in headers::cookie_pairs(cookie) {
                    cap.insert_user(&origin, pair);
                }
            }
        }
        crate::run::log::debug(&format!("{:?}", cfg.proxies));
        let cookies = cfg
            .headers
            .cookie
            .iter()
            .flat_map(|c| headers::cookie_pairs(c));
        let secrets = cfg
            .headers
            .list
            .iter()
            .map(|(_, v)| v.as_str())
            .chain(cookies.filter_map(|p| p.split_once('=').map(|(_, v)| v.trim())))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        let cache = cfg
            .cache
            .clone()
            .map(cache::Cache::open)
            .transpose()?
            .map(Arc::new);
        Ok(Session {
            agent,
            cap,
            headers: cfg.headers.list.clone(),
            proxies: cfg.proxies.clone(),
            secrets,
            cache,
            max_body: cfg.max_body,
        })
    }

    /// The HTTP cache, if the run has one.
    pub fn cache(&self) -> Option<&Arc<cache::Cache>> {
        self.cache.as_ref()
    }

    /// Puts the `Set-Cookie` values of a cached answer from `url` in the
    /// jar, as the request it replaces would have.
    pub fn cookies_from_cache(&self, url: &Url, set: &[String]) {
        if !set.is_empty() {
            self.cap.insert_cached(url, set);
        }
    }

    /// `--max-body`.
    pub fn max_body(&self) -> u64 {
        self.max_body
    }

    /// Whether `url` will be answered without a request (a fresh cache
    /// entry, or replay mode): no host slot or delay is needed for it.
    pub fn answers_offline(&self, url: &Url, method: &exchange::Method) -> bool {
        let (verb, body) = method.cache_key();
        self.cache
            .as_ref()
            .is_some_and(|c| c.replay() || c.fresh(verb, url, body))
    }

    /// Values a message must never show: every header value, and the values
    /// of the user's cookies.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// A GET of `url` with the session's headers, through its proxy.
    pub fn get(&self, url: &Url) -> RequestBuilder<WithoutBody> {
        self.prepare(self.agent.get(url.as_str()), url)
    }

    /// A GET of a redirect target nobody vetted (robots.txt's): the
    /// session's headers but `Authorization`, as a browser sends it.
    pub fn get_unvetted(&self, url: &Url) -> RequestBuilder<WithoutBody> {
        let mut req = self.agent.get(url.as_str());
        let kept = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
        for (name, value) in kept {
            req = req.header(name, value);
        }
        self.route(req, url)
    }

    /// A POST to `url` with the session's headers, through its proxy.
    pub fn post(&self, url: &Url) -> RequestBuilder<WithBody> {
        self.prepare(self.agent.post(url.as_str()), url)
    }

    /// Whether the user set header `name` (then qpipe does not add its own).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }

    /// Cookies in the jar now (unexpired, any site).
    pub fn cookie_count(&self) -> usize {
        self.agent.cookie_jar_lock().iter().count()
    }

    fn prepare<B>(&self, mut req: RequestBuilder<B>, url: &Url) -> RequestBuilder<B> {
        for (name, value) in &self.headers {
            req = req.header(name, value);
        }
        self.route(req, url)
    }

    /// `req` through the proxy for `url`, if any.
    fn route<B>(&self, req: RequestBuilder<B>, url: &Url) -> RequestBuilder<B> {
        match self.proxies.for_url(url) {
            Some(p) => req.config().proxy(Some(p.ureq().clone())).build(),
            None => req,
        }
    }
}
