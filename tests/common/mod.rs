//! Test harness: real redis-server and real `qpipe demo-site` processes on
//! free loopback ports, killed on drop, and a bounded runner for the binary.
#![allow(dead_code)] // Each test file uses a different subset of these helpers.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The qpipe binary under test.
pub const QPIPE: &str = env!("CARGO_BIN_EXE_qpipe");

/// A port that was free a moment ago. Anything may bind it before the
/// caller does, so a server started on it must be retried on another port
/// when it fails to listen (`Redis::start_tcp_with`, security.rs's
/// `TlsRedis`). Used bare only for "nothing listens here" (errors.rs).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A private redis-server without persistence, killed on drop. It listens
/// on a unix socket in its own temp dir (no port to race for), unless
/// started with `start_tcp*`.
pub struct Redis {
    child: Child,
    /// The TCP port it listens on, or 0 for a unix socket only.
    pub port: u16,
    /// Its data directory (and socket).
    pub dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Redis {
    /// Starts redis-server on a unix socket and waits until it answers PING.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts redis-server on a unix socket with extra arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        let dir = tempfile::tempdir().expect("tempdir");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Redis::spawn(dir.path(), 0, &extra);
        let mut r = Redis {
            child,
            port: 0,
            dir,
            extra,
        };
        assert!(r.wait_ready(), "redis-server did not start");
        r
    }

    /// Starts redis-server on a free TCP port (for TLS, passwords in URLs
    /// and clusters), retrying if the port was taken meanwhile.
    pub fn start_tcp_with(extra: &[&str]) -> Redis {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            let child = Redis::spawn(dir.path(), port, &extra);
            let mut r = Redis {
                child,
                port,
                dir,
                extra,
            };
            if r.wait_ready() {
                return r;
            }
        }
        panic!("redis-server did not start");
    }

    fn spawn(dir: &Path, port: u16, extra: &[String]) -> Child {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--save", ""]);
        if port == 0 {
            cmd.arg("--unixsocket").arg(dir.join("redis.sock"));
        } else {
            // A fresh log: `wait_ready` looks in it for this start's line.
            let _ = std::fs::remove_file(dir.join("redis.log"));
            cmd.args(["--bind", "127.0.0.1", "--logfile"])
                .arg(dir.join("redis.log"));
        }
        cmd.args(["--appendonly", "no", "--dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not installed? run scripts/test.sh")
    }

    /// Starts the server again after `kill`, at the same address, with the
    /// same arguments and data directory (for tests with `--appendonly yes`).
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.dir.path().join("redis.sock"));
        self.child = Redis::spawn(self.dir.path(), self.port, &self.extra);
        assert!(self.wait_ready(), "redis-server did not restart");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // port taken in the meantime
            }
            if self.port != 0 {
                // On TCP a PING could reach whoever took the port; the
                // server's own log cannot.
                let log = std::fs::read_to_string(self.dir.path().join("redis.log"));
                if log.is_ok_and(|l| l.contains("Ready to accept connections")) {
                    return true;
                }
            } else if let Ok(mut c) = self.con_opt() {
                match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(_) => return true,
                    // Up, but started with --requirepass.
                    Err(e) if e.to_string().contains("NOAUTH") => return true,
                    Err(_) => {}
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn con_opt(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// `unix:///…/redis.sock`, or redis://127.0.0.1:PORT for TCP servers.
    pub fn url(&self) -> String {
        match self.port {
            0 => format!("unix://{}", self.socket().display()),
            p => format!("redis://127.0.0.1:{p}"),
        }
    }

    /// The unix socket path (servers started with `start`).
    pub fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Runs one command on a fresh connection, for test setup.
    pub fn cmd<T: redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.con())
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// A fresh connection for assertions.
    pub fn con(&self) -> redis::Connection {
        self.con_opt().expect("connect to test redis")
    }

    /// Every key left in Redis but the fleet's counts (`KEY:stats`), which
    /// qpipe keeps by design.
    pub fn keys_left(&self) -> Vec<String> {
        let mut k: Vec<String> = self.cmd(&["KEYS", "*"]);
        k.retain(|k| !k.ends_with(":stats"));
        k
    }

    /// Every element of list `key`.
    pub fn lrange(&self, key: &str) -> Vec<String> {
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut self.con())
            .expect("LRANGE")
    }

    /// LLEN key.
    pub fn llen(&self, key: &str) -> u64 {
        redis::cmd("LLEN")
            .arg(key)
            .query(&mut self.con())
            .expect("LLEN")
    }

    /// LPUSHes `items` onto `key` in chunks, so the first is popped first.
    pub fn lpush<T: redis::ToRedisArgs>(&self, key: &str, items: &[T]) {
        let mut con = self.con();
        for chunk in items.chunks(1000) {
            redis::cmd("LPUSH")
                .arg(key)
                .arg(chunk)
                .query::<()>(&mut con)
                .expect("LPUSH");
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, and what clients send waits in its socket buffers.
    pub fn pause(&self) {
        Redis::send(&self.child, "-STOP");
    }

    /// Lets a paused server run again (SIGCONT): it reads what waited.
    pub fn resume(&self) {
        Redis::send(&self.child, "-CONT");
    }

    fn send(child: &Child, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} redis-server failed");
    }

    /// Kills the server now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `qpipe demo-site`, killed on drop.
pub struct Site {
    child: Child,
    /// Base URL, e.g. http://127.0.0.1:PORT/
    pub url: String,
}

impl Site {
    /// Starts the demo site with `pages` pages on a free port.
    pub fn start(pages: u64) -> Site {
        Site::start_with(&["--pages", &pages.to_string()])
    }

    /// Starts the demo site on a free port with these extra arguments.
    pub fn start_with(extra: &[&str]) -> Site {
        let mut child = Command::new(QPIPE)
            .args(["demo-site", "--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo-site");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read url");
        assert!(
            line.starts_with("http://127.0.0.1:"),
            "demo-site printed {line:?}"
        );
        Site {
            child,
            url: line.trim().to_string(),
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one qpipe run.
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// What was run, for failure messages.
    pub cmd: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "command: {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

/// Starts qpipe in the background (REDIS_URL cleared, stderr captured).
pub fn spawn(args: &[&str], dir: Option<&Path>) -> Child {
    let mut cmd = Command::new(QPIPE);
    cmd.args(args).env_remove("REDIS_URL").stdin(Stdio::null());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qpipe")
}

/// Runs qpipe with `args` (cwd `dir` if given), killing it after 60 s.
pub fn qpipe(args: &[&str], dir: Option<&Path>) -> Run {
    qpipe_env(args, dir, &[])
}

/// Like `qpipe`, with extra environment variables (REDIS_URL is always cleared first).
pub fn qpipe_env(args: &[&str], dir: Option<&Path>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(QPIPE);
    cmd.args(args).env_remove("REDIS_URL").stdin(Stdio::null());
    cmd.envs(env.iter().copied());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qpipe");
    let out = wait_bounded(child, Duration::from_secs(60));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmd: format!("qpipe {}", args.join(" ")),
    }
}

/// Waits for `child` at most `limit`, then kills it and fails the test.
pub fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || read_all(stdout.as_mut()));
    let err_t = std::thread::spawn(move || read_all(stderr.as_mut()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("qpipe did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

fn read_all<R: Read>(r: Option<&mut R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.read_to_end(&mut buf);
    }
    buf
}

/// Parses a `--stats-json` file's last line.
pub fn stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("stats file");
    let last = text.lines().last().expect("a stats line");
    serde_json::from_str(last).expect("stats JSON")
}

/// Reads a JSON Lines file into values.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("jsonl file")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// The HTML of the demo site's list page `/page/p/`.
pub fn list_page(agent: &ureq::Agent, site: &Site, p: u64) -> String {
    agent
        .get(&format!("{}page/{p}/", site.url))
        .call()
        .expect("GET page")
        .body_mut()
        .read_to_string()
        .expect("body")
}

/// The quotes on `/page/1/` .. `/page/pages/`, read straight from the HTML
/// with plain string search: an oracle independent of qpipe's spider.
pub fn site_quotes(site: &Site, pages: u64) -> Vec<String> {
    let agent = ureq::Agent::new_with_defaults();
    let mut quotes = Vec::new();
    for p in 1..=pages {
        let body = list_page(&agent, site, p);
        for chunk in body
            .split("<span class=\"text\" itemprop=\"text\">")
            .skip(1)
        {
            let raw = chunk.split("</span>").next().expect("closing span");
            quotes.push(
                raw.replace("&quot;", "\"")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&"),
            );
        }
    }
    quotes
}
pub mod args;
pub mod browser;
pub mod clickhouse;
pub mod cluster;
pub mod collector;
pub mod fixture;
pub mod jobs;
pub mod postgres;
pub mod proxy;
pub mod scrape;
pub mod sentinel;
pub mod web;

pub use args::Args;

/// Polls `f` every 10 ms until it holds, failing the test after `limit`.
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` every 10 ms until it holds or `limit` has passed; says which.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until LLEN `key` is at least `n`, failing the test after `limit`.
pub fn wait_for_llen(redis: &Redis, key: &str, n: u64, limit: Duration) {
    eventually(&format!("LLEN {key} >= {n}"), limit, || {
        redis.llen(key) >= n
    });
}

/// Waits until the file at `path` has at least `n` lines, failing the test
/// after `limit`.
pub fn wait_for_lines(path: &Path, n: usize, limit: Duration) {
    eventually(&format!("{} lines in {}", n, path.display()), limit, || {
        lines(path).len() >= n
    });
}

/// Waits for a spawned qpipe (at most 60 s) and asserts its exit code,
/// failing with its stderr otherwise; returns the stderr.
pub fn finish_expect(child: Child, code: i32) -> String {
    let (got, stderr) = finish(child);
    assert_eq!(got, code, "{stderr}");
    stderr
}

/// A spec that takes each `div.quote`'s `span.text` as `quote` and follows
/// every link.
pub const FOLLOW_ALL_SPEC: &str =
    r#"{"item":"div.quote","fields":{"quote":"span.text"},"follow":["a"]}"#;

/// Writes `text` to `dir/name`; returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// The items in every spill file (`qpipe-unsent-*`) under `dir`.
pub fn spilled(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("qpipe-unsent-"))
        .flat_map(|e| lines(&e.path()))
        .collect()
}

/// Every file under `dir`, in its subdirectories too.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        match e.path().is_dir() {
            true => out.extend(walk(&e.path())),
            false => out.push(e.path()),
        }
    }
    out
}

/// The lines of a file (none if it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// `n` distinct JSON items, `{"n":i,"pad":"…"}` with `pad` bytes of padding.
pub fn numbered(n: usize, pad: usize) -> Vec<String> {
    let pad = "x".repeat(pad);
    (0..n)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{pad}\"}}"))
        .collect()
}

/// Sends `sig` (e.g. "-TERM") to a child with kill(1).
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits for a spawned qpipe (at most 60 s) and returns its exit code and stderr.
pub fn finish(child: Child) -> (i32, String) {
    let out = wait_bounded(child, Duration::from_secs(60));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that `got` holds every one of `want` (duplicates allowed) and
/// nothing else; returns how many lines were duplicates.
pub fn assert_all_delivered(got: &[String], want: &[String], context: &str) -> usize {
    use std::collections::HashSet;
    let got_set: HashSet<&String> = got.iter().collect();
    let want_set: HashSet<&String> = want.iter().collect();
    let missing = want_set.difference(&got_set).count();
    let extra = got_set.difference(&want_set).count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "{missing} items lost, {extra} unexpected: {context}"
    );
    got.len() - got_set.len()
}

/// Starts qpipe with `args` in a shell whose file-size limit is `kib` KiB:
/// writes past it fail with EFBIG, as on a full disk (SIGXFSZ is ignored so
/// the write error reaches qpipe).
pub fn spawn_with_disk_of(kib: u32, args: &str) -> Child {
    let script = format!("trap '' XFSZ; ulimit -f {kib}; exec {QPIPE} {args}");
    Command::new("bash")
        .args(["-c", &script])
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash")
}
