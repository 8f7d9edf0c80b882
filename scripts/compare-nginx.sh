#!/usr/bin/env bash
# Ringway against nginx as a reverse proxy on this machine: same nginx backend, each proxy pinned to
# CPU 0 with one worker, backend and load generator on CPU 1, rounds alternating. Prints medians and
# ratios (CPU per request is the figure that matters on a small box: the load generator caps req/s).
#   scripts/compare-nginx.sh                 # 12-byte responses, 64 connections
#   scripts/compare-nginx.sh --size 16384    # 16 KiB responses
#   scripts/compare-nginx.sh --conns 1000 --tool oha
# Any option of scripts/compare.py can be added. Installs nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools nginx:nginx-light wrk:wrk taskset:util-linux
if [[ " $* " == *" --tool oha "* ]] && ! command -v oha >/dev/null; then
  cargo install --locked oha
  export PATH="$HOME/.cargo/bin:$PATH"
fi
cargo build --release --quiet
bin="$PWD/target/release/ringway"
exec python3 scripts/compare.py --nginx \
  --proxy "ringway=$bin proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1" "$@"
