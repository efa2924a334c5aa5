//! `--metrics` and `--stats-every`, shared by `produce` and `consume`.

use super::{usage, MonitorConfig};
use crate::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

impl MonitorConfig {
    /// Validates `--metrics ADDR` and `--stats-every S`. Without
    /// `--stats-every`, the line comes every 60 s when stderr is not a
    /// terminal (cron, systemd, containers) and never when it is: the
    /// progress line shows the same there.
    pub fn new(metrics: Option<String>, stats_every: Option<u64>) -> Result<MonitorConfig, Error> {
        let metrics = match metrics {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().map_err(|_| {
                usage(format!(
                    "--metrics {a:?} is not an IP:PORT address (use e.g. 127.0.0.1:9187, or port 0 for any free port)"
                ))
            })?),
        };
        let every = stats_every.unwrap_or(match crate::run::progress::wanted() {
            true => 0,
            false => 60,
        });
        Ok(MonitorConfig {
            metrics,
            stats_every: (every > 0).then(|| Duration::from_secs(every)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        let m = MonitorConfig::new(Some("127.0.0.1:0".into()), Some(0)).unwrap();
        assert_eq!(m.metrics, Some("127.0.0.1:0".parse().unwrap()));
        assert_eq!(m.stats_every, None);
        let m = MonitorConfig::new(None, Some(5)).unwrap();
        assert_eq!(m.stats_every, Some(Duration::from_secs(5)));
        let e = MonitorConfig::new(Some("localhost".into()), None).unwrap_err();
        assert!(e.to_string().contains("--metrics \"localhost\""), "{e}");
    }
}
