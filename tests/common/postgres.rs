//! A private PostgreSQL for tests: its own data directory (initdb, trust
//! authentication on loopback) and port, run as the `postgres` user when
//! the tests run as root (PostgreSQL refuses root), stopped on drop.

use super::free_port;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Postgres {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

/// The directory of PostgreSQL's server programs (initdb, pg_ctl).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL not installed? run scripts/test.sh")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().expect("no initdb under /usr/lib/postgresql")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a server program as the user PostgreSQL accepts.
fn as_server_user(program: &Path, args: &[&str]) -> Output {
    let mut cmd = match is_root() {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        false => Command::new(program),
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run a PostgreSQL program")
}

impl Postgres {
    /// initdb, then pg_ctl start on a free port (retried if it was taken).
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the data directory to postgres");
        }
        let data_s = data.to_str().unwrap().to_string();
        let out = as_server_user(
            &bin.join("initdb"),
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..5 {
            let port = free_port();
            let opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.path().display()
            );
            let log = format!("{}/server.log", dir.path().display());
            let out = as_server_user(
                &bin.join("pg_ctl"),
                &[
                    "-D", &data_s, "-o", &opts, "-l", &log, "-w", "-t", "30", "start",
                ],
            );
            if out.status.success() {
                let pg = Postgres {
                    port,
                    data,
                    _dir: dir,
                };
                pg.wait_ready();
                return pg;
            }
        }
        panic!("PostgreSQL did not start on any of 5 ports");
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL with psql; its output without headers, trimmed.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(self.url())
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = Command::new("psql")
                .arg(self.url())
                .args(["-X", "-q", "-c", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "PostgreSQL never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_string();
        let _ = as_server_user(
            &bin_dir().join("pg_ctl"),
            &["-D", &data, "-m", "immediate", "-w", "-t", "10", "stop"],
        );
    }
}
