#!/usr/bin/env python3
"""RSS per idle keep-alive client connection, for ringway and (optionally) nginx as a reverse proxy.

Starts an nginx backend, then for each proxy: starts it pinned to one CPU, opens N client connections,
sends one request on each and reads the response (so every connection has served a request and sits
idle in keep-alive), waits for the proxy to settle, and reports (RSS with N idle connections - RSS at
rest) / N.

Usage: scripts/idle-mem.py [--conns 10000] [--binary target/release/ringway] [--no-nginx] [--settle 3]
Needs: nginx (apt-get install -y nginx-light). Raises RLIMIT_NOFILE to its hard limit.
"""
import argparse, os, resource, shutil, signal, socket, subprocess, sys, tempfile, time

BACKEND = """worker_processes 1; daemon off; pid {d}/be.pid; error_log {d}/be.err warn;
events {{ worker_connections 1024; }}
http {{ access_log off; server {{ listen 127.0.0.1:{port}; location / {{ return 200 "hello world\\n"; }} }} }}
"""
NGINX_PROXY = """worker_processes 1; daemon off; pid {d}/px.pid; error_log {d}/px.err warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 30000; }}
http {{ access_log off; keepalive_timeout 300s; keepalive_requests 100000;
  upstream be {{ server 127.0.0.1:{be}; keepalive 64; }}
  server {{ listen 127.0.0.1:{port} backlog=16384;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""
RINGWAY = """[server]
listen = ["127.0.0.1:{port}"]
workers = 1
backlog = 16384
[http]
keepalive_timeout = "300s"
[upstreams.be]
targets = ["127.0.0.1:{be}"]
[[routes]]
upstream = "be"
"""


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, wait_listening as wait_port  # noqa: E402


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def proxy_pids(p, name):
    """The proxy's worker processes (nginx: master + worker; ringway: one process)."""
    out = subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out] or [p.pid]


def settled_rss(pids, settle, limit=30.0):
    """RSS once it has stopped falling: at least `settle` seconds after the last response, then until
    it moved less than 0.5 % over the last 2 s (idle buffers are released after the gateway's
    `idle_buffer_release`, and the allocator returns the pages at its next collection, so the drop
    can come anywhere from 2 to 6 s after the last request). Returns (KiB, seconds waited)."""
    start = time.time()
    time.sleep(settle)
    samples = [rss_kib(pids)]
    while time.time() - start < limit:
        time.sleep(0.5)
        samples.append(rss_kib(pids))
        window = samples[-5:]
        if len(window) == 5 and max(window) - min(window) <= 0.005 * max(window):
            break
    return samples[-1], time.time() - start


def measure(name, cmd, port, conns, settle, d):
    p = subprocess.Popen(["taskset", "-c", "0"] + cmd, cwd=d, stdout=open(f"{d}/{name}.log", "ab"),
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if not wait_port(port):
            sys.exit(f"{name} did not listen on {port}")
        # One request to warm up pools and buffers, then the resting size.
        one = socket.create_connection(("127.0.0.1", port))
        one.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        one.recv(4096)
        one.close()
        time.sleep(settle)
        pids = proxy_pids(p, name)
        base = rss_kib(pids)
        socks = []
        req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        batch = 500
        for i in range(0, conns, batch):
            group = []
            for _ in range(min(batch, conns - i)):
                s = socket.create_connection(("127.0.0.1", port))
                s.sendall(req)
                group.append(s)
            for s in group:
                data = b""
                while b"hello world\n" not in data:
                    chunk = s.recv(4096)
                    if not chunk:
                        sys.exit(f"{name}: connection closed before the response")
                    data += chunk
            socks.extend(group)
        loaded, took = settled_rss(pids, settle)
        per = (loaded - base) * 1024 / conns
        print(f"{name:8s} conns={conns} rss_rest={base} KiB rss_idle={loaded} KiB per_conn={per:.0f} B ({per/1024:.2f} KiB)"
              f" settled after {took:.1f} s")
        for s in socks:
            s.close()
        return per
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "ringway"))
    ap.add_argument("--no-nginx", action="store_true")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds to wait at least before measuring; then until RSS is stable")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.conns + 100 > hard:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} is too low for {a.conns} connections")
    if not shutil.which("nginx"):
        sys.exit("nginx not found: apt-get install -y nginx-light")
    d = tempfile.mkdtemp(prefix="idle-mem-")
    be = free_port()
    with open(f"{d}/be.conf", "w") as f:
        f.write(BACKEND.format(d=d, port=be))
    backend = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", f"{d}/be.conf"], start_new_session=True)
    try:
        wait_port(be)
        port = free_port()
        with open(f"{d}/ringway.toml", "w") as f:
            f.write(RINGWAY.format(port=port, be=be))
        measure("ringway", [os.path.abspath(a.binary), "--config", f"{d}/ringway.toml"], port, a.conns, a.settle, d)
        if not a.no_nginx:
            port = free_port()
            with open(f"{d}/px.conf", "w") as f:
                f.write(NGINX_PROXY.format(d=d, port=port, be=be))
            measure("nginx", ["nginx", "-c", f"{d}/px.conf"], port, a.conns, a.settle, d)
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
