//! Part files (`consume --out 'dir/name-{seq}.jsonl[.gz]'`): rotated by
//! items, bytes or age, published by a rename only when whole, gzipped by
//! name, leftovers of a killed run published by the next one, and
//! `--on-publish` after each.

mod common;

use common::{numbered, signal, wait_bounded, Args, Redis};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEY: &str = "DATA-PIPELINE-KEY";

/// The published parts (not hidden), sorted by name.
fn published(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    v.sort();
    v
}

/// A part's lines; panics if a gzip part is not whole.
fn part_lines(p: &Path) -> Vec<String> {
    let raw = std::fs::read(p).unwrap();
    let text = match p.to_string_lossy().ends_with(".gz") {
        true => {
            let mut s = String::new();
            flate2::read::MultiGzDecoder::new(&raw[..])
                .read_to_string(&mut s)
                .unwrap_or_else(|e| panic!("{} is not whole gzip: {e}", p.display()));
            s
        }
        false => String::from_utf8(raw).unwrap(),
    };
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{} ends mid-line",
        p.display()
    );
    text.lines().map(str::to_string).collect()
}

#[test]
fn parts_rotate_by_items_are_gzipped_and_never_seen_partial() {
    let redis = Redis::start();
    let items = numbered(25_000, 30);
    redis.lpush(KEY, &items);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q-{date}-{seq}.jsonl.gz");
    // A downstream reader polls the directory all along: every file it can
    // see must be a whole part.
    let done = Arc::new(AtomicBool::new(false));
    let (d, path) = (Arc::clone(&done), dir.path().to_path_buf());
    let reader = std::thread::spawn(move || {
        let mut checks = 0;
        while !d.load(Ordering::Relaxed) && checks < 100_000 {
            for p in published(&path) {
                part_lines(&p);
            }
            checks += 1;
        }
        checks
    });
    let log = dir.path().join("published.log");
    let run = Args::consume(&redis.url())
        .arg("--reliable")
        .threads(2)
        .batch_size(300)
        .drain(0.5)
        .opt("--out", out.display())
        .opt("--part-items", 10_000)
        .opt(
            "--on-publish",
            format!("echo \"$QPIPE_PART\" >> {}", log.display()),
        )
        .run_expect(None, 0);
    done.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    let parts = published(dir.path());
    let names: Vec<String> = parts
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?} (3 parts and the log)\n{run}");
    let parts: Vec<_> = parts
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".gz"))
        .collect();
    let sizes: Vec<usize> = parts.iter().map(|p| part_lines(p).len()).collect();
    assert_eq!(sizes, [10_000, 10_000, 5_000], "{run}");
    let first = parts[0].to_string_lossy().into_owned();
    let last = parts[2].to_string_lossy().into_owned();
    assert!(
        first.ends_with("-000001.jsonl.gz") && last.ends_with("-000003.jsonl.gz"),
        "{names:?}"
    );
    let all: HashSet<String> = parts.iter().flat_map(|p| part_lines(p)).collect();
    assert_eq!(all, items.into_iter().collect::<HashSet<_>>());
    let logged = std::fs::read_to_string(&log).unwrap();
    let logged: Vec<&str> = logged.lines().collect();
    assert_eq!(logged.len(), 3);
    assert!(logged.iter().all(|l| Path::new(l).exists()), "{logged:?}");
    assert!(run.stderr.contains("parts_published          3"), "{run}");
}

#[test]
fn a_killed_runs_hidden_part_is_repaired_and_published_by_the_next_run() {
    for round in 0..2u64 {
        let redis = Redis::start();
        let items = numbered(40_000, 30);
        redis.lpush(KEY, &items);
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("q-{seq}.jsonl.gz");
        let child = Args::consume(&redis.url())
            .arg("--reliable")
            .opt("--heartbeat-ttl", 2)
            .threads(2)
            .batch_size(20)
            .opt("--out", out.display())
            .spawn(None);
        let hidden = dir.path().join(".q-000001.jsonl.gz.part");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&hidden).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < deadline, "no part was started");
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(30 * round));
        signal(&child, "-KILL");
        let _ = wait_bounded(child, Duration::from_secs(10));
        assert!(published(dir.path()).is_empty(), "published before the end");
        std::thread::sleep(Duration::from_millis(2_500));
        let run = Args::consume(&redis.url())
            .arg("--reliable")
            .drain(0.5)
            .opt("--out", out.display())
            .run_expect(None, 0);
        assert!(run.stderr.contains("left by an interrupted run"), "{run}");
        assert!(!hidden.exists());
        let parts = published(dir.path());
        assert_eq!(parts.len(), 2, "{run}");
        let lines: Vec<String> = parts.iter().flat_map(|p| part_lines(p)).collect();
        let distinct: HashSet<&String> = lines.iter().collect();
        // At-least-once: items the killed run had written but not yet
        // acknowledged come back and are written again.
        assert_eq!(distinct.len(), 40_000, "round {round}: lost items");
        assert!(
            lines.len() - 40_000 <= 2 * 20 * 64,
            "round {round}: {} repeats",
            lines.len() - 40_000
        );
    }
}

#[test]
fn a_failed_on_publish_ends_the_run_and_keeps_the_part() {
    let redis = Redis::start();
    redis.lpush(KEY, &numbered(100, 5));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q-{seq}.jsonl");
    let run = Args::consume(&redis.url())
        .arg("--reliable")
        .drain(0.5)
        .opt("--out", out.display())
        .opt("--on-publish", "exit 9")
        .run_expect(None, 1);
    assert!(run.stderr.contains("--on-publish failed for"), "{run}");
    let parts = published(dir.path());
    assert_eq!(parts.len(), 1);
    assert_eq!(part_lines(&parts[0]).len(), 100);
    assert!(run.stderr.contains("parts_publish_failed     1"), "{run}");
}

#[test]
fn an_old_part_is_published_while_the_worker_idles() {
    let redis = Redis::start();
    redis.lpush(KEY, &numbered(10, 5));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q-{seq}.jsonl");
    let child = Args::consume(&redis.url())
        .arg("--reliable")
        .opt("--out", out.display())
        .opt("--part-secs", 1)
        .spawn(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while published(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "no part published while idle");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "-TERM");
    let out = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let parts = published(dir.path());
    assert_eq!(parts.len(), 1);
    assert_eq!(part_lines(&parts[0]).len(), 10);
}

#[test]
fn part_flags_are_checked() {
    for (args, says) in [
        (&["--out", "q-{date}.jsonl"][..], "needs {seq}"),
        (
            &["--out", "q-{seq}-{day}.jsonl"][..],
            "unknown placeholder {day}",
        ),
        (
            &["--out", "q.jsonl", "--part-items", "5"][..],
            "need --out with a name template",
        ),
    ] {
        let run = Args::consume("redis://127.0.0.1:1")
            .args(args)
            .run_expect(None, 2);
        assert!(run.stderr.contains(says), "{run}");
    }
}

#[test]
fn csv_rows_have_the_given_fields_a_header_per_file_and_non_objects_are_dead_letters() {
    let redis = Redis::start();
    let items = [
        r#"{"quote":"He said \"hi\", then left","author":"A","tags":["x","y"],"n":1}"#,
        r#"{"quote":"plain","author":null,"n":2.50}"#,
        r#"["not","an","object"]"#,
        r#"{"quote":"third","author":"C","tags":[],"n":3}"#,
        r#"{"quote":"big","n":1e400}"#,
        r#"{"quote":"lone \ud800 surrogate","n":5}"#,
    ];
    redis.lpush(KEY, &items);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.csv");
    let csv = |extra: &[&str]| {
        Args::consume(&redis.url())
            .threads(1)
            .drain(0.5)
            .opt("--format", "csv")
            .opt("--fields", "quote,author,tags,n")
            .args(extra)
    };
    let run = csv(&["--out", out.to_str().unwrap()]).run_expect(None, 3);
    assert!(run.stderr.contains("2 poison items moved"), "{run}");
    let want = "quote,author,tags,n\n\
                \"He said \"\"hi\"\", then left\",A,\"[\"\"x\"\",\"\"y\"\"]\",1\n\
                plain,,,2.50\n\
                third,C,[],3\n\
                big,,,1e400\n";
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
    let dead: Vec<String> = redis.cmd(&["LRANGE", &format!("{KEY}:dead"), "0", "-1"]);
    // Numbers keep their text; a row that cannot be made is a dead letter.
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead.iter().any(|d| d.contains("not a JSON object")),
        "{dead:?}"
    );
    assert!(dead.iter().any(|d| d.contains("ud800")), "{dead:?}");
    // Appending to the same file: no second header.
    redis.lpush(KEY, &[r#"{"quote":"fourth"}"#]);
    csv(&["--out", out.to_str().unwrap()]).run_expect(None, 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, format!("{want}fourth,,,\n"));
    // Parts: a header in each.
    redis.lpush(
        KEY,
        &[r#"{"quote":"a"}"#, r#"{"quote":"b"}"#, r#"{"quote":"c"}"#],
    );
    let parts_dir = dir.path().join("parts");
    std::fs::create_dir(&parts_dir).unwrap();
    let template = parts_dir.join("q-{seq}.csv");
    csv(&["--out", template.to_str().unwrap(), "--part-items", "2"]).run_expect(None, 0);
    let parts = published(&parts_dir);
    let texts: Vec<String> = parts
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "quote,author,tags,n\na,,,\nb,,,\n",
            "quote,author,tags,n\nc,,,\n"
        ]
    );
    let bad = csv(&["--exec", "true"]).run_expect(None, 2);
    assert!(bad.stderr.contains("--format csv writes files"), "{bad}");
}
