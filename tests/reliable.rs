//! At-least-once consumption (--reliable), crash recovery, and poison items.

mod common;

use common::{eventually, finish_expect, lines, signal, stats, Args, Redis};
use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

const KEY: &str = "DATA-PIPELINE-KEY";

fn seed(redis: &Redis, n: usize) -> Vec<String> {
    let items: Vec<String> = (0..n)
        .map(|i| format!("{{\"quote\":\"q{i}\",\"n\":{i}}}"))
        .collect();
    redis.lpush(KEY, &items);
    items
}

#[test]
fn kill_9_mid_drain_loses_nothing_in_reliable_mode() {
    let redis = Redis::start();
    let items = seed(&redis, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    let mut child = Args::new("consume")
        .arg("--reliable")
        .opt("--heartbeat-ttl", 2)
        .redis(&url)
        .threads(4)
        .batch_size(5)
        .out(&out)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill as soon as the first batch is durable: mid-drain, whatever the speed.
    eventually("the first written batch", Duration::from_secs(20), || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    });
    child.kill().unwrap(); // SIGKILL: no cleanup at all
    child.wait().unwrap();
    let first = lines(&out);
    assert!(
        !first.is_empty() && first.len() < 100_000,
        "killed too late: {}",
        first.len()
    );
    let held: u64 = redis::cmd("EVAL")
        .arg("local n = 0 for _, k in ipairs(redis.call('KEYS', KEYS[1])) do n = n + redis.call('LLEN', k) end return n")
        .arg(1)
        .arg(format!("{KEY}:processing:*"))
        .query(&mut redis.con())
        .unwrap();
    assert!(
        held > 0,
        "the killed worker held nothing in its processing lists"
    );

    // Recovery treats a consumer as dead once its heartbeat key is gone.
    eventually("the heartbeats to expire", Duration::from_secs(10), || {
        redis
            .cmd::<Vec<String>>(&["KEYS", &format!("{KEY}:consumer:*")])
            .is_empty()
    });
    let st = dir.path().join("s.json");
    Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .drain(0.5)
        .out(&out)
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    // Held batches already in the file are acknowledged at start (the
    // commit log), the rest are recovered.
    assert!(s["items_recovered"].as_u64().unwrap() <= held, "{s}");

    let all = lines(&out);
    let unique: HashSet<&String> = all.iter().collect();
    let want: HashSet<&String> = items.iter().collect();
    assert_eq!(unique, want, "an item was lost");
    // Restarted on the same --out: exactly once (`sink::commits`).
    let duplicates = all.len() - unique.len();
    assert_eq!(duplicates, 0, "written twice across the restart");
    assert_eq!(redis.llen(KEY), 0);
    let mut leftovers: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{KEY}:*"))
        .query(&mut redis.con())
        .unwrap();
    leftovers.retain(|k| *k != format!("{KEY}:stats"));
    assert_eq!(
        leftovers,
        Vec::<String>::new(),
        "processing lists or heartbeats left behind"
    );
}

#[test]
fn recover_command_requeues_dead_workers_items_in_order() {
    let redis = Redis::start();
    // A dead worker: processing list, newest at the head, no heartbeat.
    redis.lpush(
        &format!("{KEY}:processing:h:1:0"),
        &["\"a\"", "\"b\"", "\"c\""],
    );
    // A live worker: its items stay.
    redis.lpush(&format!("{KEY}:processing:h:2:0"), &["\"live\""]);
    let _: () = redis.cmd(&["SET", &format!("{KEY}:consumer:h:2:0"), "x", "EX", "60"]);
    let _: () = redis.cmd(&["SADD", &format!("{KEY}:consumers"), "h:1:0", "h:2:0"]);
    redis.lpush(KEY, &["\"newer\""]);
    let st = tempfile::NamedTempFile::new().unwrap();
    Args::new("recover")
        .redis(&redis.url())
        .stats_json(st.path())
        .run_expect(None, 0);
    let s = stats(st.path());
    assert_eq!(
        (
            s["dead_consumers"].as_u64(),
            s["items_recovered"].as_u64(),
            s["live_consumers"].as_u64(),
            s["items_held_by_live_consumers"].as_u64()
        ),
        (Some(1), Some(3), Some(1), Some(1)),
        "{s}"
    );
    // The recovered items are consumed first, oldest first.
    assert_eq!(redis.lrange(KEY), ["\"newer\"", "\"c\"", "\"b\"", "\"a\""]);
    assert_eq!(redis.llen(&format!("{KEY}:processing:h:2:0")), 1);
}

#[test]
fn poison_items_go_to_dead_letters_in_both_modes() {
    for mode in [None, Some("--reliable")] {
        let redis = Redis::start();
        let mut con = redis.con();
        let pushed = [
            "{\"quote\":\"good1\"}",
            "not json {",
            "{\"quote\":\n  \"multi\"}",
            "{\"quote\":\"good2\"}",
            "",
        ];
        for p in pushed {
            redis.lpush(KEY, &[p]);
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let st = dir.path().join("s.json");
        let url = redis.url();
        // Dead letters count as failed items: exit 3 (--fail-on-errors 1).
        let run = Args::new("consume")
            .threads(1)
            .redis(&url)
            .drain(0.3)
            .out(&out)
            .stats_json(&st)
            .args(mode)
            .run_expect(None, 3);
        assert_eq!(
            lines(&out),
            [
                "{\"quote\":\"good1\"}",
                // Only the raw line break changed (to a space): no re-encoding.
                "{\"quote\":   \"multi\"}",
                "{\"quote\":\"good2\"}"
            ],
            "{run}"
        );
        let s = stats(&st);
        assert_eq!(
            (
                s["items_dead"].as_u64(),
                s["items_reformatted"].as_u64(),
                s["items_written"].as_u64()
            ),
            (Some(2), Some(1), Some(3)),
            "{s}"
        );
        let dead: Vec<String> = redis.lrange(&format!("{KEY}:dead"));
        assert_eq!(dead.len(), 2);
        let first: serde_json::Value = serde_json::from_str(&dead[1]).unwrap();
        assert_eq!(first["item"], "not json {");
        assert!(
            first["reason"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON"),
            "{first}"
        );
        assert_eq!(redis.llen(KEY), 0);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{KEY}:processing:*"))
            .query(&mut con)
            .unwrap();
        assert!(keys.is_empty(), "{keys:?}");
    }
}

#[test]
fn sigterm_in_reliable_mode_acks_everything_written() {
    let redis = Redis::start();
    let items = seed(&redis, 20_000);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let url = redis.url();
    let child = Args::new("consume")
        .arg("--reliable")
        .redis(&url)
        .batch_size(3)
        .out(&out)
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the first written batch", Duration::from_secs(20), || {
        !lines(&out).is_empty()
    });
    signal(&child, "-TERM");
    finish_expect(child, 0);
    let written = lines(&out);
    // Clean stop: every item is either written exactly once or still queued.
    assert_eq!(written.len() as u64 + redis.llen(KEY), items.len() as u64);
    assert_eq!(written.iter().collect::<HashSet<_>>().len(), written.len());
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{KEY}:*"))
        .query(&mut redis.con())
        .unwrap();
    keys.retain(|k| *k != format!("{KEY}:stats"));
    assert!(keys.is_empty(), "{keys:?}");
}
