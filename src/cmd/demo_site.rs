//! `qpipe demo-site`: serve a built-in demo site (quotes or books) over
//! HTTP/1.1 with keep-alive, or export it as static files.
//!
//! One thread per connection (httparse parses requests). tiny_http was tried
//! first, but its task pool starves new keep-alive connections when more
//! arrive at once than it has idle threads: with 8 crawler threads, 4 of the
//! first requests hung until the client's read timeout.
//!
//! Prints its base URL on stdout once listening (port 0 picks a free port), so
//! scripts and tests can start it and read where it is.

use crate::config::{DemoConfig, DemoKind};
use crate::demo::{self, Books, Quotes, Site};
use crate::error::{Error, Exit};
use crate::run::http::{self, Parsed};
use crate::run::signal::Signals;
use crate::run::summary::Summary;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Idle keep-alive connections are closed after this long, so idle sockets
/// free their slot (of --max-connections) for new clients within seconds.
const IDLE: Duration = Duration::from_secs(5);
/// Granularity at which idle connections notice a stop.
const TICK: Duration = Duration::from_millis(250);
/// Largest request body taken (the login form is tiny); a larger one gets 413.
const MAX_BODY: usize = 64 * 1024;

/// Counters shared by connection threads.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    not_found: AtomicU64,
    open: AtomicUsize,
}

/// The site `cfg` asks for; `host` names it in absolute URLs when a request has no `Host`.
fn site(cfg: &DemoConfig, host: &str) -> Box<dyn Site> {
    match cfg.site {
        DemoKind::Quotes => {
            Box::new(Quotes::new(cfg.pages, host).shaped(cfg.page_kb, !cfg.default_only))
        }
        DemoKind::Books => Box::new(Books),
    }
}

/// Serves until SIGINT/SIGTERM, or with `--export` writes the site to disk.
pub fn run(cfg: &DemoConfig, signals: &Signals) -> Result<Summary, Error> {
    if let Some(dir) = &cfg.export {
        return export(cfg, dir);
    }
    let started = Instant::now();
    let cannot = |e: std::io::Error| {
        Error::Http(format!(
            "cannot listen on {}: {e} (pick another --addr, e.g. 127.0.0.1:0 for any free port)",
            cfg.addr
        ))
    };
    let addr: SocketAddr = cfg.addr.parse().map_err(|e| {
        cannot(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{e}"),
        ))
    })?;
    let listener = http::listen(addr).map_err(cannot)?;
    let addr = listener.local_addr().map_err(cannot)?;
    let site = site(cfg, &addr.to_string());
    let site: &dyn Site = site.as_ref();
    let counters = Counters::default();
    crate::run::log::info(&format!("{} at http://{addr}/", site.describe()));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{addr}/");
        let _ = out.flush();
    }
    let stop: &AtomicBool = &signals.stop;
    std::thread::scope(|s| {
        // accept() restarts after signals, so poke it awake once stop is raised.
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
            }
            let _ = TcpStream::connect(addr);
        });
        for conn in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(conn) = conn else { continue };
            if counters.open.load(Ordering::Relaxed) >= cfg.max_connections {
                continue; // dropping closes it: the client retries or fails fast
            }
            counters.open.fetch_add(1, Ordering::Relaxed);
            let counters = &counters;
            s.spawn(move || {
                serve(conn, site, counters, stop);
                counters.open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    });
    let mut sum = Summary::new("demo-site", Exit::Ok);
    sum.set("address", addr.to_string())
        .set("pages", cfg.pages)
        .set("requests", counters.requests.load(Ordering::Relaxed))
        .set("not_found", counters.not_found.load(Ordering::Relaxed));
    sum.rates(started.elapsed(), &[]);
    Ok(sum)
}

/// Writes every page as a static file (`/page/2/` -> `page/2/index.html`), so
/// nginx or any static server serves the same site at the same paths. The
/// API's pages keep their query in the file name (`api/quotes?page=2`): a
/// server maps them with e.g. nginx's `try_files $uri$is_args$args`.
fn export(cfg: &DemoConfig, dir: &std::path::Path) -> Result<Summary, Error> {
    let site = site(cfg, &cfg.addr);
    let (mut files, mut bytes) = (0u64, 0u64);
    for path in site.paths() {
        let rel = path.trim_start_matches('/');
        let file = if rel.is_empty() || rel.ends_with('/') {
            dir.join(rel).join("index.html")
        } else {
            dir.join(rel)
        };
        let body = site.answer(&demo::Request::get(&path)).body;
        let write = |f: &std::path::Path| {
            if let Some(parent) = f.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(f, &body)
        };
        write(&file).map_err(|e| {
            Error::io(
                format!("cannot write {} (check --export)", file.display()),
                e,
            )
        })?;
        files += 1;
        bytes += body.len() as u64;
    }
    let mut sum = Summary::new("demo-site", Exit::Ok);
    sum.set("exported_to", dir.display().to_string())
        .set("pages", cfg.pages)
        .set("files", files)
        .set("bytes", bytes);
    Ok(sum)
}

/// Serves one connection until the client closes, goes idle, or sends garbage.
/// A request (head and body) must arrive within `IDLE` of the previous
/// answer, so idle or trickling sockets cannot hold every slot for long.
fn serve(mut conn: TcpStream, site: &dyn Site, counters: &Counters, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(TICK));
    let _ = conn.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let mut idle_since = Instant::now();
    loop {
        // Answer every complete request already buffered (pipelining).
        loop {
            let req = match http::parse_limited(&buf, MAX_BODY) {
                Parsed::Complete(req) => req,
                Parsed::Partial => break,
                Parsed::Bad(status) => {
                    let body = format!("bad request ({status})\n");
                    let _ = conn.write_all(&http::response(
                        status,
                        "text/plain",
                        body.as_bytes(),
                        false,
                        true,
                    ));
                    return;
                }
            };
            let reply = site.answer(&demo::Request {
                method: &req.method,
                path: &req.path,
                host: req.host.as_deref(),
                cookie: req.cookie.as_deref(),
                body: &buf[req.body.clone()],
            });
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if reply.status == 404 {
                counters.not_found.fetch_add(1, Ordering::Relaxed);
            }
            let headers: Vec<(&str, &str)> = reply
                .headers
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            let bytes = http::response_with(
                reply.status,
                reply.content_type,
                &headers,
                &reply.body,
                req.method == "HEAD",
                req.close,
            );
            if conn.write_all(&bytes).is_err() || req.close {
                return;
            }
            buf.drain(..req.used);
            idle_since = Instant::now();
        }
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) || idle_since.elapsed() > IDLE {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}
