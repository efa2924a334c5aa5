//! A fleet of reliable workers that runs for weeks: a worker that dies and
//! is never restarted, or is restarted at once under a new id, must not
//! strand the batches it held. Live workers put them back, about once a
//! heartbeat TTL, with nothing run by hand.

mod common;

use common::{assert_all_delivered, finish, lines, numbered, signal, wait_until, Args, Redis};
use std::io::Read;
use std::process::Child;
use std::time::Duration;

const KEY: &str = "Q";
const TTL: &str = "2";

/// A reliable worker whose stdout is a pipe nobody reads: once the pipe's
/// buffer is full its sink blocks, so it holds the batches it popped (not
/// written, not acknowledged) until it dies.
fn stuck_worker(url: &str) -> Child {
    Args::consume(url)
        .arg("--reliable")
        .opt("--heartbeat-ttl", TTL)
        .threads(1)
        .batch_size(20)
        .opt("--key", KEY)
        .spawn(None)
}

/// A healthy reliable worker writing to `out`.
fn live_worker(url: &str, out: &std::path::Path) -> Child {
    Args::consume(url)
        .arg("--reliable")
        .opt("--heartbeat-ttl", TTL)
        .threads(2)
        .opt("--key", KEY)
        .out(out)
        .spawn(None)
}

/// Items held in `pid`'s batch lists.
fn held_by(redis: &Redis, pid: u32) -> u64 {
    let names: Vec<String> = redis.cmd(&["KEYS", &format!("{KEY}:processing:*:{pid}:*")]);
    names.iter().map(|n| redis.llen(n)).sum()
}

/// Kills `child` with SIGKILL once it holds items; returns what it held and
/// what it had written to its stdout (flushed, acknowledged) before.
fn kill_holding(redis: &Redis, mut child: Child) -> (u64, Vec<String>) {
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(20), || held_by(redis, pid) > 0),
        "the stuck worker never held a batch"
    );
    signal(&child, "-KILL");
    let _ = child.wait();
    let held = held_by(redis, pid);
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read the dead worker's stdout");
    // A line cut by the kill was never committed, so never acknowledged:
    // it comes again whole from the batch that held it.
    let whole = out.rsplit_once('\n').map_or("", |(done, _)| done);
    (held, whole.lines().map(String::from).collect())
}

/// Pushes `items` in chunks, pausing between them, as a producer would.
fn push_slowly(redis: &Redis, items: &[String]) {
    for chunk in items.chunks(100) {
        redis.lpush(KEY, chunk);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (at most 30 s) until every item is delivered, between `out` and
/// what the dead worker had written before (`before`), and no batch is
/// held; stops `live`; asserts nothing was lost and, at-least-once, that
/// the duplicates are no more than the dead worker held.
fn settle(
    redis: &Redis,
    live: Child,
    out: &std::path::Path,
    before: &[String],
    items: &[String],
    held: u64,
    context: &str,
) {
    let done = wait_until(Duration::from_secs(30), || {
        redis.llen(KEY) == 0
            && lines(out).len() + before.len() >= items.len()
            && redis
                .cmd::<Vec<String>>(&["KEYS", &format!("{KEY}:processing:*")])
                .is_empty()
    });
    let mut got = stop(live, out);
    got.extend(before.iter().cloned());
    assert!(
        done,
        "{context}: not every item was delivered within 30 s ({held} were held by the dead worker)"
    );
    let dups = assert_all_delivered(&got, items, context);
    assert!(dups as u64 <= held, "{dups} duplicates, {held} held");
}

/// A healthy worker with ten items written: the start of the stall tests.
fn worker_with_ten_items(redis: &Redis, out: &std::path::Path) -> Child {
    let child = live_worker(&redis.url(), out);
    redis.lpush(KEY, &numbered(10, 5));
    assert!(
        wait_until(Duration::from_secs(10), || lines(out).len() == 10),
        "the items were never written"
    );
    child
}

/// Stops a worker with SIGTERM and returns the lines it wrote to `out`.
fn stop(child: Child, out: &std::path::Path) -> Vec<String> {
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    lines(out)
}

#[test]
fn a_dead_worker_never_restarted_loses_nothing_while_others_run() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.jsonl");
    // 1 KiB items: the dead worker's pipe fills after some 60.
    let items = numbered(3000, 1000);
    // The doomed worker alone first, until its pipe is full and it holds
    // batches; then a live one joins, and the doomed one dies mid-drain.
    let doomed = stuck_worker(&url);
    redis.lpush(KEY, &items[..200]);
    assert!(
        wait_until(Duration::from_secs(20), || held_by(&redis, doomed.id()) > 0),
        "the stuck worker never held a batch"
    );
    let live = live_worker(&url, &out);
    push_slowly(&redis, &items[200..1500]);
    let (held, written_before) = kill_holding(&redis, doomed);
    assert!(
        held > 0,
        "the dead worker held nothing: the test proves nothing"
    );
    // Items keep arriving after the death, and nobody restarts it.
    push_slowly(&redis, &items[1500..]);
    settle(
        &redis,
        live,
        &out,
        &written_before,
        &items,
        held,
        "dead worker never restarted",
    );
}

#[test]
fn a_worker_restarted_at_once_recovers_its_old_self_later() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.jsonl");
    let items = numbered(1000, 1000);
    let first = stuck_worker(&url);
    redis.lpush(KEY, &items[..500]);
    let (held, written_before) = kill_holding(&redis, first);
    assert!(
        held > 0,
        "the first worker held nothing: the test proves nothing"
    );
    // Restart=on-failure: back within the heartbeat TTL, under a new id, so
    // its start-up recovery sees the old id still alive and skips it.
    let again = live_worker(&url, &out);
    redis.lpush(KEY, &items[500..]);
    settle(
        &redis,
        again,
        &out,
        &written_before,
        &items,
        held,
        "worker restarted at once",
    );
}

/// A worker that stalls past its heartbeat TTL and comes back says so:
/// others may have put its batches back, so what it still delivers of them
/// comes twice.
#[test]
fn a_worker_back_from_a_stall_longer_than_its_ttl_warns() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.jsonl");
    let child = worker_with_ten_items(&redis, &out);
    signal(&child, "-STOP");
    std::thread::sleep(Duration::from_millis(3500));
    signal(&child, "-CONT");
    // The next heartbeat, a third of the TTL later, finds it expired.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("this worker's heartbeat had expired"),
        "{stderr}"
    );
}

/// A worker that never stalls never says so.
#[test]
fn a_healthy_worker_never_warns_of_an_expired_heartbeat() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a.jsonl");
    let child = worker_with_ten_items(&redis, &out);
    std::thread::sleep(Duration::from_millis(2500));
    signal(&child, "-TERM");
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("heartbeat had expired"), "{stderr}");
}
