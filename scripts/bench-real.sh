#!/usr/bin/env bash
# The real-site rows of scripts/bench.sh: Debian's python3-doc (the Python
# documentation, 500+ Sphinx pages, median about 54 KB, up to 2.5 MB,
# thousands of links on some pages) served by nginx on loopback, crawled by
# qpipe (specs/docs.json, --threads 8, otherwise default flags) and by Scrapy
# (scripts/bench_scrapy_docs.py, the same follow rule and fields). Prints
# three rows: pages/s against Scrapy's, qpipe's CPU per page against
# bench-parse's floor over the same pages (every page an item came from),
# and peak RSS.
#
#   scripts/bench-real.sh [RUNS]     default 3 (median); QP=path/to/qpipe to
#                                    measure another build (the floor always
#                                    uses this tree's release build)
#
# Needs nginx, redis-server, redis-cli, python3-doc, python3-scrapy and
# /usr/bin/time (scripts/bench.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
PY=/usr/bin/python3
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
DOCS_ROOT=""
for d in /usr/share/doc/python3.*/html; do
  case "$d" in *-dev/html) continue ;; esac
  [ -f "$d/index.html" ] && { DOCS_ROOT="$(readlink -f "$d")"; break; }
done
[ -n "$DOCS_ROOT" ] || { echo "bench-real: python3-doc is not installed (apt-get install python3-doc)" >&2; exit 1; }

cargo build --release --quiet
HERE="${CARGO_TARGET_DIR:-$PWD/target}/release/qpipe"
QP="${QP:-$HERE}"

work="$(mktemp -d)"
chmod 755 "$work"
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
col() { awk -v c="$1" '{print $c}' | median; }
span() { awk -v c="$1" '{print $c}' | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "-" b}'; }
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.3f}" if b else "-")' "$1" "$2"; }

RPORT="$(free_port)"
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done

NPORT="$(free_port)"
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  client_body_temp_path $work/body; proxy_temp_path $work/proxy;
  fastcgi_temp_path $work/fastcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
  server { listen 127.0.0.1:$NPORT; root $DOCS_ROOT; }
}
NGINX
"$NGINX" -c "$work/nginx.conf"
SITE="http://127.0.0.1:$NPORT/"
for _ in $(seq 100); do curl -sf "$SITE" >/dev/null 2>&1 && break; sleep 0.05; done

# One qpipe crawl: "pages/s cpu_ms_per_page peak_rss_mb pages items".
crawl() {
  redis-cli -p "$RPORT" flushall >/dev/null
  # exit 3: the site has one broken link (tests/real_site.rs), which fails
  # the run under the default --fail-on-errors 1 after the crawl is done.
  /usr/bin/time -v "$QP" produce --spec specs/docs.json --start-url "$SITE" --threads 8 \
    --redis "redis://127.0.0.1:$RPORT" --stats-json "$work/crawl.json" -q 2>"$work/time.txt" >/dev/null || true
  local pages cpu rss
  pages=$(json "$work/crawl.json" pages_fetched)
  cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$work/time.txt")
  rss=$(awk -F': ' '/Maximum resident/ {print $2/1024}' "$work/time.txt")
  echo "$(json "$work/crawl.json" pages_per_sec) $(python3 -c "print(f'{$cpu*1000/$pages:.3f}')") $rss $pages $(json "$work/crawl.json" items_pushed)"
}
scrapy_crawl() { # "pages/s pages items"
  local got
  got=$("$PY" scripts/bench_scrapy_docs.py "$SITE" "$work/scrapy.jsonl" 2>/dev/null)
  set -- $got
  echo "$(python3 -c "print(f'{$1/$3:.1f}')") $1 $2"
}
echo "bench-real: qpipe on $DOCS_ROOT" >&2
for _ in $(seq "$RUNS"); do crawl; done >"$work/qpipe.txt"
# The floor over the same pages: every page an item came from.
redis-cli -p "$RPORT" --raw lrange DATA-PIPELINE-KEY 0 -1 \
  | python3 -c 'import json,sys,urllib.parse
root, site = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    if not line.strip(): continue
    path = urllib.parse.unquote(urllib.parse.urlsplit(json.loads(line)["url"]).path)
    if path.endswith("/"): path += "index.html"
    print(root + path)' "$DOCS_ROOT" "$SITE" | sort -u >"$work/pages.txt"
echo "bench-real: parse floor over $(wc -l <"$work/pages.txt") pages" >&2
xargs -a "$work/pages.txt" -d '\n' "$HERE" bench-parse --spec specs/docs.json --url "$SITE" --iterations 3 >"$work/floor.txt"
FLOOR=$(json "$work/floor.txt" floor_ms)
echo "bench-real: Scrapy" >&2
for _ in $(seq "$RUNS"); do scrapy_crawl; done >"$work/scrapy.txt"

PPS=$(col 1 <"$work/qpipe.txt"); CPU=$(col 2 <"$work/qpipe.txt"); RSS=$(col 3 <"$work/qpipe.txt")
SC=$(col 1 <"$work/scrapy.txt")
row() { printf '%-44s %14s %14s %8s  %s\n' "$1" "$2" "$3" "$4" "${5:-}"; }
row "real site pages/s vs Scrapy (target 30)" "$PPS" "$SC" "$(ratio "$PPS" "$SC")" "$(span 1 <"$work/qpipe.txt"), Scrapy $(span 1 <"$work/scrapy.txt")"
row "real site CPU ms/page / floor (target 1.15)" "$CPU" "$FLOOR" "$(ratio "$CPU" "$FLOOR")" "$(span 2 <"$work/qpipe.txt")"
row "real site peak RSS MB (-t8; target 64)" "$RSS" "64" "$(ratio "$RSS" 64)" "$(span 3 <"$work/qpipe.txt")"
echo "real site: $(col 4 <"$work/qpipe.txt") pages, $(col 5 <"$work/qpipe.txt") items (Scrapy: $(col 2 <"$work/scrapy.txt") pages, $(col 3 <"$work/scrapy.txt") items); floor: bench-parse of specs/docs.json over $(wc -l <"$work/pages.txt") pages ($(json "$work/floor.txt" bytes) bytes)"
