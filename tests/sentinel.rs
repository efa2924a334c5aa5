//! Redis Sentinel (`redis+sentinel://`): every command finds the master
//! through real `redis-sentinel` processes, and a master killed or hung
//! mid-push or mid-`consume --reliable` fails over with nothing
//! acknowledged lost.

mod common;

use common::sentinel::{self, Deployment, DATA_PW, SENTINEL_PW};
use common::{finish_expect, lines, numbered, wait_bounded, write_file, Args, Site};
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// The list on the data node `port`, oldest (next popped) first.
fn list(port: u16) -> Vec<String> {
    let mut all: Vec<String> = redis::cmd("LRANGE")
        .arg(KEY)
        .arg(0)
        .arg(-1)
        .query(&mut Deployment::con(port))
        .unwrap();
    all.reverse();
    all
}

fn llen(port: u16) -> u64 {
    redis::cmd("LLEN")
        .arg(KEY)
        .query(&mut Deployment::con(port))
        .unwrap_or(0)
}

/// Feeds `items` to `qpipe push -` a little at a time (about 3 s in all) on
/// its own thread, while `fault` hits the master once it holds a quarter of
/// them. Returns the push's stderr (exit 0 asserted) and the old master.
fn push_through(
    d: &mut Deployment,
    items: &[String],
    fault: impl FnOnce(&mut Deployment, u16),
) -> (String, u16) {
    let url = d.url();
    let old = d.master_port();
    let mut child = Args::new("push")
        .redis(&url)
        .batch_size(50)
        .arg("-")
        .spawn_with_stdin(None);
    let mut stdin = child.stdin.take().unwrap();
    let feed: Vec<String> = items.to_vec();
    let feeder = std::thread::spawn(move || {
        for chunk in feed.chunks(100) {
            let text: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            if stdin.write_all(text.as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
    });
    let quarter = items.len() as u64 / 4;
    let deadline = Instant::now() + Duration::from_secs(30);
    while llen(old) < quarter {
        assert!(
            Instant::now() < deadline,
            "the push never reached a quarter"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    fault(d, old);
    feeder.join().unwrap();
    let stderr = finish_expect(child, 0);
    (stderr, old)
}

fn assert_landed_once_in_order(port: u16, items: &[String], stderr: &str) {
    let got = list(port);
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(
        (got.len(), distinct.len()),
        (items.len(), items.len()),
        "{stderr}"
    );
    assert!(got == items, "items out of order after the failover");
    assert!(
        stderr.contains(&format!("items_pushed                  {}", items.len())),
        "{stderr}"
    );
}

#[test]
fn a_master_killed_mid_push_fails_over_and_every_item_lands_once_in_order() {
    let mut d = Deployment::start();
    let items = numbered(20_000, 6);
    let (stderr, old) = push_through(&mut d, &items, |d, old| d.node(old).kill());
    let new = d.wait_failover(old);
    // The push lived through the failover, not after it.
    assert!(stderr.contains("answers again"), "{stderr}");
    assert!(
        !stderr.contains(DATA_PW) && !stderr.contains(SENTINEL_PW),
        "{stderr}"
    );
    assert_landed_once_in_order(new, &items, &stderr);
}

#[test]
fn a_master_that_hangs_mid_push_fails_over_and_its_late_copies_do_nothing() {
    let mut d = Deployment::start();
    let items = numbered(20_000, 6);
    // SIGSTOP: the connection stays open and nothing answers (a partition).
    let (stderr, old) = push_through(&mut d, &items, |d, old| d.node(old).pause());
    let new = d.wait_failover(old);
    // Back, the old master runs what waited in its sockets (refused: past
    // their deadlines) and is made a replica of the new one.
    d.node(old).resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinel::role(old) != "slave" {
        assert!(
            Instant::now() < deadline,
            "the old master never became a replica"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stderr.contains("answers again"), "{stderr}");
    assert_landed_once_in_order(new, &items, &stderr);
}

#[test]
fn a_master_that_hangs_through_a_failover_and_comes_back_acknowledges_nothing_it_loses() {
    let mut d = Deployment::start();
    let items = numbered(20_000, 6);
    // Back as soon as the replica is promoted: still a master for a few
    // seconds, with no replica, inside the writer's socket timeout.
    let (stderr, old) = push_through(&mut d, &items, |d, old| {
        d.node(old).pause();
        d.wait_failover(old);
        d.node(old).resume();
    });
    let new = d.master_port();
    assert_ne!(new, old);
    assert_landed_once_in_order(new, &items, &stderr);
}

#[test]
fn a_run_lock_no_replica_has_is_not_held() {
    let mut d = Deployment::start();
    let master = d.master_port();
    let replica = d
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| *p != master)
        .unwrap();
    {
        let mut c = Deployment::con(master);
        redis::cmd("LPUSH")
            .arg(KEY)
            .arg("{\"a\":1}")
            .query::<()>(&mut c)
            .unwrap();
    }
    d.node(replica).pause();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = Args::consume(&d.url())
        .opt("--lock", "nightly")
        .drain(0.5)
        .out(&out)
        .spawn(None);
    // While no replica can confirm the lock, the run does not start.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(llen(master), 1, "the run popped without a durable lock");
    d.node(replica).resume();
    let run = wait_bounded(child, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert_eq!(lines(&out), ["{\"a\":1}"]);
}

#[test]
fn a_first_sentinel_that_hangs_does_not_stop_any_command() {
    let d = Deployment::start();
    let url = d.url();
    d.signal_sentinel(0, "-STOP");
    let push = Args::new("push")
        .redis(&url)
        .arg("-")
        .spawn_with_stdin(None);
    let mut push = push;
    push.stdin
        .take()
        .unwrap()
        .write_all(b"{\"a\":1}\n")
        .unwrap();
    let _ = finish_expect(push, 0);
    let status = Args::new("status")
        .arg("--json")
        .redis(&url)
        .run_expect(None, 0);
    let s: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(s["queue_length"].as_u64(), Some(1), "{status}");
    d.signal_sentinel(0, "-CONT");
}

#[test]
fn a_master_killed_while_its_replica_lags_loses_nothing_acknowledged() {
    let mut d = Deployment::start();
    // Big items, so what the master writes while its replica is frozen
    // overflows the sockets between them and dies with the master.
    let items = numbered(8_000, 4_000);
    let replica = d.nodes[1].port;
    let (stderr, old) = push_through(&mut d, &items, |d, old| {
        d.node(replica).pause();
        std::thread::sleep(Duration::from_secs(1));
        d.node(old).kill();
        d.node(replica).resume();
    });
    let new = d.wait_failover(old);
    assert_eq!(new, replica);
    // Pushes the replica had not acknowledged were not acknowledged to the
    // user either: retried on the new master.
    assert_landed_once_in_order(new, &items, &stderr);
}

#[test]
fn a_master_killed_mid_reliable_consume_fails_over_and_every_item_is_delivered() {
    let mut d = Deployment::start();
    let old = d.master_port();
    let items = numbered(40_000, 6);
    {
        let mut c = Deployment::con(old);
        for chunk in items.chunks(1000) {
            redis::cmd("LPUSH")
                .arg(KEY)
                .arg(chunk)
                .query::<()>(&mut c)
                .unwrap();
        }
        // Acknowledged: on the replica too.
        let acked: u64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut c).unwrap();
        assert_eq!(acked, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let child = Args::consume(&d.url())
        .arg("--reliable")
        .drain(3)
        .threads(2)
        .batch_size(5)
        .out(&out)
        .spawn(None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while lines(&out).len() < 5_000 {
        assert!(
            Instant::now() < deadline,
            "the consumer never wrote 5000 items"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    d.node(old).kill();
    let new = d.wait_failover(old);
    let run = wait_bounded(child, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("answers again"), "{stderr}");
    let got = lines(&out);
    let distinct: HashSet<&String> = got.iter().collect();
    let want: HashSet<&String> = items.iter().collect();
    assert_eq!(distinct, want, "{stderr}");
    eprintln!(
        "{} delivered, {} duplicates",
        got.len(),
        got.len() - items.len()
    );
    // Duplicates are the batches in flight at the kill (at-least-once),
    // never more than the two threads' pipes could hold.
    assert!(
        got.len() - items.len() <= 2_000,
        "{} duplicates",
        got.len() - items.len()
    );
    // Nothing left behind on the new master: no list, no processing list.
    let mut left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{KEY}*"))
        .query(&mut Deployment::con(new))
        .unwrap();
    left.retain(|k| *k != format!("{KEY}:stats"));
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn every_command_finds_the_master_through_the_sentinels() {
    let d = Deployment::start();
    let url = d.url();
    let master = d.master_port();
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "in.jsonl", "{\"a\":1}\n{\"a\":2}\nnot json\n");
    // push: the invalid line is named and skipped (exit 3), two land.
    Args::new("push")
        .redis(&url)
        .arg(file.display())
        .run_expect(None, 3);
    assert_eq!(list(master), ["{\"a\":1}", "{\"a\":2}"]);
    let status = Args::new("status")
        .arg("--json")
        .redis(&url)
        .run_expect(None, 0);
    let s: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(s["queue_length"].as_u64(), Some(2), "{status}");
    assert!(!status.stdout.contains(DATA_PW) && !status.stdout.contains(SENTINEL_PW));
    let out = dir.path().join("out.jsonl");
    Args::consume(&url)
        .arg("--reliable")
        .drain(0.5)
        .out(&out)
        .run_expect(None, 0);
    // Several poppers: each item once, in no promised order.
    let mut got = lines(&out);
    got.sort();
    assert_eq!(got, ["{\"a\":1}", "{\"a\":2}"]);

    let site = Site::start(3);
    Args::new("enqueue")
        .redis(&url)
        .opt("--key", "jobs")
        .arg(&site.url)
        .run_expect(None, 0);
    let st = dir.path().join("produce.json");
    let run = Args::new("produce")
        .redis(&url)
        .opt("--jobs", "jobs")
        .arg("--allow-private")
        .arg("--drain")
        .stats_json(&st)
        .run_expect(None, 0);
    let quotes = common::site_quotes(&site, 3).len() as u64;
    assert_eq!(
        common::stats(&st)["items_pushed"].as_u64(),
        Some(quotes),
        "{run}"
    );
    assert_eq!(llen(master), quotes);

    let dead = Args::new("dead").redis(&url).run_expect(None, 0);
    assert_eq!(dead.stdout, "", "{dead}");
    Args::new("recover").redis(&url).run_expect(None, 0);
}

#[test]
fn a_wrong_service_or_password_is_one_line_without_secrets() {
    let d = Deployment::start();
    let url = d.url();
    let wrong_service = url.replace("/qpipe-test?", "/nope?");
    let wrong_pw = url.replace(SENTINEL_PW, "wrong-sentinel-pw");
    for (url, says) in [
        (
            wrong_service.as_str(),
            "no sentinel knows a master named \"nope\"",
        ),
        (wrong_pw.as_str(), "Password authentication failed"),
    ] {
        // The URL comes in REDIS_URL, as the docs advise for passwords.
        let run = Args::new("status").run_env(None, &[("REDIS_URL", url)]);
        assert_eq!(run.code, 1, "{run}");
        let err = run.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{run}");
        assert!(
            err.starts_with("qpipe: cannot reach Redis") && err.contains(says),
            "{run}"
        );
        assert!(err.contains("?sentinel_password="), "{run}");
        for secret in [DATA_PW, SENTINEL_PW, "wrong-sentinel-pw"] {
            assert!(!err.contains(secret), "{run}");
        }
    }
    let bad = Args::new("status")
        .redis("redis+sentinel://127.0.0.1:1")
        .run_expect(None, 2);
    assert!(bad.stderr.contains("no service name"), "{bad}");
}
