//! Connecting to Redis: one server (`redis://`, `rediss://`), a Redis
//! Cluster (`redis+cluster://h1:p1,h2:p2`) or the master of a service behind
//! Redis Sentinel (`redis+sentinel://h1:p1,h2:p2/service`), with timeouts set
//! explicitly.

use crate::error::Error;
use crate::queue::sentinel::{self, Sentinels};
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Client, Cmd, Connection, ConnectionLike, RedisResult, Value};
use std::time::Duration;

/// How long a connect may take before it is reported as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where Redis is: its URL and, for TLS, an optional private CA.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `redis://`, `rediss://`, `unix://`, `redis+cluster://`/`rediss+cluster://`
    /// with comma-separated nodes, or `redis+sentinel://`/`rediss+sentinel://`
    /// with comma-separated sentinels and a service; may hold passwords.
    pub url: String,
    /// PEM bundle trusted instead of the system roots (`--tls-ca`).
    pub tls_ca: Option<Vec<u8>>,
}

impl Endpoint {
    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.url.starts_with("redis+cluster://") || self.url.starts_with("rediss+cluster://")
    }

    /// Whether this is the master of a service behind Redis Sentinel.
    pub fn is_sentinel(&self) -> bool {
        sentinel::is_sentinel(&self.url)
    }
}

/// A validated, not yet connected, client.
#[derive(Clone)]
pub enum Target {
    /// One server.
    Single(Client),
    /// A cluster, reached through any of its nodes.
    Cluster(ClusterClient),
    /// The master of a service, found through its sentinels at each connect.
    Sentinel(Box<Sentinels>),
}

/// One connection, to a server or to a cluster (which routes by key).
pub enum Conn {
    /// One server.
    Single(Connection),
    /// A cluster (boxed: it is several times the size of a single connection).
    Cluster(Box<ClusterConnection>),
}

static WARNED_INSECURE: std::sync::Once = std::sync::Once::new();
static WARNED_TIME: std::sync::Once = std::sync::Once::new();

/// Whether a connection found `TIME` refused (then no command is fenced).
pub fn time_refused() -> bool {
    WARNED_TIME.is_completed()
}

/// Node URLs of a cluster URL: `redis+cluster://u:p@h1:1,h2:2/#x` ->
/// `redis://u:p@h1:1/#x`, `redis://u:p@h2:2/#x`.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let (scheme, rest) = url.split_once("+cluster://")?;
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let (hosts, tail) = match hosts.find(['/', '#']) {
        Some(i) => hosts.split_at(i),
        None => (hosts, ""),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| format!("{scheme}://{userinfo}{h}{tail}"))
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// Validates the endpoint into a client; a malformed URL is a usage error.
pub fn target(ep: &Endpoint) -> Result<Target, Error> {
    let url = ep.url.as_str();
    let certs = || {
        ep.tls_ca.as_ref().map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    };
    if sentinel::is_sentinel(url) {
        let s = Sentinels::parse(url, ep.tls_ca.clone())?;
        warn_insecure(url);
        return Ok(Target::Sentinel(Box::new(s)));
    }
    let opened = if ep.is_cluster() {
        match cluster_nodes(url) {
            None => Err(redis::RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "no nodes",
            ))),
            Some(nodes) => {
                // No retries inside the client: it resends a command after a
                // read timeout on the same connection and drops the first
                // reply, which duplicates a push or loses a pop. Every retry
                // is `Link`'s, which knows which commands are safe to repeat,
                // watches the stop flag, and refreshes the slot map on MOVED.
                let mut b = ClusterClient::builder(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .retries(0);
                if let Some(c) = certs() {
                    b = b.certs(c);
                }
                b.build().map(Target::Cluster)
            }
        }
    } else {
        match certs() {
            Some(c) => Client::build_with_tls(url, c),
            None => Client::open(url),
        }
        .map(Target::Single)
    };
    let t = opened.map_err(|e| {
        Error::Usage(format!(
            "invalid Redis URL {}: {} (use redis://[user:password@]host:port[/db], rediss:// for TLS, redis+cluster://host:port,host:port, or redis+sentinel://host:port,host:port/service)",
            crate::error::redact(url),
            e.detail().unwrap_or("bad format")
        ))
    })?;
    warn_insecure(url);
    Ok(t)
}

/// Warns once when a TLS URL turns certificate checks off.
fn warn_insecure(url: &str) {
    if url.starts_with("rediss") && url.ends_with("#insecure") {
        WARNED_INSECURE.call_once(|| {
            crate::run::log::warn(
                "TLS certificate checks are off (#insecure in the Redis URL); use --tls-ca to trust a private CA instead",
            );
        });
    }
}

/// The name every connection gives itself (`CLIENT SETNAME`), set once by
/// `main`: `qpipe-<command>-<host>-<pid>`, so `CLIENT LIST` tells them apart.
static CLIENT_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process's connections after `command` (once, at start).
pub fn name_clients(command: &str) {
    let host: String = hostname()
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || c == '.' {
            true => c,
            false => '_',
        })
        .collect();
    let _ = CLIENT_NAME.set(format!("qpipe-{command}-{host}-{}", std::process::id()));
}

/// A fresh connection and what was learnt while opening it.
pub struct Opened {
    /// The connection, with its socket timeouts set.
    pub con: Conn,
    /// Redis's clock minus ours, in milliseconds (0 if `TIME` is refused):
    /// deadlines that Redis checks (`link::FENCE`) are written in its time.
    pub skew_ms: i64,
    /// Behind Sentinel: the master's address, as the sentinels named it.
    pub master: Option<(String, u16)>,
}

/// Connects with the given socket timeouts. `get_connection_with_timeout`
/// only covers the connect itself, so read/write timeouts are set here.
///
/// The whole opening (connect, handshake, `CLIENT SETNAME`, `TIME`) shares
/// one deadline of `timeout`: a server that accepts connections but does not
/// answer (a stopped process, a partition behind a load balancer) costs one
/// timeout, not one per command. A timeout or a dropped connection in any
/// step fails the connect; a refusal of `CLIENT` or `TIME` (an ACL) does not.
pub fn connect(t: &Target, timeout: Duration) -> RedisResult<Opened> {
    let deadline = std::time::Instant::now() + timeout;
    let left = || {
        deadline
            .saturating_duration_since(std::time::Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut master = None;
    let mut con = match t {
        Target::Single(c) => {
            // A short-lived link (e.g. at exit) gets a short connect too.
            let con = c.get_connection_with_timeout(CONNECT_TIMEOUT.min(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            Conn::Single(con)
        }
        Target::Cluster(c) => {
            let con = c.get_connection()?;
            con.set_write_timeout(Some(timeout))?;
            Conn::Cluster(Box::new(con))
        }
        Target::Sentinel(s) => {
            let (con, addr) = s.connect_master(timeout)?;
            con.set_write_timeout(Some(timeout))?;
            master = Some(addr);
            Conn::Single(con)
        }
    };
    con.set_read_timeout(left())?;
    if let Some(name) = CLIENT_NAME.get() {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("SETNAME").arg(name);
        let named = match &mut con {
            Conn::Single(c) => cmd.query::<()>(c),
            Conn::Cluster(c) => c
                .route_command(
                    &cmd,
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllNodes, None)),
                )
                .map(drop),
        };
        // Best effort: an ACL may forbid CLIENT, which must not stop the run;
        // no answer at all from one server is a server that is not there (a
        // cluster sends it to every node, and one may be down).
        match named {
            Err(e) if e.code().is_none() && !matches!(t, Target::Cluster(_)) => return Err(e),
            _ => {}
        }
    }
    con.set_read_timeout(left())?;
    let skew_ms = match (read_skew(&mut con), t) {
        (Ok(ms), _) => ms,
        (Err(e), Target::Single(_) | Target::Sentinel(_)) if e.code().is_none() => return Err(e),
        (Err(e), _) if e.code().is_some() => {
            WARNED_TIME.call_once(|| {
                crate::run::log::warn(&format!(
                    "this Redis user may not run TIME ({}): commands whose reply is lost cannot be fenced by a deadline, and a late copy could still land (grant +time)",
                    e.detail().unwrap_or("refused")
                ));
            });
            0
        }
        // Refused (an ACL), or a cluster node that is down (TIME goes to
        // some node): the clocks are taken to agree.
        (Err(_), _) => 0,
    };
    con.set_read_timeout(timeout)?;
    Ok(Opened {
        con,
        skew_ms,
        master,
    })
}

/// Redis's clock minus ours, in milliseconds, read with `TIME`: the lowest
/// value the round trip allows (Redis read its clock before our `after`),
/// so a deadline written in Redis's clock is never later than meant.
pub fn read_skew(con: &mut Conn) -> RedisResult<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query(con)?;
    let after = crate::run::log::unix_time().as_millis() as i64;
    Ok(secs * 1000 + micros / 1000 - after)
}

impl Conn {
    /// Sets the socket read timeout (of every node, on a cluster).
    pub fn set_read_timeout(&self, d: Duration) -> RedisResult<()> {
        match self {
            Conn::Single(c) => c.set_read_timeout(Some(d)),
            Conn::Cluster(c) => c.set_read_timeout(Some(d)),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    // The cluster connection routes by the command's key here.
    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            Conn::Single(c) => c.req_command(cmd),
            Conn::Cluster(c) => c.req_command(cmd),
        }
    }
    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
    fn supports_pipelining(&self) -> bool {
        match self {
            Conn::Single(c) => c.supports_pipelining(),
            Conn::Cluster(c) => c.supports_pipelining(),
        }
    }
    fn check_connection(&mut self) -> bool {
        match self {
            Conn::Single(c) => c.check_connection(),
            Conn::Cluster(c) => c.check_connection(),
        }
    }
    fn is_open(&self) -> bool {
        match self {
            Conn::Single(c) => c.is_open(),
            Conn::Cluster(c) => c.is_open(),
        }
    }
}

/// Runs `cmds` in one round trip on one server (a pipeline), or one by one
/// on a cluster, whose synchronous client has no pipelines. Not atomic
/// either way. Returns each command's reply.
///
/// The client reads a pipeline's replies one by one, each with the full
/// socket timeout, so a server that stops answering would be noticed only
/// after `cmds.len()` timeouts. Each reply here gets `timeout / n` (the
/// socket timeout is put back after), so the whole exchange is bounded by
/// `timeout`. Only for commands that do not block in Redis.
pub fn run_all(con: &mut Conn, cmds: &[Cmd], timeout: Duration) -> RedisResult<Vec<Value>> {
    match con {
        Conn::Single(c) => {
            let mut p = redis::pipe();
            for cmd in cmds {
                p.add_command(cmd.clone());
            }
            c.set_read_timeout(Some(share(timeout, cmds.len())))?;
            let replies = p.query(c);
            let _ = c.set_read_timeout(Some(timeout));
            replies
        }
        Conn::Cluster(c) => {
            c.set_read_timeout(Some(share(timeout, cmds.len())))?;
            let replies = cmds.iter().map(|cmd| cmd.query(c.as_mut())).collect();
            let _ = c.set_read_timeout(Some(timeout));
            replies
        }
    }
}

/// One reply's share of `timeout` when `n` replies must fit in it; never
/// under a second (or the timeout), since the first reply takes a whole
/// round trip to a distant Redis.
fn share(timeout: Duration, n: usize) -> Duration {
    (timeout / n.max(1) as u32).max(timeout.min(Duration::from_secs(1)))
}

/// Runs `cmd` on the master that holds `key` (the one server, or on a
/// cluster the master of `key`'s slot).
fn on_master(con: &mut Conn, key: &str, cmd: &Cmd) -> RedisResult<Value> {
    match con {
        Conn::Single(c) => cmd.query(c),
        Conn::Cluster(c) => c.route_command(
            cmd,
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                key,
                SlotAddr::Master,
            ))),
        ),
    }
}

/// How many replicas the master that holds `key` has connected now.
pub fn replicas(con: &mut Conn, key: &str) -> RedisResult<u64> {
    let info = on_master(con, key, redis::cmd("INFO").arg("replication"))?;
    let text = redis::from_redis_value::<String>(info)?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0))
}

/// Waits (up to 1 s) until one replica of `key`'s master has what this
/// connection wrote. None in time is an error (a timeout): not acknowledged.
pub fn wait_replica(con: &mut Conn, key: &str) -> RedisResult<()> {
    let acked = on_master(con, key, redis::cmd("WAIT").arg(1).arg(1000))?;
    if redis::from_redis_value::<u64>(acked)? == 0 {
        // Not on a replica yet: not acknowledged. The retry re-checks the
        // marker and waits again.
        return Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no replica acknowledged the batch within 1 s",
        )));
    }
    Ok(())
}

/// On a cluster, waits until the master of `key`'s slot has copied what it
/// just applied to one replica, if it has any: Redis Cluster replicates
/// asynchronously, so a master killed right after a push would otherwise
/// take an acknowledged batch with it. A batch that no replica
/// acknowledged in time is an error: the writer's retry finds out from the
/// marker (on the promoted replica, after a failover) whether it landed,
/// and waits again. One server: nothing to do. (Sentinel: `Link::replicate`.)
pub fn replicate(con: &mut Conn, key: &str) -> RedisResult<()> {
    if matches!(con, Conn::Single(_)) {
        return Ok(());
    }
    match replicas(con, key)? {
        0 => Ok(()),
        _ => wait_replica(con, key),
    }
}

/// For a cluster, the node (`host:port`) that serves each key's slot, as the
/// cluster reports it. `None` on one server, or when no node answers.
pub fn nodes_of(con: &mut Conn, keys: &[String]) -> Option<Vec<String>> {
    let Conn::Cluster(c) = con else { return None };
    let c = c.as_mut();
    // Keyless commands go to some node; one may be the dead one, so ask a
    // few times.
    let slots: Vec<Value> =
        (0..4).find_map(|_| redis::cmd("CLUSTER").arg("SLOTS").query(c).ok())?;
    let mut ranges: Vec<(i64, i64, String)> = Vec::new();
    for entry in slots {
        let Value::Array(parts) = entry else { continue };
        let (Some(Value::Int(lo)), Some(Value::Int(hi)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        let host = match master.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        let port = match master.get(1) {
            Some(Value::Int(p)) => *p,
            _ => continue,
        };
        ranges.push((*lo, *hi, format!("{host}:{port}")));
    }
    keys.iter()
        .map(|k| {
            let slot: i64 =
                (0..4).find_map(|_| redis::cmd("CLUSTER").arg("KEYSLOT").arg(k).query(c).ok())?;
            ranges
                .iter()
                .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
                .map(|(_, _, node)| node.clone())
        })
        .collect()
}

/// The host name, for consumer ids and lock tokens (`gethostname(2)`, so
/// it is right on every platform rather than falling back to a constant).
pub fn hostname() -> String {
    let name = gethostname::gethostname()
        .to_string_lossy()
        .trim()
        .to_string();
    match name.is_empty() {
        true => "unknown-host".into(),
        false => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_expand_to_nodes_keeping_credentials() {
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@h1:1,h2:2").unwrap(),
            ["redis://u:p@h1:1", "redis://u:p@h2:2"]
        );
        assert_eq!(
            cluster_nodes("rediss+cluster://h:7000/#insecure").unwrap(),
            ["rediss://h:7000/#insecure"]
        );
        assert_eq!(cluster_nodes("redis://h:1"), None);
    }
}
