#!/usr/bin/env bash
# The scale benchmark (`scripts/bench.sh --scale`): a 200,000-page demo site
# crawled by 3 producers on one shared frontier with Bloom-filter dedup,
# drained by 4 consumers. Prints pages/s, items/s, Redis peak memory and
# every process's peak RSS, and checks the exact counts.
#
#   scripts/bench-scale.sh [PAGES]     default 200000 (tests use fewer)
#
# Needs redis-server, redis-cli and python3 (scripts/bench.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

PAGES="${1:-200000}"
ITEMS=$((PAGES * 10))
PRODUCERS=3 CONSUMERS=4

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); print(d.get(sys.argv[2], 0))' "$1" "$2"; }

echo "bench-scale: building release" >&2
cargo build --release --quiet
QP="${CARGO_TARGET_DIR:-$PWD/target}/release/qpipe"

RPORT="$(free_port)"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
export REDIS_URL="redis://127.0.0.1:$RPORT"

"$QP" demo-site --addr 127.0.0.1:0 --pages "$PAGES" >"$work/site.url" 2>"$work/site.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/site.url" ] && break; sleep 0.05; done
SITE="$(head -1 "$work/site.url")"

echo "bench-scale: $PAGES pages ($ITEMS items), $PRODUCERS producers, $CONSUMERS consumers, --dedup bloom" >&2
start=$(date +%s.%N)
cons=()
for c in $(seq "$CONSUMERS"); do
  "$QP" consume --threads 2 --drain --idle-timeout 15 --out "$work/out$c.jsonl" \
    --stats-json "$work/consume$c.json" -q 2>"$work/consume$c.log" &
  cons+=($!)
done
prods=()
for p in $(seq "$PRODUCERS"); do
  "$QP" produce --threads 8 --start-url "${SITE}pages/" --shared-frontier scale \
    --dedup bloom --dedup-capacity $((ITEMS * 2)) --dedup-error 0.000001 \
    --max-links-per-page $((PAGES + 100)) --max-body 67108864 \
    --stats-json "$work/produce$p.json" -q 2>"$work/produce$p.log" &
  prods+=($!)
done
peak_mem=0
while kill -0 "${prods[@]}" 2>/dev/null || [ "$(redis-cli -p "$RPORT" llen DATA-PIPELINE-KEY)" != 0 ]; do
  m=$(redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/ {print $2+0}')
  [ "$m" -gt "$peak_mem" ] && peak_mem=$m
  # Bounded: a run that has not finished in 30 minutes is a failure.
  if [ "$(python3 -c "import time; print(int(time.time() - $start))")" -gt 1800 ]; then
    echo "bench-scale: FAILED: not done after 30 minutes" >&2
    exit 1
  fi
  sleep 0.5
done
drained=$(date +%s.%N)
prod_rc=0
for p in "${prods[@]}"; do wait "$p" || prod_rc=$?; done
cons_rc=0
for c in "${cons[@]}"; do wait "$c" || cons_rc=$?; done
redis_peak=$(redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory_peak:/ {print $2+0}')

pages=0 pushed=0 written=0 crawl_secs=0
for p in $(seq "$PRODUCERS"); do
  crawl_secs=$(python3 -c 'import sys; print(max(float(sys.argv[1]), float(sys.argv[2])))' "$crawl_secs" "$(field "$work/produce$p.json" elapsed_secs)")
  pages=$((pages + $(field "$work/produce$p.json" pages_fetched)))
  pushed=$((pushed + $(field "$work/produce$p.json" items_pushed)))
done
for c in $(seq "$CONSUMERS"); do
  written=$((written + $(field "$work/consume$c.json" items_written)))
done
distinct=$(cat "$work"/out*.jsonl | python3 -c 'import sys,json; print(len({json.loads(l)["quote"] for l in sys.stdin}))')

python3 - "$crawl_secs" "$start" "$drained" "$pages" "$pushed" "$written" "$distinct" "$redis_peak" "$peak_mem" <<'EOF'
import sys
crawl, start, drained = map(float, sys.argv[1:4])
pages, pushed, written, distinct, peak, sampled = map(int, sys.argv[4:10])
print(f"scale  pages/s  {pages / crawl:10.0f}   ({pages} pages in {crawl:.1f} s, the slowest producer)")
print(f"scale  items/s  {written / (drained - start):10.0f}   ({written} items written; the list was empty {drained - start:.1f} s after the start)")
print(f"scale  redis    {peak / 2**20:10.1f} MiB peak (used_memory_peak; sampled {sampled / 2**20:.1f} MiB)")
EOF
for f in "$work"/produce*.json "$work"/consume*.json; do
  printf 'scale  rss      %10s MB   %s\n' "$(field "$f" peak_rss_mb)" "$(basename "$f" .json)"
done
ok=1
[ "$prod_rc" = 0 ] && [ "$cons_rc" = 0 ] || { echo "bench-scale: FAILED: exit codes producers $prod_rc consumers $cons_rc" >&2; ok=0; }
[ "$pushed" = "$ITEMS" ] || { echo "bench-scale: FAILED: pushed $pushed, want $ITEMS" >&2; ok=0; }
[ "$written" = "$ITEMS" ] || { echo "bench-scale: FAILED: written $written, want $ITEMS" >&2; ok=0; }
[ "$distinct" = "$ITEMS" ] || { echo "bench-scale: FAILED: $distinct distinct quotes, want $ITEMS" >&2; ok=0; }
# Every page once: the list pages, /pages/, and 46 tag pages (12 tags with 3
# numbered pages each, and /tag/T/ for the 10 in the top-ten box) once a site
# has 100 pages or more. A page fetched twice would show here, even though the
# item filter would hide its items.
if [ "$PAGES" -ge 100 ] && [ "$pages" != $((PAGES + 47)) ]; then
  echo "bench-scale: FAILED: $pages pages fetched, want $((PAGES + 47))" >&2; ok=0
fi
[ "$ok" = 1 ] && echo "scale  counts   exact: $ITEMS items pushed, written and distinct; $pages pages, each once"
[ "$ok" = 1 ]
