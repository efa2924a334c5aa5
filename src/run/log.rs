//! Human-facing log lines on stderr: RFC 3339 timestamp, level, message.
//!
//! Everything goes through the `log` facade, so warnings from the libraries
//! (ureq, rustls, redis) appear too, at `-v`; the formatting stays here.
//! qpipe's own lines use the target `qpipe`.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// 0 = errors only (-q), 1 = warnings and info (default), 2 = debug (-v).
static VERBOSITY: AtomicU8 = AtomicU8::new(1);

/// Log lines as JSON objects (`--log-format json`) instead of text.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets the log line format from `--log-format` (`text`, the default, or `json`).
pub fn set_format(name: Option<&str>) -> Result<(), crate::error::Error> {
    let json = match name {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            return Err(crate::error::Error::Usage(format!(
                "--log-format {other:?} is not text or json"
            )))
        }
    };
    JSON.store(json, Ordering::Relaxed);
    Ok(())
}

/// The logger behind the facade: one line per record on stderr.
struct Stderr;

static LOGGER: Stderr = Stderr;

impl ::log::Log for Stderr {
    fn enabled(&self, m: &::log::Metadata<'_>) -> bool {
        use ::log::Level;
        let v = VERBOSITY.load(Ordering::Relaxed);
        let ours = m.target() == "qpipe";
        match m.level() {
            Level::Error if ours => true,
            Level::Error | Level::Warn | Level::Info if !ours => v >= 2,
            Level::Warn | Level::Info => v >= 1,
            Level::Debug => ours && v >= 2,
            _ => false,
        }
    }

    fn log(&self, r: &::log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = if JSON.load(Ordering::Relaxed) {
            let mut o = serde_json::Map::new();
            o.insert("ts".into(), now_rfc3339().into());
            o.insert("level".into(), r.level().as_str().to_lowercase().into());
            o.insert("msg".into(), r.args().to_string().into());
            o.insert("target".into(), r.target().into());
            serde_json::Value::Object(o).to_string()
        } else {
            let source = match r.target() {
                "qpipe" => String::new(),
                t => format!("[{t}] "),
            };
            format!("{} {:<5} {source}{}", now_rfc3339(), r.level(), r.args())
        };
        // A closed stderr must not end the run.
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {}
}

/// Writes `text` to stdout. A reader that went away (`qpipe spec --print |
/// head -1`) is not an error: the rest is simply not wanted.
pub fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

/// Writes `text` to stderr, ignoring a closed stderr.
pub fn err(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// The run's last word on stderr: `qpipe: <error>`, or with `--log-format
/// json` one error object, so every stderr line parses.
pub fn fatal(msg: &str) {
    match JSON.load(Ordering::Relaxed) {
        true => error(msg),
        false => err(&format!("qpipe: {msg}\n")),
    }
}

/// The end-of-run summary on stderr: aligned text, or with `--log-format
/// json` one object whose `summary` field holds it.
pub fn summary(human: &str, json: &str) {
    if !JSON.load(Ordering::Relaxed) {
        return err(human);
    }
    let summary: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut o = serde_json::Map::new();
    o.insert("ts".into(), now_rfc3339().into());
    o.insert("level".into(), "info".into());
    o.insert("msg".into(), "summary".into());
    o.insert("target".into(), "qpipe".into());
    o.insert("summary".into(), summary);
    err(&format!("{}\n", serde_json::Value::Object(o)));
}

/// Sets how much is logged: -1 quiet, 0 normal, 1+ verbose. Installs the
/// logger on first use.
pub fn set_verbosity(level: i8) {
    let v = (level + 1).clamp(0, 2) as u8;
    VERBOSITY.store(v, Ordering::Relaxed);
    let _ = ::log::set_logger(&LOGGER);
    // Debug lines show only at -v. Below that the facade's own level check
    // must drop them: selectors and html5ever log per element and per token,
    // and a call into `Stderr::log` for each cost 2-3% of a crawl's CPU.
    ::log::set_max_level(match v {
        2 => ::log::LevelFilter::Debug,
        _ => ::log::LevelFilter::Info,
    });
}

/// Logs a warning: something failed but the run goes on.
pub fn warn(msg: &str) {
    ::log::warn!(target: "qpipe", "{msg}");
}

/// Logs an informational line.
pub fn info(msg: &str) {
    ::log::info!(target: "qpipe", "{msg}");
}

/// Logs a debug line, shown with -v.
pub fn debug(msg: &str) {
    ::log::debug!(target: "qpipe", "{msg}");
}

/// Logs an error that ends the run; always shown.
pub fn error(msg: &str) {
    ::log::error!(target: "qpipe", "{msg}");
}

/// Time since the Unix epoch (zero if the clock is before it). The one
/// place qpipe reads the wall clock for timestamps and scores.
pub fn unix_time() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Whole seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    unix_time().as_secs()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn now_rfc3339() -> String {
    let d = unix_time();
    format_rfc3339(d.as_secs(), d.subsec_millis())
}

/// The current UTC date and time as (`YYYY-MM-DD`, `HHMMSS`).
pub fn utc_date_time() -> (String, String) {
    let t = now_rfc3339();
    let time: String = t[11..19].chars().filter(char::is_ascii_digit).collect();
    (t[..10].to_string(), time)
}

/// The current UTC time as `YYYYMMDDTHHMMSSZ`, safe in file names.
pub fn now_compact() -> String {
    now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .take(15)
        .collect::<String>()
        + "Z"
}

fn format_rfc3339(secs: u64, millis: u32) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Unix milliseconds of a time `now_rfc3339` wrote (`YYYY-MM-DDTHH:MM:SS`,
/// optional fraction, `Z`); `None` for anything else.
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let rest = s.get(19..)?.strip_suffix('Z')?;
    let millis = match rest.strip_prefix('.') {
        None if rest.is_empty() => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let f3: String = f.chars().chain("000".chars()).take(3).collect();
            f3.parse().ok()?
        }
        _ => return None,
    };
    let secs = days_from_civil(y, m as u32, d as u32) * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs).ok().map(|s| s * 1000 + millis)
}

/// Howard Hinnant's civil-to-days algorithm (the inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(
            format_rfc3339(1_795_693_199, 999),
            "2026-11-26T11:39:59.999Z"
        );
    }

    #[test]
    fn parses_what_it_formats_and_nothing_else() {
        for (secs, ms) in [(0, 0), (951_782_400, 5), (1_795_693_199, 999)] {
            let t = format_rfc3339(secs, ms);
            assert_eq!(
                parse_rfc3339_ms(&t),
                Some(secs * 1000 + u64::from(ms)),
                "{t}"
            );
        }
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        for bad in [
            "",
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T00:00:00.Z",
            "x000-02-29T00:00:00Z",
            "2000-02-29T00:00:00+01:00",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
