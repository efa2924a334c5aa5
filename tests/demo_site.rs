//! `qpipe demo-site` under load: idle keep-alive sockets give their slot
//! back within seconds, and a request body never becomes the next request.

mod common;

use common::QPIPE;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A demo site with `--max-connections max`, killed on drop.
struct Demo {
    child: Child,
    addr: String,
}

impl Demo {
    fn start(max: usize) -> Demo {
        let mut child = Command::new(QPIPE)
            .args(["demo-site", "--addr", "127.0.0.1:0", "--pages", "3"])
            .args(["--max-connections", &max.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn demo-site");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("the base URL");
        let addr = line
            .trim()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        Demo { child, addr }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads one response (head and Content-Length body); `None` if the server
/// closed the connection first.
fn response(conn: &mut TcpStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).expect("ASCII head");
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn connect(addr: &str) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// GET / on a new connection; `None` if it was closed unanswered.
fn fresh_get(addr: &str) -> Option<u16> {
    let mut c = connect(addr);
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
    response(&mut c).map(|(status, _)| status)
}

#[test]
fn idle_connections_give_their_slots_back_within_seconds() {
    let demo = Demo::start(50);
    let opened = Instant::now();
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(&demo.addr)).collect();
    // Every slot is taken: a new client is turned away for now.
    assert_eq!(fresh_get(&demo.addr), None);
    let mut served_after = None;
    while opened.elapsed() < Duration::from_secs(15) {
        if fresh_get(&demo.addr) == Some(200) {
            served_after = Some(opened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = served_after.expect("no client served within 15 s of 50 idle sockets");
    assert!(
        after >= Duration::from_secs(4) && after < Duration::from_secs(9),
        "served after {after:?}; the idle timeout is 5 s"
    );
    // The server closed the idle sockets itself (EOF, no response).
    for c in &mut idle {
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).expect("EOF, not a timeout"), 0);
    }
}

#[test]
fn a_keep_alive_post_body_is_not_read_as_the_next_request() {
    let demo = Demo::start(8);
    let mut c = connect(&demo.addr);
    // The body arrives after a pause, in its own packet.
    c.write_all(b"POST /page/1/ HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    c.write_all(b"hello world").unwrap();
    let (status, _) = response(&mut c).expect("an answer to the POST");
    assert_eq!(status, 405);
    c.write_all(b"GET /page/2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (status, body) = response(&mut c).expect("an answer to the GET");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.matches("<div class=\"quote\"").count(), 10, "{body}");
    // A pipelined POST with its body, then a GET, in one write.
    c.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    assert_eq!(response(&mut c).map(|r| r.0), Some(405));
    assert_eq!(response(&mut c).map(|r| r.0), Some(200));
}
