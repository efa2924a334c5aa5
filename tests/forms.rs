//! Forms in specs against hostile pages: a form's action is held to the
//! crawl's domains like a link (no request, header or cookie goes elsewhere),
//! and the refusal is counted and named.

mod common;

use common::web::{Req, Resp, Server};
use common::{stats, write_file, Args, Redis};

#[test]
fn a_form_whose_action_leaves_the_crawl_is_refused_and_named() {
    // Where the form points: must never hear from qpipe.
    let elsewhere = Server::start(|_: &Req| Resp::html("<p>stolen</p>"));
    let action = format!("http://localhost:{}/steal", elsewhere.port);
    let page = format!(
        "<form name=f action={action:?} method=post><input type=hidden name=secret value=v>\
         <select name=q><option>1</option><option>2</option></select></form>"
    );
    let site = Server::start(move |r: &Req| match r.path.as_str() {
        "/" => Resp::html(&page),
        "/js" => {
            Resp::html("<form name=g action=\"javascript:alert(1)\"><input name=x value=y></form>")
        }
        _ => Resp::not_found(),
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(
        dir.path(),
        "spec.json",
        r#"{"name": "forms", "start_urls": ["http://127.0.0.1/"],
           "rules": [
             {"name": "start", "match": "/$", "submit": {"form": "form[name=f]", "each": "q", "rule": "answer"}},
             {"name": "js", "match": "/js$", "submit": {"form": "form[name=g]", "rule": "answer"}},
             {"name": "answer", "match": "/steal", "item": "p", "fields": {"t": "p"}}
           ]}"#,
    );
    let redis = Redis::start();
    let st = dir.path().join("stats.json");
    let run = Args::new("produce")
        .redis(&redis.url())
        .opt("--spec", spec.display())
        .opt("--start-url", format!("{}/", site.base))
        .opt("--start-url", format!("{}/js", site.base))
        .opt("--header", "Authorization: Bearer TOPSECRET")
        .stats_json(&st)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(elsewhere.requests().len(), 0, "{run}");
    assert_eq!(s["skipped"]["offsite_form"].as_u64(), Some(3), "{s}");
    assert_eq!(s["forms_submitted"].as_u64(), Some(3), "{s}");
    assert_eq!(s["items_pushed"].as_u64(), Some(0), "{s}");
    let named: Vec<&str> = s["skipped_urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["url"].as_str())
        .collect();
    assert!(named.iter().any(|u| u.contains("/steal")), "{s}");
    assert!(named.iter().any(|u| u.starts_with("javascript:")), "{s}");
    assert!(!run.stderr.contains("TOPSECRET"), "{run}");
}

/// A page of two items whose form is sent once per option of a 30-option
/// select, each answer one item.
fn thirty_answers() -> (Server, std::path::PathBuf, tempfile::TempDir) {
    let options: String = (1..=30).map(|n| format!("<option>{n}</option>")).collect();
    let page = format!(
        "<div class=a><p>p1</p></div><div class=a><p>p2</p></div><form name=f action=/answer><select name=q>{options}</select></form>"
    );
    let site = Server::start(move |r: &Req| match r.path.as_str() {
        "/" => Resp::html(&page),
        p if p.starts_with("/answer?q=") => {
            Resp::html(&format!("<div class=a><p>{}</p></div>", &p[10..]))
        }
        _ => Resp::not_found(),
    });
    let dir = tempfile::tempdir().unwrap();
    let spec = write_file(
        dir.path(),
        "spec.json",
        r#"{"name": "forms", "start_urls": ["http://127.0.0.1/"],
           "rules": [
             {"name": "start", "match": "/$", "item": "div.a", "fields": {"t": "p"}, "submit": {"form": "form[name=f]", "each": "q", "rule": "answer"}},
             {"name": "answer", "match": "/answer", "item": "div.a", "fields": {"t": "p"}}
           ]}"#,
    );
    (site, spec, dir)
}

#[test]
fn a_page_s_form_answers_count_against_the_crawl_s_budgets() {
    let (site, spec, dir) = thirty_answers();
    let redis = Redis::start();
    for (flag, value, sent, finish) in [
        // The page itself is the first of 5 pages: 4 answers.
        ("--max-pages", "5", 4, "max_pages"),
        // The page's 2 items and 1 answer of one item reach 3 items.
        ("--max-items", "3", 1, "max_items"),
    ] {
        redis.cmd::<i64>(&["DEL", "DATA-PIPELINE-KEY"]);
        let st = dir.path().join("stats.json");
        let before = site.requests().len();
        let run = Args::new("produce")
            .redis(&redis.url())
            .opt("--spec", spec.display())
            .opt("--start-url", format!("{}/", site.base))
            .opt("--threads", 1)
            .opt(flag, value)
            .stats_json(&st)
            .run_expect(None, 0);
        let s = stats(&st);
        let pages = site.requests()[before..]
            .iter()
            .filter(|r| r.path != "/robots.txt")
            .count();
        assert_eq!(pages, 1 + sent, "{flag}: {run}");
        assert_eq!(s["forms_submitted"].as_u64(), Some(sent as u64), "{s}");
        assert_eq!(s["forms_unsent"].as_u64(), Some(30 - sent as u64), "{s}");
        assert_eq!(s["items_pushed"].as_u64(), Some(2 + sent as u64), "{s}");
        assert_eq!(s["finish_reason"], finish, "{s}");
        assert!(
            run.stderr.contains(&format!(
                "{} form submissions not sent: the crawl ended ({finish})",
                30 - sent
            )),
            "{run}"
        );
    }
}

#[test]
fn a_stop_mid_forms_gives_the_page_back_to_the_shared_frontier() {
    let (site, spec, _dir) = thirty_answers();
    let redis = Redis::start();
    let run = |extra: &[&str]| {
        Args::new("produce")
            .redis(&redis.url())
            .opt("--spec", spec.display())
            .opt("--start-url", format!("{}/", site.base))
            .opt("--shared-frontier", "sf")
            .opt("--threads", 1)
            .args(extra)
    };
    // One answer every 150 ms: stopped after a few of the 30.
    let victim = run(&["--delay-ms", "150"]).spawn(None);
    common::wait_for_llen(
        &redis,
        "DATA-PIPELINE-KEY",
        5,
        std::time::Duration::from_secs(20),
    );
    common::signal(&victim, "-TERM");
    let stderr = common::finish_expect(victim, 143);
    assert!(
        stderr.contains("form submissions not sent: the crawl ended (shutdown)"),
        "{stderr}"
    );
    let leased: u64 = redis.cmd(&["ZCARD", "{sf}:leases"]);
    assert_eq!(leased, 0, "{stderr}");
    // The next producer takes the page back and sends every form; the
    // shared crawl's item fingerprints fold what the first one pushed.
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stats.json");
    run(&[]).stats_json(&st).run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(s["forms_submitted"].as_u64(), Some(30), "{s}");
    let mut got: Vec<String> = redis
        .lrange("DATA-PIPELINE-KEY")
        .iter()
        .map(|i| {
            serde_json::from_str::<serde_json::Value>(i).unwrap()["t"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    got.sort();
    got.dedup();
    let mut want: Vec<String> = (1..=30)
        .map(|n| n.to_string())
        .chain(["p1".into(), "p2".into()])
        .collect();
    want.sort();
    assert_eq!(got, want);
}
