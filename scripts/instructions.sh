#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a figure that does not move
# with the VM's noise, for A/B-ing changes too small for the CPU-time benchmarks (±2-3 % per run).
# Kernel work is not counted (it is the same for every build: see perf/RESULTS.md "The floor").
#   scripts/instructions.sh                                    # target/release/ringway
#   scripts/instructions.sh /tmp/ringway-old target/release/ringway
#   TOP=25 CONNS=16 SECS=5 scripts/instructions.sh BIN         # also list the costliest functions
# One nginx backend (12-byte responses) on CPU 1 with wrk; each binary runs `ringway proxy` with one
# shard under valgrind. Installs valgrind, nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools valgrind:valgrind nginx:nginx-light wrk:wrk taskset:util-linux
CONNS=${CONNS:-16}
SECS=${SECS:-5}
TOP=${TOP:-0}
if [ $# -eq 0 ]; then
  cargo build --release --quiet
  set -- target/release/ringway
fi
dir=$(mktemp -d /tmp/ringway-instr-XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.1
  done
  echo "nothing answered on port $1" >&2
  return 1
}
backend=$(free_port)
cat > "$dir/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $dir/nginx.pid; error_log $dir/nginx.err warn;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$backend; keepalive_requests 1000000000;
  location / { return 200 "hello world\n"; } } }
CONF
taskset -c 1 nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
cleanup() { kill "$nginx_pid" 2>/dev/null || true; [ -n "${vg_pid:-}" ] && kill "$vg_pid" 2>/dev/null || true; }
trap cleanup EXIT
wait_port "$backend"

for bin in "$@"; do
  port=$(free_port)
  out="$dir/callgrind.$(basename "$bin").$port"
  taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$bin" proxy --listen "127.0.0.1:$port" --upstream "127.0.0.1:$backend" --workers 1 \
    > "$out.log" 2>&1 &
  vg_pid=$!
  wait_port "$port"
  taskset -c 1 wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:$port/" > /dev/null   # warm pools and caches
  callgrind_control -z "$vg_pid" > /dev/null 2>&1
  requests=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
  callgrind_control -d "$vg_pid" > /dev/null 2>&1
  for _ in $(seq 1 100); do [ -s "$out.1" ] && break; sleep 0.1; done
  kill "$vg_pid"; wait "$vg_pid" 2>/dev/null || true; vg_pid=
  total=$(callgrind_annotate --threshold=100 "$out.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '%-40s %8d requests  %6d instructions/request\n' "$bin" "$requests" $((total / requests))
  if [ "$TOP" -gt 0 ]; then
    callgrind_annotate --threshold=100 --inclusive=yes "$out.1" 2>/dev/null \
      | awk -v n="$requests" -v top="$TOP" '/^ *[0-9,]+ +\( *[0-9.]+%\) / && !/PROGRAM TOTALS|clone.S|start_thread|thread_start|vtable.shim/ && shown < top {
          ir = $1; gsub(",", "", ir); $1 = ""; $2 = "";
          sub(/^ +/, ""); sub(/\/root\/.cargo\/registry\/src\/[^\/]+\//, ""); sub(/\/rustc\/[0-9a-f]+\/library\//, "");
          printf "  %7.0f  %s\n", ir / n, substr($0, 1, 150); shown++ }'
  fi
done
