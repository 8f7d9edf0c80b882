#!/usr/bin/env bash
# Sweeps the shard count: for N = 1 .. CPUs, runs `ringway proxy --workers N` pinned to CPUs
# 0..N-1 against an nginx backend and prints req/s, proxy CPU per request and p99 per N.
# The load generator and backend run on the CPUs the shards do not use (or share them when the
# shards take every CPU; then req/s is capped by the load generator, CPU per request still counts).
#   scripts/tune.sh [--conns 256] [--secs 5] [--rounds 3] [--size 0] [--max-workers N]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=256; secs=5; rounds=3; size=0; maxw=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --conns) conns="$2"; shift 2;;
    --secs) secs="$2"; shift 2;;
    --rounds) rounds="$2"; shift 2;;
    --size) size="$2"; shift 2;;
    --max-workers) maxw="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
. scripts/lib.sh
ensure_tools nginx:nginx-light wrk:wrk taskset:util-linux
cargo build --release --quiet
bin="$PWD/target/release/ringway"
ncpu=$(nproc)
printf "%-8s %-10s %-10s %10s %10s %9s %7s\n" workers shard_cpus load_cpus "req/s" "us/req" "p99_ms" errors
for n in $(seq 1 "$maxw"); do
  shard_cpus="0-$((n - 1))"
  if [ "$n" -lt "$ncpu" ]; then load_cpus="$n-$((ncpu - 1))"; else load_cpus="0-$((ncpu - 1))"; fi
  json=$(python3 scripts/compare.py --json --rounds "$rounds" --secs "$secs" --conns "$conns" --size "$size" \
    --proxy-cpus "$shard_cpus" --load-cpus "$load_cpus" \
    --proxy "ringway=$bin proxy --listen 127.0.0.1:{port} --upstream {backend} --workers $n --cpus $shard_cpus" 2>/dev/null)
  python3 - "$n" "$shard_cpus" "$load_cpus" "$json" <<'PY'
import json, sys
n, sc, lc, js = sys.argv[1:]
r = json.loads(js)["proxies"]["ringway"]
if not r:
    print(f"{n:<8s} {sc:<10s} {lc:<10s} FAILED")
else:
    print(f"{n:<8s} {sc:<10s} {lc:<10s} {r['rps']:10.0f} {r['us_per_req']:10.2f} {r['p99_ms'] or 0:9.2f} {r['errors']:7d}")
PY
done
