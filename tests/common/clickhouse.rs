//! A private ClickHouse server for tests (Debian's `clickhouse-server`): its
//! own config, data directory and ports on 127.0.0.1, killed on drop. SQL
//! goes over its HTTP interface, as `consume --post` does.

use super::free_port;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct ClickHouse {
    /// Its HTTP port.
    pub http: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl ClickHouse {
    /// Writes a config and starts the server (retried on other ports).
    pub fn start() -> ClickHouse {
        let mut ch = ClickHouse {
            http: 0,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        for _ in 0..5 {
            let (http, tcp) = (free_port(), free_port());
            write_config(ch.dir.path(), http, tcp);
            ch.http = http;
            ch.spawn();
            if ch.wait_ready() {
                return ch;
            }
            ch.kill();
        }
        panic!("clickhouse-server did not start on any of 5 port pairs");
    }

    fn spawn(&mut self) {
        let child = Command::new("clickhouse-server")
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("clickhouse-server not installed? run scripts/test.sh");
        self.child = Some(child);
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = &mut self.child {
                if c.try_wait().ok().flatten().is_some() {
                    return false;
                }
            }
            if self.try_query("SELECT 1").is_ok_and(|r| r.trim() == "1") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Kills the server at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        assert!(self.wait_ready(), "clickhouse-server did not restart");
    }

    /// `http://127.0.0.1:PORT/?query=INSERT INTO table FORMAT JSONEachRow`.
    pub fn insert_url(&self, table: &str) -> String {
        format!(
            "http://127.0.0.1:{}/?query=INSERT%20INTO%20{table}%20FORMAT%20JSONEachRow",
            self.http
        )
    }

    /// Runs SQL; its answer (TSV).
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn try_query(&self, sql: &str) -> Result<String, String> {
        let url = format!("http://127.0.0.1:{}/", self.http);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        let mut resp = agent.post(&url).send(sql).map_err(|e| e.to_string())?;
        let mut text = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
        match resp.status().as_u16() {
            200 => Ok(text),
            s => Err(format!("HTTP {s}: {text}")),
        }
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_config(dir: &Path, http: u16, tcp: u16) {
    let d = dir.display();
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size>
  <uncompressed_cache_size>8589934</uncompressed_cache_size>
</yandex>
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("users.xml"),
        r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"#,
    )
    .unwrap();
}
