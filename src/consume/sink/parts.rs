//! Part files: `--out` with a name template such as
//! `out/quotes-{date}-{seq}.jsonl.gz`. Items go to a hidden `.NAME.part`
//! beside the final name; each commit is flushed and fsynced there (one
//! gzip member per commit when the name ends in `.gz`, so a crash tears at
//! most the last member). A part is published when it reaches
//! `--part-items`, `--part-bytes` or `--part-secs`, and at the end of the
//! run: fsynced, hard-linked to its final name (never over an existing
//! file) and its hidden name removed, so a reader of the directory never
//! sees a partial part. `--on-publish CMD` then runs with the part's path.
//!
//! Items in a hidden part are acknowledged already (they are durable), so
//! a run that dies leaves them there: the next run on the same template
//! repairs each leftover part (cutting a torn last line or gzip member)
//! and publishes it before writing anything new.

use crate::run::log;
use flate2::write::GzEncoder;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a template is rotated and published.
#[derive(Debug, Clone)]
pub struct PartsConfig {
    /// The name template: `{date}`, `{time}`, `{seq}`, `{host}`, `{pid}`.
    pub template: PathBuf,
    /// Publish after this many items.
    pub max_items: Option<u64>,
    /// Publish after this many bytes (uncompressed).
    pub max_bytes: u64,
    /// Publish a part this old (at the next commit or idle tick).
    pub max_age: Duration,
    /// `sh -c CMD` after each publish, with the path in `$QPIPE_PART`.
    pub on_publish: Option<String>,
    /// fsync each commit.
    pub fsync: bool,
    /// A first line for every part (the CSV header).
    pub header: Option<Vec<u8>>,
}

/// Whether `out` is a template rather than a plain file name.
pub fn is_template(out: &Path) -> bool {
    out.file_name()
        .is_some_and(|n| n.to_string_lossy().contains('{'))
}

/// Checks a template: a `{seq}` in the file name, known placeholders only.
pub fn check_template(t: &Path) -> Result<(), String> {
    if t.parent()
        .is_some_and(|d| d.to_string_lossy().contains('{'))
    {
        return Err("has a placeholder in its directory; put them in the file name only".into());
    }
    let name = t
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !name.contains("{seq}") {
        return Err("needs {seq} in the file name, so parts never collide".into());
    }
    let mut rest = name.as_str();
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        let Some(end) = tail.find('}') else {
            return Err("has a { without its }".into());
        };
        let key = &tail[1..end];
        if !matches!(key, "date" | "time" | "seq" | "host" | "pid") {
            return Err(format!("has an unknown placeholder {{{key}}} (known: {{date}} {{time}} {{seq}} {{host}} {{pid}})"));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

/// The open part: its hidden file and what it holds.
struct Open {
    /// The final name.
    name: PathBuf,
    /// `.NAME.part` beside it.
    hidden: PathBuf,
    file: File,
    /// The length at the last commit.
    committed: u64,
    /// Lines since the last commit (uncompressed), not yet on disk.
    pending: Vec<u8>,
    /// Items in `pending`.
    pending_items: u64,
    /// Items committed.
    items: u64,
    bytes: u64,
    started: Instant,
}

/// The part files of one run.
pub struct Parts {
    cfg: PartsConfig,
    gzip: bool,
    seq: u64,
    open: Option<Open>,
    /// Parts that reached `--part-items`, to publish once committed.
    full: Vec<Open>,
    /// Parts published, and parts whose `--on-publish` failed.
    pub published: u64,
    pub publish_failed: u64,
}

impl Parts {
    /// Publishes what earlier runs left in hidden parts, then starts.
    pub fn start(cfg: PartsConfig) -> io::Result<Parts> {
        let gzip = cfg.template.to_string_lossy().ends_with(".gz");
        let mut parts = Parts {
            cfg,
            gzip,
            seq: 0,
            open: None,
            full: Vec::new(),
            published: 0,
            publish_failed: 0,
        };
        parts.publish_leftovers()?;
        Ok(parts)
    }

    fn dir(&self) -> PathBuf {
        match self.cfg.template.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Hidden parts from earlier runs of this template: repaired, published.
    fn publish_leftovers(&mut self) -> io::Result<()> {
        let dir = self.dir();
        let pattern = template_regex(&self.cfg.template);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".part")) else {
                continue;
            };
            // Only names the whole template matches, and only parts no
            // live run holds (each run keeps a flock on its open part).
            if !pattern.as_ref().is_some_and(|p| p.is_match(inner)) {
                continue;
            }
            let hidden = dir.join(&name);
            let mut f = OpenOptions::new().read(true).write(true).open(&hidden)?;
            if !try_lock(&f) {
                continue;
            }
            let cut = repair(&mut f, inner.ends_with(".gz"))?;
            if cut > 0 {
                log::warn(&format!(
                    "{} ended in a torn write ({cut} bytes) from an interrupted run; cut it",
                    hidden.display()
                ));
            }
            if std::fs::metadata(&hidden)?.len() == 0 {
                std::fs::remove_file(&hidden)?;
                continue;
            }
            let name = self.publish_file(&hidden, &dir.join(inner))?;
            log::info(&format!(
                "published {} left by an interrupted run",
                name.display()
            ));
        }
        Ok(())
    }

    /// Buffers items, one per line; a part that reaches `--part-items`
    /// is set aside to publish, and the rest go to a new part.
    pub fn write(&mut self, mut items: &[Vec<u8>]) -> io::Result<()> {
        while !items.is_empty() {
            if self.open.is_none() {
                self.open = Some(self.new_part()?);
            }
            let open = self.open.as_mut().expect("opened above");
            let held = open.items + open.pending_items;
            let room = self
                .cfg
                .max_items
                .map_or(items.len(), |m| m.saturating_sub(held) as usize);
            let (now, later) = items.split_at(room.min(items.len()));
            for item in now {
                open.pending.extend_from_slice(item);
                open.pending.push(b'\n');
            }
            open.pending_items += now.len() as u64;
            if !later.is_empty()
                || self
                    .cfg
                    .max_items
                    .is_some_and(|m| held + now.len() as u64 >= m)
            {
                let full = self.open.take().expect("open");
                self.full.push(full);
            }
            items = later;
        }
        Ok(())
    }

    /// Makes what was written durable in the hidden parts. (Publishing
    /// comes after the acknowledgement: `rotate_if_due`.)
    pub fn commit(&mut self) -> io::Result<()> {
        let gzip = self.gzip;
        let fsync = self.cfg.fsync;
        for open in self.full.iter_mut().chain(self.open.as_mut()) {
            commit_one(open, gzip, fsync)?;
        }
        Ok(())
    }

    /// Publishes the full parts, and the open one if it is big or old
    /// enough (also while idle). Only committed data is published.
    pub fn rotate_if_due(&mut self) -> io::Result<()> {
        while let Some(full) = self.full.first() {
            if !full.pending.is_empty() {
                break;
            }
            let full = self.full.remove(0);
            self.publish(full)?;
        }
        let due = self.open.as_ref().is_some_and(|o| {
            o.pending.is_empty()
                && o.items > 0
                && (o.bytes >= self.cfg.max_bytes || o.started.elapsed() >= self.cfg.max_age)
        });
        if due {
            let open = self.open.take().expect("due");
            self.publish(open)?;
        }
        Ok(())
    }

    /// At the end of the run: publishes what the parts committed.
    pub fn close(&mut self) -> io::Result<()> {
        let mut all: Vec<Open> = self.full.drain(..).collect();
        all.extend(self.open.take());
        for mut o in all {
            o.pending.clear();
            o.pending_items = 0;
            match o.committed > 0 {
                true => self.publish(o)?,
                false => {
                    let _ = std::fs::remove_file(&o.hidden);
                }
            }
        }
        Ok(())
    }

    /// After a failed write: drops what was not committed (each hidden
    /// file is cut back to its last commit).
    pub fn rewind(&mut self) -> io::Result<u64> {
        let mut cut = 0;
        for o in self.full.iter_mut().chain(self.open.as_mut()) {
            o.pending.clear();
            o.pending_items = 0;
            let len = o.file.metadata()?.len();
            if len > o.committed {
                o.file.set_len(o.committed)?;
                o.file.seek(SeekFrom::Start(o.committed))?;
            }
            cut += len.saturating_sub(o.committed);
        }
        Ok(cut)
    }

    fn publish(&mut self, o: Open) -> io::Result<()> {
        o.file.sync_all()?;
        drop(o.file);
        let name = self.publish_file(&o.hidden, &o.name)?;
        log::info(&format!("published {} ({} items)", name.display(), o.items));
        Ok(())
    }

    /// Links `hidden` to `name` (the next free `{seq}` if it exists),
    /// removes `hidden`, syncs the directory, runs `--on-publish`.
    fn publish_file(&mut self, hidden: &Path, name: &Path) -> io::Result<PathBuf> {
        let mut name = name.to_path_buf();
        loop {
            match std::fs::hard_link(hidden, &name) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    name = self.next_name();
                }
                Err(e) => return Err(e),
            }
        }
        std::fs::remove_file(hidden)?;
        let _ = File::open(self.dir()).and_then(|d| d.sync_all());
        self.published += 1;
        if let Some(cmd) = &self.cfg.on_publish {
            let ok = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("QPIPE_PART", &name)
                .stdin(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                self.publish_failed += 1;
                return Err(io::Error::other(format!(
                    "--on-publish failed for {} (the part is kept; run the command on it again)",
                    name.display()
                )));
            }
        }
        Ok(name)
    }

    /// The template with the next `{seq}`, now's date and time.
    fn next_name(&mut self) -> PathBuf {
        self.seq += 1;
        let (date, time) = crate::run::log::utc_date_time();
        let name = self
            .cfg
            .template
            .to_string_lossy()
            .replace("{date}", &date)
            .replace("{time}", &time)
            .replace("{seq}", &format!("{:06}", self.seq))
            .replace("{host}", &crate::queue::conn::hostname())
            .replace("{pid}", &std::process::id().to_string());
        PathBuf::from(name)
    }

    fn new_part(&mut self) -> io::Result<Open> {
        loop {
            let name = self.next_name();
            if name.exists() {
                continue;
            }
            let file_name = name
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let hidden = name.with_file_name(format!(".{file_name}.part"));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&hidden)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            // Held while the part is open: another run starting on this
            // template leaves it alone.
            if !try_lock(&file) {
                continue;
            }
            let mut pending = Vec::new();
            if let Some(h) = &self.cfg.header {
                pending.extend_from_slice(h);
                pending.push(b'\n');
            }
            return Ok(Open {
                name,
                hidden,
                file,
                committed: 0,
                pending,
                pending_items: 0,
                items: 0,
                bytes: 0,
                started: Instant::now(),
            });
        }
    }
}

/// Appends `o`'s pending lines (one gzip member if `gzip`), fsynced.
fn commit_one(o: &mut Open, gzip: bool, fsync: bool) -> io::Result<()> {
    if o.pending.is_empty() {
        return Ok(());
    }
    let raw = o.pending.len() as u64;
    let data = match gzip {
        true => {
            let mut z = GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&o.pending)?;
            z.finish()?
        }
        false => std::mem::take(&mut o.pending),
    };
    o.file.write_all(&data)?;
    if fsync {
        o.file.sync_data()?;
    }
    o.committed += data.len() as u64;
    o.bytes += raw;
    o.pending.clear();
    o.items += o.pending_items;
    o.pending_items = 0;
    Ok(())
}

/// The template's file name as a pattern for hidden part names.
fn template_regex(template: &Path) -> Option<regex::Regex> {
    let name = template.file_name()?.to_string_lossy().into_owned();
    let mut re = String::from("^");
    let mut rest = name.as_str();
    while let Some(i) = rest.find('{') {
        re.push_str(&regex::escape(&rest[..i]));
        let end = rest[i..].find('}')? + i;
        re.push_str(match &rest[i + 1..end] {
            "date" => r"\d{4}-\d{2}-\d{2}",
            "time" => r"\d{6}",
            "seq" => r"\d{6,}",
            "pid" => r"\d+",
            _ => r"[^/]+?",
        });
        rest = &rest[end + 1..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// An exclusive, non-blocking `flock`; false if another holds it.
fn try_lock(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor the caller owns.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Cuts a hidden part back to its last whole line (plain) or gzip member
/// (`.gz`). Returns the bytes cut.
fn repair(f: &mut File, gzip: bool) -> io::Result<u64> {
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(0))?;
    let keep = match gzip {
        true => whole_members(f)?,
        false => {
            let mut all = Vec::new();
            f.read_to_end(&mut all)?;
            all.iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i as u64 + 1)
        }
    };
    if keep < len {
        f.set_len(keep)?;
        f.sync_all()?;
    }
    Ok(len - keep)
}

/// The length of the whole gzip members at the start of `f`.
fn whole_members(f: &mut File) -> io::Result<u64> {
    f.seek(SeekFrom::Start(0))?;
    let len = f.metadata()?.len();
    let mut reader = Counting {
        inner: BufReader::new(&*f),
        at: 0,
    };
    let mut good = 0;
    while good < len {
        let mut z = flate2::bufread::GzDecoder::new(&mut reader);
        if io::copy(&mut z, &mut io::sink()).is_err() {
            break;
        }
        // The decoder stops at the member's end; the reader is there now.
        good = reader.at;
    }
    Ok(good)
}

/// A buffered reader that knows how far its consumer has read.
struct Counting<R> {
    inner: R,
    at: u64,
}

impl<R: io::BufRead> io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl<R: io::BufRead> io::BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.at += n as u64;
        self.inner.consume(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_gzip_member_is_cut_and_whole_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".x.jsonl.gz.part");
        let member = |s: &str| {
            let mut z = GzEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(s.as_bytes()).unwrap();
            z.finish().unwrap()
        };
        let (a, b) = (member("{\"a\":1}\n"), member("{\"b\":2}\n"));
        let mut all = [a.clone(), b.clone()].concat();
        all.extend_from_slice(&member("{\"c\":3}\n")[..10]);
        std::fs::write(&p, &all).unwrap();
        let mut f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        assert_eq!(repair(&mut f, true).unwrap(), 10);
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(File::open(&p).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }

    #[test]
    fn templates_need_seq_and_known_placeholders() {
        assert!(check_template(Path::new("out/q-{date}-{seq}.jsonl.gz")).is_ok());
        assert!(check_template(Path::new("out/q-{date}.jsonl"))
            .unwrap_err()
            .contains("{seq}"));
        assert!(check_template(Path::new("q-{seq}-{day}.jsonl"))
            .unwrap_err()
            .contains("{day}"));
        assert!(check_template(Path::new("out/{date}/q-{seq}.jsonl"))
            .unwrap_err()
            .contains("directory"));
        let re = template_regex(Path::new("out/q-{seq}")).unwrap();
        assert!(re.is_match("q-000001") && !re.is_match("q-578-000001.jsonl.gz"));
    }
}
