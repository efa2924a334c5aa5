//! A push whose reply is lost (the connection dies after Redis applied it) is
//! retried without pushing the batch twice.

mod common;

use common::{qpipe, stats, Redis};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A loopback TCP proxy to Redis that, on its first connection, forwards the
/// first push (EXEC or EVAL) to Redis and then drops the connection instead
/// of the reply.
fn reply_dropping_proxy(redis_port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conns = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        // Bounded: the test makes a handful of connections, then the process ends.
        for client in listener.incoming().take(20).flatten() {
            let n = conns.fetch_add(1, Ordering::SeqCst);
            let server = TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
            let saw_eval = Arc::new(AtomicBool::new(false));
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let flag = Arc::clone(&saw_eval);
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(k) = c_in.read(&mut buf) {
                    if k == 0 || s_out.write_all(&buf[..k]).is_err() {
                        break;
                    }
                    // The push is MULTI ... EXEC on one server, a script on a cluster.
                    if buf[..k].windows(4).any(|w| w == b"EXEC" || w == b"EVAL") {
                        flag.store(true, Ordering::SeqCst);
                    }
                }
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(k) = s_in.read(&mut buf) {
                    if k == 0 {
                        break;
                    }
                    if n == 0 && saw_eval.load(Ordering::SeqCst) {
                        // Redis applied the push; the client never hears of it.
                        let _ = c_out.shutdown(Shutdown::Both);
                        let _ = s_in.shutdown(Shutdown::Both);
                        break;
                    }
                    if c_out.write_all(&buf[..k]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn a_lost_push_reply_does_not_duplicate_the_batch() {
    let redis = Redis::start();
    let port = reply_dropping_proxy(redis.port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    let st = dir.path().join("s.json");
    let url = format!("redis://127.0.0.1:{port}");
    let run = qpipe(
        &[
            "push",
            file.to_str().unwrap(),
            "--redis",
            &url,
            "--stats-json",
            st.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(run.code, 0, "{run}");
    let s = stats(&st);
    assert_eq!(s["redis_retries"], 1, "{s}");
    assert_eq!(s["redis_retries_already_landed"], 1, "{s}");
    assert_eq!(s["items_pushed"], 3, "{s}");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        redis.lrange("DATA-PIPELINE-KEY"),
        ["{\"n\":3}", "{\"n\":2}", "{\"n\":1}"],
        "pushed twice?"
    );
}
