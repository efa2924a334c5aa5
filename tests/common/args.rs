//! A builder for qpipe argument lists, so a test names only the flags that
//! matter to it, and runs or spawns them with the harness's usual settings
//! (REDIS_URL cleared, stdin empty, output captured, bounded waits).

use super::{qpipe_env, Run, QPIPE};
use std::fmt::Display;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// One qpipe command line, in the order its parts were added.
#[derive(Clone, Debug)]
pub struct Args(Vec<String>);

impl Args {
    /// `qpipe SUB`: a bare subcommand, flags to follow.
    pub fn new(sub: &str) -> Args {
        Args(vec![sub.to_string()])
    }

    /// `produce --redis REDIS --start-url START`.
    pub fn produce(redis: &str, start: &str) -> Args {
        Args::new("produce").redis(redis).start_url(start)
    }

    /// `consume --redis REDIS`.
    pub fn consume(redis: &str) -> Args {
        Args::new("consume").redis(redis)
    }

    /// One more word, as is (a positional argument or a bare flag).
    pub fn arg(mut self, a: impl Display) -> Args {
        self.0.push(a.to_string());
        self
    }

    /// A bare flag, only when `cond` holds.
    pub fn arg_if(self, cond: bool, a: &str) -> Args {
        if cond {
            self.arg(a)
        } else {
            self
        }
    }

    /// Several words, as is.
    pub fn args<I: IntoIterator<Item = T>, T: Display>(mut self, words: I) -> Args {
        self.0.extend(words.into_iter().map(|w| w.to_string()));
        self
    }

    /// `FLAG VALUE`.
    pub fn opt(self, flag: &str, value: impl Display) -> Args {
        self.arg(flag).arg(value)
    }

    /// `FLAG PATH` (the path as UTF-8 text).
    pub fn path(self, flag: &str, p: &Path) -> Args {
        let p = p.to_str().expect("UTF-8 path").to_string();
        self.opt(flag, p)
    }

    /// `--redis URL`.
    pub fn redis(self, url: &str) -> Args {
        self.opt("--redis", url)
    }

    /// `--start-url URL`.
    pub fn start_url(self, url: &str) -> Args {
        self.opt("--start-url", url)
    }

    /// `--threads N`.
    pub fn threads(self, n: impl Display) -> Args {
        self.opt("--threads", n)
    }

    /// `--shards N`.
    pub fn shards(self, n: impl Display) -> Args {
        self.opt("--shards", n)
    }

    /// `--batch-size N`.
    pub fn batch_size(self, n: impl Display) -> Args {
        self.opt("--batch-size", n)
    }

    /// `--out PATH`.
    pub fn out(self, p: &Path) -> Args {
        self.path("--out", p)
    }

    /// `--stats-json PATH`.
    pub fn stats_json(self, p: &Path) -> Args {
        self.path("--stats-json", p)
    }

    /// `--drain --idle-timeout SECS`: stop once the queue stays empty.
    pub fn drain(self, idle: impl Display) -> Args {
        self.arg("--drain").opt("--idle-timeout", idle)
    }

    /// The words, for `qpipe`, `spawn` and friends.
    pub fn strs(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    /// Runs it to the end (cwd `dir` if given), like `common::qpipe`.
    pub fn run(&self, dir: Option<&Path>) -> Run {
        qpipe_env(&self.strs(), dir, &[])
    }

    /// Runs it with extra environment variables, like `common::qpipe_env`.
    pub fn run_env(&self, dir: Option<&Path>, env: &[(&str, &str)]) -> Run {
        qpipe_env(&self.strs(), dir, env)
    }

    /// Runs it and asserts the exit code, failing with the whole run
    /// (command, stdout and stderr) otherwise.
    pub fn run_expect(&self, dir: Option<&Path>, code: i32) -> Run {
        let run = self.run(dir);
        assert_eq!(run.code, code, "{run}");
        run
    }

    /// Starts it in the background like `common::spawn` (output piped).
    pub fn spawn(&self, dir: Option<&Path>) -> Child {
        super::spawn(&self.strs(), dir)
    }

    /// Starts it with a pipe to its stdin, stdout discarded and stderr
    /// piped (cwd `dir` if given), for input fed by the test.
    pub fn spawn_with_stdin(&self, dir: Option<&Path>) -> Child {
        let mut cmd = self.command();
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qpipe")
    }

    /// A `Command` for it with REDIS_URL cleared, stdio left to the caller.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(QPIPE);
        cmd.args(&self.0).env_remove("REDIS_URL");
        cmd
    }
}
