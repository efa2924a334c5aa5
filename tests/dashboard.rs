//! `qpipe dashboard` against a real Redis holding queues, workers, dead
//! letters, a job list, a shared frontier and a lock: what a real headless
//! Chromium shows is checked against Redis, a click re-queues a dead letter
//! and Redis changes, and a screenshot is saved. Then the safety rules
//! (loopback, --auth, --read-only, CSRF, the Host check, no password shown)
//! and the load an open dashboard puts on Redis, counted by Redis itself.

mod common;

use common::browser::Browser;
use common::{numbered, signal, Args, Redis};
use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KEY: &str = "DATA-PIPELINE-KEY";

/// A running `qpipe dashboard`, its address read from its log.
struct Dashboard {
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Dashboard {
    fn start(redis_url: &str, extra: &[&str]) -> Dashboard {
        let mut child = Args::new("dashboard")
            .redis(redis_url)
            .opt("--addr", "127.0.0.1:0")
            .opt("--every", 1)
            .args(extra)
            .spawn(None);
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("dashboard at http://").nth(1) {
                    let _ = tx.send(rest.split('/').next().unwrap_or("").to_string());
                }
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the dashboard did not start: {}", log.lock().unwrap()));
        Dashboard {
            child: Some(child),
            base: format!("http://{addr}"),
            log,
        }
    }

    /// Stops it with SIGTERM; its exit code and log.
    fn stop(mut self) -> (i32, String) {
        let child = self.child.take().unwrap();
        signal(&child, "-TERM");
        let out = common::wait_bounded(child, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
        (
            out.status.code().unwrap_or(-1),
            self.log.lock().unwrap().clone(),
        )
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Three poison items set aside as dead letters by a real consume, 40 items
/// waiting, 2 crawl jobs, a shared frontier and a held lock.
fn fleet(redis: &Redis) {
    let url = redis.url();
    redis.lpush(KEY, &["{\"n\":", "[1,", "nope"]);
    let out = tempfile::NamedTempFile::new().unwrap();
    Args::consume(&url)
        .arg("--reliable")
        .out(out.path())
        .drain(0.2)
        .arg("-q")
        .run_expect(None, 3);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 3);
    let items = numbered(40, 8).join("\n");
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), items).unwrap();
    Args::new("push")
        .redis(&url)
        .arg(input.path().display())
        .arg("-q")
        .run_expect(None, 0);
    let jobs = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"];
    Args::new("enqueue")
        .redis(&url)
        .args(jobs)
        .run_expect(None, 0);
    redis.cmd::<i64>(&["RPUSH", "{site}:frontier", "0 http://x/a", "0 http://x/b"]);
    redis.cmd::<i64>(&["ZADD", "{site}:leases", "1", "0 http://x/c"]);
    redis.cmd::<i64>(&["SADD", "{site}:seen", "a", "b", "c", "d"]);
    redis.cmd::<String>(&[
        "SET",
        "qpipe:lock:nightly",
        "host-a:42:1700000000",
        "PX",
        "600000",
    ]);
}

/// A reliable consumer that died holding 7 items: registered, its batch
/// list full, its heartbeat gone.
fn ghost(redis: &Redis) {
    let ghost = "ghost:1:0000dead";
    redis.cmd::<i64>(&["SADD", &format!("{KEY}:consumers"), ghost]);
    let batch = format!("{KEY}:processing:{ghost}:0:1");
    redis.cmd::<i64>(&["SADD", &format!("{KEY}:batches:{ghost}"), &batch]);
    let held: Vec<String> = numbered(7, 1);
    let mut args = vec!["RPUSH", batch.as_str()];
    args.extend(held.iter().map(String::as_str));
    redis.cmd::<i64>(&args);
}

fn text(b: &mut Browser, selector: &str) -> String {
    let v = b.eval(&format!(
        "(document.querySelector({}) || {{textContent: '(missing)'}}).textContent",
        serde_json::to_string(selector).unwrap()
    ));
    v.as_str().unwrap_or_default().trim().to_string()
}

#[test]
fn a_browser_sees_what_redis_holds_and_requeues_a_dead_letter() {
    let redis = Redis::start();
    fleet(&redis);
    let dash = Dashboard::start(&redis.url(), &[]);
    // A live reliable consumer holding a batch its exec sink sits on.
    let mut live = Args::consume(&redis.url())
        .arg("--reliable")
        .batch_size(5)
        .threads(1)
        .opt("--exec", "sleep 30")
        .opt("--heartbeat-ttl", 600)
        .spawn(None);
    // It takes batches of 5 ahead of its sink, as many as its buffer holds.
    let mut last = 40;
    let settled = common::wait_until(Duration::from_secs(15), || {
        std::thread::sleep(Duration::from_millis(700));
        let now = redis.llen(KEY);
        std::mem::replace(&mut last, now) == now && now < 40
    });
    assert!(settled, "the live consumer took no batch");
    let taken = 40 - last;
    // After the live consumer's recovery at start, which would take them
    // back (its next one is a TTL away).
    ghost(&redis);
    std::thread::sleep(Duration::from_millis(2500));
    let mut b = Browser::start();
    b.goto(&format!("{}/", dash.base));
    let q = |k: &str| format!("tr[data-queue=\"{KEY}\"] td[data-k={k}]");
    assert_eq!(text(&mut b, &q("length")), redis.llen(KEY).to_string());
    assert_eq!(text(&mut b, &q("dead")), "3");
    let held = (taken + 7).to_string();
    assert_eq!(
        text(&mut b, &q("held")),
        held,
        "{taken} by the live consumer, 7 by the dead one"
    );
    assert_eq!(text(&mut b, &q("workers")), "1");
    assert_eq!(text(&mut b, &q("orphaned")), "7");
    let ghost = text(&mut b, "tr[data-worker=\"ghost:1:0000dead\"]");
    assert!(ghost.contains("orphaned, waiting for recovery"), "{ghost}");
    let workers = b.eval("document.querySelectorAll('#workers tr[data-worker]').length");
    assert_eq!(workers, 2);
    let jobs = text(&mut b, "tr[data-jobs=\"qpipe:jobs\"] td:nth-child(2)");
    assert_eq!(jobs, "2");
    let frontier = b.eval("Array.from(document.querySelectorAll('#frontiers tr:nth-child(2) td')).map(t => t.textContent)");
    assert_eq!(frontier, serde_json::json!(["site", "2", "1", "4"]));
    assert!(text(&mut b, "#locks").contains("host-a:42:1700000000"));
    // Stop the live consumer (its batches stay), so what is re-queued stays.
    let _ = live.kill();
    let _ = live.wait();
    // To the dead letters by their link, and re-queue the newest one.
    b.click(&format!("{} a", q("dead")));
    let digest = b.eval("document.querySelector('#dead tr[data-digest]').dataset.digest");
    let digest = digest.as_str().unwrap().to_string();
    let item = text(&mut b, &format!("tr[data-digest=\"{digest}\"] pre"));
    assert!(
        ["{\"n\":", "[1,", "nope"].contains(&item.as_str()),
        "{item}"
    );
    let before = redis.llen(KEY);
    b.click(&format!("tr[data-digest=\"{digest}\"] button.requeue"));
    assert_eq!(text(&mut b, "#notice"), "re-queued 1 dead letters");
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 2);
    assert_eq!(redis.llen(KEY), before + 1);
    let next: Vec<String> = redis.cmd(&["LRANGE", KEY, "-1", "-1"]);
    assert_eq!(next, [item], "back at the consuming end, byte for byte");
    assert_eq!(
        b.eval("document.querySelectorAll('#dead tr[data-digest]').length"),
        2
    );
    // The overview again, for the record.
    std::thread::sleep(Duration::from_millis(1500));
    b.goto(&format!("{}/", dash.base));
    let png = b.screenshot();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "{} bytes", png.len());
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot: {}", shot.display());
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("re-queued 1 dead letters of DATA-PIPELINE-KEY:dead"),
        "{log}"
    );
    let requeued = log
        .lines()
        .find(|l| l.trim_start().starts_with("dead_letters_requeued"));
    assert_eq!(
        requeued.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["dead_letters_requeued", "1"]),
        "{log}"
    );
}

/// An HTTP request to the dashboard: status, body.
fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let resp = match method {
        "POST" => {
            let mut r = agent.post(url);
            for (n, v) in headers {
                r = r.header(*n, *v);
            }
            r.content_type("application/x-www-form-urlencoded")
                .send(body)
        }
        _ => {
            let mut r = agent.get(url);
            for (n, v) in headers {
                r = r.header(*n, *v);
            }
            r.call()
        }
    };
    let mut resp = resp.expect("the dashboard answers");
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap_or_default())
}

/// The dashboard's page of `KEY:dead`, and its forms' CSRF token.
fn dead_page(dash: &Dashboard) -> (String, String) {
    let url = format!("{}/dead?list={KEY}%3Adead", dash.base);
    let (_, page) = http("GET", &url, &[], "");
    let token = attribute(&page, "name=csrf value=\"");
    (page, token)
}

/// The quoted value that follows `before` in `page`.
fn attribute(page: &str, before: &str) -> String {
    let rest = page
        .split(before)
        .nth(1)
        .unwrap_or_else(|| panic!("no {before} in {page}"));
    rest.split('"').next().unwrap().to_string()
}

fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

#[test]
fn it_is_safe_to_expose() {
    // Beyond loopback without --auth: refused before anything is served.
    let run = Args::new("dashboard")
        .redis("redis://127.0.0.1:9")
        .opt("--addr", "0.0.0.0:0")
        .run_expect(None, 2);
    assert!(run.stderr.contains("needs --auth user:password"), "{run}");
    let run = Args::new("dashboard")
        .opt("--auth", "nopassword")
        .run_expect(None, 2);
    assert!(run.stderr.contains("must be user:password"), "{run}");
    // A Redis with a password, named in the URL.
    let redis = Redis::start_tcp_with(&["--requirepass", "Sup3r-s3cret"]);
    let url = format!("redis://:Sup3r-s3cret@127.0.0.1:{}", redis.port);
    let con = |args: &[&str]| {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<redis::Value>(&mut c).unwrap();
    };
    con(&[
        "LPUSH",
        &format!("{KEY}:dead"),
        r#"{"reason":"invalid JSON","consumer":"c","at":"2026-01-01T00:00:00.000Z","item":"<b>x</b>"}"#,
    ]);
    let dash = Dashboard::start(&url, &["--auth", "ops:pw-42", "--read-only"]);
    std::thread::sleep(Duration::from_millis(1500));
    let auth = basic("ops:pw-42");
    let ok = [("Authorization", auth.as_str())];
    assert_eq!(http("GET", &format!("{}/", dash.base), &[], "").0, 401);
    let wrong = basic("ops:nope");
    assert_eq!(
        http(
            "GET",
            &format!("{}/", dash.base),
            &[("Authorization", &wrong)],
            ""
        )
        .0,
        401
    );
    let (code, page) = http("GET", &format!("{}/", dash.base), &ok, "");
    assert_eq!(code, 200, "{page}");
    assert!(
        !page.contains("Sup3r-s3cret"),
        "the Redis password is shown"
    );
    assert!(page.contains("read-only"), "{page}");
    // Read-only: the dead letters are shown (escaped), with no form; a POST is refused.
    let dead = format!("{}/dead?list={KEY}%3Adead", dash.base);
    let (code, page) = http("GET", &dead, &ok, "");
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("&lt;b&gt;x&lt;/b&gt;") && !page.contains("<b>x</b>"),
        "{page}"
    );
    assert!(!page.contains("<form"), "{page}");
    let post = format!("{}/dead", dash.base);
    let (code, _) = http(
        "POST",
        &post,
        &ok,
        &format!("list={KEY}%3Adead&delete=all&csrf=x"),
    );
    assert_eq!(code, 403);
    assert_eq!(redis_llen(&url, &format!("{KEY}:dead")), 1);
    // Another Host (DNS rebinding) and a key it did not find: refused.
    let rebound = [("Authorization", auth.as_str()), ("Host", "evil.example")];
    assert_eq!(http("GET", &format!("{}/", dash.base), &rebound, "").0, 403);
    let other = format!("{}/dead?list=some-other-key", dash.base);
    assert_eq!(http("GET", &other, &ok, "").0, 404);
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("Sup3r-s3cret"), "{log}");
    assert!(
        log.contains("HTTP Basic authentication as ops required, read-only"),
        "{log}"
    );
}

fn redis_llen(url: &str, key: &str) -> u64 {
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("LLEN").arg(key).query(&mut c).unwrap()
}

#[test]
fn a_form_without_its_token_changes_nothing() {
    let redis = Redis::start();
    redis.lpush(
        &format!("{KEY}:dead"),
        &[r#"{"reason":"r","consumer":"c","at":"t","item":"{}"}"#],
    );
    let dash = Dashboard::start(&redis.url(), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let post = format!("{}/dead", dash.base);
    let form = format!("list={KEY}%3Adead&delete=all");
    assert_eq!(http("POST", &post, &[], &form).0, 403);
    assert_eq!(
        http("POST", &post, &[], &format!("{form}&csrf=0123")).0,
        403
    );
    let (_, token) = dead_page(&dash);
    let evil = [("Origin", "http://evil.example")];
    assert_eq!(
        http("POST", &post, &evil, &format!("{form}&csrf={token}")).0,
        403
    );
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 1);
    let (code, _) = http("POST", &post, &[], &format!("{form}&csrf={token}"));
    assert_eq!(code, 303);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 0);
    drop(dash);
}

/// Calls of every command Redis has run, from INFO commandstats.
fn calls(redis: &Redis) -> u64 {
    let info: String = redis.cmd(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| l.split("calls=").nth(1))
        .filter_map(|v| v.split(',').next()?.parse::<u64>().ok())
        .sum()
}

fn cpu(redis: &Redis) -> f64 {
    let info: String = redis.cmd(&["INFO", "cpu"]);
    info.lines()
        .filter(|l| l.starts_with("used_cpu_user:") || l.starts_with("used_cpu_sys:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<f64>().ok())
        .sum()
}

#[test]
fn an_open_dashboard_costs_redis_a_bounded_load_however_many_pages_are_open() {
    let redis = Redis::start();
    // 1,000,000 items, 100 reliable workers each holding a batch of 10.
    redis.cmd::<redis::Value>(&["EVAL", "for i = 1, 1000000, 5000 do local t = {} for j = i, i + 4999 do t[#t + 1] = j end redis.call('RPUSH', KEYS[1], unpack(t)) end", "1", KEY]);
    assert_eq!(redis.llen(KEY), 1_000_000);
    redis.cmd::<redis::Value>(&["EVAL", "for w = 1, 100 do local id = 'w:' .. w .. ':n' local b = KEYS[1] .. ':processing:' .. id .. ':0:1' redis.call('SADD', KEYS[1] .. ':consumers', id) redis.call('SET', KEYS[1] .. ':consumer:' .. id, '2026-12-05T00:00:00.000Z', 'EX', 600) redis.call('SADD', KEYS[1] .. ':batches:' .. id, b) for i = 1, 10 do redis.call('RPUSH', b, i) end end", "1", KEY]);
    let dash = Dashboard::start(&redis.url(), &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (calls0, cpu0) = (calls(&redis), cpu(&redis));
    let started = std::time::Instant::now();
    // Five viewers (a browser opens at most six connections to a host)
    // reloading every 50 ms for 5 s: 500 page loads.
    std::thread::scope(|s| {
        for _ in 0..5 {
            s.spawn(|| {
                for _ in 0..100 {
                    let (code, page) = http("GET", &format!("{}/", dash.base), &[], "");
                    assert_eq!(code, 200);
                    assert!(
                        page.contains("data-k=length>1000000<")
                            || page.contains("No qpipe queue found yet"),
                        "{page}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let (calls1, cpu1) = (calls(&redis), cpu(&redis));
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    let samples: u64 = log
        .lines()
        .find(|l| l.trim_start().starts_with("samples "))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("samples in the summary");
    // Per sample at most: 1 SCAN, 4 TYPE (the queue's keys are qpipe's
    // kinds), 3 for the queue (LLEN, LLEN, HMGET), 1 SMEMBERS, 2 per worker
    // (GET, SMEMBERS) and 2 LLEN per worker (its batch and the legacy
    // list): 409, whatever the pages did. Two INFO calls are the test's own.
    const PER_SAMPLE: u64 = 409;
    let made = calls1 - calls0 - 2;
    assert!(
        samples >= 4 && samples <= (secs as u64) + 2,
        "{samples} samples in {secs:.1} s"
    );
    assert!(
        made <= (samples + 1) * PER_SAMPLE,
        "{made} commands for {samples} samples"
    );
    assert!(
        made >= samples.saturating_sub(2) * PER_SAMPLE,
        "{made} commands for {samples} samples: a sample read less than it shows?"
    );
    eprintln!(
        "dashboard load: {made} commands in {secs:.1} s ({:.0}/s, {} per sample), Redis CPU {:.3} s ({:.2}% of one core), 500 page loads",
        made as f64 / secs,
        made / samples.max(1),
        cpu1 - cpu0,
        (cpu1 - cpu0) / secs * 100.0
    );
}

#[test]
fn look_alike_keys_binary_names_and_shards_never_blank_the_page() {
    let redis = Redis::start();
    let url = redis.url();
    // A sharded queue of 1,000 items, filled by a real push.
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), numbered(1000, 1).join("\n")).unwrap();
    Args::new("push")
        .redis(&url)
        .opt("--key", "books")
        .shards(4)
        .arg(input.path().display())
        .arg("-q")
        .run_expect(None, 0);
    // Keys that look like qpipe's and are not, and a name that is not text.
    redis.cmd::<String>(&["SET", "user:42:stats", "17"]);
    // A stray key shaped like a shard, of another type: only it is left out.
    redis.cmd::<String>(&["SET", "{books:5}", "x"]);
    redis.lpush("crawl:done", &["x"]);
    let mut con = redis.con();
    redis::cmd("SET")
        .arg(&b"\xff\xfe:dead"[..])
        .arg(1)
        .query::<()>(&mut con)
        .unwrap();
    let dash = Dashboard::start(&url, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let (code, page) = http("GET", &format!("{}/", dash.base), &[], "");
    assert_eq!(code, 200);
    assert!(page.contains("<tr data-queue=\"books\"><td>books <span class=muted>(4 shards)</span></td><td class=n data-k=length>1000<"), "{page}");
    assert!(
        page.contains(
            "Not shown: 2 names that look like qpipe's keys but hold other types (user:42, crawl)"
        ),
        "{page}"
    );
    assert!(!page.contains("id=error"), "{page}");
    drop(dash);
    // Named, with its shards.
    let dash = Dashboard::start(&url, &["--key", "books", "--shards", "4"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, page) = http("GET", &format!("{}/", dash.base), &[], "");
    assert!(page.contains("data-k=length>1000<"), "{page}");
}

#[test]
fn huge_dead_letters_cost_a_page_only_their_first_bytes() {
    let redis = Redis::start();
    let big = "x".repeat(2_000_000);
    let letters: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"reason":"too big {i}","consumer":"c","at":"2026-01-01T00:00:00.000Z","item":"{big}"}}"#))
        .collect();
    redis.lpush(&format!("{KEY}:dead"), &letters);
    redis.lpush(&format!("{KEY}:dead"), &["not a letter at all"]);
    let dash = Dashboard::start(&redis.url(), &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let list = format!("{}/dead?list={KEY}%3Adead", dash.base);
    let (code, page) = http("GET", &list, &[], "");
    assert_eq!(code, 200);
    assert!(page.len() < 200_000, "{} bytes", page.len());
    let newest = format!("({} bytes in all)", letters[19].len());
    assert!(
        page.contains("too big 19") && page.contains(&newest),
        "{}",
        &page[..2000]
    );
    let token = attribute(&page, "name=csrf value=\"");
    let digest = |n: usize| {
        page.split("data-digest=\"")
            .nth(n)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string()
    };
    let post = format!("{}/dead", dash.base);
    // The newest, not a letter: it cannot be re-queued, and says so.
    let form = format!(
        "list={KEY}%3Adead&page=0&csrf={token}&requeue={}",
        digest(1)
    );
    let (code, _) = http("POST", &post, &[], &form);
    assert_eq!(code, 303);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 21);
    // A 2 MB letter goes back whole.
    let form = format!(
        "list={KEY}%3Adead&page=0&csrf={token}&requeue={}",
        digest(2)
    );
    assert_eq!(http("POST", &post, &[], &form).0, 303);
    assert_eq!(redis.llen(&format!("{KEY}:dead")), 20);
    assert_eq!(redis.lrange(KEY), [big]);
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("re-queued 0 dead letters of DATA-PIPELINE-KEY:dead")
            && log.contains("1 unreadable"),
        "{log}"
    );
}

#[test]
fn one_client_holding_connections_cannot_lock_another_out() {
    use std::io::{Read, Write};
    let redis = Redis::start();
    let dash = Dashboard::start(&redis.url(), &[]);
    let addr: std::net::SocketAddr = dash.base.trim_start_matches("http://").parse().unwrap();
    // Twenty idle connections from 127.0.0.1, sending nothing.
    let idle: Vec<std::net::TcpStream> = (0..20)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Another address on loopback is still answered.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(
        &"127.0.0.2:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    sock.connect(&addr.into()).unwrap();
    let mut other: std::net::TcpStream = sock.into();
    other
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        other,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    )
    .unwrap();
    let mut reply = String::new();
    other.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    drop(idle);
}

#[test]
fn requeue_all_moves_each_letter_once_while_a_consumer_sets_them_aside_again() {
    let redis = Redis::start();
    let url = redis.url();
    // Five poison items, set aside by a real consume that keeps running.
    redis.lpush(KEY, &["{bad1", "{bad2", "{bad3", "{bad4", "{bad5"]);
    let out = tempfile::NamedTempFile::new().unwrap();
    let consumer = Args::consume(&url).out(out.path()).arg("-q").spawn(None);
    common::eventually("five dead letters", Duration::from_secs(10), || {
        redis.llen(&format!("{KEY}:dead")) == 5
    });
    let dash = Dashboard::start(&url, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, token) = dead_page(&dash);
    let form = format!("list={KEY}%3Adead&page=0&csrf={token}&requeue=all");
    let (code, _) = http("POST", &format!("{}/dead", dash.base), &[], &form);
    assert_eq!(code, 303);
    // Each went back once, and the consumer set each aside once more.
    common::eventually("five dead letters again", Duration::from_secs(10), || {
        redis.llen(&format!("{KEY}:dead")) == 5
    });
    // Stopped by SIGTERM, it adds its last counts before it exits.
    signal(&consumer, "-TERM");
    let _ = common::wait_bounded(consumer, Duration::from_secs(20));
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("re-queued 5 dead letters of DATA-PIPELINE-KEY:dead (all;"),
        "{log}"
    );
    let out_count: u64 = redis.cmd(&["HGET", &format!("{KEY}:stats"), "out"]);
    assert_eq!(out_count, 10, "each popped twice, no more");
}

#[test]
fn letters_alike_in_their_first_bytes_are_told_apart_by_where_they_are() {
    let redis = Redis::start();
    let head = "x".repeat(5000);
    let letter = |tail: &str| {
        format!(
            r#"{{"reason":"r","consumer":"c","at":"2026-01-01T00:00:00.000Z","item":"{head}{tail}"}}"#
        )
    };
    // Newest first: AAAA is row 1, BBBB row 2.
    redis.lpush(&format!("{KEY}:dead"), &[letter("BBBB"), letter("AAAA")]);
    let dash = Dashboard::start(&redis.url(), &["--key", KEY]);
    std::thread::sleep(Duration::from_millis(1500));
    let (page, token) = dead_page(&dash);
    let second = page
        .split("data-digest=\"")
        .nth(2)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(second.ends_with("@1"), "{second}");
    // A letter set aside after the page was drawn shifts both one older.
    redis.lpush(&format!("{KEY}:dead"), &[letter("NEW!")]);
    let form = format!(
        "list={KEY}%3Adead&page=0&len=2&csrf={token}&delete={}",
        second.replace('@', "%40")
    );
    assert_eq!(
        http("POST", &format!("{}/dead", dash.base), &[], &form).0,
        303
    );
    assert_eq!(
        redis.lrange(&format!("{KEY}:dead")),
        [letter("NEW!"), letter("AAAA")]
    );
}

#[test]
fn the_documented_read_only_acl_user_runs_the_dashboard() {
    let redis = Redis::start();
    let docs = include_str!("../docs/production.md");
    let monitor = docs
        .lines()
        .find(|l| l.starts_with("ACL SETUSER qpipe-monitor"))
        .expect("the monitor line")
        .replace(">PASSWORD", ">pw");
    let mut args: Vec<&str> = monitor.split_whitespace().collect();
    args.extend(["+pttl", "+eval_ro", "+lindex"]);
    redis.cmd::<String>(&args);
    redis.lpush(KEY, &["{\"a\":1}"]);
    redis.lpush(
        &format!("{KEY}:dead"),
        &[r#"{"reason":"r","consumer":"c","at":"t","item":"x"}"#],
    );
    redis.cmd::<i64>(&["HSET", "user:42:stats", "visits", "3"]);
    let url = format!(
        "unix://{}?user=qpipe-monitor&pass=pw",
        redis.socket().display()
    );
    let dash = Dashboard::start(&url, &["--read-only"]);
    std::thread::sleep(Duration::from_millis(1500));
    let (_, page) = http("GET", &format!("{}/", dash.base), &[], "");
    assert!(page.contains("data-k=length>1<"), "{page}");
    assert!(!page.contains("id=error"), "{page}");
    let (code, page) = http(
        "GET",
        &format!("{}/dead?list={KEY}%3Adead", dash.base),
        &[],
        "",
    );
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<pre>x</pre>"), "{page}");
    let (code, log) = dash.stop();
    assert_eq!(code, 0, "{log}");
    assert!(!log.contains("pass=pw"), "{log}");
}
