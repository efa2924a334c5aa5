//! Every Redis key qpipe creates, named in one place: the builders below
//! are the only code that spells a key, and `REGISTRY` says of each kind
//! its type, how long it lives, who writes it and who deletes it. `status`
//! and `recover` read the registry; the README prints it (a test
//! checks that the two agree), so an operator knows what may be deleted.
//!
//! Names: `KEY` is a list (`--key`, or a shard of it: `{KEY:0}`..), `J` a
//! job list (`--jobs`), `ID` a lease holder (`host:pid:nonce`), `NAME` a
//! shared frontier, `SEEN` a `--seen-key`, `LOCK` a `--lock` name.

/// One kind of key: what an operator reads before deleting one.
#[derive(Debug)]
pub struct KeyKind {
    /// The name, with the placeholders above.
    pub pattern: &'static str,
    /// The Redis type.
    pub kind: &'static str,
    /// How long it lives.
    pub lifetime: &'static str,
    /// Who writes it, and who deletes it.
    pub owner: &'static str,
}

/// Every key qpipe creates.
pub const REGISTRY: &[KeyKind] = &[
    KeyKind {
        pattern: "KEY",
        kind: "list",
        lifetime: "kept",
        owner: "the queue: `produce`/`push` LPUSH, `consume` pops; never deleted by qpipe",
    },
    KeyKind {
        pattern: "{KEY:i} or {KEY}",
        kind: "list",
        lifetime: "kept",
        owner: "shards of the queue under `--shards N` (or on a cluster); as KEY",
    },
    KeyKind {
        pattern: "KEY:dead",
        kind: "list",
        lifetime: "kept",
        owner: "dead letters: `consume` LPUSHes poison items; `qpipe dead` lists, re-queues and deletes them",
    },
    KeyKind {
        pattern: "KEY:writer:RUN",
        kind: "string",
        lifetime: "one `produce`/`push` run",
        owner: "the writer's last landed batch number (TTL 1 h); deleted at the end of its run (a crashed run's expires: safe to delete when no run RUN is alive)",
    },
    KeyKind {
        pattern: "KEY:stats",
        kind: "hash",
        lifetime: "kept",
        owner: "items pushed (`in`) and popped (`out`), ever: each `produce` and `consume` run adds its counts about once a second (the dashboard's rates); safe to delete (the counts restart)",
    },
    KeyKind {
        pattern: "KEY:consumers",
        kind: "set",
        lifetime: "while a lease holder is registered",
        owner: "lease holders (`consume --reliable`, `produce --jobs` on J); SREM at release or recovery",
    },
    KeyKind {
        pattern: "KEY:consumer:ID",
        kind: "string",
        lifetime: "TTL `--heartbeat-ttl`, renewed every third",
        owner: "the holder's heartbeat; deleted at release; once gone, `recover` or any holder puts ID's batches back",
    },
    KeyKind {
        pattern: "KEY:batches:ID",
        kind: "set",
        lifetime: "while ID holds batches",
        owner: "the names of ID's batch lists; each name dropped as its batch is acknowledged or put back",
    },
    KeyKind {
        pattern: "KEY:processing:ID:T:SEQ",
        kind: "list",
        lifetime: "while its batch is held",
        owner: "one taken batch (thread T); deleted by its ack, emptied back onto KEY by release or recovery; never delete by hand (its items are in it)",
    },
    KeyKind {
        pattern: "KEY:processing:ID",
        kind: "list",
        lifetime: "until recovered",
        owner: "an older qpipe's processing list; recovery puts its items back",
    },
    KeyKind {
        pattern: "J",
        kind: "list",
        lifetime: "kept",
        owner: "crawl jobs (default `qpipe:jobs`): `enqueue` LPUSHes, `produce --jobs` takes; also has J:consumers, J:consumer:ID, J:batches:ID and J:processing:ID:0:SEQ as KEY does",
    },
    KeyKind {
        pattern: "J:processing:ID:0:SEQ:acked",
        kind: "string",
        lifetime: "TTL 1 h",
        owner: "a job's ack marker, so a retried ack counts once; deleted after the ack",
    },
    KeyKind {
        pattern: "J:done",
        kind: "string (counter)",
        lifetime: "kept",
        owner: "acknowledged jobs, INCR per job; safe to delete (the count restarts)",
    },
    KeyKind {
        pattern: "J:delayed",
        kind: "sorted set",
        lifetime: "each member until its retry is due",
        owner: "jobs put back after a failure or a stop, waiting out a delay that doubles per attempt (`--job-backoff`); any worker moves due ones to J",
    },
    KeyKind {
        pattern: "J:scheduled",
        kind: "sorted set",
        lifetime: "each member until it is due",
        owner: "jobs scheduled by `enqueue --in/--at`; any worker moves due ones to J",
    },
    KeyKind {
        pattern: "J:dead",
        kind: "list",
        lifetime: "kept",
        owner: "jobs that are not jobs, point at a private address, or went back more than `--job-attempts` times; `qpipe dead --jobs J` lists, re-queues and deletes them",
    },
    KeyKind {
        pattern: "J:attempts",
        kind: "hash",
        lifetime: "kept; a field lives until its job is acknowledged or set aside",
        owner: "how often each job went back, by SHA-1 of its bytes",
    },
    KeyKind {
        pattern: "SEEN or {KEY:i}:seen:SEEN",
        kind: "sorted set",
        lifetime: "members older than `--seen-ttl` are trimmed at each run's start",
        owner: "`--seen-key` item fingerprints; delete to push every item again",
    },
    KeyKind {
        pattern: "SEEN:bloom, SEEN:bloom:N, SEEN:bloom:bf",
        kind: "string / Bloom filter",
        lifetime: "kept",
        owner: "the same, under `--dedup bloom` (parameters, pieces, or a RedisBloom filter)",
    },
    KeyKind {
        pattern: "{NAME}:frontier",
        kind: "sorted set",
        lifetime: "until the crawl ends or `--reset-frontier`",
        owner: "`--shared-frontier NAME`: URLs waiting to be fetched",
    },
    KeyKind {
        pattern: "{NAME}:seen",
        kind: "set or Bloom filter",
        lifetime: "until `--reset-frontier`",
        owner: "URLs the shared crawl has seen",
    },
    KeyKind {
        pattern: "{NAME}:leases",
        kind: "sorted set",
        lifetime: "each entry `--lease` seconds",
        owner: "URLs taken by a producer and not yet done",
    },
    KeyKind {
        pattern: "{NAME}:items",
        kind: "as SEEN",
        lifetime: "until `--reset-frontier`",
        owner: "item fingerprints of the shared crawl (per shard: {KEY:i}:seen:{NAME}:items)",
    },
    KeyKind {
        pattern: "{NAME}:take:NONCE:N",
        kind: "string",
        lifetime: "TTL `--lease`",
        owner: "a take token, so a retried take of the shared frontier happens once",
    },
    KeyKind {
        pattern: "qpipe:lock:LOCK",
        kind: "string",
        lifetime: "TTL `--lock-ttl`, renewed every third",
        owner: "the `--lock` holder's token; released at exit (delete only if its holder is dead)",
    },
];

/// The list keys of a queue split into `shards`. One unsharded list on one
/// server keeps the plain key (wire-compatible); on a cluster every shard gets
/// its own hash tag, so its processing lists, dead letters and markers share
/// its slot and different shards spread over the nodes.
pub fn shard_keys(key: &str, shards: usize, cluster: bool) -> Vec<String> {
    match (shards, cluster) {
        (1, false) => vec![key.to_string()],
        (1, true) if key.contains('{') => vec![key.to_string()],
        (1, true) => vec![format!("{{{key}}}")],
        (n, _) => (0..n).map(|i| format!("{{{key}:{i}}}")).collect(),
    }
}

/// The registry entry named `pattern`.
fn kind(pattern: &str) -> Option<&'static KeyKind> {
    REGISTRY.iter().find(|k| k.pattern == pattern)
}

/// What a name passed to `classify` is the start of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A queue (or one shard of it): `KEY`.
    Queue,
    /// A crawl-job list: `J`.
    Jobs,
    /// A `--seen-key` on a lone list: `SEEN` and its Bloom keys.
    Seen,
}

/// Which kind of key `name` is, as a key of `base` of `family`; `None`:
/// qpipe does not make such a key.
pub fn classify(name: &str, base: &str, family: Family) -> Option<&'static KeyKind> {
    let rest = name.strip_prefix(base)?;
    let parts: Vec<&str> = rest.split(':').collect();
    if family == Family::Seen {
        return seen_kind(&parts);
    }
    let pattern = match (parts.as_slice(), family) {
        ([""], Family::Jobs) => "J",
        ([""], _) => "KEY",
        (["", "done"], Family::Jobs) => "J:done",
        (["", "delayed"], Family::Jobs) => "J:delayed",
        (["", "scheduled"], Family::Jobs) => "J:scheduled",
        (["", "attempts"], Family::Jobs) => "J:attempts",
        (["", "dead"], Family::Jobs) => "J:dead",
        (["", "dead"], _) => "KEY:dead",
        (["", "consumers"], _) => "KEY:consumers",
        (["", "stats"], Family::Queue) => "KEY:stats",
        (["", "writer", _], _) => "KEY:writer:RUN",
        (["", "seen", tail @ ..], Family::Queue) => return seen_kind(&seen_tail(tail)),
        (["", "consumer", _, _, _], _) => "KEY:consumer:ID",
        (["", "batches", _, _, _], _) => "KEY:batches:ID",
        (["", "processing", _, _, _], _) => "KEY:processing:ID",
        (["", "processing", _, _, _, _, _], _) => "KEY:processing:ID:T:SEQ",
        (["", "processing", _, _, _, _, _, "acked"], Family::Jobs) => "J:processing:ID:0:SEQ:acked",
        _ => return None,
    };
    kind(pattern)
}

/// A shard's seen key `{KEY:i}:seen:SEEN...`, from the parts after `seen`,
/// as the parts of a lone seen key after its name: `[""]` for the set,
/// `["", "bloom", ..]` for its Bloom keys.
fn seen_tail<'a>(tail: &[&'a str]) -> Vec<&'a str> {
    match tail.iter().position(|p| *p == "bloom") {
        Some(i) => [&[""][..], &tail[i..]].concat(),
        None => vec![""],
    }
}

/// The seen set, or one of its Bloom keys.
fn seen_kind(parts: &[&str]) -> Option<&'static KeyKind> {
    match parts {
        [""] => kind("SEEN or {KEY:i}:seen:SEEN"),
        ["", "bloom"] | ["", "bloom", _] => kind("SEEN:bloom, SEEN:bloom:N, SEEN:bloom:bf"),
        _ => None,
    }
}

/// The dead-letter list of `list` (consume's poison items).
pub fn dead(list: &str) -> String {
    format!("{list}:dead")
}

/// The writer's landed-batch marker for run `run` on `list`.
pub fn writer_marker(list: &str, run: &str) -> String {
    format!("{list}:writer:{run}")
}

/// The fleet's counts of items pushed onto and popped from the queue
/// `key` (the queue's name, not a shard's).
pub fn stats(key: &str) -> String {
    format!("{key}:stats")
}

/// The set of lease holders registered on `list`.
pub fn holders(list: &str) -> String {
    format!("{list}:consumers")
}

/// The heartbeat of holder `id` on `list`.
pub fn heartbeat(list: &str, id: &str) -> String {
    format!("{list}:consumer:{id}")
}

/// The set of batch list names holder `id` holds on `list`.
pub fn batches(list: &str, id: &str) -> String {
    format!("{list}:batches:{id}")
}

/// The start of the batch list names of thread `thread` of `id`; a
/// sequence number follows.
pub fn batch_prefix(list: &str, id: &str, thread: usize) -> String {
    format!("{list}:processing:{id}:{thread}:")
}

/// The one processing list of `id` that an older qpipe kept.
pub fn legacy_processing(list: &str, id: &str) -> String {
    format!("{list}:processing:{id}")
}

/// The ack marker of a job's batch list.
pub fn job_acked(batch: &str) -> String {
    format!("{batch}:acked")
}

/// Jobs put back, waiting out their retry delay.
pub fn jobs_delayed(jobs: &str) -> String {
    format!("{jobs}:delayed")
}

/// Jobs scheduled for later (`enqueue --in/--at`).
pub fn jobs_scheduled(jobs: &str) -> String {
    format!("{jobs}:scheduled")
}

/// The counter of acknowledged jobs.
pub fn jobs_done(jobs: &str) -> String {
    format!("{jobs}:done")
}

/// How often each job went back, by the SHA-1 of its bytes.
pub fn job_attempts(jobs: &str) -> String {
    format!("{jobs}:attempts")
}

/// The run lock `name`.
pub fn lock(name: &str) -> String {
    format!("qpipe:lock:{name}")
}

/// The item seen set of each shard list, in shard order.
///
/// A lone list on one server keeps the user's name as is. Shards (and a
/// cluster) get one set per shard, `{shard}:seen:{seen}`, under the shard's
/// hash tag so the check-and-push script stays in one slot.
pub fn seen_sets(seen: &str, shard_keys: &[String], cluster: bool) -> Vec<String> {
    if shard_keys.len() == 1 && !cluster {
        return vec![seen.to_string()];
    }
    shard_keys
        .iter()
        .map(|k| format!("{k}:seen:{seen}"))
        .collect()
}

/// The parameters key of a Bloom-filter seen key.
pub fn bloom(seen: &str) -> String {
    format!("{seen}:bloom")
}

/// Piece `i` of a Bloom-filter seen key.
pub fn bloom_piece(seen: &str, i: u64) -> String {
    format!("{seen}:bloom:{i}")
}

/// The RedisBloom filter of a seen key.
pub fn bloom_module(seen: &str) -> String {
    format!("{seen}:bloom:bf")
}

/// A shared frontier's waiting URLs, seen URLs and leases.
pub fn frontier(name: &str) -> [String; 3] {
    [
        format!("{{{name}}}:frontier"),
        format!("{{{name}}}:seen"),
        format!("{{{name}}}:leases"),
    ]
}

/// The start of a shared frontier's take tokens for one process.
pub fn frontier_take_prefix(name: &str, nonce: u64) -> String {
    format!("{{{name}}}:take:{nonce:016x}:")
}

/// The seen-set name a shared frontier's producers deduplicate items by.
pub fn frontier_items(name: &str) -> String {
    format!("{{{name}}}:items")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_set_per_shard_except_a_lone_list_on_one_server() {
        assert_eq!(seen_sets("S", &keys(&["Q"]), false), ["S"]);
        assert_eq!(seen_sets("S", &keys(&["{Q}"]), true), ["{Q}:seen:S"]);
        assert_eq!(
            seen_sets(&frontier_items("n"), &keys(&["{Q:0}", "{Q:1}"]), false),
            ["{Q:0}:seen:{n}:items", "{Q:1}:seen:{n}:items"]
        );
    }

    #[test]
    fn shard_keys_keep_the_plain_key_when_unsharded() {
        assert_eq!(shard_keys("Q", 1, false), ["Q"]);
        assert_eq!(shard_keys("Q", 1, true), ["{Q}"]);
        assert_eq!(shard_keys("{Q}", 1, true), ["{Q}"]);
        assert_eq!(shard_keys("Q", 3, false), ["{Q:0}", "{Q:1}", "{Q:2}"]);
    }

    #[test]
    fn keys_of_a_list_are_classified_by_name() {
        let of = |n: &str| classify(n, "Q", Family::Queue).map(|k| k.pattern);
        let job = |n: &str| classify(n, "J", Family::Jobs).map(|k| k.pattern);
        let seen = |n: &str| classify(n, "S", Family::Seen).map(|k| k.pattern);
        assert_eq!(of("Q"), Some("KEY"));
        assert_eq!(of("Q:dead"), Some("KEY:dead"));
        assert_eq!(of(&heartbeat("Q", "h:1:n")), Some("KEY:consumer:ID"));
        assert_eq!(of(&batches("Q", "h:1:n")), Some("KEY:batches:ID"));
        let batch = batch_prefix("Q", "h:1:n", 2) + "7";
        assert_eq!(of(&batch), Some("KEY:processing:ID:T:SEQ"));
        assert_eq!(of(&job_acked(&batch)), None);
        let job_batch = batch_prefix("J", "h:1:n", 0) + "7";
        assert_eq!(
            job(&job_acked(&job_batch)),
            Some("J:processing:ID:0:SEQ:acked")
        );
        assert_eq!(job("J"), Some("J"));
        assert_eq!(job(&jobs_done("J")), Some("J:done"));
        assert_eq!(job(&dead("J")), Some("J:dead"));
        let bloom_pattern = Some("SEEN:bloom, SEEN:bloom:N, SEEN:bloom:bf");
        assert_eq!(seen("S"), Some("SEEN or {KEY:i}:seen:SEEN"));
        assert_eq!(seen(&bloom_piece("S", 3)), bloom_pattern);
        assert_eq!(seen(&bloom_module("S")), bloom_pattern);
        assert_eq!(seen("S:other"), None);
        let shard_seen = &seen_sets("S", &["{Q:0}".into()], true)[0];
        let in_shard = |n: &str| classify(n, "{Q:0}", Family::Queue).map(|k| k.pattern);
        assert_eq!(in_shard(shard_seen), Some("SEEN or {KEY:i}:seen:SEEN"));
        assert_eq!(in_shard(&bloom(shard_seen)), bloom_pattern);
        assert_eq!(
            of(&legacy_processing("Q", "h:1:n")),
            Some("KEY:processing:ID")
        );
        assert_eq!(of(&writer_marker("Q", "r")), Some("KEY:writer:RUN"));
        assert_eq!(of(&jobs_done("Q")), None);
        assert_eq!(of("Q:other"), None);
        assert_eq!(of("QQ"), None);
    }

    /// Each builder spells a name the registry lists, so the registry (and
    /// the docs printed from it) cannot miss a key the code creates.
    #[test]
    fn every_builder_matches_a_registered_pattern() {
        let shown = |name: String| {
            name.replace("{Q:0}", "{KEY:i}")
                .replace("h:1:n", "ID")
                .replace("Q", "KEY")
        };
        let built = [
            shown(dead("Q")),
            shown(writer_marker("Q", "RUN")),
            shown(holders("Q")),
            shown(stats("Q")),
            shown(heartbeat("Q", "h:1:n")),
            shown(batches("Q", "h:1:n")),
            shown(batch_prefix("Q", "h:1:n", 0)).replace(":0:", ":T:") + "SEQ",
            shown(legacy_processing("Q", "h:1:n")),
            job_acked("J:processing:ID:0:SEQ"),
            jobs_done("J"),
            jobs_delayed("J"),
            jobs_scheduled("J"),
            dead("J"),
            job_attempts("J"),
            lock("LOCK"),
            frontier("NAME")[0].clone(),
            frontier("NAME")[1].clone(),
            frontier("NAME")[2].clone(),
            frontier_items("NAME"),
        ];
        for name in built {
            assert!(
                REGISTRY.iter().any(|k| k.pattern == name),
                "{name} is not in the registry"
            );
        }
        let docs = include_str!("../../README.md");
        for k in REGISTRY {
            let row = format!(
                "| `{}` | {} | {} | {} |",
                k.pattern, k.kind, k.lifetime, k.owner
            );
            assert!(docs.contains(&row), "README.md lacks the row:\n{row}");
        }
    }
}
