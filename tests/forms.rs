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

/// A page whose form is sent once per option of a 30-option select, each
/// answer one item.
fn thirty_answers() -> (Server, std::path::PathBuf, tempfile::TempDir) {
    let options: String = (1..=30).map(|n| format!("<option>{n}</option>")).collect();
    let page = format!("<form name=f action=/answer><select name=q>{options}</select></form>");
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
             {"name": "start", "match": "/$", "submit": {"form": "form[name=f]", "each": "q", "rule": "answer"}},
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
        // 3 answers of one item each reach the budget of 3 items.
        ("--max-items", "3", 3, "max_items"),
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
        assert_eq!(s["items_pushed"].as_u64(), Some(sent as u64), "{s}");
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
