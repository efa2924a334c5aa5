//! Validates the crawl-job flags: `produce --jobs` and `qpipe enqueue`.

use super::{seconds, usage, writer, JobsConfig, WriterConfig};
use crate::config::cli::{EnqueueArgs, ProduceArgs};
use crate::crawl::spider::Spec;
use crate::error::Error;
use crate::queue::job_list::When;
use std::time::Duration;

impl JobsConfig {
    /// Validates the job flags of `produce`; `None` without `--jobs`.
    pub fn from_args(a: &ProduceArgs, spec: &Spec) -> Result<Option<JobsConfig>, Error> {
        let Some(key) = a.jobs.clone() else {
            let stray = [
                (a.drain, "--drain"),
                (a.idle_timeout.is_some(), "--idle-timeout"),
                (a.heartbeat_ttl.is_some(), "--heartbeat-ttl"),
                (a.job_attempts.is_some(), "--job-attempts"),
                (a.job_backoff.is_some(), "--job-backoff"),
                (a.job_backoff_max.is_some(), "--job-backoff-max"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
                return Err(usage(format!(
                    "{flag} needs --jobs (a crawl without jobs ends by itself)"
                )));
            }
            return Ok(None);
        };
        // `--jobs high,default,low`: the first non-empty list is taken from.
        let lists: Vec<String> = key.split(',').map(|l| l.trim().to_string()).collect();
        if lists.iter().any(String::is_empty) {
            return Err(usage(format!(
                "--jobs {key:?} has an empty list name (give one list, or several in priority order: high,default,low)"
            )));
        }
        if let Some(twice) = lists
            .iter()
            .enumerate()
            .find(|(i, l)| lists[..*i].contains(l))
        {
            return Err(usage(format!("--jobs names the list {:?} twice", twice.1)));
        }
        let key = lists[0].clone();
        if a.shared_frontier.is_some() {
            return Err(usage(
                "--jobs and --shared-frontier cannot be combined (each job has its own frontier in this process)".into(),
            ));
        }
        if !a.start_url.is_empty() {
            return Err(usage(
                "--start-url cannot be used with --jobs (each job brings its URL; add them with qpipe enqueue)".into(),
            ));
        }
        if let Some(clash) = lists.iter().find(|l| **l == a.key) {
            return Err(usage(format!(
                "--jobs {clash} is also the item list --key (choose two different lists)"
            )));
        }
        let taken = spec.field_names().contains(&"meta") || spec.rule_field == "meta";
        if taken {
            return Err(usage(
                "the spider has a field named \"meta\", which --jobs items carry as the job's meta (rename the field)".into(),
            ));
        }
        let idle = seconds(a.idle_timeout.unwrap_or(2.0), "--idle-timeout")?;
        let heartbeat_ttl = super::heartbeat_ttl(a.heartbeat_ttl.unwrap_or(10))?;
        let attempts = match a.job_attempts.unwrap_or(5) {
            0 => return Err(usage("--job-attempts must be at least 1".into())),
            n => n,
        };
        let backoff = match a.job_backoff.unwrap_or(10.0) {
            0.0 => std::time::Duration::ZERO,
            s => seconds(s, "--job-backoff")?,
        };
        let backoff_max = seconds(a.job_backoff_max.unwrap_or(3600.0), "--job-backoff-max")?;
        Ok(Some(JobsConfig {
            key,
            lists,
            drain_after: a.drain.then_some(idle),
            heartbeat_ttl,
            attempts,
            backoff,
            backoff_max,
        }))
    }
}

/// `qpipe enqueue`.
#[derive(Debug, Clone)]
pub struct EnqueueConfig {
    /// Job URLs, files of jobs, or `-` (stdin), in order.
    pub sources: Vec<String>,
    /// `--in`/`--at`: scheduled for later instead of pushed now.
    pub when: Option<When>,
    /// Where the jobs go (`key` is the job list).
    pub writer: WriterConfig,
}

impl EnqueueConfig {
    /// Validates `enqueue` arguments.
    pub fn from_args(a: EnqueueArgs) -> Result<EnqueueConfig, Error> {
        if a.jobs.is_empty() {
            return Err(usage(
                "no jobs given (give URLs, a file of jobs, or - for stdin)".into(),
            ));
        }
        let when = match (&a.in_, &a.at) {
            (Some(_), Some(_)) => {
                return Err(usage(
                    "--in and --at cannot be combined (give one time)".into(),
                ))
            }
            (Some(d), None) => Some(When::In(duration(d)?)),
            (None, Some(t)) => Some(When::At(instant(t)?)),
            (None, None) => None,
        };
        Ok(EnqueueConfig {
            when,
            sources: a.jobs,
            writer: WriterConfig {
                resend: "enqueue",
                ..writer(
                    a.redis,
                    a.tls_ca,
                    a.key,
                    1,
                    (1000, 8 << 20),
                    a.redis_retry_secs,
                    ".".into(),
                )?
            },
        })
    }
}

/// `--in`: `90`, `90s`, `15m`, `2h`, `1d`.
fn duration(text: &str) -> Result<Duration, Error> {
    let bad = || {
        usage(format!(
            "--in {text:?} is not a delay (give e.g. 90s, 15m, 2h or 1d; a plain number is seconds)"
        ))
    };
    let t = text.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c),
        _ => (t, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => return Err(bad()),
    };
    let n: f64 = num.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 || n * scale > 400.0 * 86400.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(n * scale))
}

/// `--at`: RFC 3339 with a zone, or seconds since the Unix epoch; as time
/// since the epoch.
fn instant(text: &str) -> Result<Duration, Error> {
    let bad = || {
        usage(format!(
            "--at {text:?} is not a time (give RFC 3339 with a zone, e.g. 2026-12-05T03:00:00Z, or seconds since the Unix epoch)"
        ))
    };
    let t = text.trim();
    let at = match t.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => rfc3339(t).ok_or_else(bad)?,
    };
    // As far ahead as --in allows; a past time is due at once.
    let now = crate::run::log::unix_time();
    if at > now + Duration::from_secs(400 * 86400) {
        return Err(usage(format!(
            "--at {text:?} is more than 400 days away (schedule nearer jobs)"
        )));
    }
    Ok(at)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as time since the epoch.
fn rfc3339(t: &str) -> Option<Duration> {
    let b = t.as_bytes();
    if !t.is_ascii() || b.len() < 20 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] {
        return None;
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.len() - r.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        z if z.len() == 6 && matches!(&z[..1], "+" | "-") && &z[3..4] == ":" => {
            let (oh, om) = (z[1..3].parse::<i64>().ok()?, z[4..6].parse::<i64>().ok()?);
            if oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if &z[..1] == "+" {
                m * 60
            } else {
                -m * 60
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86400 + h * 3600 + mi * 60 + s - offset;
    (secs >= 0).then(|| Duration::from_secs_f64(secs as f64 + frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_and_times_parse_or_are_named() {
        assert_eq!(duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(duration("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["", "x", "5w", "-3s", "NaN"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert_eq!(instant("0").unwrap(), Duration::ZERO);
        assert_eq!(
            instant("1970-01-02T00:00:00Z").unwrap(),
            Duration::from_secs(86400)
        );
        assert_eq!(
            instant("2026-12-05T04:00:00+01:00").unwrap(),
            instant("2026-12-05T03:00:00Z").unwrap()
        );
        assert_eq!(
            instant("2000-03-01T00:00:00Z").unwrap(),
            Duration::from_secs(951_868_800)
        );
        assert_eq!(
            instant("2026-12-05T03:00:00.250Z").unwrap(),
            Duration::from_millis(1_796_439_600_250)
        );
        for bad in [
            "tomorrow",
            "2026-12-05",
            "2026-13-05T03:00:00Z",
            "2026-12-05T03:00:00",
            "2026-02-31T03:00:00Z",
            "2026-12-05T03:00:00+99:99",
            "2026-12-05T03:00:00.Z",
            "2026-12-05T03:00:00é1:00",
            "2026-12-05T03:00:00+1é:0",
            "18446744073709552",
            "9999-12-31T00:00:00Z",
        ] {
            assert!(instant(bad).is_err(), "{bad}");
        }
    }
}
