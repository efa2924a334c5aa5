//! Watching a running qpipe from outside: its stderr as it comes, plain
//! HTTP/1.1 requests over loopback, and Prometheus text parsed by the
//! reference parser (Python's prometheus_client), not by our own code.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child's stderr, collected by a thread while the child runs.
pub struct Tail {
    text: Arc<Mutex<String>>,
}

impl Tail {
    /// Takes `child`'s stderr (so `finish` will not see it: use `text`).
    pub fn stderr(child: &mut Child) -> Tail {
        let text = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().expect("stderr piped");
        let sink = Arc::clone(&text);
        // Ends at EOF, when the child exits.
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut t = sink.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        Tail { text }
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) for a line containing `needle`; returns it.
    pub fn line_with(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.text().lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {limit:?}; stderr so far:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `--metrics` address the run logged (`127.0.0.1:PORT`).
    pub fn metrics_addr(&self) -> String {
        let line = self.line_with("metrics at http://", Duration::from_secs(20));
        let rest = line.split("metrics at http://").nth(1).expect("address");
        rest.split('/').next().expect("host:port").to_string()
    }
}

/// `GET path` on a fresh connection; returns the status and the body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    conn.read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    (status, body.to_string())
}

/// One scrape as the reference parser read it.
#[derive(Debug)]
pub struct Scrape {
    /// Metric family name (without `_total`) -> type.
    pub types: HashMap<String, String>,
    /// `name` or `name{k="v"}` -> value.
    pub samples: HashMap<String, f64>,
    /// The text as served.
    pub text: String,
}

impl Scrape {
    /// The value of a sample that must be there.
    pub fn value(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in:\n{}", self.text))
    }
}

const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {"types": {}, "samples": {}}
for f in text_string_to_metric_families(sys.stdin.read()):
    out["types"][f.name] = f.type
    for s in f.samples:
        labels = ",".join('%s="%s"' % kv for kv in sorted(s.labels.items()))
        out["samples"][s.name + ("{%s}" % labels if labels else "")] = s.value
print(json.dumps(out))
"#;

/// Scrapes `/metrics` and parses it with prometheus_client.
pub fn scrape(addr: &str) -> Scrape {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200, "GET /metrics: {text}");
    let mut py = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/test.sh installs prometheus_client)");
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client rejected the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("parser JSON");
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
        .collect();
    let samples = v["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, n)| (k.clone(), n.as_f64().unwrap()))
        .collect();
    Scrape {
        types,
        samples,
        text,
    }
}
