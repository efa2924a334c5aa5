//! A real site that nobody here wrote: the Python documentation from
//! Debian's `python3-doc` package (500+ Sphinx pages, pages up to 2.5 MB,
//! thousands of links on one page, one broken link, a non-HTML download),
//! served by nginx on loopback, crawled with `specs/docs.json` and default
//! flags as the README shows. The expected pages, fields, failures and skips
//! are computed from the files alone by `tests/real_site/truth.py`
//! (Python's html.parser, no qpipe code); nginx's access log says how often
//! each URL was fetched.

mod common;

use common::{free_port, signal, spawn, stats, wait_bounded, Redis};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";
const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/specs/docs.json");
const TRUTH_PY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real_site/truth.py");

/// The installed Python documentation (`python3-doc`).
fn docs_root() -> PathBuf {
    let found = std::fs::read_dir("/usr/share/doc")
        .expect("/usr/share/doc")
        .flatten()
        .map(|e| e.path().join("html"))
        .filter(|p| {
            let name = p.parent().and_then(Path::file_name).unwrap_or_default();
            let name = name.to_string_lossy();
            name.starts_with("python3.")
                && !name.ends_with("-dev")
                && p.join("index.html").is_file()
        })
        .min();
    let root = found.expect("python3-doc is not installed (scripts/test.sh installs it)");
    std::fs::canonicalize(root).expect("canonical docs root")
}

/// nginx serving `root` on its own port, with its own access log; killed on drop.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  access_log {d}/access.log;\n  \
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
             scgi_temp_path {d}/scgi;\n  \
             server {{ listen 127.0.0.1:{port}; root {}; }}\n}}\n",
            root.display()
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx is not installed (scripts/test.sh installs it)");
        let url = format!("http://127.0.0.1:{port}/");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir, url }
    }

    /// Requests per path, from the access log (robots.txt left out).
    fn fetches(&self) -> HashMap<String, usize> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let mut n = HashMap::new();
        for line in log.lines() {
            let path = line.split(' ').nth(6).unwrap_or("").to_string();
            if path != "/robots.txt" {
                *n.entry(path).or_default() += 1;
            }
        }
        n
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the files say a crawl of the site must find (see `truth.py`), by
/// path (`/`, `/library/os.html`), the same for every port it is served on.
struct Truth {
    /// path -> the item's fields.
    pages: BTreeMap<String, Value>,
    /// path -> the paths of the pages that link to it.
    failed: BTreeMap<String, BTreeSet<String>>,
    /// Reachable paths that are not HTML.
    other: BTreeSet<String>,
}

/// Where `truth.py` pretends the site is; only paths are kept.
const TRUTH_BASE: &str = "http://127.0.0.1:9";

/// The truth, computed once for every test here (it takes ~10 s).
fn truth() -> &'static Truth {
    static TRUTH: OnceLock<Truth> = OnceLock::new();
    TRUTH.get_or_init(|| {
        let root = docs_root();
        let out = Command::new("python3")
            .arg(TRUTH_PY)
            .arg(&root)
            .arg(format!("{TRUTH_BASE}/"))
            .arg(SPEC)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let path = |u: &Value| {
            let u = u.as_str().unwrap();
            u.strip_prefix(TRUTH_BASE).unwrap().to_string()
        };
        let list = |key: &str| v[key].as_array().unwrap().clone();
        Truth {
            pages: list("pages")
                .iter()
                .map(|p| (path(&p["url"]), p.clone()))
                .collect(),
            failed: list("failed")
                .iter()
                .map(|f| {
                    let from = f["from"].as_array().unwrap().iter().map(path).collect();
                    (path(&f["url"]), from)
                })
                .collect(),
            other: list("other").iter().map(path).collect(),
        }
    })
}

/// The path of `url` on `nginx`.
fn path_of<'a>(nginx: &Nginx, url: &'a str) -> &'a str {
    url.strip_prefix(nginx.url.trim_end_matches('/'))
        .unwrap_or_else(|| panic!("{url} is not on {}", nginx.url))
}

/// The items in Redis, by path (every URL must come once).
fn items_by_path(redis: &Redis, nginx: &Nginx) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for line in redis.lrange(KEY) {
        let v: Value = serde_json::from_str(&line).unwrap();
        let path = path_of(nginx, v["url"].as_str().unwrap()).to_string();
        assert!(out.insert(path.clone(), v).is_none(), "{path} pushed twice");
    }
    out
}

/// Every reachable page is pushed once with exact fields.
fn assert_exact(items: &BTreeMap<String, Value>, truth: &Truth) {
    let got: BTreeSet<&String> = items.keys().collect();
    let want: BTreeSet<&String> = truth.pages.keys().collect();
    assert_eq!(
        got.difference(&want).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "pushed but not expected"
    );
    assert_eq!(
        want.difference(&got).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "expected but not pushed"
    );
    for (path, want) in &truth.pages {
        let item = &items[path];
        for field in ["title", "h1", "h2"] {
            assert_eq!(item[field], want[field], "{path}: {field}");
        }
        assert_eq!(item.as_object().unwrap().len(), 4, "{path}: {item}");
    }
}

/// `qpipe produce` of the site with `specs/docs.json` into `redis`, plus `extra`.
fn crawl(nginx: &Nginx, redis: &Redis, extra: &[&str]) -> Child {
    let url = redis.url();
    let mut args = vec![
        "produce",
        "--spec",
        SPEC,
        "--start-url",
        &nginx.url,
        "--redis",
        &url,
    ];
    args.extend_from_slice(extra);
    spawn(&args, None)
}

#[test]
fn a_real_docs_site_is_crawled_exactly_with_default_flags() {
    let nginx = &Nginx::start(&docs_root());
    let truth = truth();
    assert!(truth.pages.len() > 500, "{} pages", truth.pages.len());
    // `/` and `/index.html` are the same file and two pages: both kept.
    assert!(truth.pages.contains_key("/") && truth.pages.contains_key("/index.html"));
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let failures = dir.path().join("failures.jsonl");
    let child = crawl(
        nginx,
        &redis,
        &[
            "--stats-json",
            &stats_path.display().to_string(),
            "--failures",
            &failures.display().to_string(),
        ],
    );
    let out = wait_bounded(child, Duration::from_secs(240));
    let err = String::from_utf8_lossy(&out.stderr);
    // The site has a broken link: exit 3 under the default --fail-on-errors 1.
    assert_eq!(truth.failed.len(), 1, "{:?}", truth.failed);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_exact(&items_by_path(&redis, nginx), truth);

    let s = stats(&stats_path);
    let n = truth.pages.len() as u64;
    assert_eq!(s["pages_fetched"], n, "{s}");
    assert_eq!(s["items_pushed"], n, "{s}");
    assert_eq!(s["duplicates_dropped"], 0, "{s}");
    assert_eq!(s["links_cut"], 0, "{s}");
    assert_eq!(s["item_identity"], "the whole item, url included", "{s}");
    let no_h2 = truth
        .pages
        .values()
        .filter(|p| p["h2"] == serde_json::json!([]))
        .count();
    assert_eq!(
        s["fields_empty"],
        serde_json::json!({"title": 0, "h1": 0, "h2": no_h2}),
        "{s}"
    );
    // Every failure and skip named: URL, reason, status, and a page that links to it.
    let failed = s["failed_urls"].as_array().unwrap();
    assert_eq!(failed.len(), truth.failed.len(), "{s}");
    for f in failed {
        let (url, from) = (f["url"].as_str().unwrap(), f["from"].as_str().unwrap());
        let from_path = path_of(nginx, from).to_string();
        assert!(
            truth.failed[path_of(nginx, url)].contains(&from_path),
            "{f}"
        );
        assert_eq!(
            (f["reason"].as_str(), f["status"].as_u64()),
            (Some("http_404"), Some(404))
        );
        // The human summary names it too.
        assert!(
            err.contains(&format!("http_404 {url} (linked from {from})")),
            "{err}"
        );
    }
    let skipped: BTreeSet<&str> = s["skipped_urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(f["reason"], "not_html", "{f}");
            path_of(nginx, f["url"].as_str().unwrap())
        })
        .collect();
    assert_eq!(skipped, truth.other.iter().map(String::as_str).collect());
    // --failures has the same records, one JSON line each.
    let lines = common::jsonl(&failures);
    assert_eq!(lines.len(), truth.failed.len() + truth.other.len());
    assert_eq!(
        lines.iter().filter(|l| l["skipped"] == true).count(),
        truth.other.len()
    );
    // Each URL fetched once (the site's one 404 included).
    let fetches = nginx.fetches();
    let twice: Vec<_> = fetches.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{twice:?}");
}

#[test]
fn a_stopped_crawl_resumes_where_it_stopped_with_nothing_done_twice() {
    let nginx = &Nginx::start(&docs_root());
    let truth = truth();
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let stats_path = dir.path().join("stats.json");
    let stats_arg = stats_path.display().to_string();
    let args = [
        "--shared-frontier",
        "docs",
        "--stats-json",
        &stats_arg,
        // Pages in flight finish before the stop; a debug build parses the
        // 2.5 MB index pages slowly on a loaded 2-core machine, and eight at
        // once could outlast the 8 s stop watchdog (which writes no stats).
        "--threads",
        "2",
    ];
    let child = crawl(nginx, &redis, &args);
    common::eventually(
        "a tenth of the site pushed",
        Duration::from_secs(120),
        || redis.llen(KEY) >= truth.pages.len() as u64 / 10,
    );
    signal(&child, "-TERM");
    let out = wait_bounded(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(stats_path.exists(), "no stats after the stop: {err}");
    let first = common::jsonl(&stats_path);
    assert_eq!(first[0]["finish_reason"], "shutdown");
    let hint = first[0]["resume"].as_str().unwrap();
    assert!(hint.starts_with("run the same command again"), "{hint}");
    assert!(err.contains("run the same command again"), "{err}");
    let pushed_first = first[0]["items_pushed"].as_u64().unwrap();
    assert!(
        pushed_first < truth.pages.len() as u64,
        "stopped too late: {err}"
    );

    let child = crawl(nginx, &redis, &args);
    let out = wait_bounded(child, Duration::from_secs(240));
    let err = String::from_utf8_lossy(&out.stderr);
    // The broken link failed in one of the two runs.
    assert!(matches!(out.status.code(), Some(0 | 3)), "{err}");
    let runs = common::jsonl(&stats_path);
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["finish_reason"], "finished", "{err}");
    let fetched: u64 = runs
        .iter()
        .map(|r| r["pages_fetched"].as_u64().unwrap())
        .sum();
    let failed: u64 = runs
        .iter()
        .map(|r| r["pages_failed"].as_u64().unwrap())
        .sum();
    assert_eq!(fetched, truth.pages.len() as u64);
    assert_eq!(failed, truth.failed.len() as u64);
    assert_exact(&items_by_path(&redis, nginx), truth);
    // Over both runs, every URL was requested exactly once, and nothing else.
    let fetches = nginx.fetches();
    let reachable = truth.pages.len() + truth.failed.len() + truth.other.len();
    assert_eq!(fetches.len(), reachable, "{fetches:?}");
    for path in truth
        .pages
        .keys()
        .chain(truth.failed.keys())
        .chain(&truth.other)
    {
        let n = fetches.get(path).copied().unwrap_or(0);
        assert_eq!(n, 1, "{path} fetched {n} times over both runs");
    }
}

/// Without a shared frontier, a stopped crawl says that it cannot resume and how to make crawls resumable.
#[test]
fn a_stopped_crawl_without_a_shared_frontier_says_how_to_resume() {
    let nginx = &Nginx::start(&docs_root());
    let redis = Redis::start();
    let child = crawl(nginx, &redis, &[]);
    common::eventually("items pushed", Duration::from_secs(60), || {
        redis.llen(KEY) >= 20
    });
    signal(&child, "-TERM");
    let out = wait_bounded(child, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains("cannot resume: this crawl's frontier was in memory; start crawls with --shared-frontier NAME"),
        "{err}"
    );
}
