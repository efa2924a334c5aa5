#!/usr/bin/env bash
# Runs qpipe end to end on the built-in demo site, then cleans up.
#   scripts/demo.sh [PAGES]      (default 100 pages = 1000 quotes)
# Uses $REDIS_URL if it answers; otherwise starts a private redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
PAGES="${1:-100}"
KEY="qpipe-demo-$$"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${REDIS_URL:-}" ] && command -v redis-cli >/dev/null; then
    redis-cli -u "$REDIS_URL" del "$KEY" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A port nothing listens on (bash's /dev/tcp; no python needed).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "demo: no free port found" >&2; exit 1
}

if [ -n "${REDIS_URL:-}" ] && command -v redis-cli >/dev/null && redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; then
  echo "demo: using Redis at \$REDIS_URL"
else
  if ! command -v redis-server >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "demo: installing redis-server"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
    else
      echo "demo: redis-server is not installed: run 'sudo apt-get install redis-server', or set REDIS_URL" >&2
      exit 1
    fi
  fi
  port="$(free_port)"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$port"
  for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
  echo "demo: started a private redis-server on port $port"
fi

echo "demo: building qpipe (release)"
cargo build --release --quiet
qpipe=target/release/qpipe

"$qpipe" demo-site --addr 127.0.0.1:0 --pages "$PAGES" >"$work/site.url" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/site.url" ] && break; sleep 0.05; done
site="$(head -n1 "$work/site.url")"
echo "demo: demo site with $PAGES pages at $site"

echo "demo: qpipe produce --threads 8"
"$qpipe" produce --threads 8 --start-url "$site" --key "$KEY"
echo "demo: qpipe consume --threads 4 --drain"
"$qpipe" consume --threads 4 --drain --key "$KEY" --out "$work/quotes.jsonl"

echo
echo "demo: $(wc -l <"$work/quotes.jsonl") items written (the site has $((PAGES * 10)) unique quotes); the first 3:"
head -n 3 "$work/quotes.jsonl"
