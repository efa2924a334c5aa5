//! `consume` under real faults: lost replies (through the fault-injecting
//! proxy), a durable Redis killed with kill -9, a restarted container with
//! the same host name and pid, a slow sink beside `qpipe recover`, killed
//! connections, a key that changes type, a replica, and maxmemory.

mod common;

use common::proxy::Proxy;
use common::{
    assert_all_delivered, eventually, finish, finish_expect, lines, numbered, qpipe, signal, stats,
    wait_for_lines, Args, Redis, QPIPE,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// Keys left behind by reliable consumers that still hold items.
fn held(redis: &Redis) -> u64 {
    let keys: Vec<String> = redis.cmd(&["KEYS", "*:processing:*"]);
    keys.iter().map(|k| redis.llen(k)).sum()
}

#[test]
fn reliable_lost_replies_lose_and_duplicate_nothing() {
    // The BLMOVE, the batch-move script, and the acknowledgement script.
    for pattern in ["BLMOVE", "'RIGHT', 'LEFT'", "SREM', KEYS[1]"] {
        let redis = Redis::start();
        let proxy = Proxy::start(&redis);
        let all = numbered(3000, 10);
        redis.lpush(KEY, &all);
        proxy.cut(pattern, 2, 3);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let url = proxy.url();
        let run = Args::new("consume")
            .arg("--reliable")
            .threads(2)
            .batch_size(100)
            .drain(1)
            .redis(&url)
            .out(&out)
            .run(None);
        assert_eq!(run.code, 0, "{pattern}: {run}");
        assert_eq!(proxy.cuts(), 3, "{pattern}: faults not injected: {run}");
        let got = lines(&out);
        let dups = assert_all_delivered(&got, &all, &format!("{pattern}: {run}"));
        assert_eq!(dups, 0, "{pattern}: duplicates: {run}");
        assert_eq!((redis.llen(KEY), held(&redis)), (0, 0), "{pattern}: {run}");
    }
}

#[test]
fn durable_redis_killed_and_restarted_mid_drain_loses_nothing() {
    for (batch, n) in [("1", 3000), ("500", 30_000)] {
        let mut redis = Redis::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
        let all = numbered(n, 10);
        redis.lpush(KEY, &all);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let url = redis.url();
        let child = Args::new("consume")
            .arg("--reliable")
            .threads(2)
            .batch_size(batch)
            .drain(2)
            .redis(&url)
            .out(&out)
            .spawn(None);
        wait_for_lines(&out, n / 4, Duration::from_secs(30));
        redis.kill(); // SIGKILL
        redis.restart();
        let (code, stderr) = finish(child);
        assert_eq!(code, 0, "batch {batch}: {stderr}");
        assert!(stderr.contains("answers again"), "batch {batch}: {stderr}");
        assert_all_delivered(&lines(&out), &all, &format!("batch {batch}: {stderr}"));
        assert_eq!((redis.llen(KEY), held(&redis)), (0, 0), "batch {batch}");
    }
}

/// `qpipe consume` as pid 1 in a fresh pid namespace, as in a container.
fn in_container(args: &[&str]) -> std::process::Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", QPIPE])
        .args(args)
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare")
}

#[test]
fn a_restarted_container_never_adopts_the_crashed_runs_items() {
    let redis = Redis::start();
    let all = numbered(20_000, 10);
    redis.lpush(KEY, &all);
    let dir = tempfile::tempdir().unwrap();
    let (out1, out2, out3) = (
        dir.path().join("1.jsonl"),
        dir.path().join("2.jsonl"),
        dir.path().join("3.jsonl"),
    );
    let url = redis.url();
    let args = |out: &std::path::Path| {
        Args::new("consume")
            .arg("--reliable")
            .threads(1)
            .batch_size(100)
            .opt("--heartbeat-ttl", 3)
            .redis(&url)
            .out(out)
    };
    let mut crashed = in_container(&args(&out1).strs());
    eventually(
        "the first run is consuming",
        Duration::from_secs(20),
        || lines(&out1).len() >= 1000 && held(&redis) > 0,
    );
    // Same host name, same pid (1): only the nonce tells the runs apart.
    crashed.kill().unwrap();
    let _ = crashed.wait();
    let in_flight = held(&redis);
    let stderr = finish_expect(in_container(&args(&out2).drain(0.5).strs()), 0);
    // The crashed run's batches wait for its heartbeat to expire.
    assert_eq!(held(&redis), in_flight, "{stderr}");
    std::thread::sleep(Duration::from_secs(3));
    let stderr = finish_expect(in_container(&args(&out3).drain(0.5).strs()), 0);
    let mut got = lines(&out1);
    got.extend(lines(&out2));
    got.extend(lines(&out3));
    assert_all_delivered(&got, &all, &stderr);
    assert_eq!((redis.llen(KEY), held(&redis)), (0, 0));
}

#[test]
fn a_slow_sink_keeps_its_heartbeat_beside_recover() {
    let redis = Redis::start();
    // About 1.3 MB: far more than the pipe, the sink's buffer and the channel
    // hold, so the poppers wait on the sink for seconds at a time.
    let all = numbered(20_000, 40);
    redis.lpush(KEY, &all);
    let url = redis.url();
    let mut child = Args::new("consume")
        .arg("--reliable")
        .threads(2)
        .batch_size(200)
        .opt("--heartbeat-ttl", 2)
        .drain(1)
        .redis(&url)
        .spawn(None);
    // A slow reader: 4 KB per 30 ms, about 10 s in all.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(k) = stdout.read(&mut chunk) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..k]);
            std::thread::sleep(Duration::from_millis(30));
        }
        got
    });
    let mut recovered = 0;
    let started = Instant::now();
    for _ in 0..120 {
        if !reader.is_finished() && started.elapsed() < Duration::from_secs(40) {
            let run = qpipe(&["recover", "--redis", &url, "--stats-json", "-"], None);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(run.stdout.trim()) {
                recovered += v["items_recovered"].as_u64().unwrap_or(0);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let (code, stderr) = finish(child);
    let got: Vec<String> = String::from_utf8(reader.join().unwrap())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(recovered, 0, "recover took a live consumer's items");
    assert_eq!(got.len(), all.len(), "{stderr}");
    assert_all_delivered(&got, &all, &stderr);
}

#[test]
fn every_thread_reconnects_after_its_connection_is_killed() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let push = |items: &[String]| {
        let file = dir.path().join("in.jsonl");
        std::fs::write(&file, items.join("\n") + "\n").unwrap();
        Args::new("push")
            .arg(file.display())
            .shards(2)
            .redis(&url)
            .run_expect(None, 0);
    };
    let all = numbered(2000, 10);
    // One thread serving both shards: while it blocks on one, the other's
    // connection is killed, and its next heartbeat or pop must reconnect.
    let child = Args::new("consume")
        .arg("--reliable")
        .shards(2)
        .threads(1)
        .opt("--heartbeat-ttl", 2)
        .redis(&url)
        .out(&out)
        .spawn(None);
    push(&all[..1000]);
    wait_for_lines(&out, 1000, Duration::from_secs(20));
    let _: redis::Value = redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    // Let the heartbeat notice too (it renews every 2/3 s).
    std::thread::sleep(Duration::from_secs(1));
    let _: redis::Value = redis.cmd(&["CLIENT", "KILL", "TYPE", "normal"]);
    push(&all[1000..]);
    wait_for_lines(&out, 2000, Duration::from_secs(20));
    signal(&child, "-TERM");
    let stderr = finish_expect(child, 0);
    let got = lines(&out);
    assert_eq!(got.len(), 2000, "{stderr}");
    assert_all_delivered(&got, &all, &stderr);
}

#[test]
fn a_key_that_changes_type_ends_the_run_with_one_line() {
    for mode in [None, Some("--reliable")] {
        let redis = Redis::start();
        redis.lpush(KEY, &["{\"a\":1}"]);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let url = redis.url();
        let child = Args::consume(&url).out(&out).args(mode).spawn(None);
        eventually("the first item", Duration::from_secs(10), || {
            lines(&out).len() == 1
        });
        let _: () = redis.cmd(&["DEL", KEY]);
        let _: () = redis.cmd(&["SET", KEY, "now a string"]);
        let started = Instant::now();
        let (code, stderr) = finish(child);
        assert!(started.elapsed() < Duration::from_secs(10), "{stderr}");
        assert_eq!(code, 1, "{mode:?}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("qpipe: cannot ")
                && last.contains("the key DATA-PIPELINE-KEY holds a string, not a list"),
            "{mode:?}: {stderr}"
        );
        assert!(stderr.lines().count() < 40, "{mode:?}: log flood: {stderr}");
    }
}

#[test]
fn a_replica_and_an_out_of_memory_redis_are_named_and_lose_nothing() {
    // A read-only replica: a permanent error, reported at once.
    let redis = Redis::start();
    redis.lpush(KEY, &["{\"a\":1}", "{\"a\":2}"]);
    let _: () = redis.cmd(&["REPLICAOF", "127.0.0.1", "1"]);
    let url = redis.url();
    let run = qpipe(&["consume", "--reliable", "--drain", "--redis", &url], None);
    assert_eq!(run.code, 1, "{run}");
    assert!(run.stderr.contains("read-only replica"), "{run}");
    assert!(run.stderr.lines().count() < 10, "{run}");
    assert_eq!(redis.llen(KEY), 2);

    // maxmemory: retried like an outage, then named as out-of-memory.
    let redis = Redis::start();
    redis.lpush(KEY, &["{\"a\":1}", "{\"a\":2}"]);
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let url = redis.url();
    let started = Instant::now();
    let run = Args::new("consume")
        .args(["--reliable", "--drain"])
        .opt("--redis-retry-secs", 1)
        .redis(&url)
        .run(None);
    assert!(started.elapsed() < Duration::from_secs(15), "{run}");
    assert_eq!(run.code, 1, "{run}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("stayed out of memory") && last.contains("maxmemory"),
        "{run}"
    );
    let _: () = redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(redis.llen(KEY) + held(&redis), 2, "{run}");
    let st = tempfile::tempdir().unwrap();
    let sj = st.path().join("s.json");
    let run = Args::new("consume")
        .arg("--reliable")
        .drain(0.3)
        .redis(&url)
        .stats_json(&sj)
        .run_expect(None, 0);
    assert_eq!(stats(&sj)["items_written"], 2, "{run}");
}

#[test]
fn brpop_mode_warns_when_a_lost_reply_loses_items() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let all = numbered(3000, 10);
    redis.lpush(KEY, &all);
    // The RPOP with a count that takes the rest of a batch after BRPOP
    // (BRPOP's name is "$5\r\nBRPOP", so this matches RPOP alone).
    proxy.cut("\nRPOP\r\n", 3, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = proxy.url();
    let run = Args::new("consume")
        .threads(1)
        .batch_size(100)
        .drain(0.5)
        .redis(&url)
        .out(&out)
        .run_expect(None, 0);
    assert_eq!(proxy.cuts(), 1, "{run}");
    assert_eq!(
        run.stderr.matches("lost its reply").count(),
        1,
        "the loss must be reported: {run}"
    );
    let got = lines(&out);
    // Exactly the one batch's follow-up (99 items) is gone, nothing else.
    assert_eq!(got.len(), 3000 - 99, "{run}");
    assert_eq!(redis.llen(KEY), 0);
}

#[test]
fn a_poison_item_whose_dead_letter_cannot_be_recorded_goes_back_with_its_batch() {
    let redis = Redis::start();
    let _: () = redis.cmd(&["SET", &format!("{KEY}:dead"), "not a list"]);
    let pushed = ["{\"good\":1}", "not json", "{\"good\":\n3}"];
    redis.lpush(KEY, &pushed);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let st = dir.path().join("s.json");
    let url = redis.url();
    let run = Args::new("consume")
        .threads(1)
        .drain(0.3)
        .redis(&url)
        .out(&out)
        .stats_json(&st)
        .run_expect(None, 1);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("{KEY}:dead")), "{run}");
    // Every item is back, byte for byte, oldest first at the consuming end.
    let mut back = redis.lrange(KEY);
    back.reverse();
    assert_eq!(back, pushed, "{run}");
    assert!(lines(&out).is_empty());
    assert_eq!(stats(&st)["items_returned_to_queue"], 3, "{run}");
}

#[test]
fn recover_racing_a_live_consumer_strands_nothing() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    // A consumer whose output fails after 2 KB, like a full disk.
    let child = common::spawn_with_disk_of(
        2,
        &format!(
            "consume --reliable --threads 1 --batch-size 50 --redis {url} --out {}",
            out.display()
        ),
    );
    let consumers = || redis.cmd::<Vec<String>>(&["SMEMBERS", &format!("{KEY}:consumers")]);
    eventually("the consumer registered", Duration::from_secs(10), || {
        !consumers().is_empty()
    });
    // Its heartbeat lapses (a stall, say) and `recover` runs meanwhile.
    let id = consumers()[0].clone();
    let _: () = redis.cmd(&["DEL", &format!("{KEY}:consumer:{id}")]);
    let run = qpipe(&["recover", "--redis", &url], None);
    assert_eq!(run.code, 0, "{run}");
    let all = numbered(100, 40);
    redis.lpush(KEY, &all);
    let (code, stderr) = finish(child);
    assert_eq!(code, 1, "{stderr}");
    // Nothing may sit in a processing list that no registry names: at exit
    // the consumer puts back everything it did not write.
    assert_eq!(held(&redis), 0, "{stderr}");
    let mut got = lines(&out);
    let written = got.len();
    got.extend(redis.lrange(KEY));
    let dups = assert_all_delivered(&got, &all, &stderr);
    assert_eq!(dups, 0, "written {written}: {stderr}");
}
