//! Command-line syntax (argh). These structs stay dumb: `config` validates them.

use argh::FromArgs;

/// qpipe: crawl pages into a Redis list and drain it into a file, fast.
#[derive(FromArgs, Debug)]
#[argh(
    help_triggers("-h", "--help", "help"),
    note = "Environment: REDIS_URL is the default for --redis. produce also reads HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (see qpipe produce --help).",
    error_code(0, "done"),
    error_code(1, "fatal error: Redis, the sink, or the network setup"),
    error_code(2, "bad usage: a flag, URL or value is wrong"),
    error_code(
        3,
        "finished, but some pages, items or input lines failed, or too few items"
    ),
    error_code(4, "another run holds the --lock, or this run lost it"),
    error_code(130, "stopped by SIGINT (a second SIGINT exits at once)"),
    error_code(143, "stopped by SIGTERM (a second SIGTERM exits at once)")
)]
pub struct Args {
    #[argh(subcommand)]
    pub cmd: Command,
}

/// The subcommands.
#[derive(FromArgs, Debug)]
#[argh(subcommand)]
#[allow(clippy::large_enum_variant)] // Built once at start-up; boxing would buy nothing.
pub enum Command {
    Produce(ProduceArgs),
    Consume(ConsumeArgs),
    Push(PushArgs),
    Enqueue(EnqueueArgs),
    Recover(RecoverArgs),
    Status(StatusArgs),
    Spec(SpecArgs),
    Peek(PeekArgs),
    Dead(DeadArgs),
    DemoSite(DemoSiteArgs),
    Dashboard(DashboardArgs),
}

/// crawl a site with a spider spec and push its items, one JSON object
/// each, onto a Redis list (built-in spec: quotes.toscrape.com).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "produce",
    help_triggers("-h", "--help", "help"),
    note = "Each run keeps one cookie jar: Set-Cookie from every reply (redirects too) is sent back only to the hosts and paths its Domain and Path allow. A spec's \"headers\" are sent with every request; its \"login\" form is filled and submitted before the crawl starts, and a refused login exits 1."
)]
pub struct ProduceArgs {
    /// fetcher threads, 1 to 512 (default 8)
    #[argh(option, default = "8")]
    pub threads: usize,
    /// where the crawl starts; repeatable (default: the spec's start_urls,
    /// https://quotes.toscrape.com/ for the built-in spider)
    #[argh(option)]
    pub start_url: Vec<String>,
    /// crawl together with other `produce` processes through the Redis frontier
    /// {NAME}:frontier / :seen / :leases (default: a frontier in this process)
    #[argh(option)]
    pub shared_frontier: Option<String>,
    /// take crawl jobs from this Redis list, one at a time, each leased with
    /// a heartbeat and acknowledged once all its items are pushed (add jobs
    /// with qpipe enqueue); each job is one crawl from its URL, and its items
    /// carry its "meta". Runs until SIGINT/SIGTERM unless --drain. Several
    /// lists in priority order (high,default,low): a job is taken from the
    /// first list that has one
    #[argh(option)]
    pub jobs: Option<String>,
    /// with --jobs: exit 0 once the job list has stayed empty for --idle-timeout
    #[argh(switch)]
    pub drain: bool,
    /// with --jobs --drain: seconds of empty job list that end the run (default 2)
    #[argh(option)]
    pub idle_timeout: Option<f64>,
    /// with --jobs: seconds this worker's heartbeat lives; the job of a worker
    /// that died goes back to the list once it has passed (default 10)
    #[argh(option)]
    pub heartbeat_ttl: Option<u64>,
    /// with --jobs: how many times a job may go back to the list (stopped by
    /// a signal or --max-time, failed, or its worker died) before it is set
    /// aside in JOBS:dead with the reason (default 5)
    #[argh(option)]
    pub job_attempts: Option<u64>,
    /// with --jobs: seconds before a job that failed or was stopped is
    /// retried; the delay doubles with each attempt, up to --job-backoff-max
    /// (default 10; 0 puts jobs back on the list at once)
    #[argh(option)]
    pub job_backoff: Option<f64>,
    /// with --jobs: the longest retry delay, in seconds (default 3600)
    #[argh(option)]
    pub job_backoff_max: Option<f64>,
    /// delete the --shared-frontier (and its item fingerprints) first, to start a new crawl
    #[argh(switch)]
    pub reset_frontier: bool,
    /// seconds a page taken from the shared frontier stays leased (renewed
    /// while it loads); a producer that dies loses its pages to others after
    /// this (default 120)
    #[argh(option, default = "120.0")]
    pub lease_secs: f64,
    /// JSON spider spec (default: the built-in quotes spider; see `qpipe spec --print`)
    #[argh(option)]
    pub spec: Option<String>,
    /// run the spec against another host, such as a staging copy or a local
    /// mirror: the scheme, host and port of every URL the spec names
    /// (start_urls, sitemap_urls, the login url) and of --start-url become
    /// this one's, and allowed_domains becomes its host (e.g.
    /// http://127.0.0.1:8000; default: the spec's own hosts)
    #[argh(option)]
    pub origin: Option<String>,
    /// do not fetch or obey robots.txt (default: obey, including Crawl-delay)
    #[argh(switch)]
    pub ignore_robots: bool,
    /// milliseconds between request starts to the same host; robots.txt
    /// Crawl-delay wins when larger (default 0)
    #[argh(option, default = "0")]
    pub delay_ms: u64,
    /// concurrent requests per host (default: = --threads)
    #[argh(option, default = "0")]
    pub per_host: usize,
    /// adapt each host's delay to its measured latency (Scrapy's
    /// AutoThrottle): delay = latency / --auto-throttle-target, averaged
    /// with the last delay, doubled on 429, 503 and timeouts, never below
    /// --delay-ms or robots.txt's Crawl-delay, never above
    /// --auto-throttle-max-ms
    #[argh(switch)]
    pub auto_throttle: bool,
    /// with --auto-throttle: requests in flight per host to aim at, 0.1 to
    /// 100 (default 1)
    #[argh(option, default = "1.0")]
    pub auto_throttle_target: f64,
    /// with --auto-throttle: the delay before a host's first answer, in ms
    /// (default 1000)
    #[argh(option, default = "1000")]
    pub auto_throttle_start_ms: u64,
    /// with --auto-throttle: the longest delay, in ms (default 60000)
    #[argh(option, default = "60000")]
    pub auto_throttle_max_ms: u64,
    /// base of the exponential retry back-off in ms, with jitter (default 500)
    #[argh(option, default = "500")]
    pub retry_backoff_ms: u64,
    /// do not follow links more than this many hops from a start URL
    /// (default: the spec's max_depth, else no limit)
    #[argh(option)]
    pub max_depth: Option<u32>,
    /// elements nested deeper than this are cut from a page before it is
    /// parsed, as browsers do; counted in elements_cut (default 256)
    #[argh(option, default = "256")]
    pub max_nesting: usize,
    /// most links followed from one page; the rest are dropped and counted in
    /// links_cut (default 10000)
    #[argh(option, default = "10_000")]
    pub max_links_per_page: usize,
    /// most bytes of page parsed at once over all threads (a parsed page
    /// takes about 12 times its size); a larger page is parsed alone, so
    /// this bounds memory on sites with multi-MB pages (default 3145728)
    #[argh(option, default = "3 << 20")]
    pub max_parse_bytes: usize,
    /// most URLs waiting in the frontier; new links found while it is full
    /// are dropped and counted as frontier_full (default 1000000)
    #[argh(option, default = "1_000_000")]
    pub max_queued_urls: usize,
    /// stop fetching new pages once this many items were extracted; every
    /// extracted item is still pushed (default: no limit)
    #[argh(option)]
    pub max_items: Option<u64>,
    /// the Redis URL: redis://[user:pass@]host:port[/db], rediss:// for TLS, redis+cluster://host:port,host:port, or redis+sentinel://host:port,host:port/service[?sentinel_password=...] (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list to push onto (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// stop after fetching this many pages (default: no limit)
    #[argh(option)]
    pub max_pages: Option<u64>,
    /// remember pushed items in this Redis sorted set and never push them again
    /// in later runs (incremental crawls) (default: off)
    #[argh(option)]
    pub seen_key: Option<String>,
    /// forget --seen-key fingerprints after this many days (default: never)
    #[argh(option)]
    pub seen_ttl: Option<f64>,
    /// identify items by this field alone (or url), for --seen-key and
    /// in-run dedup; overrides the spec's "unique" (default: the spec's
    /// "unique"; without one, every item is kept)
    #[argh(option)]
    pub id_field: Option<String>,
    /// how Redis remembers seen URLs (--shared-frontier) and item
    /// fingerprints (--seen-key): "set" is exact, about 72 bytes each;
    /// "bloom" is a Bloom filter, under 4 bytes each at the default
    /// --dedup-error, that skips a new URL or item as already seen with
    /// probability --dedup-error (a false positive). A crawl must keep the
    /// kind it started with (default set)
    #[argh(option, default = "String::from(\"set\")")]
    pub dedup: String,
    /// distinct URLs, and distinct items, each --dedup bloom filter is sized
    /// for; its memory is taken when it is created (36 MB at the defaults),
    /// and past this many the false-positive rate rises. Later runs must give
    /// the same value (default 10000000)
    #[argh(option)]
    pub dedup_capacity: Option<u64>,
    /// the false-positive rate of --dedup bloom at --dedup-capacity: the
    /// chance that a new URL or item is wrongly skipped. Later runs must give
    /// the same value (default 0.000001)
    #[argh(option)]
    pub dedup_error: Option<f64>,
    /// pages of items buffered between fetchers and the Redis writer (default 32 x threads)
    #[argh(option)]
    pub channel_capacity: Option<usize>,
    /// most items sent in one LPUSH (default 1000)
    #[argh(option, default = "1000")]
    pub batch_size: usize,
    /// most bytes sent in one LPUSH; a single larger item still goes alone (default 8388608)
    #[argh(option, default = "8 << 20")]
    pub batch_bytes: usize,
    /// seconds to open an HTTP connection (default 10)
    #[argh(option, default = "10.0")]
    pub connect_timeout: f64,
    /// seconds of silence allowed while reading a response (default 30)
    #[argh(option, default = "30.0")]
    pub read_timeout: f64,
    /// seconds allowed for a whole request, body included (default 60)
    #[argh(option, default = "60.0")]
    pub timeout: f64,
    /// largest response body in bytes; larger pages are skipped (default 10485760)
    #[argh(option, default = "10 * 1024 * 1024")]
    pub max_body: u64,
    /// the User-Agent header (default: a User-Agent in --header or the spec's
    /// headers, else qpipe/<version>)
    #[argh(option)]
    pub user_agent: Option<String>,
    /// send this header with every request, as 'Name: value'; repeatable; wins
    /// over the spec's headers of the same name. Values are never printed. A
    /// Cookie header goes into the cookie jar for the hosts of the start URLs
    /// and the login page only (default: the spec's headers alone)
    #[argh(option)]
    pub header: Vec<String>,
    /// send every request through this proxy, http://[user:pass@]host:port or
    /// https://... (default: $http_proxy/$HTTP_PROXY for http:// URLs and
    /// $https_proxy/$HTTPS_PROXY for https:// URLs, each else $ALL_PROXY).
    /// Hosts in $NO_PROXY (name, .domain, IP, CIDR, or *) go direct, with
    /// --proxy too. Requests are tunnelled with CONNECT; the password is never
    /// printed
    #[argh(option)]
    pub proxy: Option<String>,
    /// also crawl loopback, private and link-local addresses (127.0.0.1,
    /// 10/8, 192.168/16, 169.254/16, ::1, fc00::/7...). Without it, a crawl
    /// connects only to public addresses, checked on every resolved address
    /// and redirect, unless its start URL is itself private; --jobs workers
    /// refuse private job URLs
    #[argh(switch)]
    pub allow_private: bool,
    /// keep every answer in this directory and answer from it on later runs
    /// (see --http-cache-mode); for writing and re-running a spec without
    /// fetching the site again
    #[argh(option)]
    pub http_cache: Option<String>,
    /// with --http-cache: use (answer from the cache, fetch and store what
    /// it lacks), replay (send no request at all; a page not in the cache
    /// fails as not_in_cache) or refresh (fetch and store everything again)
    /// (default use)
    #[argh(option, default = "String::from(\"use\")")]
    pub http_cache_mode: String,
    /// with --http-cache: entries older than this many seconds are fetched
    /// again in use mode (default 0: never)
    #[argh(option, default = "0")]
    pub http_cache_expiry: u64,
    /// seconds to keep retrying Redis during an outage before spilling to a file (default 60)
    #[argh(option, default = "60.0")]
    pub redis_retry_secs: f64,
    /// directory for qpipe-unsent-<time>.jsonl if Redis stays down (default .)
    #[argh(option, default = "String::from(\".\")")]
    pub spill_dir: String,
    /// take this Redis lock for the whole run; if another run holds it, exit 4 at once
    #[argh(option)]
    pub lock: Option<String>,
    /// seconds the --lock lives without renewal, i.e. after a crash (default 30)
    #[argh(option, default = "30")]
    pub lock_ttl: u64,
    /// end the run cleanly after this many seconds, nothing lost (default: no limit)
    #[argh(option)]
    pub max_time: Option<f64>,
    /// exit 3 when at least this many pages failed, or items lacked a
    /// required field; 0 never (default 1)
    #[argh(option, default = "1")]
    pub fail_on_errors: u64,
    /// exit 3 when the run pushed fewer items than this, e.g. because the
    /// site changed its layout (default: off)
    #[argh(option)]
    pub min_items: Option<u64>,
    /// write every failed or skipped URL to this file as JSON Lines (url,
    /// reason, status, from: the page that linked to it, skipped, detail);
    /// the summary lists the first 100 of each (default: off)
    #[argh(option)]
    pub failures: Option<String>,
    /// serve Prometheus /metrics and /healthz over HTTP on this IP:PORT, e.g.
    /// 127.0.0.1:9187; port 0 picks a free port, logged at start (default: off)
    #[argh(option)]
    pub metrics: Option<String>,
    /// log one line of counters every S seconds; 0 never (default 60 when
    /// stderr is not a terminal, else 0); SIGUSR1 logs it once at any time
    #[argh(option)]
    pub stats_every: Option<u64>,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
    /// only print errors and the summary
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print debug lines (every failed page)
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log line format on stderr: text, or json (one object per line with ts, level, msg, target) (default text)
    #[argh(option)]
    pub log_format: Option<String>,
}

/// pop items from a Redis list (BRPOP, FIFO) and append them to a JSON Lines file, or hand each batch to a command (--exec) or an HTTP endpoint (--post).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "consume", help_triggers("-h", "--help", "help"))]
pub struct ConsumeArgs {
    /// popping threads, each with its own connection, 1 to 512 (default 4)
    #[argh(option, default = "4")]
    pub threads: usize,
    /// the Redis URL: redis://[user:pass@]host:port[/db], rediss:// for TLS, redis+cluster://host:port,host:port, or redis+sentinel://host:port,host:port/service[?sentinel_password=...] (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list to pop from (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// JSON Lines file to append to, or - for stdout (default stdout); a name
    /// with {seq} (and optionally {date} {time} {host} {pid}) writes part
    /// files instead, e.g. out/quotes-{date}-{seq}.jsonl.gz (gzipped if .gz)
    #[argh(option)]
    pub out: Option<String>,
    /// the output format: jsonl (each item as popped), or csv (one row per
    /// item with --fields; lists and objects as JSON text in their cell; a
    /// header row at the start of each file or part) (default jsonl)
    #[argh(option, default = "String::from(\"jsonl\")")]
    pub format: String,
    /// for --format csv: the fields of each row, in order, e.g. quote,author,tags
    #[argh(option)]
    pub fields: Option<String>,
    /// publish a part file after this many items (default: no limit)
    #[argh(option)]
    pub part_items: Option<u64>,
    /// publish a part file after this many bytes, before compression
    /// (default 67108864)
    #[argh(option, default = "64 << 20")]
    pub part_bytes: u64,
    /// publish a part file this many seconds after it was started (default 300)
    #[argh(option, default = "300.0")]
    pub part_secs: f64,
    /// run `sh -c CMD` after each part file is published, its path in
    /// $QPIPE_PART (e.g. an upload); a failure ends the run with exit 1
    #[argh(option)]
    pub on_publish: Option<String>,
    /// instead of --out: run `sh -c CMD` per batch, the batch as JSON Lines on
    /// its stdin and QPIPE_BATCH_ID, QPIPE_BATCH_ITEMS, QPIPE_BATCH_BYTES and
    /// QPIPE_ATTEMPT in its environment; exit status 0 commits the batch
    #[argh(option)]
    pub exec: Option<String>,
    /// instead of --out: POST each batch as NDJSON (application/x-ndjson) to
    /// this http(s) URL with an Idempotency-Key header; 2xx commits the batch
    #[argh(option)]
    pub post: Option<String>,
    /// an extra request header for --post, "Name: value"; repeatable
    #[argh(option)]
    pub header: Vec<String>,
    /// gzip the --post body (Content-Encoding: gzip)
    #[argh(switch)]
    pub gzip: bool,
    /// retries of a failed --exec or --post batch, with back-off from 1 s
    /// doubling to 30 s (Retry-After honoured up to 120 s) (default 5)
    #[argh(option, default = "5")]
    pub sink_retries: u32,
    /// seconds one --exec run or --post request may take; past it the command
    /// is killed (with its children) or the request dropped, and retried (default 60)
    #[argh(option, default = "60.0")]
    pub sink_timeout: f64,
    /// exit once the list has stayed empty for --idle-timeout seconds
    #[argh(switch)]
    pub drain: bool,
    /// at-least-once: move items into a per-consumer processing list (BLMOVE)
    /// and remove them only after the sink has committed them (the file
    /// flushed and fsynced, the command exited 0, the endpoint answered 2xx)
    #[argh(switch)]
    pub reliable: bool,
    /// seconds a --reliable worker's heartbeat lives; after a crash its items
    /// are re-queued once this has passed (default 10)
    #[argh(option, default = "10")]
    pub heartbeat_ttl: u64,
    /// seconds of empty list that end a --drain run (default 2)
    #[argh(option, default = "2.0")]
    pub idle_timeout: f64,
    /// stop after this many items (default: no limit)
    #[argh(option)]
    pub max_items: Option<u64>,
    /// most items taken per pop (BRPOP, then up to N-1 more) (default 500)
    #[argh(option, default = "500")]
    pub batch_size: usize,
    /// most bytes taken per pop (one larger item still comes alone; in BRPOP
    /// mode, passed by one round when items grow past the largest popped
    /// lately); at most 4 times this is popped but not yet written (default 8388608)
    #[argh(option, default = "8 << 20")]
    pub batch_bytes: usize,
    /// do not fsync the output file after each batch (faster, less durable)
    #[argh(switch)]
    pub no_fsync: bool,
    /// seconds to keep reconnecting during a Redis outage before giving up (default 60)
    #[argh(option, default = "60.0")]
    pub redis_retry_secs: f64,
    /// take this Redis lock for the whole run; if another run holds it, exit 4 at once
    #[argh(option)]
    pub lock: Option<String>,
    /// seconds the --lock lives without renewal, i.e. after a crash (default 30)
    #[argh(option, default = "30")]
    pub lock_ttl: u64,
    /// end the run cleanly after this many seconds, nothing lost (default: no limit)
    #[argh(option)]
    pub max_time: Option<f64>,
    /// exit 3 when at least this many items (dead letters) failed; 0 never (default 1)
    #[argh(option, default = "1")]
    pub fail_on_errors: u64,
    /// serve Prometheus /metrics and /healthz over HTTP on this IP:PORT, e.g.
    /// 127.0.0.1:9187; port 0 picks a free port, logged at start (default: off)
    #[argh(option)]
    pub metrics: Option<String>,
    /// log one line of counters every S seconds; 0 never (default 60 when
    /// stderr is not a terminal, else 0); SIGUSR1 logs it once at any time
    #[argh(option)]
    pub stats_every: Option<u64>,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
    /// only print errors and the summary
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print debug lines
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// log line format on stderr: text, or json (one object per line with ts, level, msg, target) (default text)
    #[argh(option)]
    pub log_format: Option<String>,
}

/// push a JSON Lines file (e.g. a qpipe-unsent spill file) onto a Redis list.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "push", help_triggers("-h", "--help", "help"))]
pub struct PushArgs {
    /// the JSON Lines file to enqueue (default: stdin)
    #[argh(positional)]
    pub file: Option<String>,
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list to push onto (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// most items sent in one LPUSH (default 1000)
    #[argh(option, default = "1000")]
    pub batch_size: usize,
    /// most bytes sent in one LPUSH; a single larger item still goes alone (default 8388608)
    #[argh(option, default = "8 << 20")]
    pub batch_bytes: usize,
    /// seconds to keep retrying Redis during an outage (default 60)
    #[argh(option, default = "60.0")]
    pub redis_retry_secs: f64,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
    /// only print errors and the summary
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// log line format on stderr: text, or json (one object per line with ts, level, msg, target) (default text)
    #[argh(option)]
    pub log_format: Option<String>,
}

/// add crawl jobs for `qpipe produce --jobs`.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "enqueue",
    help_triggers("-h", "--help", "help"),
    example = "qpipe enqueue https://quotes.toscrape.com/tag/love/ https://quotes.toscrape.com/tag/life/\nqpipe enqueue jobs.txt\necho '{{\"url\": \"https://quotes.toscrape.com/\", \"meta\": {{\"client\": 7}}}}' | qpipe enqueue -",
    note = "A job is an absolute http(s) URL, or one JSON object {{\"url\": \"...\", \"meta\": {{...}}}} (meta optional, an object of at most 64 KiB, copied into every item of the job right after url). An argument with :// is a job; - reads jobs from stdin, one per line; any other argument is a file of jobs, one per line (blank lines skipped). Every job is checked before any is pushed: one bad job is reported with its line and nothing is enqueued (exit 2). Jobs are pushed with LPUSH in the order given, and taken oldest first."
)]
pub struct EnqueueArgs {
    /// job URLs, files of jobs (one per line), or - for stdin
    #[argh(positional)]
    pub jobs: Vec<String>,
    /// schedule the jobs for later: a delay such as 90s, 15m, 2h or 1d
    /// (plain numbers are seconds); any running --jobs worker moves them to
    /// the list when due
    #[argh(option, long = "in")]
    pub in_: Option<String>,
    /// schedule the jobs for this time: RFC 3339 (2026-12-05T03:00:00Z,
    /// 2026-12-05T04:00:00+01:00) or seconds since the Unix epoch
    #[argh(option)]
    pub at: Option<String>,
    /// the job list (default qpipe:jobs)
    #[argh(option, default = "String::from(crate::queue::job_list::DEFAULT_KEY)")]
    pub key: String,
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// seconds to keep retrying Redis during an outage (default 60)
    #[argh(option, default = "60.0")]
    pub redis_retry_secs: f64,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
    /// only print errors and the summary
    #[argh(switch, short = 'q')]
    pub quiet: bool,
}

/// re-queue items held by dead `consume --reliable` workers (heartbeat expired).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "recover", help_triggers("-h", "--help", "help"))]
pub struct RecoverArgs {
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
}

/// show queue length, dead letters, processing lists, live consumers, seen set, lock and jobs.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "status", help_triggers("-h", "--help", "help"))]
pub struct StatusArgs {
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// also report the size of this --seen-key set
    #[argh(option)]
    pub seen_key: Option<String>,
    /// also report who holds this --lock
    #[argh(option)]
    pub lock: Option<String>,
    /// also report this job list (produce --jobs): jobs pending, leased (by
    /// live and by dead workers), done and set aside
    #[argh(option)]
    pub jobs: Option<String>,
    /// also list every key qpipe made for this queue and for the --jobs list,
    /// --seen-key and --lock given: its kind, how long it lives, and who
    /// deletes it (README: Redis keys)
    #[argh(switch)]
    pub keys: bool,
    /// print one JSON object instead of text
    #[argh(switch)]
    pub json: bool,
}

/// list, show, re-queue or delete dead letters (KEY:dead, or a job list's J:dead).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "dead", help_triggers("-h", "--help", "help"))]
pub struct DeadArgs {
    /// list (default), show, requeue or delete
    #[argh(positional, default = "String::from(\"list\")")]
    pub action: String,
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list whose dead letters these are (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists, as the consumers do (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// the dead jobs of this job list (produce --jobs) instead of --key's items;
    /// a re-queued job goes to the far end of the list with its attempts reset
    #[argh(option)]
    pub jobs: Option<String>,
    /// only letters whose reason starts with this text (e.g. "invalid JSON")
    #[argh(option)]
    pub reason: Option<String>,
    /// the letter at this index of `qpipe dead list` (0 is the newest)
    #[argh(option)]
    pub index: Option<usize>,
    /// requeue/delete: at most this many letters, oldest first
    #[argh(option)]
    pub count: Option<usize>,
    /// requeue/delete: every letter (that matches --reason, if given)
    #[argh(switch)]
    pub all: bool,
    /// list: skip this many letters (default 0)
    #[argh(option, default = "0")]
    pub offset: usize,
    /// list: show at most this many letters (default 20)
    #[argh(option, default = "20")]
    pub limit: usize,
    /// list/show: print letters as JSON Lines
    #[argh(switch)]
    pub json: bool,
    /// append the run summary as one JSON line to this file, or - for stdout
    #[argh(option)]
    pub stats_json: Option<String>,
}

/// print the next N items to be consumed, oldest first, without removing them.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "peek", help_triggers("-h", "--help", "help"))]
pub struct PeekArgs {
    /// how many items (default 10)
    #[argh(positional, default = "10")]
    pub count: u64,
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// the Redis list (default DATA-PIPELINE-KEY)
    #[argh(option, default = "String::from(\"DATA-PIPELINE-KEY\")")]
    pub key: String,
    /// split the queue into this many lists (hash-tagged {KEY:i}) to spread it
    /// over Redis Cluster nodes; producers and consumers must agree (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
}

/// print the built-in spider spec, check a spec file, or try one on a page.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "spec", help_triggers("-h", "--help", "help"))]
pub struct SpecArgs {
    /// print the built-in quotes spec (JSON), a starting point for your own
    #[argh(switch)]
    pub print: bool,
    /// validate this spec file and list its fields, without fetching anything
    #[argh(option)]
    pub check: Option<String>,
    /// fetch this one page with --spec (default: the built-in spider) and
    /// print which rule read it, its items as JSON lines, and the links a
    /// crawl would follow, like `scrapy parse`; logs in first if the spec has
    /// a login; robots.txt is not consulted; nothing goes to Redis
    #[argh(option, long = "try")]
    pub try_url: Option<String>,
    /// with --try: the spec to try (default: the built-in quotes spider)
    #[argh(option)]
    pub spec: Option<String>,
    /// with --try: move the spec's URLs and the --try URL onto this scheme,
    /// host and port, as `produce --origin` does
    #[argh(option)]
    pub origin: Option<String>,
    /// with --try: send this header, as 'Name: value'; repeatable
    #[argh(option)]
    pub header: Vec<String>,
    /// with --try: the HTTP(S) proxy, as `produce --proxy` (default:
    /// HTTP_PROXY / HTTPS_PROXY, minus NO_PROXY)
    #[argh(option)]
    pub proxy: Option<String>,
    /// with --try: answer from this HTTP cache and store what it lacks, as
    /// `produce --http-cache`; with --diff: the cache to read the pages from
    #[argh(option)]
    pub http_cache: Option<String>,
    /// with --try: use, replay or refresh, as `produce --http-cache-mode`
    /// (default use)
    #[argh(option, default = "String::from(\"use\")")]
    pub http_cache_mode: String,
    /// compare two specs: `qpipe spec --diff OLD.json NEW.json --http-cache
    /// DIR` scrapes every page in the cache with both (no request is sent)
    /// and prints the items added, removed and changed, per field; exit 3
    /// if anything changed, 0 if nothing did
    #[argh(switch)]
    pub diff: bool,
    /// with --diff: examples shown per kind of change (default 3)
    #[argh(option, default = "3")]
    pub examples: usize,
    /// with --diff: the OLD and NEW spec files
    #[argh(positional)]
    pub files: Vec<String>,
}

/// serve a built-in demo site (same HTML and URLs as quotes.toscrape.com and its
/// variants, or as books.toscrape.com with --site books).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "demo-site", help_triggers("-h", "--help", "help"))]
pub struct DemoSiteArgs {
    /// address to listen on; port 0 picks a free one (default 127.0.0.1:8000)
    #[argh(option, default = "String::from(\"127.0.0.1:8000\")")]
    pub addr: String,
    /// number of /page/N/ pages, 10 unique quotes each, 1 to 10000000; quotes
    /// site only (default 10)
    #[argh(option, default = "10")]
    pub pages: u64,
    /// most open client connections, one thread each (default 1024)
    #[argh(option, default = "1024")]
    pub max_connections: usize,
    /// write the site as static files into DIR (page/N/index.html, ...) and exit;
    /// sitemap URLs then name --addr as the host
    #[argh(option)]
    pub export: Option<String>,
    /// which site: "quotes" (quotes.toscrape.com with its variants: /api/quotes,
    /// /js/, /tableful/, /login, /search.aspx, /sitemap.xml) or "books"
    /// (books.toscrape.com: 50 books on 3 pages, with detail pages) (default quotes)
    #[argh(option, default = "String::from(\"quotes\")")]
    pub site: String,
    /// pad each quotes list page with N KiB of menus, article text, inline JSON
    /// and SVG that no built-in selector matches, 0 to 10240 (default 0: none)
    #[argh(option, default = "0")]
    pub page_kb: usize,
    /// with --export, write only the default quotes pages (/page/N/, /tag/,
    /// /author/, /pages/, robots.txt, sitemaps), not /api/, /js/, /tableful/,
    /// /login or /search.aspx
    #[argh(switch)]
    pub default_only: bool,
}

/// time scraper's parse plus a spec's selectors on one saved page (the
/// parse floor), and qpipe's whole extraction of it; prints ms per page.
#[derive(FromArgs, Debug)]
pub struct BenchParseArgs {
    /// the saved HTML page(s); with several, the JSON line gives the mean
    /// per page over all of them
    #[argh(positional)]
    pub files: Vec<String>,
    /// spec file (default: the built-in quotes spider)
    #[argh(option)]
    pub spec: Option<String>,
    /// the URL the page is read as, which picks the spec's rule
    /// (default http://127.0.0.1/page/1/)
    #[argh(option, default = "String::from(\"http://127.0.0.1/page/1/\")")]
    pub url: String,
    /// timed repetitions of each measurement (default 200)
    #[argh(option, default = "200")]
    pub iterations: usize,
}

/// measure memory: Redis bytes per seen fingerprint, or in-process bytes
/// per queued URL (for development; not listed in qpipe --help).
#[derive(FromArgs, Debug)]
#[argh(help_triggers("-h", "--help", "help"))]
pub struct BenchArgs {
    /// what to measure: dedup (a seen key in Redis) or frontier (the in-process queue)
    #[argh(positional)]
    pub what: String,
    /// fingerprints to add or look up (dedup), URLs to queue (frontier) (default 1000000)
    #[argh(option, default = "1_000_000")]
    pub count: u64,
    /// fingerprint i is XXH3-128 of the decimal text of i, from this i (default 0)
    #[argh(option, default = "0")]
    pub from: u64,
    /// only look the fingerprints up; report how many the key has (dedup)
    #[argh(switch)]
    pub probe: bool,
    /// the Redis URL: redis://, rediss://, redis+cluster:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// the seen key (default qpipe-bench)
    #[argh(option, default = "String::from(\"qpipe-bench\")")]
    pub key: String,
    /// set or bloom, as for produce (default set)
    #[argh(option, default = "String::from(\"set\")")]
    pub dedup: String,
    /// as for produce (default 10000000)
    #[argh(option)]
    pub dedup_capacity: Option<u64>,
    /// as for produce (default 0.000001)
    #[argh(option)]
    pub dedup_error: Option<f64>,
}

/// argh reads a bare `-` as an unknown flag, but `push` and `enqueue` take
/// `-` for stdin. For those two, when a positional argument is `-`, the
/// positionals are moved behind `--` (in order), where argh takes them as
/// they are. `args` starts at the subcommand's name.
pub fn stdin_dashes<'a>(args: &[&'a str]) -> Vec<&'a str> {
    const SWITCHES: [&str; 6] = ["-q", "--quiet", "-v", "--verbose", "-h", "--help"];
    if !matches!(args.first(), Some(&"push" | &"enqueue")) {
        return args.to_vec();
    }
    let (mut flags, mut positional) = (vec![args[0]], Vec::new());
    let mut rest = args[1..].iter();
    while let Some(&a) = rest.next() {
        if a == "--" {
            positional.extend(rest.by_ref());
        } else if a.starts_with('-') && a != "-" {
            flags.push(a);
            if !SWITCHES.contains(&a) && !a.contains('=') {
                flags.extend(rest.next());
            }
        } else {
            positional.push(a);
        }
    }
    if !positional.contains(&"-") {
        return args.to_vec();
    }
    flags.push("--");
    flags.extend(positional);
    flags
}

#[cfg(test)]
mod tests {
    use super::stdin_dashes;

    #[test]
    fn a_bare_dash_is_stdin_for_push_and_enqueue_only() {
        assert_eq!(stdin_dashes(&["push", "-"]), ["push", "--", "-"]);
        assert_eq!(
            stdin_dashes(&["enqueue", "a.txt", "--key", "J", "-", "b"]),
            ["enqueue", "--key", "J", "--", "a.txt", "-", "b"]
        );
        // The value of an option stays where it is.
        assert_eq!(
            stdin_dashes(&["push", "--stats-json", "-", "f"]),
            ["push", "--stats-json", "-", "f"]
        );
        assert_eq!(
            stdin_dashes(&["push", "-q", "-"]),
            ["push", "-q", "--", "-"]
        );
        assert_eq!(
            stdin_dashes(&["consume", "--out", "-"]),
            ["consume", "--out", "-"]
        );
    }
}

/// serve one web page of the fleet on a Redis: every queue (length, rates in
/// and out, dead letters), worker, job list, shared frontier and lock, with
/// dead letters to re-queue or delete.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "dashboard",
    help_triggers("-h", "--help", "help"),
    example = "qpipe dashboard --redis redis://127.0.0.1:6379\nQPIPE_DASHBOARD_AUTH=ops:s3cret qpipe dashboard --addr 0.0.0.0:9181",
    note = "It finds qpipe's keys with SCAN (never KEYS), a few calls per sample, unless --key, --jobs, --frontier or --lock name what to show. One thread samples Redis every --every seconds, however many pages are open; pages are drawn from the last sample. Beyond loopback it requires --auth (or QPIPE_DASHBOARD_AUTH). Forms carry a CSRF token, and every re-queue or delete is logged."
)]
pub struct DashboardArgs {
    /// the Redis URL: redis://, rediss:// or redis+sentinel:// (default $REDIS_URL, else redis://127.0.0.1:6379)
    #[argh(option)]
    pub redis: Option<String>,
    /// PEM file of a private CA to trust for rediss:// (default: system roots)
    #[argh(option)]
    pub tls_ca: Option<String>,
    /// address to serve on (default 127.0.0.1:9181); an address beyond
    /// loopback needs --auth
    #[argh(option, default = "String::from(\"127.0.0.1:9181\")")]
    pub addr: String,
    /// user:password for HTTP Basic authentication (default
    /// $QPIPE_DASHBOARD_AUTH; none on loopback)
    #[argh(option)]
    pub auth: Option<String>,
    /// show only; no re-queue or delete
    #[argh(switch)]
    pub read_only: bool,
    /// a queue to show (repeatable); with any of --key, --jobs, --frontier
    /// or --lock, only those are shown and nothing is scanned
    #[argh(option)]
    pub key: Vec<String>,
    /// lists each --key is split into (--shards of its producers and
    /// consumers), 1 to 1024 (default 1)
    #[argh(option, default = "1")]
    pub shards: usize,
    /// a crawl-job list to show (repeatable)
    #[argh(option)]
    pub jobs: Vec<String>,
    /// a shared frontier to show, by its NAME (repeatable)
    #[argh(option)]
    pub frontier: Vec<String>,
    /// a lock to show (repeatable)
    #[argh(option)]
    pub lock: Vec<String>,
    /// seconds between samples, 1 to 3600 (default 5)
    #[argh(option, default = "5")]
    pub every: u64,
    /// keys asked for per SCAN call, 10 to 100000 (default 1000); at most 10
    /// calls a sample
    #[argh(option, default = "1000")]
    pub scan_count: u64,
}
