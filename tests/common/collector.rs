//! An HTTP endpoint for `consume --post` tests: it records every request
//! (headers, and the body, gunzipped if sent gzipped) and answers the n-th
//! request as a script says: a status, a slow answer, or a dropped
//! connection. One request per connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// This status, with these extra headers and body.
    Status(u16, Vec<(&'static str, String)>, String),
    /// Wait this long, then 200.
    Slow(Duration),
    /// Read the request, then close without answering.
    Drop,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped when it came with Content-Encoding: gzip.
    pub body: String,
    /// The raw body's length.
    pub raw_len: usize,
}

impl Request {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Script = dyn Fn(usize) -> Reply + Send + Sync;

/// A running endpoint; stops on drop.
pub struct Collector {
    /// `http://127.0.0.1:PORT/ingest`
    pub url: String,
    /// Every request, in arrival order.
    pub requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Collector {
    /// Answers request n (0-based) with `script(n)`.
    pub fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let (s, r) = (Arc::clone(&stop), Arc::clone(&requests));
        std::thread::spawn(move || {
            // Bounded by the stop flag, set on drop.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (script, r) = (Arc::clone(&script), Arc::clone(&r));
                        std::thread::spawn(move || serve(conn, &*script, &r));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Collector {
            url: format!("http://127.0.0.1:{port}/ingest"),
            requests,
            stop,
        }
    }

    /// The requests so far.
    pub fn got(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, script: &Script, requests: &Mutex<Vec<Request>>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut raw = vec![0u8; len];
    if reader.read_exact(&mut raw).is_err() {
        return;
    }
    let gz = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v == "gzip");
    let body = match gz {
        true => {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .expect("a gzip body");
            s
        }
        false => String::from_utf8_lossy(&raw).into_owned(),
    };
    let n = {
        let mut r = requests.lock().unwrap();
        r.push(Request {
            headers,
            body,
            raw_len: len,
        });
        r.len() - 1
    };
    let (status, extra, text) = match script(n) {
        Reply::Drop => return,
        Reply::Slow(d) => {
            std::thread::sleep(d);
            (200, Vec::new(), String::new())
        }
        Reply::Status(s, h, b) => (s, h, b),
    };
    let mut out = conn;
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(text.as_bytes());
}
