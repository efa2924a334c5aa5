//! Redis Sentinel: finding the current master of a named service.
//!
//! URL: `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]`
//! with `?sentinel_user=…&sentinel_password=…` when the sentinels need their
//! own credentials (the ones before `@` are the data nodes'), and
//! `rediss+sentinel://` for TLS to both. A port left out is 26379.
//!
//! Every connection (the first, and every reconnect after a lost one) asks
//! the sentinels in turn `SENTINEL get-master-addr-by-name`, then checks with
//! `ROLE` that the named node is a master (a sentinel can be behind during a
//! failover), as the Sentinel client guidelines ask. Each step runs under the
//! caller's connect deadline, shared between the sentinels so one that hangs
//! cannot use it all. The redis crate's own Sentinel client has no timeouts
//! on its sentinel connections, so it is not used.

use crate::error::Error;
use redis::{Client, Connection, RedisError, RedisResult, Value};
use std::time::{Duration, Instant};

/// The sentinels' default port.
const SENTINEL_PORT: u16 = 26379;

/// A service behind sentinels, not yet connected.
#[derive(Clone)]
pub struct Sentinels {
    /// Each sentinel's `host:port` and client (with the sentinels' credentials).
    sentinels: Vec<(String, Client)>,
    /// The master's name as the sentinels know it.
    service: String,
    /// `redis` or `rediss`.
    scheme: String,
    /// `user:password@` of the data nodes, as written (still percent-encoded).
    userinfo: String,
    /// The database index of the data nodes.
    db: u32,
    /// `#insecure`, or empty.
    fragment: String,
    /// A private CA for TLS (`--tls-ca`).
    certs: Option<Vec<u8>>,
}

/// Whether `url` names sentinels.
pub fn is_sentinel(url: &str) -> bool {
    url.starts_with("redis+sentinel://") || url.starts_with("rediss+sentinel://")
}

/// The usage error for a bad sentinel URL: what is wrong, and the form.
fn bad(url: &str, what: &str) -> Error {
    Error::Usage(format!(
        "invalid Redis Sentinel URL {}: {what} (use redis+sentinel://[user:password@]host:port,host:port/service[/db][?sentinel_password=...])",
        crate::error::redact(url)
    ))
}

/// The sentinels' own user and password, from the URL's query.
fn sentinel_credentials(url: &str, query: &str) -> Result<(String, Option<String>), Error> {
    let (mut user, mut password) = (String::new(), None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "sentinel_user" | "sentinel_username" => user = v.into_owned(),
            "sentinel_password" => password = Some(v.into_owned()),
            other => {
                return Err(bad(
                    url,
                    &format!(
                        "unknown parameter {other:?} (known: sentinel_user, sentinel_password)"
                    ),
                ))
            }
        }
    }
    Ok((user, password))
}

impl Sentinels {
    /// Parses a `redis+sentinel://` URL.
    pub fn parse(url: &str, certs: Option<Vec<u8>>) -> Result<Sentinels, Error> {
        let (scheme, rest) = url
            .split_once("+sentinel://")
            .ok_or_else(|| bad(url, "no +sentinel:// scheme"))?;
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, format!("#{f}")),
            None => (rest, String::new()),
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (format!("{u}@"), r),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (service, db) = path.split_once('/').unwrap_or((path, "0"));
        if service.is_empty() {
            return Err(bad(url, "no service name after the sentinel addresses"));
        }
        let db: u32 = match db.trim_end_matches('/') {
            "" => 0,
            d => d
                .parse()
                .map_err(|_| bad(url, &format!("the database index {d:?} is not a number")))?,
        };
        let (user, password) = sentinel_credentials(url, query)?;
        let mut sentinels = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let with_port = match host.rsplit_once(':') {
                Some((_, p)) if !p.contains(']') => host.to_string(),
                _ => format!("{host}:{SENTINEL_PORT}"),
            };
            let mut u = url::Url::parse(&format!("{scheme}://{with_port}/{fragment}"))
                .map_err(|e| bad(url, &format!("sentinel address {host:?}: {e}")))?;
            if u.port().is_none() {
                return Err(bad(url, &format!("sentinel address {host:?} has no port")));
            }
            if !user.is_empty() {
                let _ = u.set_username(&user);
            }
            if let Some(p) = &password {
                let _ = u.set_password(Some(p));
            }
            let c = client(u.as_str(), &certs).map_err(|e| {
                bad(
                    url,
                    &format!(
                        "sentinel address {host:?}: {}",
                        e.detail().unwrap_or("bad format")
                    ),
                )
            })?;
            sentinels.push((with_port, c));
        }
        if sentinels.is_empty() {
            return Err(bad(url, "no sentinel addresses"));
        }
        Ok(Sentinels {
            sentinels,
            service: service.to_string(),
            scheme: scheme.to_string(),
            userinfo,
            db,
            fragment,
            certs,
        })
    }

    /// Connects to the current master: asks each sentinel in turn until one
    /// names a node that says it is a master. Everything within `timeout`:
    /// each sentinel, and each master it names, gets an equal share, so one
    /// that hangs (or names a node that hangs) leaves time for the others.
    /// The error names every sentinel's failure.
    pub fn connect_master(&self, timeout: Duration) -> RedisResult<(Connection, (String, u16))> {
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        let share = (timeout / self.sentinels.len() as u32).max(Duration::from_millis(100));
        let mut why: Vec<String> = Vec::new();
        for (at, s) in &self.sentinels {
            let budget = share.min(left());
            if budget.is_zero() {
                why.push(format!("sentinel {at}: not asked, out of time"));
                continue;
            }
            let addr = match ask(s, &self.service, budget) {
                Ok(Some(addr)) => addr,
                Ok(None) => {
                    why.push(format!(
                        "sentinel {at} knows no master named {:?}",
                        self.service
                    ));
                    continue;
                }
                Err(e) => {
                    why.push(format!("sentinel {at}: {e}"));
                    continue;
                }
            };
            let budget = share.min(left()).max(Duration::from_millis(1));
            match self.master_at(&addr, budget) {
                Ok(con) => return Ok((con, addr)),
                Err(e) => why.push(format!(
                    "master {}:{} named by sentinel {at}: {e}",
                    addr.0, addr.1
                )),
            }
        }
        let unknown = why.iter().all(|w| w.contains("knows no master named"));
        Err(failed(match unknown {
            true => format!(
                "no sentinel knows a master named {:?} (SENTINEL MASTERS on a sentinel lists the names it monitors)",
                self.service
            ),
            false => why.join("; "),
        }))
    }

    /// The master the first sentinel that answers names now, within
    /// `timeout` (shared as in `connect_master`).
    pub fn master_addr(&self, timeout: Duration) -> RedisResult<(String, u16)> {
        let deadline = Instant::now() + timeout;
        let share = (timeout / self.sentinels.len() as u32).max(Duration::from_millis(100));
        let mut why = Vec::new();
        for (at, s) in &self.sentinels {
            let budget = share.min(deadline.saturating_duration_since(Instant::now()));
            if budget.is_zero() {
                break;
            }
            match ask(s, &self.service, budget) {
                Ok(Some(addr)) => return Ok(addr),
                Ok(None) => why.push(format!(
                    "sentinel {at} knows no master named {:?}",
                    self.service
                )),
                Err(e) => why.push(format!("sentinel {at}: {e}")),
            }
        }
        Err(failed(why.join("; ")))
    }

    /// A connection to `addr` if it is a master now (`ROLE`; a user that
    /// may not run ROLE is taken at the sentinel's word).
    fn master_at(&self, (ip, port): &(String, u16), timeout: Duration) -> RedisResult<Connection> {
        let host = match ip.contains(':') {
            true => format!("[{ip}]"),
            false => ip.clone(),
        };
        let url = format!(
            "{}://{}{host}:{port}/{}{}",
            self.scheme, self.userinfo, self.db, self.fragment
        );
        let mut con = client(&url, &self.certs)?.get_connection_with_timeout(handshake(timeout))?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        match redis::cmd("ROLE").query::<Value>(&mut con) {
            Ok(Value::Array(parts)) => match parts.first() {
                Some(Value::BulkString(r)) if r == b"master" => Ok(con),
                _ => Err(failed(format!(
                    "the node {host}:{port} that a sentinel named is not a master yet (a failover in progress?)"
                ))),
            },
            Ok(_) => Ok(con),
            Err(e) if e.code().is_some() => Ok(con),
            Err(e) => Err(e),
        }
    }
}

/// A failure to find the master, as a connection error: the caller retries
/// it like any other unreachable server (a failover takes a few seconds).
fn failed(text: String) -> RedisError {
    RedisError::from(std::io::Error::other(text))
}

/// The connect timeout for a `budget`: the redis crate applies it to the
/// connect and again to each reply of its opening pipeline (AUTH and two
/// CLIENT SETINFO), so a node that accepts and never answers costs up to
/// four times it.
fn handshake(budget: Duration) -> Duration {
    (budget / 4).max(Duration::from_millis(25))
}

/// A client for `url`, with the private CA if one was given.
fn client(url: &str, certs: &Option<Vec<u8>>) -> RedisResult<Client> {
    match certs {
        Some(pem) => Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => Client::open(url),
    }
}

/// `SENTINEL get-master-addr-by-name` on one sentinel, within `timeout`.
fn ask(sentinel: &Client, service: &str, timeout: Duration) -> RedisResult<Option<(String, u16)>> {
    let mut con = sentinel.get_connection_with_timeout(handshake(timeout))?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(service)
        .query(&mut con)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_sentinels_service_db_and_both_credentials() {
        let url =
            "redis+sentinel://app:pw@10.0.0.1:26380,10.0.0.2/orders/3?sentinel_password=s%40cret";
        let s = match Sentinels::parse(url, None) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(s.sentinels.len(), 2);
        assert_eq!(s.service, "orders");
        assert_eq!(s.db, 3);
        assert_eq!(s.userinfo, "app:pw@");
        let info = s.sentinels[1].1.get_connection_info();
        assert_eq!(info.addr().to_string(), "10.0.0.2:26379");
        assert_eq!(info.redis_settings().password(), Some("s@cret"));
    }

    #[test]
    fn bad_sentinel_urls_are_named() {
        for (url, says) in [
            ("redis+sentinel://h:1", "no service name"),
            ("redis+sentinel://h:1/m/x", "is not a number"),
            ("redis+sentinel:///m", "no sentinel addresses"),
            ("redis+sentinel://h:1/m?password=x", "unknown parameter"),
        ] {
            let e = Sentinels::parse(url, None).err().expect(url).to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("password=x"), "{e}");
        }
    }
}
