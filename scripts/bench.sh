#!/usr/bin/env bash
# qpipe benchmarks, as ratios against this machine's own ceilings measured in
# the same run. Everything runs on 127.0.0.1 and is cleaned up at exit.
#
#   scripts/bench.sh            full run (5,000/20,000-page sites, 2,000 heavy
#                               pages, 200,000 items)
#   scripts/bench.sh --quick    smoke run (small sizes, 1 repetition)
#   scripts/bench.sh --scale    3 producers + 4 consumers on a 200,000-page site
#
# Installs (Debian, as root) what it needs: nginx, wrk, redis-server,
# redis-tools, time, python3, python3-scrapy (run with /usr/bin/python3),
# python3-doc (the real site of scripts/bench-real.sh's rows).
set -euo pipefail
cd "$(dirname "$0")/.."

# `--scale [PAGES]`: the scale benchmark alone (scripts/bench-scale.sh).
[ "${1:-}" = "--scale" ] && exec scripts/bench-scale.sh "${2:-200000}"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
if [ $QUICK = 1 ]; then
  PAGES=500 BIG_PAGES=2000 HEAVY=200 ITEMS=20000 RUNS=1 WRK_SECS=2 BENCH_N=200000
else
  PAGES=5000 BIG_PAGES=20000 HEAVY=2000 ITEMS=200000 RUNS=3 WRK_SECS=5 BENCH_N=2000000
fi
HEAVY_KB=110
PY=/usr/bin/python3  # Debian's, which python3-scrapy installs into

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
[ -x /usr/bin/time ] || need+=(time)
command -v python3 >/dev/null || need+=(python3)
[ -x "$PY" ] && "$PY" -c 'import scrapy' 2>/dev/null || need+=(python3-scrapy)
ls /usr/share/doc/python3.*/html/index.html >/dev/null 2>&1 || need+=(python3-doc)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "bench: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bench: missing ${need[*]}: install them with apt-get" >&2
    exit 1
  fi
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

work="$(mktemp -d)"
chmod 755 "$work"   # nginx workers run unprivileged and must read the export
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(d[sys.argv[2]])' "$1" "$2"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.3f}" if b else "-")' "$1" "$2"; }

echo "bench: building release" >&2
cargo build --release --quiet
QP="${CARGO_TARGET_DIR:-$PWD/target}/release/qpipe"

# Redis, private and without persistence.
RPORT="$(free_port)"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
export REDIS_URL="redis://127.0.0.1:$RPORT"
flush() { redis-cli -p "$RPORT" flushall >/dev/null; }

# Static sites served by nginx (two sizes, same paths as the demo site, the
# default pages only), and the heavy site: HEAVY_KB KiB of padding a page.
for n in "$PAGES" "$BIG_PAGES"; do
  "$QP" demo-site --export "$work/site$n" --pages "$n" --default-only 2>/dev/null
done
"$QP" demo-site --export "$work/heavy" --pages "$HEAVY" --page-kb "$HEAVY_KB" --default-only 2>/dev/null
chmod -R a+rX "$work"
NPORT="$(free_port)"
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  default_type text/html;
  server { listen 127.0.0.1:$NPORT; root $work/site$PAGES; }
  server { listen 127.0.0.1:$((NPORT + 1)); root $work/site$BIG_PAGES; }
  server { listen 127.0.0.1:$((NPORT + 2)); root $work/heavy; }
  # The --post sink's peer: reads each batch and answers 204.
  server { listen 127.0.0.1:$((NPORT + 3)); client_max_body_size 0; location / { return 204; } }
}
NGINX
"$NGINX" -c "$work/nginx.conf"
SITE="http://127.0.0.1:$NPORT"
BIG="http://127.0.0.1:$((NPORT + 1))"
HEAVY_SITE="http://127.0.0.1:$((NPORT + 2))"
for _ in $(seq 100); do curl -sf "$SITE/" >/dev/null 2>&1 && break; sleep 0.05; done

# Ceiling for crawling: wrk fetching the same /page/N/ pages over keep-alive.
cat >"$work/pages.lua" <<LUA
local n = 0
request = function()
  n = n % $PAGES + 1
  return wrk.format(nil, "/page/" .. n .. "/")
end
LUA
echo "bench: wrk ceiling" >&2
WRK=$(wrk -t1 -c32 -d"${WRK_SECS}s" -s "$work/pages.lua" "$SITE/" | awk '/Requests\/sec/ {print $2}')

# All CPUs' busy and idle ticks so far (busy: user nice system irq softirq steal).
cpu_ticks() { awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }

# One produce run: prints "pages/s items/s cpu_ms_per_page peak_rss_mb pages
# items (user+sys)/wall machine_busy_cores". The last is every process's CPU
# over the run (nginx, Redis and other work included): when it is near
# nproc, a (user+sys)/wall below it is qpipe waiting for a core, not on I/O.
crawl() {
  local start="$1" out="$work/crawl.json" tv="$work/time.txt"
  flush
  rm -f "$out"
  local t0
  t0=$(cpu_ticks)
  # The big sitemap links more pages than the default --max-links-per-page.
  /usr/bin/time -v "$QP" produce --threads 8 --start-url "$start" --max-links-per-page 100000 \
    --stats-json "$out" -q 2>"$tv" >/dev/null
  local busy
  busy=$(echo "$t0 $(cpu_ticks)" | awk -v n="$(nproc)" '{b=$3-$1; i=$4-$2; printf "%.2f", (b+i) ? n*b/(b+i) : 0}')
  local pages items pps ips cpu rss
  pages=$(json "$out" pages_fetched)
  items=$(json "$out" items_pushed)
  pps=$(json "$out" pages_per_sec)
  ips=$(json "$out" items_per_sec)
  cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$tv")
  rss=$(awk -F': ' '/Maximum resident/ {print $2/1024}' "$tv")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$tv")
  echo "$pps $ips $(python3 -c "print(f'{$cpu*1000/$pages:.3f} $rss $pages $items {$cpu/$wall:.2f}')") $busy"
}

# One Scrapy run with the same rules: prints "pages/s pages items".
scrapy_crawl() {
  local got
  got=$("$PY" scripts/bench_scrapy.py "$1" "$work/scrapy.jsonl" 2>/dev/null)
  set -- $got
  echo "$(python3 -c "print(f'{$1/$3:.1f}')") $1 $2"
}

runs() { # runs CMD... : repeats $RUNS times, one line each
  for _ in $(seq "$RUNS"); do "$@"; done
}
col() { awk -v c="$1" '{print $c}' | median; }
span() { awk -v c="$1" '{print $c}' | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "-" b}'; }

echo "bench: crawl via sitemap ($PAGES pages)" >&2
runs crawl "$SITE/pages/" >"$work/sitemap.txt"
echo "bench: crawl via pagination chain ($PAGES pages)" >&2
runs crawl "$SITE/" >"$work/chain.txt"
echo "bench: crawl via sitemap ($BIG_PAGES pages)" >&2
runs crawl "$BIG/pages/" >"$work/big.txt"
echo "bench: heavy pages, qpipe ($HEAVY pages + ${HEAVY_KB} KiB)" >&2
runs crawl "$HEAVY_SITE/pages/" >"$work/heavy.txt"
echo "bench: parse floor (bench-parse on one heavy page)" >&2
runs "$QP" bench-parse "$work/heavy/page/1/index.html" --iterations 300 >"$work/floor.txt"
FLOOR=$(python3 -c 'import json,sys; print(sorted(json.loads(l)["floor_ms"] for l in open(sys.argv[1]))[len(open(sys.argv[1]).readlines())//2])' "$work/floor.txt")
SCRAPE=$(python3 -c 'import json,sys; print(sorted(json.loads(l)["scrape_ms"] for l in open(sys.argv[1]))[len(open(sys.argv[1]).readlines())//2])' "$work/floor.txt")
echo "bench: heavy pages, Scrapy" >&2
runs scrapy_crawl "$HEAVY_SITE/pages/" >"$work/scrapy_heavy.txt"
echo "bench: small pages, Scrapy ($PAGES pages)" >&2
runs scrapy_crawl "$SITE/pages/" >"$work/scrapy_small.txt"

# Writer: qpipe push of ITEMS items of 228 bytes vs redis-benchmark LPUSH -c 1 -P 64.
items() { # items FILE COUNT BYTES: JSON lines of exactly BYTES bytes each
python3 - "$@" <<'PY'
import json, sys
path, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    for i in range(n):
        base = {"quote": "", "author": "Albert Einstein", "tags": ["life", "truth"], "url": f"http://127.0.0.1/page/{i // 10 + 1}/"}
        pad = size - len(json.dumps(base, separators=(",", ":"), ensure_ascii=False)) - len(str(i)) - 1
        base["quote"] = f"{i} " + "x" * pad
        line = json.dumps(base, separators=(",", ":"), ensure_ascii=False)
        assert len(line) == size, len(line)
        f.write(line + "\n")
PY
}
items "$work/items.jsonl" "$ITEMS" 228
ITEMS_2K=$((ITEMS / 2))
items "$work/items2k.jsonl" "$ITEMS_2K" 2048
push_once() {
  flush
  "$QP" push "$work/items.jsonl" --stats-json "$work/push.json" -q 2>/dev/null
  json "$work/push.json" items_per_sec
}
echo "bench: writer" >&2
PUSH=$(runs push_once | median)
flush
LPUSH_CEIL=$(redis-benchmark -p "$RPORT" -c 1 -P 64 -d 228 -t lpush -n "$BENCH_N" -q | tr '\r' '\n' | awk '/^LPUSH: [0-9.]+ requests per second/ {print $2}')

# Drain: consume --threads 4 of ITEMS items into a file vs redis-benchmark RPOP -P 64.
drain_once() { # drain_once [FILE COUNT]
  local file="${1:-$work/items.jsonl}" want="${2:-$ITEMS}"
  flush
  "$QP" push "$file" -q 2>/dev/null >/dev/null
  rm -f "$work/out.jsonl"
  /usr/bin/time -v "$QP" consume --threads 4 --drain --idle-timeout 0.5 --out "$work/out.jsonl" \
    --stats-json "$work/drain.json" -q 2>"$work/dtime.txt" >/dev/null
  local lines
  lines=$(wc -l <"$work/out.jsonl")
  [ "$lines" = "$want" ] || { echo "bench: drain wrote $lines lines, expected $want" >&2; exit 1; }
  echo "$(json "$work/drain.json" items_per_active_sec) $(awk -F': ' '/Maximum resident/ {print $2/1024}' "$work/dtime.txt")"
}
echo "bench: drain" >&2
runs drain_once >"$work/drain.txt"
echo "bench: drain 2 KiB items" >&2
runs drain_once "$work/items2k.jsonl" "$ITEMS_2K" >"$work/drain2k.txt"
# Sinks: the same drain into each sink, against the plain file sink (items/s,
# and CPU microseconds per item, user+sys of qpipe only).
sink_once() { # sink_once ARGS...: "items/s cpu_us_per_item"
  flush
  "$QP" push "$work/items.jsonl" -q 2>/dev/null >/dev/null
  rm -rf "$work/sink" && mkdir -p "$work/sink"
  /usr/bin/time -f '%U %S' "$QP" consume --threads 4 --drain --idle-timeout 0.5 \
    --stats-json "$work/sink.json" -q "$@" 2>"$work/stime.txt" >/dev/null
  local written
  written=$(json "$work/sink.json" items_written)
  [ "$written" = "$ITEMS" ] || { echo "bench: sink $* wrote $written, expected $ITEMS" >&2; exit 1; }
  echo "$(json "$work/sink.json" items_per_active_sec) $(tail -1 "$work/stime.txt" | awk -v n="$ITEMS" '{printf "%.2f", ($1 + $2) * 1e6 / n}')"
}
echo "bench: sinks" >&2
runs sink_once --out "$work/sink/out.jsonl" >"$work/sink_file.txt"
runs sink_once --out "$work/sink/q-{seq}.jsonl.gz" --part-items 100000 >"$work/sink_parts.txt"
runs sink_once --out "$work/sink/out.csv" --format csv --fields quote,author,tags,url >"$work/sink_csv.txt"
runs sink_once --exec 'cat > /dev/null' >"$work/sink_exec.txt"
runs sink_once --post "http://127.0.0.1:$((NPORT + 3))/" >"$work/sink_post.txt"
runs sink_once --post "http://127.0.0.1:$((NPORT + 3))/" --gzip >"$work/sink_postgz.txt"
flush
rpop_ceiling() {
  redis-benchmark -p "$RPORT" -P 64 -d "$1" -t lpush,rpop -n "$BENCH_N" -q | tr '\r' '\n' | awk '/^RPOP: [0-9.]+ requests per second/ {print $2}'
}
RPOP_CEIL=$(rpop_ceiling 228)
flush
RPOP_CEIL_2K=$(rpop_ceiling 2048)
flush

echo "bench: real site (scripts/bench-real.sh)" >&2
QP="$QP" scripts/bench-real.sh "$RUNS" >"$work/real.txt"

S_PPS=$(col 1 <"$work/sitemap.txt"); S_IPS=$(col 2 <"$work/sitemap.txt")
S_CPU=$(col 3 <"$work/sitemap.txt"); S_RSS=$(col 4 <"$work/sitemap.txt"); S_PAGES=$(col 5 <"$work/sitemap.txt")
C_PPS=$(col 1 <"$work/chain.txt"); C_IPS=$(col 2 <"$work/chain.txt")
C_CPU=$(col 3 <"$work/chain.txt"); C_RSS=$(col 4 <"$work/chain.txt")
B_RSS=$(col 4 <"$work/big.txt"); B_PAGES=$(col 5 <"$work/big.txt")
D_IPS=$(col 1 <"$work/drain.txt"); D_RSS=$(col 2 <"$work/drain.txt")
D2_IPS=$(col 1 <"$work/drain2k.txt")
S_UTIL=$(col 7 <"$work/sitemap.txt")
H_PPS=$(col 1 <"$work/heavy.txt"); H_CPU=$(col 3 <"$work/heavy.txt"); H_RSS=$(col 4 <"$work/heavy.txt")
H_PAGES=$(col 5 <"$work/heavy.txt"); H_UTIL=$(col 7 <"$work/heavy.txt")
SC_H=$(col 1 <"$work/scrapy_heavy.txt"); SC_S=$(col 1 <"$work/scrapy_small.txt")
SC_H_PAGES=$(col 2 <"$work/scrapy_heavy.txt"); SC_S_PAGES=$(col 2 <"$work/scrapy_small.txt")

echo
echo "qpipe bench $( [ $QUICK = 1 ] && echo '(--quick)' ) — $(nproc) cores, median of $RUNS, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-44s %14s %14s %8s  %s\n' "measure" "qpipe" "ceiling" "ratio" "qpipe range"
row() { printf '%-44s %14s %14s %8s  %s\n' "$1" "$2" "$3" "$4" "${5:-}"; }
row "crawl sitemap pages/s ($S_PAGES pages)" "$S_PPS" "$WRK" "$(ratio "$S_PPS" "$WRK")"
row "crawl sitemap items/s" "$S_IPS" "-" "-"
row "crawl chain pages/s (from /)" "$C_PPS" "$WRK" "$(ratio "$C_PPS" "$WRK")"
row "crawl chain items/s" "$C_IPS" "-" "-"
row "crawl CPU ms/page (sitemap; target 0.3)" "$S_CPU" "0.3" "$(ratio "$S_CPU" 0.3)"
row "crawl CPU ms/page (chain)" "$C_CPU" "0.3" "$(ratio "$C_CPU" 0.3)"
row "writer items/s (push $ITEMS x 228 B)" "$PUSH" "$LPUSH_CEIL" "$(ratio "$PUSH" "$LPUSH_CEIL")"
row "drain items/s (consume -t4, $ITEMS)" "$D_IPS" "$RPOP_CEIL" "$(ratio "$D_IPS" "$RPOP_CEIL")"
row "drain items/s (2 KiB items, $ITEMS_2K; target 0.5)" "$D2_IPS" "$RPOP_CEIL_2K" "$(ratio "$D2_IPS" "$RPOP_CEIL_2K")" "$(span 1 <"$work/drain2k.txt")"
row "sitemap crawl (user+sys)/wall (target 1.6)" "$S_UTIL" "$(nproc)" "-" "$(span 7 <"$work/sitemap.txt")"
row "  machine cores busy meanwhile (all processes)" "$(col 8 <"$work/sitemap.txt")" "$(nproc)" "-" "$(span 8 <"$work/sitemap.txt")"
row "small pages/s vs Scrapy (target 30)" "$S_PPS" "$SC_S" "$(ratio "$S_PPS" "$SC_S")" "$(span 1 <"$work/sitemap.txt"), Scrapy $(span 1 <"$work/scrapy_small.txt")"
row "heavy pages/s vs Scrapy (target 20)" "$H_PPS" "$SC_H" "$(ratio "$H_PPS" "$SC_H")" "$(span 1 <"$work/heavy.txt"), Scrapy $(span 1 <"$work/scrapy_heavy.txt")"
row "heavy CPU ms/page / floor (target 1.15)" "$H_CPU" "$FLOOR" "$(ratio "$H_CPU" "$FLOOR")" "$(span 3 <"$work/heavy.txt")"
row "heavy scrape ms/page (bench-parse) / floor" "$SCRAPE" "$FLOOR" "$(ratio "$SCRAPE" "$FLOOR")"
row "heavy (user+sys)/wall" "$H_UTIL" "$(nproc)" "-" "$(span 7 <"$work/heavy.txt")"
row "heavy peak RSS MB (-t8; target 40)" "$H_RSS" "40" "$(ratio "$H_RSS" 40)" "$(span 4 <"$work/heavy.txt")"
grep '^real site ' "$work/real.txt" | grep -v '^real site:' || true
row "peak RSS MB produce $PAGES pages (target 25)" "$S_RSS" "25" "$(ratio "$S_RSS" 25)"
row "peak RSS MB produce $B_PAGES pages" "$B_RSS" "$S_RSS" "$(ratio "$B_RSS" "$S_RSS")"
row "peak RSS MB produce chain $PAGES pages" "$C_RSS" "25" "$(ratio "$C_RSS" 25)"
row "peak RSS MB consume $ITEMS items" "$D_RSS" "-" "-"
F_IPS=$(col 1 <"$work/sink_file.txt"); F_CPU=$(col 2 <"$work/sink_file.txt")
for s in parts csv exec post postgz; do
  case $s in
    parts) label="part files .jsonl.gz";; csv) label="--format csv";; exec) label="--exec 'cat > /dev/null'";;
    post) label="--post (nginx 204)";; postgz) label="--post --gzip (nginx 204)";;
  esac
  X_IPS=$(col 1 <"$work/sink_$s.txt"); X_CPU=$(col 2 <"$work/sink_$s.txt")
  row "sink items/s: $label / file" "$X_IPS" "$F_IPS" "$(ratio "$X_IPS" "$F_IPS")" "$(span 1 <"$work/sink_$s.txt")"
  row "  CPU us/item: $label / file" "$X_CPU" "$F_CPU" "$(ratio "$X_CPU" "$F_CPU")"
done
echo
echo "ceilings: wrk -t1 -c32 on the same pages (nginx, 2 workers); redis-benchmark -c 1 -P 64 -d 228 -t lpush;"
echo "          redis-benchmark -P 64 -d 228|2048 -t lpush,rpop (RPOP rows). Ratios above 1 for RSS/CPU rows are over target."
echo "heavy: $H_PAGES pages (Scrapy: $SC_H_PAGES) of ${HEAVY_KB} KiB padding; small: Scrapy fetched $SC_S_PAGES pages."
echo "floor: qpipe bench-parse (thread CPU): scraper parse + the spec's selectors on one heavy page."
grep '^real site:' "$work/real.txt" || true
echo "Scrapy: $("$PY" -c 'import scrapy; print(scrapy.__version__)') with 32 concurrent requests, same selectors; load: $(uptime | sed 's/.*load average/load average/')"
