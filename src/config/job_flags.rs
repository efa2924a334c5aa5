//! Validates the crawl-job flags: `produce --jobs` and `qpipe enqueue`.

use super::{non_empty_key, seconds, usage, writer, JobsConfig, WriterConfig};
use crate::config::cli::{EnqueueArgs, ProduceArgs};
use crate::crawl::spider::Spec;
use crate::error::Error;

impl JobsConfig {
    /// Validates the job flags of `produce`; `None` without `--jobs`.
    pub fn from_args(a: &ProduceArgs, spec: &Spec) -> Result<Option<JobsConfig>, Error> {
        let Some(key) = a.jobs.clone() else {
            let stray = [
                (a.drain, "--drain"),
                (a.idle_timeout.is_some(), "--idle-timeout"),
                (a.heartbeat_ttl.is_some(), "--heartbeat-ttl"),
                (a.job_attempts.is_some(), "--job-attempts"),
            ];
            if let Some((_, flag)) = stray.iter().find(|(given, _)| *given) {
                return Err(usage(format!(
                    "{flag} needs --jobs (a crawl without jobs ends by itself)"
                )));
            }
            return Ok(None);
        };
        let key = non_empty_key(key).map_err(|_| usage("--jobs needs a list name".into()))?;
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
        if key == a.key {
            return Err(usage(format!(
                "--jobs {key} is also the item list --key (choose two different lists)"
            )));
        }
        let taken = spec.field_names().contains(&"meta") || spec.rule_field == "meta";
        if taken {
            return Err(usage(
                "the spider has a field named \"meta\", which --jobs items carry as the job's meta (rename the field)".into(),
            ));
        }
        let idle = seconds(a.idle_timeout.unwrap_or(2.0), "--idle-timeout")?;
        let heartbeat_ttl = match a.heartbeat_ttl.unwrap_or(10) {
            0 => return Err(usage("--heartbeat-ttl must be at least 1".into())),
            n => n,
        };
        let attempts = match a.job_attempts.unwrap_or(5) {
            0 => return Err(usage("--job-attempts must be at least 1".into())),
            n => n,
        };
        Ok(Some(JobsConfig {
            key,
            drain_after: a.drain.then_some(idle),
            heartbeat_ttl,
            attempts,
        }))
    }
}

/// `qpipe enqueue`.
#[derive(Debug, Clone)]
pub struct EnqueueConfig {
    /// Job URLs, files of jobs, or `-` (stdin), in order.
    pub sources: Vec<String>,
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
        Ok(EnqueueConfig {
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
