//! Redis Cluster node loss: a master with no replica dies under running
//! consumers and producers (bounded exit naming the node, SIGTERM obeyed),
//! and a master with a replica fails over without losing an item.

mod common;

use common::cluster::Cluster;
use common::{
    assert_all_delivered, eventually, finish, finish_expect, lines, numbered, qpipe, signal,
    wait_until, Args, Site,
};
use std::time::{Duration, Instant};

const SHARD0: &str = "{DATA-PIPELINE-KEY:0}";

/// Pushes `items` onto the 6-shard queue.
fn push(url: &str, dir: &std::path::Path, items: &[String]) {
    let file = dir.join("in.jsonl");
    std::fs::write(&file, items.join("\n") + "\n").unwrap();
    Args::new("push")
        .arg(file.display())
        .shards(6)
        .redis(url)
        .run_expect(Some(dir), 0);
}

/// LLEN of shard 0 on the node on `port` (0 if it does not answer).
fn shard0_len(port: u16) -> u64 {
    common::cluster::cli(port, &["llen", SHARD0])
        .trim()
        .parse::<u64>()
        .unwrap_or(0)
}

#[test]
fn a_lost_master_without_replica_ends_consumers_in_time_and_sigterm_works() {
    let mut cluster = Cluster::start(3, 0, &[]);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(600, 10);
    push(&url, dir.path(), &all);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let consume = |out: &std::path::Path, retry: &str, reliable: bool| {
        Args::consume(&url)
            .shards(6)
            .threads(2)
            .opt("--redis-retry-secs", retry)
            .out(out)
            .arg_if(reliable, "--reliable")
            .spawn(None)
    };
    let patient = consume(&a, "60", true);
    let quick = consume(&b, "3", false);
    eventually("everything consumed", Duration::from_secs(30), || {
        lines(&a).len() + lines(&b).len() == 600
    });
    let victim = cluster.master_of(SHARD0);
    cluster.kill(victim);
    let started = Instant::now();
    let (code, stderr) = finish(quick);
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!(
            "Redis Cluster node 127.0.0.1:{victim}, which holds"
        )) && last.contains(SHARD0),
        "{stderr}"
    );
    // The other consumer is retrying inside its budget: SIGTERM still works.
    std::thread::sleep(Duration::from_secs(1));
    signal(&patient, "-TERM");
    let started = Instant::now();
    let stderr = finish_expect(patient, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    let mut got = lines(&a);
    got.extend(lines(&b));
    assert_all_delivered(&got, &all, &stderr);

    // At start-up, the error names the node that is down.
    let run = Args::consume(&url)
        .shards(6)
        .arg("--drain")
        .run_expect(None, 1);
    assert!(
        run.stderr.contains(&format!(
            "Redis Cluster node 127.0.0.1:{victim}, which holds"
        )),
        "{run}"
    );
}

#[test]
fn a_lost_master_without_replica_ends_producers_in_time_and_sigterm_spills() {
    let mut cluster = Cluster::start(3, 0, &[]);
    let url = cluster.url();
    let site = Site::start(100_000);
    let produce = |dir: &std::path::Path, retry: &str| {
        Args::produce(&url, &site.url)
            .shards(6)
            .threads(2)
            .opt("--redis-retry-secs", retry)
            .spawn(Some(dir))
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let patient = produce(da.path(), "60");
    let quick = produce(db.path(), "3");
    let victim = cluster.master_of(SHARD0);
    eventually("items pushed", Duration::from_secs(30), || {
        shard0_len(victim) > 100
    });
    cluster.kill(victim);
    let started = Instant::now();
    let (code, stderr) = finish(quick);
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "Redis Cluster node 127.0.0.1:{victim}, which holds"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("unsent items saved to"), "{stderr}");
    std::thread::sleep(Duration::from_secs(1));
    signal(&patient, "-TERM");
    let started = Instant::now();
    let (code, stderr) = finish(patient);
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
    assert_eq!(code, 1, "spilled at once: {stderr}");
    assert!(stderr.contains("unsent items saved to"), "{stderr}");
}

#[test]
fn a_master_fails_over_to_its_replica_mid_push_and_nothing_is_lost() {
    let mut cluster = Cluster::start(
        3,
        1,
        &[
            "--cluster-node-timeout",
            "1000",
            "--cluster-replica-validity-factor",
            "0",
        ],
    );
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(200_000, 10);
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, all.join("\n") + "\n").unwrap();
    let pusher = Args::new("push")
        .arg(file.display())
        .shards(6)
        .redis(&url)
        .opt("--redis-retry-secs", 30)
        .spawn(Some(dir.path()));
    let victim = cluster.master_of(SHARD0);
    eventually("the push is under way", Duration::from_secs(30), || {
        shard0_len(victim) > 2000
    });
    cluster.kill(victim);
    let stderr = finish_expect(pusher, 0);
    let live = cluster.alive();
    cluster.wait_ok(&live);
    let out = dir.path().join("out.jsonl");
    let url = cluster.url();
    Args::consume(&url)
        .shards(6)
        .threads(4)
        .drain(1)
        .out(&out)
        .run_expect(None, 0);
    let got = lines(&out);
    let dups = assert_all_delivered(&got, &all, &stderr);
    assert_eq!(dups, 0, "{stderr}");
}

#[test]
fn reliable_batches_on_a_lost_node_come_back_by_recovery_when_it_returns() {
    let mut cluster = Cluster::start(3, 0, &["--appendonly", "yes", "--appendfsync", "always"]);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(3000, 10);
    push(&url, dir.path(), &all);
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let mut first = Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .shards(6)
        .threads(2)
        .batch_size(20)
        .opt("--heartbeat-ttl", 2)
        .out(&a)
        .spawn(None);
    eventually("consuming", Duration::from_secs(30), || {
        lines(&a).len() >= 300
    });
    let victim = cluster.master_of(SHARD0);
    cluster.kill(victim);
    // The consumer dies too, before it can put anything back.
    std::thread::sleep(Duration::from_millis(300));
    first.kill().unwrap();
    let _ = first.wait();
    cluster.restart(victim);
    // Past the dead consumer's heartbeat TTL.
    std::thread::sleep(Duration::from_secs(3));
    let url = cluster.url();
    let run = Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .shards(6)
        .drain(1)
        .out(&b)
        .run_expect(None, 0);
    let mut got = lines(&a);
    got.extend(lines(&b));
    assert_all_delivered(&got, &all, &run.to_string());
    let status = qpipe(
        &["status", "--json", "--redis", &url, "--shards", "6"],
        None,
    );
    let s: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(
        (s["queue_length"].as_u64(), s["processing_items"].as_u64()),
        (Some(0), Some(0)),
        "{s}"
    );
}

/// The pid of the node on `port` (asked while it still answers).
fn node_pid(port: u16) -> String {
    common::cluster::cli(port, &["info", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|p| p.trim().to_string())
        .expect("process_id")
}

/// Sends `sig` (`-STOP`, `-CONT`) to process `pid`.
fn signal_pid(pid: &str, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn a_hung_master_makes_pushes_and_reliable_pops_neither_duplicate_nor_lose() {
    let cluster = Cluster::start(3, 0, &[]);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(30_000, 10);
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, all.join("\n") + "\n").unwrap();
    let victim = cluster.master_of(SHARD0);
    let pid = node_pid(victim);
    let pusher = Args::new("push")
        .arg(file.display())
        .shards(6)
        .redis(&url)
        .batch_size(200)
        .spawn(Some(dir.path()));
    eventually("the push is under way", Duration::from_secs(30), || {
        shard0_len(victim) > 1000
    });
    // Longer than the socket timeout: replies time out, nothing is refused.
    signal_pid(&pid, "-STOP");
    std::thread::sleep(Duration::from_secs(6));
    signal_pid(&pid, "-CONT");
    finish_expect(pusher, 0);

    let out = dir.path().join("out.jsonl");
    let consumer = Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .shards(6)
        .threads(6)
        .batch_size(20)
        .drain(8)
        .out(&out)
        .spawn(None);
    eventually("consuming", Duration::from_secs(30), || {
        lines(&out).len() > 5000
    });
    signal_pid(&pid, "-STOP");
    std::thread::sleep(Duration::from_secs(6));
    signal_pid(&pid, "-CONT");
    let stderr = finish_expect(consumer, 0);
    let got = lines(&out);
    let dups = assert_all_delivered(&got, &all, &stderr);
    assert_eq!(dups, 0, "{stderr}");
}

#[test]
fn shards_on_live_nodes_drain_at_full_speed_while_a_node_is_down() {
    let mut cluster = Cluster::start(3, 0, &[]);
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let consumer = Args::consume(&url)
        .shards(6)
        .threads(1)
        .batch_size(100)
        .arg("--no-fsync")
        .opt("--redis-retry-secs", 60)
        .out(&out)
        .spawn(None);
    let victim = cluster.master_of(SHARD0);
    // Running, not still starting up, before the kill: one item through.
    let first = (0..6)
        .map(|i| format!("{{DATA-PIPELINE-KEY:{i}}}"))
        .find(|k| cluster.master_of(k) != victim)
        .expect("a live shard");
    let port = cluster.master_of(&first);
    let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("LPUSH")
        .arg(&first)
        .arg("{\"ready\":1}")
        .query(&mut con)
        .unwrap();
    eventually("the consumer is running", Duration::from_secs(20), || {
        lines(&out).len() == 1
    });
    cluster.kill(victim);
    // One thread serves all six shards: with a dead node in its round, the
    // live shards must still drain quickly, not one batch per back-off.
    let live: Vec<String> = (0..6)
        .map(|i| format!("{{DATA-PIPELINE-KEY:{i}}}"))
        .filter(|k| cluster.master_of(k) != victim)
        .collect();
    let mut pushed = Vec::new();
    for (n, key) in live.iter().enumerate() {
        let items = numbered(1000, n);
        let port = cluster.master_of(key);
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("LPUSH")
            .arg(key)
            .arg(&items)
            .query(&mut con)
            .unwrap();
        pushed.extend(items);
    }
    let started = Instant::now();
    pushed.push("{\"ready\":1}".to_string());
    // At most 30 s from `started`.
    wait_until(
        Duration::from_secs(30).saturating_sub(started.elapsed()),
        || lines(&out).len() >= pushed.len(),
    );
    if lines(&out).len() < pushed.len() {
        let n = lines(&out).len();
        signal(&consumer, "-TERM");
        let (code, stderr) = finish(consumer);
        panic!(
            "only {n} of {} drained in 30 s (exit {code}):\n{stderr}",
            pushed.len()
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{} items took {:?}",
        pushed.len(),
        started.elapsed()
    );
    signal(&consumer, "-TERM");
    let stderr = finish_expect(consumer, 0);
    assert_all_delivered(&lines(&out), &pushed, &stderr);
}

#[test]
fn sigterm_is_obeyed_while_a_node_hangs() {
    let cluster = Cluster::start(3, 0, &[]);
    let url = cluster.url();
    let victim = cluster.master_of(SHARD0);
    let pid = node_pid(victim);
    let consumer = Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .shards(6)
        .threads(2)
        .spawn(None);
    eventually("the consumer is connected", Duration::from_secs(10), || {
        common::cluster::cli(victim, &["client", "list"]).contains("name=qpipe-consume-")
    });
    signal_pid(&pid, "-STOP");
    std::thread::sleep(Duration::from_secs(1));
    signal(&consumer, "-TERM");
    let started = Instant::now();
    let (code, stderr) = finish(consumer);
    signal_pid(&pid, "-CONT");
    // In order if it can, else the 8 s watchdog: never stuck.
    assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
    assert!(code == 0 || code == 143, "{code}: {stderr}");
}
