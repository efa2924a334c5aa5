#!/usr/bin/env bash
# Memory per URL, measured: Redis bytes per seen fingerprint (a set, and a
# --dedup bloom filter at P = 1e-6), and in-process bytes per queued URL.
#
#   scripts/dedup-memory.sh [N_FINGERPRINTS] [N_QUEUED_URLS]
#
# Defaults: 10,000,000 fingerprints and 5,000,000 queued URLs. Starts its own
# redis-server (no persistence) on a unix socket in a temp dir. Each line
# printed is the JSON of one `qpipe bench` run: `bytes_per_fingerprint` is
# the sum of MEMORY USAGE over the key(s) divided by the fingerprints stored;
# `bytes_per_url` is the growth of resident memory (/proc/self/statm) per URL.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000000}"
URLS="${2:-5000000}"
command -v redis-server >/dev/null || { echo "dedup-memory: install redis-server" >&2; exit 1; }
cargo build --release --quiet
Q="${CARGO_TARGET_DIR:-target}/release/qpipe"
work="$(mktemp -d)"
redis-server --port 0 --unixsocket "$work/r.sock" --save "" --appendonly no \
  --dir "$work" --daemonize no >"$work/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid 2>/dev/null; wait $rpid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -S "$work/r.sock" ] && break; sleep 0.1; done
R="unix://$work/r.sock"
redis-server --version
"$Q" bench dedup --redis "$R" --key set --count "$N"
"$Q" bench dedup --redis "$R" --key bloom --dedup bloom \
  --dedup-capacity "$N" --dedup-error 0.000001 --count "$N"
# No false negatives: every fingerprint added is reported present.
"$Q" bench dedup --redis "$R" --key bloom --dedup bloom \
  --dedup-capacity "$N" --dedup-error 0.000001 --count 1000000 --probe
"$Q" bench frontier --count "$URLS"
