//! A local Redis Cluster for tests: N masters, optionally one replica each,
//! on ports whose cluster-bus ports (+10000) are free too. Killed on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster.
pub struct Cluster {
    nodes: Vec<Option<Child>>,
    /// Every node's port, masters first as created.
    pub ports: Vec<u16>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in self.nodes.iter_mut().flatten() {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

/// A port P in 20000..45000 with P and P+10000 both bindable (bounded tries).
fn cluster_port(taken: &[u16]) -> u16 {
    // Tests of one binary run in parallel: each call starts elsewhere, so
    // two clusters never try the same ports in the same order.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u64).wrapping_mul(31) ^ call.wrapping_mul(2_654_435_761);
    for i in 0..500u64 {
        let p = 20_000 + ((seed.wrapping_mul(7919).wrapping_add(i * 104_729)) % 25_000) as u16;
        if taken.contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            return p;
        }
    }
    panic!("no free cluster port");
}

/// `redis-cli -p PORT args…`, its stdout.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Cluster {
    /// Starts `masters` masters with `replicas` replicas each (0 or 1), each
    /// node with `extra` arguments, and waits until the cluster is ok.
    pub fn start(masters: usize, replicas: usize, extra: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        let mut nodes = Vec::new();
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for _ in 0..masters * (1 + replicas) {
            let (p, node) = Cluster::start_node(dir.path(), &ports, &extra);
            ports.push(p);
            nodes.push(Some(node));
        }
        let c = Cluster {
            nodes,
            ports,
            dir,
            extra,
        };
        let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        c.wait_ok(&c.ports.clone());
        c
    }

    /// Starts a node on a port from `cluster_port`. That port (or its bus
    /// port) may be taken before the node binds it, so a node that fails to
    /// listen is retried on another. Ready when its own log says so: a PING
    /// could reach whoever took the port instead.
    fn start_node(dir: &std::path::Path, taken: &[u16], extra: &[String]) -> (u16, Child) {
        for _ in 0..5 {
            let p = cluster_port(taken);
            let mut child = Cluster::spawn(dir, p, extra);
            if Cluster::ready(dir, p, &mut child) {
                return (p, child);
            }
        }
        panic!("no cluster node started on any of 5 ports");
    }

    fn spawn(dir: &std::path::Path, p: u16, extra: &[String]) -> Child {
        // A fresh log: readiness is read from it.
        let log = dir.join(format!("node-{p}.log"));
        let _ = std::fs::remove_file(&log);
        Command::new("redis-server")
            .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{p}.conf")])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--appenddirname", &format!("aof-{p}")])
            .arg("--logfile")
            .arg(&log)
            .args(extra)
            .current_dir(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server")
    }

    /// Whether the node on `p` came up (false: it exited, e.g. port taken).
    fn ready(dir: &std::path::Path, p: u16, child: &mut Child) -> bool {
        let log = dir.join(format!("node-{p}.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Ready to accept connections") {
                return true;
            }
            if child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            assert!(Instant::now() < deadline, "node {p} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every node in `ports` reports `cluster_state:ok` and
    /// sees every slot served.
    pub fn wait_ok(&self, ports: &[u16]) {
        for p in ports {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !cli(*p, &["cluster", "info"]).contains("cluster_state:ok") {
                assert!(Instant::now() < deadline, "cluster did not become ok");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The ports of the current masters.
    pub fn masters(&self) -> Vec<u16> {
        let alive = self.alive();
        let nodes = cli(alive[0], &["cluster", "nodes"]);
        let mut out: Vec<u16> = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                addr.split(['@', ':']).nth(1)?.parse().ok()
            })
            .collect();
        out.sort();
        out
    }

    /// Ports of the nodes not killed.
    pub fn alive(&self) -> Vec<u16> {
        self.ports
            .iter()
            .zip(&self.nodes)
            .filter(|(_, n)| n.is_some())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).expect("port");
        if let Some(mut n) = self.nodes[i].take() {
            let _ = n.kill();
            let _ = n.wait();
        }
    }

    /// Starts a killed node again on its port, with its config and data.
    pub fn restart(&mut self, port: u16) {
        let i = self.ports.iter().position(|p| *p == port).expect("port");
        self.kill(port);
        let mut child = Cluster::spawn(self.dir.path(), port, &self.extra);
        assert!(
            Cluster::ready(self.dir.path(), port, &mut child),
            "node {port} did not restart"
        );
        self.nodes[i] = Some(child);
        self.wait_ok(&self.alive());
    }

    /// `redis+cluster://` URL through the first two live nodes.
    pub fn url(&self) -> String {
        let alive = self.alive();
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            alive[0], alive[1]
        )
    }
}

impl Cluster {
    /// The port of the master serving `key`'s slot, as the cluster says.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.alive()[0];
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut con)
            .unwrap();
        let slots: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut con)
            .unwrap()
            .into_iter()
            .filter_map(|v| {
                let redis::Value::Array(parts) = v else {
                    return None;
                };
                let lo = redis::from_redis_value::<i64>(parts.first()?.clone()).ok()?;
                let hi = redis::from_redis_value::<i64>(parts.get(1)?.clone()).ok()?;
                let redis::Value::Array(m) = parts.get(2)? else {
                    return None;
                };
                let host = redis::from_redis_value::<String>(m.first()?.clone()).ok()?;
                let port = redis::from_redis_value::<i64>(m.get(1)?.clone()).ok()?;
                Some((lo, hi, (host, port)))
            })
            .collect();
        slots
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, (_, p))| *p as u16)
            .expect("slot served")
    }
}
