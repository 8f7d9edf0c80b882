#!/usr/bin/env bash
# Chaos run: steady load through ringway to an nginx backend, the backend killed (SIGKILL) and later
# restarted, and a table of response statuses per second with the gateway's breaker and outlier
# events, showing the breaker opening (fast 503s instead of 502s) and closing after recovery.
#   scripts/chaos.sh [--secs 20] [--kill-at 5] [--restart-at 12] [--clients 8]
# Installs nginx when missing. The gateway log is kept in the printed scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_tools nginx:nginx-light
cargo build --release --quiet
exec python3 - "$PWD/target/release/ringway" "$@" <<'PY'
import sys; sys.path.insert(0, "scripts")
from compare import free_port, wait_listening
import argparse, collections, http.client, json, os, signal, socket, subprocess, sys, tempfile, threading, time
from datetime import datetime

ap = argparse.ArgumentParser(prog="scripts/chaos.sh")
ap.add_argument("binary")
ap.add_argument("--secs", type=int, default=20)
ap.add_argument("--kill-at", type=float, default=5)
ap.add_argument("--restart-at", type=float, default=12)
ap.add_argument("--clients", type=int, default=8)
a = ap.parse_args()

d = tempfile.mkdtemp(prefix="ringway-chaos-")
be_port, gw_port = free_port(), free_port()
with open(f"{d}/backend.conf", "w") as f:
    f.write(f"""worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; server {{ listen 127.0.0.1:{be_port} reuseport; location / {{ return 200 "ok\\n"; }} }} }}
""")
with open(f"{d}/ringway.toml", "w") as f:
    f.write(f"""[server]
listen = ["127.0.0.1:{gw_port}"]
tick = "20ms"
[log]
format = "json"
[upstreams.backend]
targets = ["127.0.0.1:{be_port}"]
connect_timeout = "1s"
response_timeout = "2s"
[upstreams.backend.breaker]
consecutive_failures = 5
failure_ratio = 0.5
min_requests = 20
open_duration = "1s"
max_open_duration = "4s"
half_open_probes = 3
[[routes]]
upstream = "backend"
""")

def start_backend():
    return subprocess.Popen(["nginx", "-c", f"{d}/backend.conf"], start_new_session=True,
                            stderr=subprocess.DEVNULL)

backend = start_backend()
log = open(f"{d}/ringway.log", "w")
gw = subprocess.Popen([a.binary, "--config", f"{d}/ringway.toml"], stdout=log, stderr=log, start_new_session=True)
if not (wait_listening(be_port) and wait_listening(gw_port)):
    sys.exit(f"backend or gateway did not start; see {d}")

counts = collections.defaultdict(collections.Counter)
lock = threading.Lock()
t0 = time.time()
stop = threading.Event()

def client():
    c = None
    while not stop.is_set():
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=10)
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            status = r.status
            if r.getheader("connection", "").lower() == "close":
                c.close()
                c = None
        except Exception:
            status = "conn-error"
            c = None
        with lock:
            counts[int(time.time() - t0)][status] += 1

threads = [threading.Thread(target=client, daemon=True) for _ in range(a.clients)]
for t in threads:
    t.start()
events = collections.defaultdict(list)
killed = restarted = False
while time.time() - t0 < a.secs:
    now = time.time() - t0
    if not killed and now >= a.kill_at:
        os.killpg(backend.pid, signal.SIGKILL)
        backend.wait()
        events[int(now)].append("backend KILLED")
        killed = True
    if killed and not restarted and now >= a.restart_at:
        backend = start_backend()
        events[int(now)].append("backend restarted")
        restarted = True
    time.sleep(0.05)
stop.set()
for t in threads:
    t.join(timeout=15)
os.killpg(gw.pid, signal.SIGTERM)
gw.wait(timeout=30)
try:
    os.killpg(backend.pid, signal.SIGKILL)
except ProcessLookupError:
    pass
log.close()

# Breaker and outlier events from the gateway's JSON log, placed in the second they happened.
for line in open(f"{d}/ringway.log"):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    msg = j.get("fields", {}).get("message", "")
    if msg.startswith("circuit breaker") or msg.startswith("outlier target"):
        ts = datetime.fromisoformat(j["timestamp"].replace("Z", "+00:00")).timestamp()
        extra = j.get("fields", {}).get("reason") or ""
        events[int(ts - t0)].append(msg.replace("circuit breaker", "breaker") + (f" ({extra})" if extra else ""))

statuses = sorted({s for c in counts.values() for s in c}, key=str)
print(f"{'sec':>4} " + " ".join(f"{str(s):>10}" for s in statuses) + "  events")
for sec in range(a.secs):
    row = counts.get(sec, {})
    print(f"{sec:>4} " + " ".join(f"{row.get(s, 0):>10}" for s in statuses) + "  " + "; ".join(events.get(sec, [])))
total = collections.Counter()
for c in counts.values():
    total.update(c)
print("total: " + ", ".join(f"{s}: {n}" for s, n in sorted(total.items(), key=lambda x: str(x[0]))))
print(f"logs: {d}")
PY
