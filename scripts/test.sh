#!/usr/bin/env bash
# Runs every qpipe test. Installs what the tests need on Debian (as root).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
# tests/sentinel.rs runs real sentinels (Debian's redis-sentinel package).
command -v redis-sentinel >/dev/null 2>&1 || need_apt+=(redis-sentinel)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Tests send signals with kill(1) (procps) and fake a terminal with script(1).
[ -x /bin/kill ] || [ -x /usr/bin/kill ] || need_apt+=(procps)
command -v script >/dev/null 2>&1 || need_apt+=(bsdutils)
# tests/sinks.rs loads items into a private PostgreSQL and ClickHouse.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
command -v clickhouse-server >/dev/null 2>&1 || need_apt+=(clickhouse-server)
# tests/real_site.rs crawls Debian's Python documentation served by nginx.
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
ls /usr/share/doc/python3.*/html/index.html >/dev/null 2>&1 || need_apt+=(python3-doc)
# tests/dashboard.rs drives a real headless Chromium over its DevTools pipe.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# tests/metrics.rs reads scrapes with the reference Prometheus parser (Python).
if ! command -v python3 >/dev/null 2>&1; then
  need_apt+=(python3 python3-pip)
elif ! python3 -c 'import prometheus_client' >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  need_apt+=(python3-pip)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "test.sh: missing ${need_apt[*]}; install them (e.g. sudo apt-get install redis-server redis-tools)" >&2
    exit 1
  fi
fi
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  # Debian's python3 refuses plain pip installs (PEP 668) unless told.
  python3 -m pip install -q prometheus_client >/dev/null 2>&1 \
    || python3 -m pip install -q --break-system-packages prometheus_client >/dev/null 2>&1 \
    || { echo "test.sh: cannot install prometheus_client (pip install prometheus_client)" >&2; exit 1; }
fi
# The layout's rules (docs/contributing.md): no import circles, no import
# that runs back up the layers, no function of 80 lines or more.
python3 scripts/import-graph.py >/dev/null || { python3 scripts/import-graph.py; exit 1; }
python3 scripts/fn-lengths.py
# Tests start their own redis-server per test; none is left running.
cargo build --all-targets --quiet
cargo test --quiet -- --test-threads "${QPIPE_TEST_THREADS:-4}"
