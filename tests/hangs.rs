//! A Redis that hangs instead of failing: a partition that drops packets
//! without a reset (the proxy's `hang`, healed later so that what was held
//! arrives late) and a stopped redis-server (SIGSTOP). Also the smaller
//! defects found with a restricted ACL user, and `-` for stdin.

mod common;

use common::proxy::Proxy;
use common::{eventually, lines, numbered, qpipe, signal, spilled, wait_bounded, Args, Redis};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// `qpipe push` reading stdin, with its stderr lines arriving on a channel
/// stamped with the time each arrived.
fn push_from_stdin(
    url: &str,
    dir: &Path,
) -> (Child, ChildStdin, mpsc::Receiver<(Instant, String)>) {
    let mut child = Args::new("push")
        .redis(url)
        .opt("--redis-retry-secs", 60)
        .spawn_with_stdin(Some(dir));
    let stdin = child.stdin.take().unwrap();
    let rx = stderr_lines(&mut child);
    (child, stdin, rx)
}

/// Takes the child's stderr and sends each line on, stamped with the time
/// it arrived, from a thread that ends at the child's exit (EOF).
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<(Instant, String)> {
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (at most `limit`) for a stderr line containing `text`; returns
/// when it arrived and everything read so far.
fn await_line(
    rx: &mpsc::Receiver<(Instant, String)>,
    text: &str,
    limit: Duration,
    log: &mut String,
) -> Option<Instant> {
    let end = Instant::now() + limit;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((at, line)) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains(text) {
                    return Some(at);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

/// Each item and how often it occurs.
fn counts(items: &[String]) -> HashMap<&str, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i.as_str()).or_default() += 1;
    }
    m
}

/// Asserts that `got` holds each of `want` exactly once, and nothing else.
fn assert_exactly_once(got: &[String], want: &[String], context: &str) {
    let c = counts(got);
    let missing = want.iter().filter(|w| !c.contains_key(w.as_str())).count();
    let doubled = c.values().filter(|n| **n > 1).count();
    assert_eq!(
        (missing, doubled, got.len()),
        (0, 0, want.len()),
        "missing, duplicated, total; {context}"
    );
}

/// How a hang is made.
enum Hang {
    /// The proxy holds both directions, and delivers later.
    Partition(Proxy),
    /// redis-server gets SIGSTOP, and SIGCONT later.
    Stopped,
}

/// SIGTERM while the writer waits on a Redis that hangs: every item read is
/// in Redis or in the spill file, once, and the process exits 1 well inside
/// a 10 s kill grace. After the hang ends, the push the writer had sent
/// arrives late, and must not land (it is past its deadline).
fn sigterm_during_a_hang(partition: bool) {
    let redis = Redis::start();
    let hang = match partition {
        true => Hang::Partition(Proxy::start(&redis)),
        false => Hang::Stopped,
    };
    let url = match &hang {
        Hang::Partition(p) => p.url(),
        Hang::Stopped => format!("unix://{}", redis.socket().display()),
    };
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(3010, 40);
    let (child, mut stdin, rx) = push_from_stdin(&url, dir.path());
    writeln!(stdin, "{}", all[..10].join("\n")).unwrap();
    common::eventually("the first items", Duration::from_secs(10), || {
        redis.llen(KEY) == 10
    });
    match &hang {
        Hang::Partition(p) => p.hang(),
        Hang::Stopped => redis.pause(),
    }
    writeln!(stdin, "{}", all[10..].join("\n")).unwrap();
    drop(stdin);
    // The writer has sent its next batch into the hang by now.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    let sent = Instant::now();
    let out = wait_bounded(child, Duration::from_secs(30));
    let took = sent.elapsed();
    let mut log = String::from_utf8_lossy(&out.stderr).into_owned();
    while let Ok((_, l)) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
    match &hang {
        Hang::Partition(p) => p.heal(),
        Hang::Stopped => redis.resume(),
    }
    eprintln!(
        "measured: push, {}, exit {:?} {took:?} after SIGTERM",
        if partition { "partition" } else { "SIGSTOP" },
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(1), "exit after SIGTERM: {log}");
    assert!(
        took < Duration::from_secs(7),
        "took {took:?} to exit after SIGTERM: {log}"
    );
    assert!(log.contains("whose reply never came"), "{log}");
    // What was held reaches Redis now; give it time to (not) land.
    std::thread::sleep(Duration::from_millis(700));
    let mut got = redis.lrange(KEY);
    got.reverse();
    assert_eq!(got.len(), 10, "items in Redis after the hang ended: {log}");
    got.extend(spilled(dir.path()));
    assert_exactly_once(&got, &all, &log);
}

#[test]
fn sigterm_while_redis_is_partitioned_spills_every_item_in_time() {
    sigterm_during_a_hang(true);
}

#[test]
fn sigterm_while_redis_is_stopped_spills_every_item_in_time() {
    sigterm_during_a_hang(false);
}

/// A batch sent into a partition of the writer's connection, retried on a
/// new connection after the socket timeout, and delivered late when the
/// partition heals, is applied once. The hang is noticed within 1.5x the
/// writer's socket timeout (4 s), not once per reply of a pipeline.
#[test]
fn a_healed_partition_applies_a_batch_once_and_is_noticed_in_time() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let dir = tempfile::tempdir().unwrap();
    let all = numbered(40, 10);
    let (child, mut stdin, rx) = push_from_stdin(&proxy.url(), dir.path());
    writeln!(stdin, "{}", all[..10].join("\n")).unwrap();
    common::eventually("the first items", Duration::from_secs(10), || {
        redis.llen(KEY) == 10
    });
    proxy.hang_open();
    let hung = Instant::now();
    writeln!(stdin, "{}", all[10..30].join("\n")).unwrap();
    let mut log = String::new();
    let noticed = await_line(&rx, "retrying for up to", Duration::from_secs(20), &mut log)
        .map(|at| at.duration_since(hung));
    eprintln!("measured: writer noticed the hang after {noticed:?}");
    // The retry goes through a new connection; then the held copy arrives.
    common::eventually("the retried batch", Duration::from_secs(20), || {
        redis.llen(KEY) >= 30
    });
    proxy.heal();
    writeln!(stdin, "{}", all[30..].join("\n")).unwrap();
    drop(stdin);
    let out = wait_bounded(child, Duration::from_secs(40));
    while let Ok((_, l)) = rx.try_recv() {
        log.push_str(&l);
        log.push('\n');
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut got = redis.lrange(KEY);
    got.reverse();
    eprintln!(
        "measured: {} items in Redis for {} pushed",
        got.len(),
        all.len()
    );
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert_exactly_once(&got, &all, &log);
    assert!(spilled(dir.path()).is_empty());
    assert!(
        noticed.is_some_and(|t| t <= Duration::from_secs(6)),
        "hang noticed after {noticed:?} (socket timeout 4 s): {log}"
    );
}

/// A lock holder whose lock connection hangs stops before the lock can
/// expire, exits 4 (`lock_lost`), and takes nothing pushed after the lock
/// expired; the run that takes the lock next gets all of it.
#[test]
fn a_lock_holder_that_cannot_renew_stops_before_the_lock_expires() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let dir = tempfile::tempdir().unwrap();
    let a_out = dir.path().join("a.jsonl");
    let a = Args::consume(&proxy.url())
        .opt("--lock", "L")
        .opt("--lock-ttl", 3)
        .opt("--stats-json", "-")
        .out(&a_out)
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let before: Vec<String> = (0..5).map(|i| format!("{{\"before\":{i}}}")).collect();
    redis.lpush(KEY, &before);
    common::eventually("the first run's items", Duration::from_secs(10), || {
        lines(&a_out).len() == 5
    });
    proxy.hang_where("qpipe:lock:L");
    let hung = Instant::now();
    // The moment the lock expires in Redis, new work arrives.
    let mut expired = false;
    while hung.elapsed() < Duration::from_secs(12) {
        if redis.cmd::<u64>(&["EXISTS", "qpipe:lock:L"]) == 0 {
            expired = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(expired, "the lock never expired");
    let after: Vec<String> = (0..50).map(|i| format!("{{\"after\":{i}}}")).collect();
    redis.lpush(KEY, &after);
    let b_out = dir.path().join("b.jsonl");
    let b = Args::consume(&redis.url())
        .opt("--lock", "L")
        .arg("--drain")
        .out(&b_out)
        .run(None);
    let out = wait_bounded(a, Duration::from_secs(30));
    proxy.heal();
    let a_log = String::from_utf8_lossy(&out.stderr).into_owned();
    let a_stats = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(4), "{a_log}");
    assert!(a_stats.contains("\"lock_lost\""), "{a_stats}");
    assert_eq!(b.code, 0, "{}", b.stderr);
    let a_items = lines(&a_out);
    let taken: Vec<&String> = a_items.iter().filter(|l| l.contains("after")).collect();
    assert!(
        taken.is_empty(),
        "the first run took {} items pushed after its lock expired: {a_log}",
        taken.len()
    );
    assert_eq!(a_items.len(), 5, "{a_log}");
    let mut b_items = lines(&b_out);
    b_items.sort();
    let mut want = after.clone();
    want.sort();
    assert_eq!(b_items, want, "{}", b.stderr);
}

/// `consume --reliable` notices a partition within 1.5x its socket timeout
/// (the block time plus 3 s), not once per reply of a pipeline.
#[test]
fn a_reliable_consumer_notices_a_partition_in_time() {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let mut child = Args::new("consume")
        .arg("--reliable")
        .threads(1)
        .redis(&proxy.url())
        .out(&out)
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    redis.lpush(KEY, &["{\"a\":1}"]);
    common::eventually("the first item", Duration::from_secs(10), || {
        lines(&out).len() == 1
    });
    let rx = stderr_lines(&mut child);
    // Held from the next take on, before any of its replies: a pipeline
    // there would wait out the socket timeout once per reply.
    proxy.hang_where("SADD");
    let hung = Instant::now();
    let mut log = String::new();
    let noticed = await_line(&rx, "cannot take items", Duration::from_secs(14), &mut log)
        .map(|at| at.duration_since(hung));
    signal(&child, "-TERM");
    let status = wait_bounded(child, Duration::from_secs(30));
    proxy.heal();
    eprintln!("measured: reliable consumer noticed the hang after {noticed:?}");
    // Up to one block time (1 s) until the next take, then one timeout.
    assert!(
        noticed.is_some_and(|t| t <= Duration::from_millis(5500)),
        "hang noticed after {noticed:?} (socket timeout 4 s): {log}"
    );
    assert!(status.status.code().is_some(), "{log}");
}

/// A Redis on TCP with user `u` (password `p`) allowed everything but `deny`.
fn restricted(deny: &[&str]) -> (Redis, String) {
    let redis = Redis::start_tcp_with(&[]);
    let mut args = vec!["ACL", "SETUSER", "u", "on", ">p", "~*", "&*", "+@all"];
    args.extend(deny);
    assert_eq!(redis.cmd::<String>(&args), "OK");
    let url = format!("redis://u:p@127.0.0.1:{}", redis.port);
    (redis, url)
}

/// A refused write applies nothing: with `MULTI` denied the push does not
/// need it (nothing both in Redis and in a spill file); with the marker's
/// `SET` denied, the ACL check at start ends the run before any line is
/// read: nothing pushed, nothing spilled, the input file untouched.
#[test]
fn a_refused_push_applies_nothing_and_an_allowed_one_everything() {
    let items = numbered(50, 5);
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), items.join("\n") + "\n").unwrap();
    let file = input.path().to_str().unwrap();

    let (redis, url) = restricted(&["-multi"]);
    let dir = tempfile::tempdir().unwrap();
    let run = qpipe(&["push", "--redis", &url, file], Some(dir.path()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(redis.llen(KEY), 50, "{}", run.stderr);
    assert!(spilled(dir.path()).is_empty(), "{}", run.stderr);
    assert!(!run.stderr.contains("p@"), "password shown: {}", run.stderr);

    let (redis, url) = restricted(&["-set"]);
    let dir = tempfile::tempdir().unwrap();
    let run = qpipe(&["push", "--redis", &url, file], Some(dir.path()));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(redis.llen(KEY), 0, "{}", run.stderr);
    assert!(spilled(dir.path()).is_empty(), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("NoPerm: this user may not run SET DATA-PIPELINE-KEY:writer:"),
        "{}",
        run.stderr
    );
}

/// With `EVAL` denied (every role runs scripts) or `RPOP` denied (the
/// follow-up pop is `RPOP key count`), BRPOP mode ends the run at start,
/// before popping anything, with exit 1 and one line naming the command;
/// every item stays.
#[test]
fn a_denied_follow_up_pop_ends_the_run_and_names_the_command() {
    for (rule, named) in [("-eval", "'eval'"), ("-rpop", "rpop")] {
        let (redis, url) = restricted(&[rule]);
        let items = numbered(20, 5);
        redis.lpush(KEY, &items);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.jsonl");
        let run = Args::consume(&url)
            .arg("--drain")
            .threads(1)
            .out(&out)
            .run(None);
        assert_eq!(run.code, 1, "{rule}: {}", run.stderr);
        assert!(lines(&out).is_empty(), "{rule}: {}", run.stderr);
        assert_eq!(redis.llen(KEY), 20, "{rule}: {}", run.stderr);
        let fatal: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("qpipe: "))
            .collect();
        assert_eq!(fatal.len(), 1, "{rule}: {}", run.stderr);
        let line = fatal[0].to_lowercase();
        assert!(
            line.contains(named) && line.contains("noperm"),
            "{rule}: {}",
            run.stderr
        );
    }
}

/// `-` reads stdin, as documented, for `push` and `enqueue`.
#[test]
fn a_dash_reads_stdin_for_push_and_enqueue() {
    let redis = Redis::start();
    for (args, input, key) in [
        (vec!["push", "-"], "{\"a\":1}\n{\"a\":2}\n", KEY),
        (
            vec!["enqueue", "--key", "J", "-"],
            "http://127.0.0.1:1/x\nhttp://127.0.0.1:1/y\n",
            "J",
        ),
    ] {
        let mut child = Args::new(args[0])
            .args(&args[1..])
            .redis(&redis.url())
            .spawn_with_stdin(None);
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = wait_bounded(child, Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert_eq!(redis.llen(key), 2, "{args:?}: {err}");
    }
}

/// `produce` (a crawl, or crawl jobs) stopped by SIGTERM while Redis hangs:
/// it exits 1 in time, and every item it extracted is in Redis or in the
/// spill file, once (the summary's counts add up, and nothing is in both).
fn produce_sigterm_during_a_hang(jobs: bool) {
    let redis = Redis::start();
    let proxy = Proxy::start(&redis);
    let site = common::Site::start(10);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stats.json");
    let url = proxy.url();
    let args = Args::new("produce")
        .redis(&url)
        .threads(2)
        .opt("--delay-ms", 300)
        .arg("--ignore-robots")
        .stats_json(&st);
    let args = if jobs {
        let run = qpipe(&["enqueue", "--redis", &redis.url(), &site.url], None);
        assert_eq!(run.code, 0, "{}", run.stderr);
        args.opt("--jobs", "qpipe:jobs").arg("--allow-private")
    } else {
        args.start_url(&site.url)
    };
    let child = args.spawn(Some(dir.path()));
    common::eventually("the first items", Duration::from_secs(15), || {
        redis.llen(KEY) > 0
    });
    proxy.hang();
    // Pages go on being fetched into the hang.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "-TERM");
    let sent = Instant::now();
    let out = wait_bounded(child, Duration::from_secs(30));
    let took = sent.elapsed();
    proxy.heal();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "measured: produce{}, partition, exit {:?} {took:?} after SIGTERM",
        if jobs { " --jobs" } else { "" },
        out.status.code()
    );
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(took < Duration::from_secs(7), "took {took:?}: {log}");
    std::thread::sleep(Duration::from_millis(700));
    let s = common::stats(&st);
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    let in_redis = redis.lrange(KEY);
    let spill = spilled(dir.path());
    assert!(!spill.is_empty(), "nothing was spilled: {log}");
    assert_eq!(in_redis.len() as u64, n("items_pushed"), "{log}");
    assert_eq!(spill.len() as u64, n("items_spilled"), "{log}");
    assert_eq!(
        n("items_pushed") + n("items_spilled"),
        n("items_extracted") - n("duplicates_dropped"),
        "{s}"
    );
    let both: Vec<&String> = spill.iter().filter(|i| in_redis.contains(i)).collect();
    assert!(
        both.is_empty(),
        "{} items both pushed and spilled",
        both.len()
    );
}

#[test]
fn produce_stopped_while_redis_hangs_spills_every_item_in_time() {
    produce_sigterm_during_a_hang(false);
}

#[test]
fn produce_jobs_stopped_while_redis_hangs_spills_every_item_in_time() {
    produce_sigterm_during_a_hang(true);
}

/// `push -` with a pipe that stays open and idle: SIGTERM ends the run at
/// once (the lines already read are pushed, exit 143), instead of waiting on
/// the pipe until the watchdog kills it.
#[test]
fn sigterm_ends_a_push_from_an_idle_pipe_at_once() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let (child, mut stdin, rx) = push_from_stdin(&redis.url(), dir.path());
    writeln!(stdin, "{{\"a\":1}}\n{{\"a\":2}}").unwrap();
    stdin.flush().unwrap();
    eventually("two items pushed", Duration::from_secs(10), || {
        redis.llen(KEY) == 2
    });
    let sent = Instant::now();
    signal(&child, "-TERM");
    let out = wait_bounded(child, Duration::from_secs(20));
    let took = sent.elapsed();
    let mut log = String::new();
    // The stderr reader ends at the child's exit.
    while let Ok((_, line)) = rx.recv_timeout(Duration::from_secs(5)) {
        log.push_str(&line);
        log.push('\n');
    }
    assert_eq!(out.status.code(), Some(143), "{log}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {log}");
    assert_eq!(redis.llen(KEY), 2, "{log}");
    drop(stdin);
}

/// SIGTERM while a healthy Redis is being written to: no false outage. (A
/// signal landing on a thread inside a socket read with a timeout used to
/// fail that read with EINTR: "reply never came", a spill, and items both
/// spilled and in Redis.) Every line read is pushed once, in order, exit 143.
#[test]
fn sigterm_during_a_healthy_push_is_a_clean_stop() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jsonl");
    let text: String = (0..400_000)
        .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "y".repeat(60)))
        .collect();
    std::fs::write(&file, text).unwrap();
    for round in 0..3 {
        redis.cmd::<i64>(&["DEL", KEY]);
        let child = Args::new("push")
            .arg(file.display())
            .redis(&redis.url())
            .command()
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        eventually("items arriving", Duration::from_secs(20), || {
            redis.llen(KEY) > 1000
        });
        signal(&child, "-TERM");
        let out = wait_bounded(child, Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(143), "round {round}: {err}");
        assert!(spilled(dir.path()).is_empty(), "round {round}: {err}");
        assert!(!err.contains("never came"), "round {round}: {err}");
        // LPUSH onto the head: the oldest item is last.
        let got = redis.lrange(KEY);
        let n = got.len();
        for (k, line) in got.iter().rev().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["i"], k, "round {round}: item {k} of {n}");
        }
        let pushed = format!("items_pushed                  {n}\n");
        assert!(err.contains(&pushed), "round {round}: {err}");
    }
}

/// `push -` stopped while a writer keeps the pipe full: every complete line
/// it took from the pipe is pushed (what it did not take stays in the pipe,
/// which the test reads back); a line cut off by the stop is named.
#[test]
fn sigterm_on_a_busy_pipe_loses_no_line_already_read() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: two valid out slots; the fds are owned by the Files below.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (rd, mut wr) = unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    };
    let mut keep = rd.try_clone().unwrap();
    for fd in [fds[0], fds[1]] {
        // SAFETY: valid fds; only O_NONBLOCK is added (the child's copy too,
        // which qpipe's poll-then-read handles).
        unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
    }
    let child = Args::new("push")
        .arg("-")
        .redis(&redis.url())
        .command()
        .current_dir(dir.path())
        .stdin(Stdio::from(rd))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stop = AtomicBool::new(false);
    let data: Vec<u8> = (0..300_000u64)
        .flat_map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}\n", "y".repeat(100)).into_bytes())
        .collect();
    let (out, written) = std::thread::scope(|s| {
        let feeder = s.spawn(|| {
            // Bounded by `stop` and by the data's end.
            let mut off = 0;
            while off < data.len() && !stop.load(Ordering::Relaxed) {
                match wr.write(&data[off..(off + 65536).min(data.len())]) {
                    Ok(n) => off += n,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            off
        });
        eventually("items arriving", Duration::from_secs(20), || {
            redis.llen(KEY) > 2000
        });
        signal(&child, "-TERM");
        let out = wait_bounded(child, Duration::from_secs(20));
        stop.store(true, Ordering::Relaxed);
        (out, feeder.join().unwrap())
    });
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    let mut left = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    // Bounded by the pipe's size: the read end is non-blocking.
    while let Ok(n) = keep.read(&mut buf) {
        if n == 0 {
            break;
        }
        left.extend_from_slice(&buf[..n]);
    }
    let taken = &data[..written - left.len()];
    let complete = taken.iter().filter(|b| **b == b'\n').count();
    let cut = taken.last().is_some_and(|b| *b != b'\n');
    assert_eq!(cut, err.contains("cut off by the stop"), "{err}");
    let got = redis.lrange(KEY);
    assert_eq!(
        got.len(),
        complete,
        "lines taken from the pipe: {complete}; {err}"
    );
    for (k, line) in got.iter().rev().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["i"], k, "item {k}");
    }
    assert!(spilled(dir.path()).is_empty(), "{err}");
}
