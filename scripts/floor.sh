#!/usr/bin/env bash
# Where the floor is: ringway and nginx side by side with the two cheapest forwarders this machine
# allows (perf/floor/), same backend, same pinning, rounds alternating. Neither forwarder speaks
# HTTP; they tell how much of a proxy's CPU per request is the kernel and the runtime, and how much
# is the proxy's own work.
#   monoio-fwd       monoio 0.2.4 with ringway's ring flags, a copy task per direction
#   uring-fwd        io_uring without a runtime: multishot receive, provided buffers, registered files
#   uring-fwd-nofix  the same with plain file descriptors
#   uring-fwd-single the same with one single-shot receive per completion (MULTI=0)
#   uring-fwd-single-pf  single-shot receives with IORING_RECVSEND_POLL_FIRST (POLLFIRST=1)
# For a 2-5 % question between two of these, use the paired scripts/ab.py instead (perf/RESULTS.md,
# "What a ring layer of ringway's own would buy").
#   scripts/floor.sh                  # 12-byte responses, 64 connections, 5 rounds of 5 s
#   scripts/floor.sh --size 16384 --rounds 7
# Any option of scripts/compare.py can be added. Installs nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools nginx:nginx-light wrk:wrk taskset:util-linux
cargo build --release --quiet
cargo build --release --quiet --manifest-path perf/floor/Cargo.toml
bin="$PWD/target/release/ringway"
floor="$PWD/perf/floor/target/release"
exec python3 scripts/compare.py --nginx \
  --proxy "ringway=$bin proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1" \
  --proxy "monoio-fwd=$floor/monoio-fwd 127.0.0.1:{port} {backend}" \
  --proxy "uring-fwd=$floor/uring-fwd 127.0.0.1:{port} {backend}" \
  --proxy "uring-fwd-nofix=env FIXED=0 $floor/uring-fwd 127.0.0.1:{port} {backend}" \
  --proxy "uring-fwd-single=env MULTI=0 $floor/uring-fwd 127.0.0.1:{port} {backend}" \
  --proxy "uring-fwd-single-pf=env MULTI=0 POLLFIRST=1 $floor/uring-fwd 127.0.0.1:{port} {backend}" \
  "$@"
