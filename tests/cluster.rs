//! Redis Cluster end to end: a local 3-master cluster, produce and consume
//! through it with the queue split into 6 hash-tagged shards.

mod common;

use common::{jsonl, qpipe, stats, Site};
use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Three cluster masters on ports whose bus ports (+10000) are free too.
struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

/// A port P in 20000..45000 with P and P+10000 both bindable (bounded tries).
fn cluster_port(taken: &[u16]) -> u16 {
    let seed = std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64;
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

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut ports = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let p = cluster_port(&ports);
        ports.push(p);
        nodes.push(
            Command::new("redis-server")
                .args([
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                ])
                .args([
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server"),
        );
    }
    let c = Cluster {
        nodes,
        ports,
        _dir: dir,
    };
    for p in &c.ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Command::new("redis-cli")
            .args(["-p", &p.to_string(), "ping"])
            .output()
            .map(|o| o.stdout != b"PONG\n")
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "node {p} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "cluster create: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for p in &c.ports {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let info = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "cluster", "info"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                break;
            }
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    c
}

/// Items held in the shard lists, per node.
fn items_per_node(c: &Cluster) -> Vec<u64> {
    c.ports
        .iter()
        .map(|p| {
            let mut con = redis::Client::open(format!("redis://127.0.0.1:{p}"))
                .unwrap()
                .get_connection()
                .unwrap();
            (0..6)
                .map(|i| {
                    // A node answers MOVED for keys it does not own; count only its own.
                    redis::cmd("LLEN")
                        .arg(format!("{{DATA-PIPELINE-KEY:{i}}}"))
                        .query::<u64>(&mut con)
                        .unwrap_or(0)
                })
                .sum()
        })
        .collect()
}

#[test]
fn produce_and_consume_through_a_three_node_cluster_with_six_shards() {
    let cluster = start_cluster();
    let site = Site::start(30);
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
        cluster.ports[0], cluster.ports[1]
    );
    for mode in [None, Some("--reliable")] {
        let st = dir.path().join("p.json");
        let run = qpipe(
            &[
                "produce",
                "--redis",
                &url,
                "--start-url",
                &site.url,
                "--shards",
                "6",
                "--stats-json",
                st.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(run.code, 0, "{run}");
        assert_eq!(stats(&st)["items_pushed"], 300);
        let per_node = items_per_node(&cluster);
        assert_eq!(per_node.iter().sum::<u64>(), 300, "{per_node:?}");
        assert!(
            per_node.iter().filter(|n| **n > 0).count() >= 2,
            "shards did not spread: {per_node:?}"
        );

        let out = dir.path().join("out.jsonl");
        let _ = std::fs::remove_file(&out);
        let mut args = vec![
            "consume",
            "--redis",
            &url,
            "--shards",
            "6",
            "--threads",
            "4",
            "--drain",
            "--idle-timeout",
            "0.5",
        ];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(mode);
        let run = qpipe(&args, None);
        assert_eq!(run.code, 0, "{run}");
        let lines = jsonl(&out);
        assert_eq!(lines.len(), 300, "{run}");
        let quotes: HashSet<String> = lines.iter().map(|v| v["quote"].to_string()).collect();
        assert_eq!(quotes.len(), 300);
        assert_eq!(items_per_node(&cluster).iter().sum::<u64>(), 0);
        let status = qpipe(
            &["status", "--json", "--redis", &url, "--shards", "6"],
            None,
        );
        assert_eq!(status.code, 0, "{status}");
        let s: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
        assert_eq!(
            (
                s["queue_length"].as_u64(),
                s["processing_items"].as_u64(),
                s["live_consumers"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{s}"
        );
    }
}
