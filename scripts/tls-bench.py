#!/usr/bin/env python3
"""HTTPS side by side: ringway against nginx (OpenSSL) as TLS-terminating reverse proxies, on the
same ECDSA P-256 certificate, the same nginx backend, each proxy pinned to one CPU with the backend
and the load generator on the other, rounds alternating between the proxies.

Modes:
  keepalive  wrk over HTTPS keep-alive connections: proxy CPU microseconds per request.
  handshake  every request on a new connection (`Connection: close`): full TLS handshakes per
             second and CPU microseconds per handshake (wrk may resume sessions; both proxies
             see the same client).
  idle       N TLS connections (TLS 1.3), one request each, then idle: RSS per idle connection.

Usage: scripts/tls-bench.py [--mode keepalive|handshake|idle] [--size BYTES] [--conns 64] [--secs 5]
                            [--rounds 5] [--idle 2000] [--binary target/release/ringway]
Needs nginx, wrk and openssl (apt-get install -y nginx-light wrk openssl).
"""
import argparse, os, resource, socket, ssl, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (free_port, group_cpu_seconds, group_pids, require_tools, run_load,  # noqa: E402
                     start_backend, start_proxy, stop_group, wait_listening)

NGINX_TLS = """worker_processes 1; daemon off; pid {d}/nginx-tls.pid; error_log {d}/nginx-tls.err warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 30000; }}
http {{ access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  upstream backend {{ server {backend}; keepalive 512; keepalive_requests 100000000; }}
  server {{ listen 127.0.0.1:{port} ssl reuseport backlog=16384;
    ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_cache shared:S:10m;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""

RINGWAY_TLS = """[server]
listen = ["127.0.0.1:{plain}"]
workers = 1
backlog = 16384
[http]
keepalive_timeout = "300s"
[tls]
listen = ["127.0.0.1:{port}"]
certificates = [{{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}]
[upstreams.be]
targets = ["{backend}"]
[[routes]]
upstream = "be"
"""


def make_cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "30",
                    "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1"],
                   check=True, capture_output=True)


def wrk(port, conns, secs, path, cpus, close):
    hdr = ["Connection: close"] if close else []
    return run_load("wrk", port, conns, secs, path, cpus, hdr, scheme="https")


def rss_kib(pgid):
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


SETTLE = 3.0


def idle_rss(p, port, n, d):
    ctx = ssl.create_default_context(cafile=f"{d}/cert.pem")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    time.sleep(1.0)
    base = rss_kib(p.pid)
    conns = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="bench.test")
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
        got = b""
        while b"hello world" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        conns.append(s)
    time.sleep(SETTLE)
    held = rss_kib(p.pid)
    for s in conns:
        s.close()
    return (held - base) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("keepalive", "handshake", "idle"), default="keepalive")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--binary", default="target/release/ringway")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--settle", type=float, default=3.0, help="idle mode: seconds to wait before measuring")
    a = ap.parse_args()
    global SETTLE
    SETTLE = a.settle
    require_tools("nginx", "wrk", "openssl", "taskset")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    d, path, backend_proc, backend = start_backend("ringway-tls-bench-", a.size, a.load_cpus)
    make_cert(d)
    binary = os.path.abspath(a.binary)
    proxies = {}
    try:
        port = free_port()
        with open(f"{d}/nginx-tls.conf", "w") as f:
            f.write(NGINX_TLS.format(d=d, port=port, backend=backend))
        proxies["nginx"] = (f"nginx -c {d}/nginx-tls.conf", port)
        port = free_port()
        with open(f"{d}/ringway-tls.toml", "w") as f:
            f.write(RINGWAY_TLS.format(d=d, port=port, plain=free_port(), backend=backend))
        proxies["ringway"] = (f"{binary} --config {d}/ringway-tls.toml", port)
        results = {name: [] for name in proxies}
        for r in range(a.rounds if a.mode != "idle" else 1):
            for name, (cmd, port) in proxies.items():
                p = start_proxy(name, cmd, a.proxy_cpus, d)
                try:
                    if not wait_listening(port):
                        sys.exit(f"{name} did not listen on {port}; see {d}/{name}.log")
                    if a.mode == "idle":
                        results[name].append(idle_rss(p, port, a.idle, d))
                        continue
                    wrk(port, a.conns, 1, path, a.load_cpus, a.mode == "handshake")  # warm-up
                    u0, s0 = group_cpu_seconds(p.pid)
                    res = wrk(port, a.conns, a.secs, path, a.load_cpus, a.mode == "handshake")
                    u1, s1 = group_cpu_seconds(p.pid)
                finally:
                    stop_group(p)
                if not res or res["requests"] == 0:
                    sys.exit(f"{name}: no result from wrk")
                cpu_us = (u1 - u0 + s1 - s0) * 1e6 / res["requests"]
                res.update(cpu_us=cpu_us, rps=res["requests"] / a.secs)
                results[name].append(res)
                print(f"round {r + 1} {name:8} {res['rps']:9.0f}/s cpu={cpu_us:6.1f}us "
                      f"p50={res['p50_ms']}ms p99={res['p99_ms']}ms errors={res['errors']}", flush=True)
        if a.mode == "idle":
            for name, v in results.items():
                print(f"{name:8} {v[0]:.2f} KiB per idle TLS connection ({a.idle} connections)")
            return
        unit = "handshake" if a.mode == "handshake" else "request"
        med = {n: {k: statistics.median(x[k] for x in v) for k in ("rps", "cpu_us")} for n, v in results.items()}
        for name, m in med.items():
            print(f"{name:8} median {m['rps']:9.0f}/s  {m['cpu_us']:6.1f} us CPU per {unit}  "
                  f"(x{m['cpu_us'] / med['nginx']['cpu_us']:.3f} of nginx)")
    finally:
        stop_group(backend_proc)


if __name__ == "__main__":
    main()
