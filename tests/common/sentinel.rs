//! A private Redis Sentinel deployment for tests: a master and one replica
//! (redis-server, password `DATA_PW`) watched by three `redis-sentinel`
//! processes (password `SENTINEL_PW`, quorum 2, a master is down after 1 s).
//! Everything on loopback ports in one temp dir, killed on drop.

use super::{free_port, Redis};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The data nodes' password (`requirepass`, `masterauth`).
pub const DATA_PW: &str = "data-s3cret";
/// The sentinels' own password (`requirepass`, `sentinel sentinel-pass`).
pub const SENTINEL_PW: &str = "sentinel-s3cret";
/// The service name the sentinels monitor.
pub const SERVICE: &str = "qpipe-test";

/// A master, a replica and three sentinels.
pub struct Deployment {
    /// Data nodes by port; the master first as started.
    pub nodes: Vec<Redis>,
    sentinels: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, s) in &mut self.sentinels {
            let _ = s.kill();
            let _ = s.wait();
        }
    }
}

impl Deployment {
    /// Starts everything and waits until every sentinel sees the master,
    /// its replica and the other two sentinels (so a failover can happen).
    pub fn start() -> Deployment {
        let auth = ["--requirepass", DATA_PW, "--masterauth", DATA_PW];
        let master = Redis::start_tcp_with(&auth);
        let port = master.port.to_string();
        let mut replica_args = auth.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &port]);
        let replica = Redis::start_tcp_with(&replica_args);
        let dir = tempfile::tempdir().unwrap();
        let mut d = Deployment {
            nodes: vec![master, replica],
            sentinels: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let s = d.start_sentinel(d.nodes[0].port);
            d.sentinels.push(s);
        }
        d.wait_until("every sentinel sees 1 replica and 2 other sentinels", |d| {
            d.sentinels.iter().all(|(p, _)| {
                let info = sentinel_cmd(*p, &["SENTINEL", "MASTER", SERVICE]);
                field(&info, "num-slaves") == Some("1")
                    && field(&info, "num-other-sentinels") == Some("2")
            })
        });
        d.wait_until("the replica is in sync", |d| d.replica_synced());
        d
    }

    /// One sentinel on a free port (retried if the port was taken).
    fn start_sentinel(&self, master: u16) -> (u16, Child) {
        for _ in 0..5 {
            let port = free_port();
            let conf = self.dir.path().join(format!("sentinel-{port}.conf"));
            let log = self.dir.path().join(format!("sentinel-{port}.log"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\nrequirepass {SENTINEL_PW}\n\
                     sentinel sentinel-pass {SENTINEL_PW}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n\
                     sentinel auth-pass {SERVICE} {DATA_PW}\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 6000\n",
                    dir = self.dir.path().display(),
                    log = log.display(),
                ),
            )
            .unwrap();
            let mut child = Command::new("redis-sentinel")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-sentinel not installed? run scripts/test.sh");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("+monitor master") {
                    return (port, child);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no redis-sentinel started on any of 5 ports");
    }

    /// `redis+sentinel://:DATA_PW@s1,s2,s3/SERVICE?sentinel_password=…`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        format!(
            "redis+sentinel://:{DATA_PW}@{}/{SERVICE}?sentinel_password={SENTINEL_PW}",
            hosts.join(",")
        )
    }

    /// Sends `sig` (e.g. "-STOP", "-CONT") to sentinel `i`.
    pub fn signal_sentinel(&self, i: usize, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.sentinels[i].1.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} sentinel {i}");
    }

    /// The port of the node the sentinels name as master now.
    pub fn master_port(&self) -> u16 {
        for (p, _) in &self.sentinels {
            let mut c = sentinel_con(*p);
            let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(SERVICE)
                .query(&mut c)
                .ok()
                .flatten();
            if let Some((_, port)) = addr {
                return port;
            }
        }
        panic!("no sentinel names a master");
    }

    /// The data node on `port`.
    pub fn node(&mut self, port: u16) -> &mut Redis {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// A connection to the data node on `port`, with its password.
    pub fn con(port: u16) -> redis::Connection {
        redis::Client::open(format!("redis://:{DATA_PW}@127.0.0.1:{port}/"))
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to a data node")
    }

    /// Waits (at most 30 s) until the sentinels name a master other than
    /// `old` and that node says it is a master.
    pub fn wait_failover(&self, old: u16) -> u16 {
        let mut new = 0;
        self.wait_until("the sentinels promote the replica", |d| {
            new = d.master_port();
            new != old && role(new) == "master"
        });
        new
    }

    /// Whether the master's replica has everything it applied.
    fn replica_synced(&self) -> bool {
        let mut c = Deployment::con(self.master_port());
        redis::cmd("WAIT")
            .arg(1)
            .arg(1000)
            .query::<u64>(&mut c)
            .is_ok_and(|n| n == 1)
    }

    fn wait_until(&self, what: &str, mut f: impl FnMut(&Deployment) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f(self) {
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What the node on `port` says it is (`ROLE`), or "" if it does not answer.
pub fn role(port: u16) -> String {
    let Ok(mut c) = redis::Client::open(format!("redis://:{DATA_PW}@127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_millis(500))
    else {
        return String::new();
    };
    let _ = c.set_read_timeout(Some(Duration::from_millis(500)));
    match redis::cmd("ROLE").query::<redis::Value>(&mut c) {
        Ok(redis::Value::Array(parts)) => match parts.first() {
            Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

fn sentinel_con(port: u16) -> redis::Connection {
    let c = redis::Client::open(format!("redis://:{SENTINEL_PW}@127.0.0.1:{port}/"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect to a sentinel");
    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
    c
}

/// A sentinel command's reply as a flat list of strings.
fn sentinel_cmd(port: u16, args: &[&str]) -> Vec<String> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut sentinel_con(port)).unwrap_or_default()
}

/// The value after `name` in a flat name/value list.
fn field<'a>(flat: &'a [String], name: &str) -> Option<&'a str> {
    flat.chunks(2)
        .find(|kv| kv[0] == name)
        .and_then(|kv| kv.get(1))
        .map(String::as_str)
}
