//! A small hand-written HTTP/1.1 server for fixture and hostile sites. Each
//! response closes its connection, so no keep-alive handling is needed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server does for one request.
pub enum Answer {
    /// Status, extra headers, body.
    Full(u16, Vec<(&'static str, String)>, Vec<u8>),
    /// Headers with this Content-Length, then zeros until the client hangs up.
    Endless(u64),
    /// A 200 with Content-Length 100 whose body comes one byte per second.
    Trickle,
}

/// A 200 text/html answer.
pub fn html(body: &str) -> Answer {
    Answer::Full(
        200,
        vec![("Content-Type", "text/html; charset=utf-8".into())],
        body.as_bytes().to_vec(),
    )
}

/// A redirect to `location`.
pub fn redirect(location: &str) -> Answer {
    Answer::Full(302, vec![("Location", location.to_string())], Vec::new())
}

type Router = dyn Fn(&str, u32) -> Answer + Send + Sync;

/// A running fixture server; stops on drop.
pub struct Fixture {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The port.
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Requests per path.
    pub hits: Arc<Mutex<HashMap<String, u32>>>,
}

impl Fixture {
    /// Serves `route(path, nth_hit_of_this_path)` on a free loopback port.
    pub fn start(route: impl Fn(&str, u32) -> Answer + Send + Sync + 'static) -> Fixture {
        Fixture::start_on("127.0.0.1", route)
    }

    /// Like `start`, on a free port of the loopback address `ip`.
    pub fn start_on(
        ip: &str,
        route: impl Fn(&str, u32) -> Answer + Send + Sync + 'static,
    ) -> Fixture {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let route: Arc<Router> = Arc::new(route);
        let (s, h) = (Arc::clone(&stop), Arc::clone(&hits));
        std::thread::spawn(move || {
            // Bounded by the stop flag, set on drop.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (route, h, s) = (Arc::clone(&route), Arc::clone(&h), Arc::clone(&s));
                        std::thread::spawn(move || serve(conn, &*route, &h, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Fixture {
            base: format!("http://{ip}:{port}"),
            port,
            stop,
            hits,
        }
    }

    /// How often `path` was requested.
    pub fn hits(&self, path: &str) -> u32 {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    mut conn: TcpStream,
    route: &Router,
    hits: &Mutex<HashMap<String, u32>>,
    stop: &AtomicBool,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    // Skip the headers (bounded by the read timeout).
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    let nth = {
        let mut map = hits.lock().unwrap();
        let n = map.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    match route(&path, nth) {
        Answer::Full(code, headers, body) => {
            let mut head = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
        Answer::Endless(len) => {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(head.as_bytes());
            let zeros = vec![b' '; 64 * 1024];
            let mut sent = 0;
            while sent < len && !stop.load(Ordering::Relaxed) {
                if conn.write_all(&zeros).is_err() {
                    break;
                }
                sent += zeros.len() as u64;
            }
        }
        Answer::Trickle => {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\nConnection: close\r\n\r\n");
            for _ in 0..100 {
                if stop.load(Ordering::Relaxed) || conn.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
