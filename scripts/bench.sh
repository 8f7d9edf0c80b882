#!/usr/bin/env bash
# Load a running gateway with wrk and oha and print their summaries.
#   scripts/bench.sh [URL] [DURATION_SECS] [CONNECTIONS]
#   e.g. scripts/bench.sh http://127.0.0.1:8080/ 10 64
# Pin the load generator away from the gateway's CPUs with LOAD_CPUS (default: all CPUs), e.g.
#   LOAD_CPUS=1 scripts/bench.sh
# Installs wrk (apt-get) and oha (cargo install) when missing.
set -euo pipefail
url="${1:-http://127.0.0.1:8080/}"
secs="${2:-10}"
conns="${3:-64}"
threads="${THREADS:-1}"
pin=()
if [ -n "${LOAD_CPUS:-}" ]; then pin=(taskset -c "$LOAD_CPUS"); fi

. "$(dirname "$0")/lib.sh"
ensure_tools wrk:wrk curl:curl
if ! command -v oha >/dev/null && [ ! -x "$HOME/.cargo/bin/oha" ]; then
  echo "installing oha (cargo install oha; takes a few minutes once)" >&2
  cargo install --locked oha
fi
oha_bin="$(command -v oha || echo "$HOME/.cargo/bin/oha")"

if ! curl -fsS -o /dev/null "$url" 2>/dev/null && ! curl -sS -o /dev/null -w '%{http_code}' "$url" >/dev/null 2>&1; then
  echo "nothing answers at $url; start the gateway first (cargo run --release -- --config config.toml)" >&2
  exit 1
fi

echo "== wrk: ${conns} connections, ${threads} thread(s), ${secs}s, $url"
"${pin[@]}" wrk -t"$threads" -c"$conns" -d"${secs}s" --latency "$url"
echo
echo "== oha: ${conns} connections, ${secs}s, $url"
"${pin[@]}" "$oha_bin" --no-tui -c "$conns" -z "${secs}s" "$url"
