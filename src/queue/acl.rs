//! Least privilege, checked at start: each role (a writer, a popper, a
//! lease holder, a job worker, the lock) asks Redis, in one script, whether
//! its user may run every command it will run on the keys it will touch
//! (`redis.acl_check_cmd`, Redis 7). A rule missing from the user's ACL then
//! ends the run before any work, with one line naming the command and key,
//! rather than mid-run after pages were fetched or items popped. Redis
//! before 7 has no such check; the script then passes, and a refusal shows
//! up at the command itself, named the same way.

use crate::error::Error;
use crate::queue::keys;
use crate::queue::link::Link;

/// ARGV: groups of `n, command, args...`. Returns the first group the user
/// may not run, as an error naming it; `ok` otherwise.
const PREFLIGHT: &str = r"
if not redis.acl_check_cmd then return 'unchecked' end
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = {}
  for j = 1, n do args[j] = ARGV[i + j] end
  if not redis.acl_check_cmd(unpack(args)) then
    local shown = args[1]
    if n > 1 then shown = shown .. ' ' .. args[2] end
    return redis.error_reply('NOPERM this user may not run ' .. shown .. ' (grant the command and key pattern; see the ACL rules in docs/production.md)')
  end
  i = i + n + 1
end
return 'ok'";

/// Every role runs scripts.
const EVAL: [&str; 3] = ["EVAL", "return 1", "0"];

/// The commands (with sample arguments) a role will run.
#[derive(Debug, Default)]
pub struct Needs(Vec<Vec<String>>);

impl Needs {
    /// Adds one command with its arguments.
    fn add(&mut self, words: &[&str]) -> &mut Needs {
        self.0.push(words.iter().map(|w| w.to_string()).collect());
        self
    }

    /// The producer's writer on shard list `list` (its seen set is opened,
    /// and so checked, when the writer connects). `replicated`: on a
    /// cluster or behind Sentinel it also waits for a replica (INFO, WAIT).
    pub fn writer(&mut self, list: &str, replicated: bool) -> &mut Needs {
        let marker = keys::writer_marker(list, "check");
        self.add(&EVAL)
            .add(&["LPUSH", list, "x"])
            .add(&["SET", &marker, "1", "EX", "3600"])
            .add(&["GET", &marker])
            .add(&["DEL", &marker]);
        if replicated {
            self.add(&["INFO", "replication"])
                .add(&["WAIT", "1", "1000"]);
        }
        self
    }

    /// A BRPOP consumer of `list`, with its dead letters.
    pub fn popper(&mut self, list: &str) -> &mut Needs {
        self.add(&EVAL)
            .add(&["BRPOP", list, "1"])
            .add(&["RPOP", list, "1"])
            .add(&["RPUSH", list, "x"])
            .add(&["LPUSH", &keys::dead(list), "x"])
    }

    /// A lease holder `id` taking batches from `list` (`--reliable`,
    /// `--jobs`), recovering dead holders and dead-lettering.
    pub fn holder(&mut self, list: &str, id: &str) -> &mut Needs {
        let batch = keys::batch_prefix(list, id, 0) + "1";
        let (batches, holders) = (keys::batches(list, id), keys::holders(list));
        let beat = keys::heartbeat(list, id);
        self.add(&EVAL)
            .add(&["BLMOVE", list, &batch, "RIGHT", "LEFT", "1"])
            .add(&["LMOVE", &batch, list, "LEFT", "RIGHT"])
            .add(&["SADD", &batches, &batch])
            .add(&["SREM", &batches, &batch])
            .add(&["SMEMBERS", &batches])
            .add(&["SET", &beat, "1", "EX", "10"])
            .add(&["DEL", &beat])
            .add(&["EXISTS", &beat])
            .add(&["SADD", &holders, id])
            .add(&["SREM", &holders, id])
            .add(&["SMEMBERS", &holders])
            .add(&["LLEN", &batch])
            .add(&["DEL", &batch])
            .add(&["LPUSH", &keys::dead(list), "x"])
    }

    /// What a job worker adds to holding its job list `jobs`.
    pub fn job_worker(&mut self, jobs: &str, id: &str) -> &mut Needs {
        let batch = keys::batch_prefix(jobs, id, 0) + "1";
        let acked = keys::job_acked(&batch);
        let attempts = keys::job_attempts(jobs);
        self.add(&["LINDEX", &batch, "0"])
            .add(&["RPOP", &batch])
            .add(&["LPUSH", jobs, "x"])
            .add(&["INCR", &keys::jobs_done(jobs)])
            .add(&["HINCRBY", &attempts, "x", "1"])
            .add(&["HDEL", &attempts, "x"])
            .add(&["SET", &acked, "1", "EX", "3600"])
            .add(&["ZADD", &keys::jobs_delayed(jobs), "1", "x"])
            .add(&["ZRANGEBYSCORE", &keys::jobs_delayed(jobs), "0", "1"])
            .add(&["ZREM", &keys::jobs_delayed(jobs), "x"])
            .add(&["ZRANGEBYSCORE", &keys::jobs_scheduled(jobs), "0", "1"])
            .add(&["ZREM", &keys::jobs_scheduled(jobs), "x"])
            .add(&["TIME"])
            .add(&["EXISTS", &acked])
            .add(&["DEL", &acked])
    }

    /// The run lock `name`: take, renew, read and release it.
    pub fn lock(&mut self, name: &str) -> &mut Needs {
        let key = keys::lock(name);
        self.add(&EVAL)
            .add(&["SET", &key, "t", "NX", "PX", "1000"])
            .add(&["PEXPIRE", &key, "1000"])
            .add(&["GET", &key])
            .add(&["DEL", &key])
    }
}

/// Asks Redis whether this user may run everything `needs` lists; the
/// first refusal is the error (a `NOPERM` that names the command and key).
pub fn check(link: &mut Link, needs: &Needs) -> Result<(), Error> {
    let mut argv: Vec<String> = Vec::new();
    for words in &needs.0 {
        argv.push(words.len().to_string());
        argv.extend(words.iter().cloned());
    }
    link.call("check this user's ACL", |c| {
        redis::cmd("EVAL")
            .arg(PREFLIGHT)
            .arg(0)
            .arg(&argv)
            .query::<String>(c)
    })
    .map(drop)
}
