//! A fault-injecting TCP proxy in front of a real Redis.
//!
//! It parses the RESP traffic both ways, so it knows which reply answers
//! which command. `cut("BLMOVE", 3)` lets the third command containing
//! `BLMOVE` through to Redis, waits until Redis has answered it (so Redis has
//! run it), and then closes the client's connection instead of delivering
//! that reply. Replies to earlier commands are delivered normally.

use super::Redis;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An armed cut: the command text to match and how many matches to skip.
struct Plan {
    pattern: Vec<u8>,
    skip: usize,
    left: usize,
}

#[derive(Default)]
struct State {
    plans: Vec<Plan>,
    conns: Vec<Stream>,
    /// Every connection is held (a partition).
    hang_all: bool,
    /// Connections that carry one of these are held from then on.
    hang_patterns: Vec<Vec<u8>>,
    /// Connections held because of a pattern or `hang_open`, by id.
    hung: std::collections::HashSet<u64>,
    /// The id of every connection made so far.
    ids: Vec<u64>,
    next_id: u64,
}

/// Either end of a proxied connection.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> Stream {
        match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone().expect("clone")),
            Stream::Unix(s) => Stream::Unix(s.try_clone().expect("clone")),
        }
    }

    fn set_read_timeout(&self, d: Duration) {
        let _ = match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(d)),
            Stream::Unix(s) => s.set_read_timeout(Some(d)),
        };
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running proxy; stops (and closes every connection) on drop.
pub struct Proxy {
    /// The port qpipe should connect to.
    pub port: u16,
    state: Arc<Mutex<State>>,
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Forwards 127.0.0.1:<free port> to `redis` (its socket or port).
    pub fn start(redis: &Redis) -> Proxy {
        let (port, socket): (u16, PathBuf) = (redis.port, redis.socket());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let own = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, c, s) = (Arc::clone(&state), Arc::clone(&cuts), Arc::clone(&stop));
        std::thread::spawn(move || {
            // Bounded by the stop flag, set on drop.
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let server = match port {
                            0 => UnixStream::connect(&socket).map(Stream::Unix),
                            p => TcpStream::connect(("127.0.0.1", p)).map(Stream::Tcp),
                        };
                        let Ok(server) = server else { continue };
                        pipe(
                            Stream::Tcp(client),
                            server,
                            Arc::clone(&st),
                            Arc::clone(&c),
                            Arc::clone(&s),
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Proxy {
            port: own,
            state,
            cuts,
            stop,
        }
    }

    /// redis://127.0.0.1:PORT through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Arms a cut: after `skip` earlier matches, the next `times` commands
    /// whose bytes contain `pattern` run on Redis but lose their reply.
    pub fn cut(&self, pattern: &str, skip: usize, times: usize) {
        self.state.lock().unwrap().plans.push(Plan {
            pattern: pattern.as_bytes().to_vec(),
            skip,
            left: times,
        });
    }

    /// How many replies were cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }

    /// A partition: holds all traffic, on open and new connections, both
    /// ways, without closing anything.
    pub fn hang(&self) {
        self.state.lock().unwrap().hang_all = true;
    }

    /// Holds the connections that carry a command containing `pattern`
    /// (from that command on), and only those.
    pub fn hang_where(&self, pattern: &str) {
        self.state
            .lock()
            .unwrap()
            .hang_patterns
            .push(pattern.as_bytes().to_vec());
    }

    /// Holds the connections open now, and only those: a partition of the
    /// flows in progress (a lost NAT entry, a stateful firewall), through
    /// which a client that reconnects gets through.
    pub fn hang_open(&self) {
        let mut st = self.state.lock().unwrap();
        let ids = st.ids.clone();
        st.hung.extend(ids);
    }

    /// Ends every hang: what was held is delivered, in order.
    pub fn heal(&self) {
        let mut st = self.state.lock().unwrap();
        st.hang_all = false;
        st.hang_patterns.clear();
        st.hung.clear();
    }

    /// Closes every open connection at once (like `CLIENT KILL`).
    pub fn kill_all(&self) {
        for c in self.state.lock().unwrap().conns.drain(..) {
            c.shutdown();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.kill_all();
    }
}

/// Whether the command matches an armed plan (consuming one use of it).
fn armed(state: &Mutex<State>, cmd: &[u8]) -> bool {
    let mut st = state.lock().unwrap();
    for p in st.plans.iter_mut().filter(|p| p.left > 0) {
        if cmd
            .windows(p.pattern.len())
            .any(|w| w == p.pattern.as_slice())
        {
            if p.skip > 0 {
                p.skip -= 1;
                return false;
            }
            p.left -= 1;
            return true;
        }
    }
    false
}

/// Whether connection `id` is held now; `cmd` (if any) may put it on hold.
fn held(state: &Mutex<State>, id: u64, cmd: Option<&[u8]>) -> bool {
    let mut st = state.lock().unwrap();
    if let Some(cmd) = cmd {
        let hit = st
            .hang_patterns
            .iter()
            .any(|p| cmd.windows(p.len()).any(|w| w == p.as_slice()));
        if hit {
            st.hung.insert(id);
        }
    }
    st.hang_all || st.hung.contains(&id)
}

/// How often a forwarding thread wakes to see whether a hang has ended.
const TICK: Duration = Duration::from_millis(10);

fn pipe(
    client: Stream,
    server: Stream,
    state: Arc<Mutex<State>>,
    cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) {
    let id = {
        let mut st = state.lock().unwrap();
        st.conns.push(client.try_clone());
        st.conns.push(server.try_clone());
        st.next_id += 1;
        let id = st.next_id;
        st.ids.push(id);
        id
    };
    client.set_read_timeout(TICK);
    server.set_read_timeout(TICK);
    // Index of the command whose reply must be cut, per connection.
    let doomed: Arc<Mutex<Option<u64>>> = Arc::default();
    let (mut c_in, mut s_out) = (client.try_clone(), server.try_clone());
    let (d, st, halt) = (Arc::clone(&doomed), Arc::clone(&state), Arc::clone(&stop));
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let mut index = 0u64;
        // Commands held by a hang, and whether the client has closed.
        let mut pending: Vec<u8> = Vec::new();
        let mut eof = false;
        // Ends when either side closes (after a hang: once healed), or on drop.
        while !halt.load(Ordering::Relaxed) {
            let hold = held(&st, id, None);
            if !hold && !pending.is_empty() {
                if s_out.write_all(&pending).is_err() {
                    return;
                }
                pending.clear();
            }
            if eof {
                if !hold {
                    break;
                }
                std::thread::sleep(TICK);
                continue;
            }
            let k = match c_in.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    continue;
                }
                Ok(k) => k,
                Err(e) if is_tick(&e) => continue,
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..k]);
            let mut sent = 0;
            while let Some(len) = resp_len(&buf[sent..]) {
                let cmd = &buf[sent..sent + len];
                // Decided before the bytes reach Redis, so its reply can
                // never slip through first.
                if armed(&st, cmd) {
                    d.lock().unwrap().get_or_insert(index);
                }
                index += 1;
                if held(&st, id, Some(cmd)) || !pending.is_empty() {
                    pending.extend_from_slice(cmd);
                } else if s_out.write_all(cmd).is_err() {
                    return;
                }
                sent += len;
            }
            buf.drain(..sent);
        }
        s_out.shutdown();
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        let mut index = 0u64;
        let mut pending: Vec<u8> = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let hold = held(&state, id, None);
            if !hold && !pending.is_empty() {
                if c_out.write_all(&pending).is_err() {
                    return;
                }
                pending.clear();
            }
            let k = match s_in.read(&mut chunk) {
                Ok(0) => {
                    if hold || !pending.is_empty() {
                        std::thread::sleep(TICK);
                        continue;
                    }
                    break;
                }
                Ok(k) => k,
                Err(e) if is_tick(&e) => continue,
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..k]);
            let mut sent = 0;
            while let Some(len) = resp_len(&buf[sent..]) {
                if *doomed.lock().unwrap() == Some(index) {
                    // Redis ran it; qpipe never hears back.
                    cuts.fetch_add(1, Ordering::SeqCst);
                    c_out.shutdown();
                    s_in.shutdown();
                    return;
                }
                index += 1;
                let reply = &buf[sent..sent + len];
                if hold || !pending.is_empty() {
                    pending.extend_from_slice(reply);
                } else if c_out.write_all(reply).is_err() {
                    return;
                }
                sent += len;
            }
            buf.drain(..sent);
        }
        c_out.shutdown();
    });
}

/// A read that only timed out (the thread wakes to look at the hang state).
fn is_tick(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The length of the complete RESP2 value at the start of `buf`, if it is
/// all there.
pub fn resp_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&buf[1..line_end]).ok()?;
    let after = line_end + 2;
    match buf.first()? {
        b'+' | b'-' | b':' => Some(after),
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(after);
            }
            let end = after + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut at = after;
            for _ in 0..n.max(0) {
                at += resp_len(&buf[at..])?;
            }
            Some(at)
        }
        // An inline command (e.g. from redis-cli): up to the line end.
        _ => Some(after),
    }
}
