#!/usr/bin/env bash
# What the resilience policies cost: the bare proxy route against the same route with a circuit
# breaker, least-in-flight balancing and two stacked rate limits keyed by API key (far from
# exhaustion; bench/configs/policies.toml), side by side in one run, same nginx backend, proxy
# pinned to CPU 0 with one worker, load on CPU 1, rounds alternating. The figure is CPU per request.
#   scripts/bench-policies.sh [--rounds 5] [--secs 5] [--tool oha] ...   (options of compare.py)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools nginx:nginx-light wrk:wrk taskset:util-linux
cargo build --release --quiet
bin="$PWD/target/release/ringway"
tmpl="$PWD/bench/configs/policies.toml"
exec python3 scripts/compare.py \
  --header "X-Api-Key: bench-key-1" \
  --proxy "bare=RUST_LOG=warn exec $bin proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1" \
  --proxy "policies=sed -e s/@PORT@/{port}/ -e s/@BACKEND@/{backend}/ $tmpl > {dir}/policies-{port}.toml && RUST_LOG=warn exec $bin --config {dir}/policies-{port}.toml" \
  "$@"
