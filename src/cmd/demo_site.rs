//! `qpipe demo-site`: serve the built-in quotes site over HTTP (tiny_http, keep-alive).
//!
//! Prints its base URL on stdout once listening (port 0 picks a free port), so
//! scripts and tests can start it and read where it is.

use crate::config::DemoConfig;
use crate::demo::Site;
use crate::error::{Error, Exit};
use crate::signal::Signals;
use crate::summary::Summary;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tiny_http::{Header, Response, Server};

/// Serves until SIGINT/SIGTERM.
pub fn run(cfg: &DemoConfig, signals: &Signals) -> Result<Summary, Error> {
    let started = Instant::now();
    let server = listen(&cfg.addr)
        .and_then(|l| Server::from_listener(l, None).map_err(std::io::Error::other))
        .map_err(|e| {
            Error::Http(format!(
                "cannot listen on {}: {e} (pick another --addr, e.g. 127.0.0.1:0 for any free port)",
                cfg.addr
            ))
        })?;
    let addr = server
        .server_addr()
        .to_ip()
        .map_or_else(|| cfg.addr.clone(), |a| a.to_string());
    let site = Site { pages: cfg.pages };
    let served = AtomicU64::new(0);
    let not_found = AtomicU64::new(0);
    crate::log::info(&format!(
        "demo site with {} pages ({} quotes) at http://{addr}/",
        cfg.pages,
        cfg.pages * 10
    ));
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{addr}/");
        let _ = out.flush();
    }
    std::thread::scope(|s| {
        for _ in 0..cfg.threads {
            s.spawn(|| {
                while !signals.stop.load(Ordering::Relaxed) {
                    // Finite wait so the stop flag is re-checked.
                    let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(200)) else {
                        continue;
                    };
                    let reply = site.render(req.url());
                    served.fetch_add(1, Ordering::Relaxed);
                    if reply.status == 404 {
                        not_found.fetch_add(1, Ordering::Relaxed);
                    }
                    let ctype = Header::from_bytes("Content-Type", reply.content_type)
                        .unwrap_or_else(|()| unreachable!("static ASCII header"));
                    let resp = Response::from_string(reply.body)
                        .with_status_code(reply.status)
                        .with_header(ctype);
                    // A client that hung up is its own problem, not the server's.
                    let _ = req.respond(resp);
                }
            });
        }
    });
    let mut sum = Summary::new("demo-site", Exit::Ok);
    sum.set("address", addr)
        .set("pages", cfg.pages)
        .set("requests", served.load(Ordering::Relaxed))
        .set("not_found", not_found.load(Ordering::Relaxed));
    sum.rates(started.elapsed(), &[]);
    Ok(sum)
}

/// Binds with TCP_NODELAY, which accepted sockets inherit on Linux.
///
/// tiny_http writes the headers and the body in separate writes; with Nagle
/// on, every keep-alive response after the first waits for the client's
/// delayed ACK (40 ms), which caps a crawler at 25 pages/s per connection.
fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{e}")))?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}
