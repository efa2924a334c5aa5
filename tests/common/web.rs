//! A recording HTTP/1.1 server that sees methods, headers and bodies (for
//! logins, cookies and headers), and a CONNECT forward proxy that counts what
//! passes through it. Each response closes its connection; every read has a
//! timeout and every accept loop ends on the stop flag set on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, e.g. `/login?x=1`.
    pub path: String,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: String,
    /// When its head was read.
    pub at: std::time::Instant,
}

impl Req {
    /// The first header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The host, without the port.
    pub fn host(&self) -> &str {
        let h = self.header("host").unwrap_or("");
        h.split(':').next().unwrap_or(h)
    }

    /// The cookies sent, as `name=value` strings in order (all Cookie headers).
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';').map(|c| c.trim().to_string()))
            .filter(|c| !c.is_empty())
            .collect()
    }

    /// The value of cookie `name`, if sent.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    /// A form-urlencoded body field.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What the server answers.
pub struct Resp {
    /// Status code.
    pub code: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: String,
}

impl Resp {
    /// A 200 HTML page.
    pub fn html(body: &str) -> Resp {
        Resp {
            code: 200,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into(),
        }
    }

    /// A redirect to `location` with status `code`.
    pub fn redirect(code: u16, location: &str) -> Resp {
        Resp {
            code,
            headers: vec![("Location".into(), location.into())],
            body: String::new(),
        }
    }

    /// A 404.
    pub fn not_found() -> Resp {
        Resp {
            code: 404,
            headers: Vec::new(),
            body: "not found".into(),
        }
    }

    /// Adds a Set-Cookie header.
    pub fn cookie(mut self, set_cookie: &str) -> Resp {
        self.headers.push(("Set-Cookie".into(), set_cookie.into()));
        self
    }
}

type Route = dyn Fn(&Req) -> Resp + Send + Sync;

/// A running server; stops accepting on drop.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The port.
    pub port: u16,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    /// Serves `route` on a free loopback port, recording every request.
    pub fn start(route: impl Fn(&Req) -> Resp + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Vec<Req>>> = Arc::default();
        let route: Arc<Route> = Arc::new(route);
        let stop = accept_loop(listener, {
            let log = Arc::clone(&log);
            move |conn| {
                let (route, log) = (Arc::clone(&route), Arc::clone(&log));
                std::thread::spawn(move || serve(conn, &*route, &log));
            }
        });
        Server {
            base: format!("http://127.0.0.1:{port}"),
            port,
            log,
            stop,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Accepts on `listener` until the returned flag is set.
fn accept_loop(
    listener: TcpListener,
    mut on_conn: impl FnMut(TcpStream) + Send + 'static,
) -> Arc<AtomicBool> {
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s = Arc::clone(&stop);
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                    on_conn(conn);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    stop
}

/// Reads a request line and headers (at most 100 lines).
fn read_head(reader: &mut impl BufRead) -> Option<(String, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h.trim().is_empty() => break,
            Ok(_) => {
                if let Some((n, v)) = h.split_once(':') {
                    headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
        }
    }
    Some((line.trim_end().to_string(), headers))
}

fn serve(mut conn: TcpStream, route: &Route, log: &Mutex<Vec<Req>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let Some((line, headers)) = read_head(&mut reader) else {
        return;
    };
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let req = Req {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: std::time::Instant::now(),
    };
    let resp = route(&req);
    log.lock().unwrap().push(req);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.code,
        resp.body.len()
    );
    for (k, v) in resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(resp.body.as_bytes());
}

/// A CONNECT proxy on 127.0.0.1 that sends every tunnel to `target` (so any
/// host name works, even one that does not resolve) and counts what it saw.
pub struct ForwardProxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// CONNECT requests, as `host:port`.
    pub connects: Arc<Mutex<Vec<String>>>,
    /// Proxy-Authorization headers of the CONNECTs.
    pub auth: Arc<Mutex<Vec<String>>>,
    /// HTTP requests seen inside the tunnels (request lines).
    pub requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl ForwardProxy {
    /// Starts the proxy, tunnelling every CONNECT to 127.0.0.1:`target`.
    pub fn start(target: u16) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let connects: Arc<Mutex<Vec<String>>> = Arc::default();
        let auth: Arc<Mutex<Vec<String>>> = Arc::default();
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, a, r) = (
            Arc::clone(&connects),
            Arc::clone(&auth),
            Arc::clone(&requests),
        );
        let stop = accept_loop(listener, move |conn| {
            let (c, a, r) = (Arc::clone(&c), Arc::clone(&a), Arc::clone(&r));
            std::thread::spawn(move || tunnel(conn, target, &c, &a, &r));
        });
        ForwardProxy {
            url: format!("http://127.0.0.1:{port}"),
            connects,
            auth,
            requests,
            stop,
        }
    }

    /// How many requests went through.
    pub fn seen(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn tunnel(
    mut client: TcpStream,
    target: u16,
    connects: &Mutex<Vec<String>>,
    auth: &Mutex<Vec<String>>,
    requests: &AtomicUsize,
) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let Some((line, headers)) = read_head(&mut reader) else {
        return;
    };
    let mut parts = line.split_whitespace();
    if parts.next() != Some("CONNECT") {
        let _ = client.write_all(b"HTTP/1.1 405 X\r\nContent-Length: 0\r\n\r\n");
        return;
    }
    connects
        .lock()
        .unwrap()
        .push(parts.next().unwrap_or("").to_string());
    if let Some((_, v)) = headers.iter().find(|(n, _)| n == "proxy-authorization") {
        auth.lock().unwrap().push(v.clone());
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        let _ = client.write_all(b"HTTP/1.1 502 X\r\nContent-Length: 0\r\n\r\n");
        return;
    };
    let _ = server.set_read_timeout(Some(Duration::from_secs(10)));
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let (mut s_read, mut c_write) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Write);
    });
    // Client to server, counting request lines (` HTTP/1.1\r\n`) on the way.
    let mut server = server;
    let needle = b" HTTP/1.1\r\n";
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    // Whatever the BufReader already holds comes first.
    let pending = reader.buffer().to_vec();
    let mut chunk = pending;
    loop {
        if !chunk.is_empty() {
            carry.extend_from_slice(&chunk);
            let n = carry.windows(needle.len()).filter(|w| w == needle).count();
            requests.fetch_add(n, Ordering::Relaxed);
            let keep = carry.len().saturating_sub(needle.len() - 1);
            carry.drain(..keep);
            if server.write_all(&chunk).is_err() {
                break;
            }
        }
        match reader.get_mut().read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => chunk = buf[..n].to_vec(),
        }
    }
    let _ = server.shutdown(Shutdown::Write);
    let _ = back.join();
}
