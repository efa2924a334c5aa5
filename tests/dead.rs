//! `qpipe dead`: dead letters listed, shown, re-queued byte for byte and
//! deleted, for items and for jobs; counted by reason in `status`; safe
//! against a lost reply.

mod common;

use common::jobs::{enqueue, JOBS};
use common::proxy::Proxy;
use common::{qpipe, Args, Redis};

const KEY: &str = "DATA-PIPELINE-KEY";

/// Two poison items (bad JSON, bad UTF-8) among good ones, drained by a
/// consumer, so two dead letters exist; returns the poison bytes.
fn two_dead_letters(redis: &Redis) -> (Vec<u8>, Vec<u8>) {
    let bad_json = b"{\"a\": nope".to_vec();
    let bad_utf8 = b"{\"a\":\"\xff\xfe\"}".to_vec();
    let items: Vec<Vec<u8>> = vec![
        b"{\"n\":1}".to_vec(),
        bad_json.clone(),
        bad_utf8.clone(),
        b"{\"n\":2}".to_vec(),
    ];
    redis.lpush(KEY, &items);
    let dir = tempfile::tempdir().unwrap();
    Args::consume(&redis.url())
        .out(&dir.path().join("out.jsonl"))
        .drain(0.3)
        // Dead items make the exit code 3 (--fail-on-errors defaults to 1).
        .run_expect(None, 3);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 2);
    (bad_json, bad_utf8)
}

fn dead(url: &str, args: &[&str]) -> common::Run {
    qpipe(&[&["dead", "--redis", url][..], args].concat(), None)
}

fn raw_list(redis: &Redis, key: &str) -> Vec<Vec<u8>> {
    redis.cmd(&["LRANGE", key, "0", "-1"])
}

#[test]
fn dead_letters_are_listed_counted_shown_requeued_and_deleted() {
    let redis = Redis::start();
    let url = redis.url();
    let (bad_json, bad_utf8) = two_dead_letters(&redis);

    let list = dead(&url, &[]);
    assert_eq!(list.code, 0, "{list}");
    let rows: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(rows.len(), 2, "{list}");
    // Indexed from the newest; which poison item died first depends on
    // which popper took it.
    assert!(
        rows[0].starts_with("#0\t") && rows[1].starts_with("#1\t"),
        "{list}"
    );
    let json_row = rows
        .iter()
        .position(|r| r.contains("\tinvalid JSON: "))
        .expect("a JSON row");
    assert!(rows[1 - json_row].contains("\tnot valid UTF-8: "), "{list}");
    let json = dead(&url, &["list", "--json", "--limit", "1"]);
    assert_eq!(json.stdout.lines().count(), 1, "{json}");

    let st = qpipe(&["status", "--redis", &url, "--json"], None);
    let v: serde_json::Value = serde_json::from_str(st.stdout.trim()).unwrap();
    assert_eq!(
        v["dead_by_reason"],
        serde_json::json!({"invalid JSON": 1, "not valid UTF-8": 1}),
        "{st}"
    );

    let show = dead(&url, &["show", "--index", &json_row.to_string()]);
    assert_eq!(show.stdout.lines().last(), Some("{\"a\": nope"), "{show}");
    let none = dead(&url, &["show", "--index", "7"]);
    assert_eq!(none.code, 2, "{none}");
    assert!(
        none.stderr.contains("no dead letter #7 (2 in all"),
        "{none}"
    );

    let re = dead(&url, &["requeue", "--reason", "not valid UTF-8"]);
    assert_eq!(re.code, 0, "{re}");
    assert!(
        re.stderr.contains("requeued") && re.stderr.contains('1'),
        "{re}"
    );
    // Byte for byte, at the consuming end (popped next).
    assert_eq!(raw_list(&redis, KEY), [bad_utf8]);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 1);

    assert_eq!(dead(&url, &["delete", "--all"]).code, 0);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 0);
    let again = dead(&url, &["delete", "--all", "--stats-json", "-"]);
    assert!(again.stdout.contains("\"deleted\":0"), "{again}");
    assert!(!raw_list(&redis, KEY).contains(&bad_json));
}

#[test]
fn a_requeue_whose_reply_is_lost_pushes_once() {
    let redis = Redis::start();
    let (bad_json, _) = two_dead_letters(&redis);
    let proxy = Proxy::start(&redis);
    // The re-queue is one script; its reply is lost once, then retried.
    proxy.cut("EVAL", 0, 1);
    let run = dead(&proxy.url(), &["requeue", "--reason", "invalid JSON"]);
    assert_eq!(run.code, 0, "{run}");
    assert_eq!(proxy.cuts(), 1, "the fault was never injected: {run}");
    assert_eq!(raw_list(&redis, KEY), [bad_json], "pushed twice?");
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 1);
}

#[test]
fn a_dead_job_goes_back_to_the_far_end_with_its_attempts_reset() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    // A private job URL is set aside by a worker without --allow-private.
    let job = "http://127.0.0.1:9/job";
    assert_eq!(enqueue(&url, &[job]).code, 0);
    Args::new("produce")
        .redis(&url)
        .opt("--jobs", JOBS)
        .stats_json(&dir.path().join("s.json"))
        .drain(0.3)
        .run_expect(None, 0);
    assert_eq!(redis.llen(&format!("{JOBS}:dead")), 1);
    let sha: String = redis.cmd(&["EVAL", "return redis.sha1hex(ARGV[1])", "0", job]);
    let _: () = redis.cmd(&["HSET", &format!("{JOBS}:attempts"), &sha, "4"]);
    redis.lpush(JOBS, &["http://example.com/waiting"]);
    let run = dead(&url, &["requeue", "--jobs", JOBS, "--all"]);
    assert_eq!(run.code, 0, "{run}");
    // The far end: the job already waiting is taken first.
    assert_eq!(redis.lrange(JOBS), [job, "http://example.com/waiting"]);
    let attempts: Option<String> = redis.cmd(&["HGET", &format!("{JOBS}:attempts"), &sha]);
    assert_eq!(attempts, None);
    assert_eq!(redis.llen(&format!("{JOBS}:dead")), 0);
}

/// A dead item is untrusted: the text listing escapes its control
/// characters, so it cannot drive the terminal or split the listing.
#[test]
fn the_listing_escapes_control_characters() {
    let redis = Redis::start();
    let evil = b"\x1b]0;pwned\x07\x1b[2J{\"a\":\nnope".to_vec();
    redis.lpush(KEY, &[evil]);
    let dir = tempfile::tempdir().unwrap();
    Args::consume(&redis.url())
        .out(&dir.path().join("o.jsonl"))
        .drain(0.3)
        .run_expect(None, 3);
    let list = dead(&redis.url(), &[]);
    assert_eq!(list.stdout.lines().count(), 1, "{list}");
    assert!(
        !list.stdout.contains('\x1b') && !list.stdout.contains('\x07'),
        "{list}"
    );
    assert!(list.stdout.contains("\\u{1b}]0;pwned\\u{7}"), "{list}");
}

#[test]
fn a_requeue_or_delete_must_say_which_letters() {
    let redis = Redis::start();
    for action in ["requeue", "delete"] {
        let run = dead(&redis.url(), &[action]);
        assert_eq!(run.code, 2, "{run}");
        assert!(
            run.stderr
                .contains("say which letters (--all, --reason TEXT"),
            "{run}"
        );
    }
    let run = dead(&redis.url(), &["resurrect"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("list, show, requeue or delete"),
        "{run}"
    );
}
