//! `qpipe bench`: memory measurements for development, left out of
//! `qpipe --help` (scripts/dedup-memory.sh runs them).
//!
//! - `bench dedup`: adds (or with `--probe`, looks up) fingerprints
//!   XXH3-128("0"), XXH3-128("1"), … in a seen key through the same
//!   check-and-add Lua the crawl uses, 1,000 per script, then reports the
//!   key's `MEMORY USAGE` per fingerprint. For a Bloom filter it also checks
//!   that the bits Rust computes for the first 1,000 are the ones Lua set.
//! - `bench frontier`: queues `--count` URLs in an in-process frontier and
//!   reports the growth of resident memory (/proc/self/statm) per URL.

use crate::config::cli::BenchArgs;
use crate::config::RedisTarget;
use crate::crawl::frontier::{Bounds, Frontier};
use crate::error::{Error, Exit};
use crate::queue::dedup::{Exact, Filter};
use crate::queue::link::Link;
use crate::run::summary::{Output, Summary};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use url::Url;

/// Fingerprints per script call.
const CHUNK: u64 = 1000;

/// Parses `qpipe bench` arguments and runs the measurement.
pub fn run(argv: &[&str]) -> Result<Summary, Error> {
    use argh::FromArgs;
    let a = match BenchArgs::from_args(&["qpipe", "bench"], argv) {
        Ok(a) => a,
        Err(early) if early.status.is_ok() => {
            crate::run::log::out(&format!("{}\n", early.output));
            let mut sum = Summary::new("bench", Exit::Ok);
            sum.output = Output::Silent;
            return Ok(sum);
        }
        Err(early) => return Err(Error::Usage(early.output.trim().to_string())),
    };
    let mut sum = match a.what.as_str() {
        "dedup" => dedup(&a)?,
        "frontier" => frontier(&a),
        other => {
            return Err(Error::Usage(format!(
                "qpipe bench {other:?}: measure dedup or frontier"
            )))
        }
    };
    sum.output = Output::StdoutJson;
    Ok(sum)
}

fn fingerprint(i: u64) -> [u8; 16] {
    crate::queue::item::fingerprint(i.to_string().as_bytes()).to_be_bytes()
}

fn dedup(a: &BenchArgs) -> Result<Summary, Error> {
    let want = crate::config::dedup(&a.dedup, a.dedup_capacity, a.dedup_error)?;
    let ep = RedisTarget::new(a.redis.clone(), None, a.key.clone(), 1)?.redis;
    let mut link = Link::open(&ep, Duration::from_secs(60), Duration::ZERO, None)?;
    let filter = Filter::open(&mut link, &a.key, Exact::Set, &want)?;
    let started = Instant::now();
    let mut hits = 0u64;
    let end = a.from + a.count;
    for first in (a.from..end).step_by(CHUNK as usize) {
        let fps: Vec<[u8; 16]> = (first..end.min(first + CHUNK)).map(fingerprint).collect();
        let flags = link.call("add fingerprints", |c| filter.probe(c, &fps, !a.probe))?;
        hits += flags.into_iter().filter(|f| *f).count() as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut memory = 0u64;
    for key in filter.keys() {
        memory += link
            .call("measure memory", |c| {
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&key)
                    .arg("SAMPLES")
                    .arg(0)
                    .query::<Option<u64>>(c)
            })?
            .unwrap_or(0);
    }
    let stored = link.call("count fingerprints", |c| filter.count(c))?;
    let mut sum = Summary::new("bench", Exit::Ok);
    sum.set("key", a.key.as_str())
        .set("dedup", a.dedup.as_str())
        .set("fingerprints", a.count)
        .set(if a.probe { "present" } else { "added" }, hits)
        .set("stored", stored)
        .set("memory_bytes", memory)
        .set(
            "bytes_per_fingerprint",
            (memory as f64 / stored.max(1) as f64 * 100.0).round() / 100.0,
        )
        .set("per_sec", (a.count as f64 / secs.max(1e-9)).round());
    if let Filter::Bitmap(_, p) = &filter {
        sum.set("bits", p.bits * p.pieces)
            .set("pieces", p.pieces)
            .set("k", p.k);
        if !a.probe {
            let unset = unset_bits(&mut link, &filter, a.from, a.count.min(CHUNK))?;
            sum.set("bits_checked", a.count.min(CHUNK) * p.k)
                .set("bits_unset", unset);
        }
    }
    Ok(sum)
}

/// How many of the bits `Params::positions` gives for fingerprints
/// `from..from + n` are not set: 0 unless Rust and the Lua disagree.
fn unset_bits(link: &mut Link, filter: &Filter, from: u64, n: u64) -> Result<u64, Error> {
    let Filter::Bitmap(_, p) = filter else {
        return Ok(0);
    };
    if n == 0 {
        return Ok(0);
    }
    let keys = filter.keys();
    let mut pipe = redis::pipe();
    for i in from..from + n {
        let (piece, offsets) = p.positions(u128::from_be_bytes(fingerprint(i)));
        for off in offsets {
            pipe.cmd("GETBIT").arg(&keys[1 + piece as usize]).arg(off);
        }
    }
    let bits: Vec<u8> = link.call("read bits", |c| pipe.query(c))?;
    Ok(bits.into_iter().filter(|b| *b == 0).count() as u64)
}

/// Resident bytes of this process, from /proc/self/statm (pages of 4 KiB).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A product-page URL like a shop crawl's: 70-odd bytes.
fn shop_url(i: u64) -> Url {
    let u = format!(
        "https://books.example.com/catalogue/category/books_{}/item-{i}/index.html",
        i % 50
    );
    Url::parse(&u).unwrap_or_else(|_| unreachable!("a valid URL: {u}"))
}

fn frontier(a: &BenchArgs) -> Summary {
    let before = resident_bytes();
    let bounds = Bounds {
        max_queued: usize::MAX,
        ..Bounds::default()
    };
    let f = Frontier::new(&[shop_url(u64::MAX)], bounds);
    let stop = AtomicBool::new(false);
    let _start = f.next(&stop);
    let mut url_bytes = 0u64;
    for first in (0..a.count).step_by(CHUNK as usize) {
        let links: Vec<Url> = (first..a.count.min(first + CHUNK)).map(shop_url).collect();
        url_bytes += links.iter().map(|u| u.as_str().len() as u64).sum::<u64>();
        f.complete(&shop_url(first), links, 0, 0);
    }
    let grown = resident_bytes().saturating_sub(before);
    let queued = f.seen() as u64 - 1;
    let mut sum = Summary::new("bench", Exit::Ok);
    sum.set("urls_queued", queued)
        .set("url_bytes_mean", url_bytes as f64 / a.count.max(1) as f64)
        .set("resident_growth_bytes", grown)
        .set(
            "bytes_per_url",
            (grown as f64 / queued.max(1) as f64 * 10.0).round() / 10.0,
        );
    sum
}
