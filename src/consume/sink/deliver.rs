//! Handing a committed batch to something else: a command (`--exec`) or an
//! HTTP endpoint (`--post`). A batch is one JSON Lines body; it is committed
//! only when the command exits 0 or the endpoint answers 2xx. A failed
//! attempt is retried with back-off (`--sink-retries`, each attempt bounded
//! by `--sink-timeout`); a refusal that cannot pass (a 4xx other than 408
//! and 429) is not. Every attempt of one batch carries the same identity
//! (`QPIPE_BATCH_ID`, the `Idempotency-Key` header): a hash of the body, so
//! the same items in the same order always have the same identity.

use crate::consume::settings::{DeliverConfig, To};
use crate::run::log;
use std::io::{self, Read, Seek, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After a stop (SIGTERM), an attempt in progress gets this long to finish
/// before it is abandoned: the run must end inside its 8 s stop grace.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Most of an endpoint's answer kept for the error message.
const ANSWER_LIMIT: u64 = 64 * 1024;
/// The first back-off; it doubles per retry up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A `Retry-After` longer than this is cut to it.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// What one attempt came to.
enum Outcome {
    /// Committed.
    Done,
    /// Failed; may pass. With the wait the other side asked for.
    Again(String, Option<Duration>),
    /// Failed; will not pass by retrying.
    Never(String),
}

/// A sink that hands each committed batch to a command or an endpoint.
pub struct Deliverer {
    cfg: DeliverConfig,
    agent: Option<ureq::Agent>,
    stop: Arc<AtomicBool>,
    /// When this deliverer first saw the stop flag: one grace for the
    /// whole stop, however many tries it meets.
    stopped_at: Option<Instant>,
    /// Retries made, over the run.
    pub retries: u64,
    /// Batches handed over, over the run.
    pub batches: u64,
}

impl Deliverer {
    /// A deliverer; `stop` ends retries (and, after a grace, an attempt).
    pub fn new(cfg: DeliverConfig, stop: Arc<AtomicBool>) -> Deliverer {
        let agent = matches!(cfg.to, To::Post { .. }).then(|| {
            let config = ureq::Agent::config_builder()
                .timeout_global(Some(cfg.timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .proxy(None)
                .user_agent(concat!("qpipe/", env!("CARGO_PKG_VERSION")))
                .build();
            ureq::Agent::new_with_config(config)
        });
        Deliverer {
            cfg,
            agent,
            stop,
            stopped_at: None,
            retries: 0,
            batches: 0,
        }
    }

    /// Hands `body` (`items` JSON lines) over, retrying as configured.
    /// `Err` once it failed for good, or a stop came before it succeeded.
    pub fn deliver(&mut self, body: &[u8], items: u64) -> io::Result<()> {
        let id = batch_id(body);
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=self.cfg.retries.saturating_add(1) {
            if self.stop.load(Ordering::Relaxed) {
                // No new try after a stop: the batch goes back.
                return Err(stopped(format!(
                    "stopping: batch {id} not handed to {}",
                    self.cfg.name()
                )));
            }
            let outcome = match self.cfg.to.clone() {
                To::Exec(cmd) => self.exec(&cmd, body, &id, items, attempt),
                To::Post { .. } => self.post(body, &id),
            };
            let (why, asked) = match outcome {
                Outcome::Done => {
                    self.batches += 1;
                    return Ok(());
                }
                Outcome::Never(why) => {
                    return Err(io::Error::other(format!(
                        "{} refused the batch: {why}",
                        self.cfg.name()
                    )))
                }
                Outcome::Again(why, asked) => (why, asked),
            };
            if self.stop.load(Ordering::Relaxed) {
                return Err(stopped(format!(
                    "stopping: {} did not take batch {id} (last: {why})",
                    self.cfg.name()
                )));
            }
            if attempt > self.cfg.retries {
                let tries = match attempt {
                    1 => "1 attempt".to_string(),
                    n => format!("{n} attempts"),
                };
                return Err(io::Error::other(format!(
                    "{} failed {tries} (last: {why})",
                    self.cfg.name()
                )));
            }
            let wait = asked.map_or(backoff, |a| a.min(MAX_RETRY_AFTER));
            log::warn(&format!(
                "{} failed ({why}); batch {id} ({items} items) tried again in {:.0}s ({} of {} retries)",
                self.cfg.name(),
                wait.as_secs_f64(),
                attempt,
                self.cfg.retries
            ));
            self.retries += 1;
            if !self.sleep(wait) {
                return Err(stopped(format!(
                    "stopped while retrying {} (last: {why})",
                    self.cfg.name()
                )));
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        unreachable!("the last attempt returns")
    }

    /// Whether a stop came more than `STOP_GRACE` ago (the try in
    /// progress is then abandoned).
    fn grace_over(&mut self) -> bool {
        if !self.stop.load(Ordering::Relaxed) {
            return false;
        }
        self.stopped_at.get_or_insert_with(Instant::now).elapsed() >= STOP_GRACE
    }

    /// Sleeps `d`, or less if the stop flag goes up (then false).
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.stop.load(Ordering::Relaxed)
    }

    /// One run of `sh -c cmd`, the body on its stdin (from an unlinked
    /// temporary file, so a command that does not read it all cannot block
    /// qpipe), its stdout sent to qpipe's stderr (stdout is for data).
    fn exec(&mut self, cmd: &str, body: &[u8], id: &str, items: u64, attempt: u32) -> Outcome {
        let stdin = match body_file(body) {
            Ok(f) => f,
            Err(e) => return Outcome::Again(format!("cannot stage the batch: {e}"), None),
        };
        let stdout = match dup_stderr() {
            Ok(s) => s,
            Err(e) => return Outcome::Again(format!("cannot pass stderr: {e}"), None),
        };
        use std::os::unix::process::CommandExt;
        let spawned = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("QPIPE_BATCH_ID", id)
            .env("QPIPE_BATCH_ITEMS", items.to_string())
            .env("QPIPE_BATCH_BYTES", body.len().to_string())
            .env("QPIPE_ATTEMPT", attempt.to_string())
            .stdin(stdin)
            .stdout(stdout)
            // Its own process group, so a timeout ends everything it started.
            .process_group(0)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => return Outcome::Again(format!("cannot start sh: {e}"), None),
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Outcome::Done,
                Ok(Some(status)) => {
                    let how = match status.code() {
                        Some(c) => format!("exit status {c}"),
                        None => "killed by a signal".into(),
                    };
                    return Outcome::Again(how, None);
                }
                Ok(None) => {}
                Err(e) => return Outcome::Again(format!("cannot wait for the command: {e}"), None),
            }
            let late = started.elapsed() >= self.cfg.timeout;
            let abandoned = self.grace_over();
            if late || abandoned {
                // The whole group: sh and what it started.
                // SAFETY: kill(2) with a negative pid signals that group only.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                let why = match late {
                    true => format!(
                        "no exit within --sink-timeout {}s; killed",
                        self.cfg.timeout.as_secs_f64()
                    ),
                    false => "stopping; killed".into(),
                };
                return Outcome::Again(why, None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// One POST of the body as NDJSON, on its own thread so that a stop
    /// can abandon an endpoint that does not answer (the request is then
    /// counted as failed and the batch goes back).
    fn post(&mut self, body: &[u8], id: &str) -> Outcome {
        let (To::Post { url, headers, gzip }, Some(agent)) = (&self.cfg.to, &self.agent) else {
            return Outcome::Never("not an HTTP sink".into());
        };
        let body = match gzip {
            true => match gzipped(body) {
                Ok(z) => z,
                Err(e) => return Outcome::Again(format!("cannot gzip the batch: {e}"), None),
            },
            false => body.to_vec(),
        };
        let (agent, url, headers, gzip, id) = (
            agent.clone(),
            url.clone(),
            headers.clone(),
            *gzip,
            id.to_string(),
        );
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let _ = tx.send(post_once(&agent, &url, &headers, gzip, &body, &id));
        });
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(outcome) => return outcome,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Outcome::Again("the request ended without an answer".into(), None)
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.grace_over() {
                        return Outcome::Again("stopping; the request was abandoned".into(), None);
                    }
                }
            }
        }
    }
}

/// A stop, not a failure: the batch goes back, and the run ends with the
/// signal's exit code.
fn stopped(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::Interrupted, text)
}

/// One POST (timed by the agent's `--sink-timeout`) and what it came to.
fn post_once(
    agent: &ureq::Agent,
    url: &str,
    headers: &[(String, String)],
    gzip: bool,
    body: &[u8],
    id: &str,
) -> Outcome {
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/x-ndjson")
        .header("Idempotency-Key", id);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if gzip {
        req = req.header("Content-Encoding", "gzip");
    }
    let mut resp = match req.send(body) {
        Ok(r) => r,
        Err(e) => return Outcome::Again(e.to_string(), None),
    };
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Outcome::Done;
    }
    let asked = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let mut answer = String::new();
    let _ = resp
        .body_mut()
        .as_reader()
        .take(ANSWER_LIMIT)
        .read_to_string(&mut answer);
    let first = answer.lines().next().unwrap_or("").trim();
    let first: String = first.chars().take(300).collect();
    let why = match first.is_empty() {
        true => format!("HTTP {status}"),
        false => format!("HTTP {status}: {first}"),
    };
    match status {
        408 | 429 | 500..=599 => Outcome::Again(why, asked),
        _ => Outcome::Never(why),
    }
}

/// The batch's identity: 32 hex digits of XXH3-128 of its body.
pub fn batch_id(body: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(body))
}

/// The body in an unlinked temporary file, rewound.
fn body_file(body: &[u8]) -> io::Result<std::fs::File> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(".qpipe-batch-{}-{n}", std::process::id()));
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .mode(0o600)
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let _ = std::fs::remove_file(&path);
    f.write_all(body)?;
    f.rewind()?;
    Ok(f)
}

/// A copy of qpipe's stderr, for a command's stdout.
fn dup_stderr() -> io::Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(io::stderr().as_fd().try_clone_to_owned()?))
}

fn gzipped(body: &[u8]) -> io::Result<Vec<u8>> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(body)?;
    z.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(cmd: &str, retries: u32, timeout: Duration) -> Deliverer {
        let cfg = DeliverConfig {
            to: To::Exec(cmd.into()),
            retries,
            timeout,
        };
        Deliverer::new(cfg, Arc::new(AtomicBool::new(false)))
    }

    #[test]
    fn a_command_gets_the_batch_and_its_identity() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got");
        let cmd = format!(
            "cat > {0} && echo \"$QPIPE_BATCH_ID $QPIPE_BATCH_ITEMS $QPIPE_BATCH_BYTES $QPIPE_ATTEMPT\" >> {0}",
            out.display()
        );
        let body = b"{\"a\":1}\n{\"b\":2}\n";
        exec(&cmd, 0, Duration::from_secs(10))
            .deliver(body, 2)
            .unwrap();
        let got = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            got,
            format!("{{\"a\":1}}\n{{\"b\":2}}\n{} 2 16 1\n", batch_id(body))
        );
    }

    #[test]
    fn a_failing_command_is_retried_then_reported() {
        let mut d = exec("exit 7", 1, Duration::from_secs(10));
        // Back-off of 1 s between the two attempts.
        let e = d.deliver(b"x\n", 1).unwrap_err().to_string();
        assert!(e.contains("failed 2 attempts (last: exit status 7)"), "{e}");
        assert_eq!(d.retries, 1);
    }

    #[test]
    fn a_command_past_its_timeout_is_killed_with_its_children() {
        let t = Instant::now();
        let mut d = exec("sleep 30 & sleep 30", 0, Duration::from_millis(300));
        let e = d.deliver(b"x\n", 1).unwrap_err().to_string();
        assert!(e.contains("no exit within --sink-timeout"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
