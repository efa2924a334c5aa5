//! A crawl never connects to a private address (loopback, private,
//! link-local) unless its start URL is one or `--allow-private` is given:
//! not through a link, a redirect or a crawl job. The "public" site runs on
//! 127.0.0.2, counted as public through the test hooks
//! `QPIPE_TEST_PUBLIC` and `QPIPE_TEST_RESOLVE` (names answered like
//! curl's --resolve), so in-scope subdomains can point at 127.0.0.1,
//! 169.254.169.254 and ::1.

mod common;

use common::fixture::{html, redirect, Answer, Fixture};
use common::jobs::{enqueue, JOBS};
use common::{stats, write_file, Args, Redis, FOLLOW_ALL_SPEC};
use std::collections::BTreeSet;

/// A server on 127.0.0.1 that must never be reached (think: Redis, an
/// admin port, a metadata service).
fn secret() -> Fixture {
    Fixture::start(|_, _| html("<div class=quote><span class=text>secret</span></div>"))
}

/// The "public" site: links and a redirect into private addresses.
fn public_site(secret_port: u16) -> Fixture {
    Fixture::start_on("127.0.0.2", move |path, _| match path {
        "/" => html(&format!(
            r#"<div class=quote><span class=text>home</span></div>
            <a href="http://loop.site.test:{secret_port}/secret">a</a>
            <a href="http://meta.site.test/latest/meta-data/">b</a>
            <a href="http://v6.site.test:{secret_port}/v6">c</a>
            <a href="/redir">d</a> <a href="/ok">e</a>"#
        )),
        "/redir" => redirect(&format!("http://loop.site.test:{secret_port}/secret2")),
        "/ok" => html("<div class=quote><span class=text>ok</span></div>"),
        _ => Answer::Full(404, vec![], Vec::new()),
    })
}

const HOOKS: &str =
    "site.test=127.0.0.2,loop.site.test=127.0.0.1,meta.site.test=169.254.169.254,v6.site.test=::1";
/// For the run that is let through: the "metadata" name points at a closed
/// loopback port instead, so no traffic leaves this machine's loopback.
const HOOKS_LET_THROUGH: &str =
    "site.test=127.0.0.2,loop.site.test=127.0.0.1,meta.site.test=127.0.0.1,v6.site.test=::1";

/// Crawls the site from its "public" name; returns the exit code and stats.
fn crawl(
    site: &Fixture,
    redis: &Redis,
    dir: &std::path::Path,
    hooks: &str,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let spec = write_file(dir, "spec.json", FOLLOW_ALL_SPEC);
    let st = dir.join("stats.json");
    let run = Args::new("produce")
        .redis(&redis.url())
        .start_url(&format!("http://site.test:{}/", site.port))
        .path("--spec", &spec)
        .arg("--ignore-robots")
        .stats_json(&st)
        .args(extra)
        .run_env(
            None,
            &[
                ("QPIPE_TEST_RESOLVE", hooks),
                ("QPIPE_TEST_PUBLIC", "127.0.0.2"),
            ],
        );
    assert!(run.code == 0 || run.code == 3, "{run}");
    (run.code, stats(&st))
}

#[test]
fn links_and_redirects_to_private_addresses_are_refused_and_named() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret();
    let site = public_site(secret.port);
    let (code, s) = crawl(&site, &redis, dir.path(), HOOKS, &[]);
    // Refusals are skips by policy, not errors.
    assert_eq!(code, 0, "{s}");
    assert_eq!(
        (
            secret.hits("/secret"),
            secret.hits("/secret2"),
            secret.hits("/v6")
        ),
        (0, 0, 0)
    );
    assert_eq!(s["skipped"]["private_address"], 4, "{s}");
    assert_eq!(s["pages_fetched"], 2, "{s}");
    let named: BTreeSet<String> = s["skipped_urls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["reason"] == "private_address")
        .map(|u| u["url"].as_str().unwrap().to_string())
        .collect();
    let p = secret.port;
    let want: BTreeSet<String> = [
        format!("http://loop.site.test:{p}/secret"),
        "http://meta.site.test/latest/meta-data/".to_string(),
        format!("http://v6.site.test:{p}/v6"),
        // A redirect is refused at its target and named by the link followed.
        format!("http://site.test:{}/redir", site.port),
    ]
    .into_iter()
    .collect();
    assert_eq!(named, want, "{s}");
    assert_eq!(redis.llen("DATA-PIPELINE-KEY"), 2);

    // A proxy on this host is exempt on its own port only: requests that
    // bypass it (NO_PROXY) to other loopback ports are still refused.
    redis.cmd::<()>(&["DEL", "DATA-PIPELINE-KEY"]);
    let spec = write_file(dir.path(), "spec.json", FOLLOW_ALL_SPEC);
    let run = Args::new("produce")
        .redis(&redis.url())
        .start_url(&format!("http://site.test:{}/", site.port))
        .path("--spec", &spec)
        .arg("--ignore-robots")
        .opt("--proxy", "http://loop.site.test:9")
        .stats_json(&dir.path().join("proxied.json"))
        .run_env(
            None,
            &[
                ("QPIPE_TEST_RESOLVE", HOOKS),
                ("QPIPE_TEST_PUBLIC", "127.0.0.2"),
                (
                    "NO_PROXY",
                    "site.test,loop.site.test,v6.site.test,meta.site.test",
                ),
            ],
        );
    let s = stats(&dir.path().join("proxied.json"));
    assert_eq!(
        (secret.hits("/secret"), secret.hits("/secret2")),
        (0, 0),
        "{run}"
    );
    assert_eq!(s["skipped"]["private_address"], 4, "{s}");

    // With --allow-private the same crawl reaches them: the guard is what
    // stopped it.
    redis.cmd::<()>(&["DEL", "DATA-PIPELINE-KEY"]);
    let (_, s) = crawl(
        &site,
        &redis,
        dir.path(),
        HOOKS_LET_THROUGH,
        &["--allow-private"],
    );
    assert_eq!(
        (secret.hits("/secret"), secret.hits("/secret2")),
        (1, 1),
        "{s}"
    );
    assert!(s["skipped"].get("private_address").is_none(), "{s}");
}

#[test]
fn a_job_pointing_at_this_host_is_set_aside_not_crawled() {
    let redis = Redis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret();
    let redis_port_job = format!("http://127.0.0.1:{}/", secret.port);
    assert_eq!(
        enqueue(&url, &[&redis_port_job, "http://[::1]:9/x"]).code,
        0
    );
    let st = dir.path().join("stats.json");
    Args::new("produce")
        .redis(&url)
        .opt("--jobs", JOBS)
        .arg("--ignore-robots")
        .stats_json(&st)
        .drain(0.5)
        .run_expect(None, 0);
    let s = stats(&st);
    assert_eq!(secret.hits("/"), 0);
    assert_eq!(
        (s["jobs_refused_private"].as_u64(), s["jobs_done"].as_u64()),
        (Some(2), Some(0)),
        "{s}"
    );
    let dead: Vec<String> = redis.lrange(&format!("{JOBS}:dead"));
    assert_eq!(dead.len(), 2);
    for letter in &dead {
        let v: serde_json::Value = serde_json::from_str(letter).unwrap();
        assert!(
            v["reason"].as_str().unwrap().starts_with("private address"),
            "{letter}"
        );
    }
}
