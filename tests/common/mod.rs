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

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A private redis-server without persistence, killed on drop.
pub struct Redis {
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// Its data directory.
    pub dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> Redis {
        Redis::start_with(&[])
    }

    /// Starts redis-server with extra arguments.
    pub fn start_with(extra: &[&str]) -> Redis {
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--appendonly", "no", "--dir"])
                .arg(dir.path())
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server not installed? run scripts/test.sh");
            let mut r = Redis { child, port, dir };
            if r.wait_ready() {
                return r;
            }
        }
        panic!("redis-server did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false; // port taken in the meantime
            }
            if let Ok(mut c) = self.con_opt() {
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

    /// redis://127.0.0.1:PORT
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A fresh connection for assertions.
    pub fn con(&self) -> redis::Connection {
        self.con_opt().expect("connect to test redis")
    }

    /// The whole list, head (newest) first.
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
        let mut child = Command::new(QPIPE)
            .args([
                "demo-site",
                "--addr",
                "127.0.0.1:0",
                "--pages",
                &pages.to_string(),
            ])
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

/// The quotes on `/page/1/` .. `/page/pages/`, read straight from the HTML
/// with plain string search: an oracle independent of qpipe's spider.
pub fn site_quotes(site: &Site, pages: u64) -> Vec<String> {
    let agent = ureq::Agent::new_with_defaults();
    let mut quotes = Vec::new();
    for p in 1..=pages {
        let body = agent
            .get(&format!("{}page/{p}/", site.url))
            .call()
            .expect("GET page")
            .body_mut()
            .read_to_string()
            .expect("body");
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
pub mod fixture;
