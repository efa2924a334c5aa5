//! TLS (rediss://, --tls-ca, #insecure) and authentication (password, ACL user).

mod common;

use common::{qpipe, stats, Args, Redis, Site};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway CA and a server certificate for 127.0.0.1, made with openssl.
fn make_certs(dir: &Path) {
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=qpipe test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "1",
            "-extfile",
            "san.ext",
        ],
    );
}

/// redis-server listening on TLS only; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    /// Starts it on a free port. The port may be taken between `free_port`
    /// and the bind, so a server that fails to listen is retried on another.
    fn start(dir: &Path) -> TlsRedis {
        for _ in 0..5 {
            let port = common::free_port();
            let log = dir.join(format!("redis-{port}.log"));
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--tls-cert-file",
                    "server.crt",
                    "--tls-key-file",
                    "server.key",
                    "--tls-ca-cert-file",
                    "ca.crt",
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--logfile")
                .arg(&log)
                .current_dir(dir)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server");
            // Its own log says when it listens: a connect could reach
            // whoever took the port instead.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("Ready to accept connections") {
                    return TlsRedis { child, port };
                }
                if child.try_wait().expect("try_wait").is_some() {
                    break; // Could not bind: try another port.
                }
                assert!(Instant::now() < deadline, "TLS redis-server did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("TLS redis-server did not start on any of 5 ports");
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn roundtrip(url: &str, extra: &[&str], dir: &Path) -> (common::Run, common::Run) {
    let site = Site::start(3);
    let produced = Args::produce(url, &site.url).args(extra).run(Some(dir));
    let out = dir.join("out.jsonl");
    let consumed = Args::consume(url)
        .drain(0.3)
        .out(&out)
        .args(extra)
        .run(Some(dir));
    (produced, consumed)
}

/// `roundtrip`, both runs exit 0 and all 30 items reach out.jsonl; returns
/// the produce run.
fn roundtrip_ok(url: &str, extra: &[&str], dir: &Path) -> common::Run {
    let (p, c) = roundtrip(url, extra, dir);
    assert_eq!(p.code, 0, "{p}");
    assert_eq!(c.code, 0, "{c}");
    assert_eq!(
        std::fs::read_to_string(dir.join("out.jsonl"))
            .unwrap()
            .lines()
            .count(),
        30
    );
    p
}

#[test]
fn tls_with_private_ca_works_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let redis = TlsRedis::start(dir.path());
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = dir.path().join("ca.crt");
    roundtrip_ok(&url, &["--tls-ca", ca.to_str().unwrap()], dir.path());
}

#[test]
fn tls_insecure_accepts_self_signed_with_a_warning_and_strict_refuses() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let redis = TlsRedis::start(dir.path());
    let strict = format!("rediss://127.0.0.1:{}", redis.port);
    let run = qpipe(&["consume", "--redis", &strict, "--drain"], None);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(run.stderr.lines().count(), 1, "{run}");
    assert!(
        run.stderr
            .starts_with(&format!("qpipe: cannot reach Redis at {strict}")),
        "{run}"
    );

    let insecure = format!("rediss://127.0.0.1:{}/#insecure", redis.port);
    let p = roundtrip_ok(&insecure, &[], dir.path());
    assert!(p.stderr.contains("TLS certificate checks are off"), "{p}");
}

#[test]
fn password_and_acl_user_work_and_wrong_password_is_redacted() {
    let redis = Redis::start_tcp_with(&["--requirepass", "s3cret-pw"]);
    let mut admin = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("ACL")
        .arg(&["SETUSER", "alice", "on", ">alice-pw", "~*", "+@all"])
        .query::<()>(&mut admin)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("redis://:s3cret-pw@127.0.0.1:{}", redis.port),
        format!("redis://alice:alice-pw@127.0.0.1:{}", redis.port),
    ] {
        let st = dir.path().join("s.json");
        let site = Site::start(2);
        let run = Args::produce(&url, &site.url)
            .stats_json(&st)
            .run_expect(None, 0);
        assert_eq!(stats(&st)["items_pushed"], 20);
        assert!(!run.stderr.contains("-pw"), "password printed:\n{run}");
        assert!(stats(&st)["redis"].as_str().unwrap().contains(":***@"));
    }
    let len: u64 = redis::cmd("LLEN").arg(KEY).query(&mut admin).unwrap();
    // Deduplication is per run, so each of the two runs pushed all 20.
    assert_eq!(len, 40);

    for url in [
        format!("redis://:wrong-pw@127.0.0.1:{}", redis.port),
        format!("redis://alice:wrong-pw@127.0.0.1:{}", redis.port),
    ] {
        let run = qpipe(&["consume", "--redis", &url, "--drain"], None);
        assert_eq!(run.code, 1, "{run}");
        // The error, plus the warning that a password in --redis shows in `ps`.
        assert_eq!(run.stderr.lines().count(), 2, "{run}");
        assert!(
            run.stderr.contains("visible to other users in `ps`"),
            "{run}"
        );
        assert!(run.stderr.contains("check the user and password"), "{run}");
        assert!(!run.stderr.contains("wrong-pw"), "{run}");
    }
}
