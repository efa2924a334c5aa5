//! A push whose reply is lost (the connection dies after Redis applied it) is
//! retried without pushing the batch twice.

mod common;

use common::proxy::Proxy;
use common::{stats, Args, Redis};

#[test]
fn a_lost_push_reply_does_not_duplicate_the_batch() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    // The push is one script (EVAL) that pushes and sets the marker; the
    // first EVAL is the ACL check at start, which is skipped.
    proxy.cut("EVAL", 1, 1);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    let st = dir.path().join("s.json");
    let url = proxy.url();
    let run = Args::new("push")
        .arg(file.display())
        .redis(&url)
        .stats_json(&st)
        .run_expect(None, 0);
    assert_eq!(proxy.cuts(), 1, "the fault was never injected: {run}");
    let s = stats(&st);
    assert_eq!(s["redis_retries"], 1, "{s}");
    assert_eq!(s["redis_retries_already_landed"], 1, "{s}");
    assert_eq!(s["items_pushed"], 3, "{s}");
    assert_eq!(
        redis.lrange("DATA-PIPELINE-KEY"),
        ["{\"n\":3}", "{\"n\":2}", "{\"n\":1}"],
        "pushed twice?"
    );
}
