#!/bin/bash
# 1,000,000 items, 100 workers each holding 10; default dashboard (--every 5); one viewer reloading every 5 s, 60 s.
set -e
cd "$(dirname "$0")/.."
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
redis-server --port 0 --unixsocket "$DIR"/r.sock --save '' --appendonly no --daemonize yes --pidfile "$DIR"/r.pid >/dev/null
sleep 0.5
C="redis-cli -s $DIR/r.sock"
$C EVAL "for i = 1, 1000000, 5000 do local t = {} for j = i, i + 4999 do t[#t + 1] = j end redis.call('RPUSH', KEYS[1], unpack(t)) end" 1 DATA-PIPELINE-KEY >/dev/null
$C EVAL "for w = 1, 100 do local id = 'w:' .. w .. ':n' local b = KEYS[1] .. ':processing:' .. id .. ':0:1' redis.call('SADD', KEYS[1] .. ':consumers', id) redis.call('SET', KEYS[1] .. ':consumer:' .. id, '2026-12-05T00:00:00.000Z', 'EX', 600) redis.call('SADD', KEYS[1] .. ':batches:' .. id, b) for i = 1, 10 do redis.call('RPUSH', b, i) end end" 1 DATA-PIPELINE-KEY >/dev/null
"${QPIPE:-target/release/qpipe}" dashboard --redis unix://"$DIR"/r.sock --addr 127.0.0.1:19282 > "$DIR/dash.log" 2>&1 &
DP=$!
sleep 1
calls() { $C INFO commandstats | grep -o 'calls=[0-9]*' | cut -d= -f2 | awk '{s+=$1} END {print s}'; }
cpu() { $C INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s+=$2} END {print s}'; }
c0=$(calls); u0=$(cpu); t0=$(date +%s.%N)
# (the two INFO calls of each reading are left out below)
for i in $(seq 12); do curl -s http://127.0.0.1:19282/ -o /dev/null; sleep 5; done
c1=$(calls); u1=$(cpu); t1=$(date +%s.%N)
kill -TERM $DP; wait $DP || true
echo "dashboard load over 1,000,000 items and 100 workers, default --every 5, one viewer reloading every 5 s:"
awk -v c="$((c1-c0-2))" -v t0="$t0" -v t1="$t1" -v u0="$u0" -v u1="$u1" 'BEGIN {printf "commands %d in %.1f s (%.0f/s), Redis CPU %.3f s (%.2f%% of one core)\n", c, t1-t0, c/(t1-t0), u1-u0, (u1-u0)/(t1-t0)*100}'
grep -E "samples|scan_calls|requests " "$DIR/dash.log"
$C shutdown nosave >/dev/null 2>&1 || true
