#!/usr/bin/env python3
"""Side-by-side proxy comparison on one machine: ringway (one or more builds/configs) against nginx,
same nginx backend, proxies pinned to one CPU, backend and load generator on another, rounds
alternating between proxies so drift (thermal, noisy neighbours) hits all of them alike.

For each proxy it reports the median over rounds of: requests/s, proxy CPU time per request
(user+system of every process in the proxy's process group, from /proc, divided by requests), the
share of that CPU spent in the kernel, p50/p99 latency, and errors; ratios are against the first
proxy named `nginx` (or the first proxy).

Usage:
  scripts/compare.py [--proxy NAME='CMD {port} {backend}'] ... [--nginx] [--size BYTES] [--conns N]
                     [--secs S] [--rounds R] [--tool wrk|oha] [--proxy-cpus 0] [--load-cpus 1]
                     [--header 'NAME: VALUE'] ...
  CMD may use {port} (where to listen), {backend} (host:port of the backend) and {dir} (a scratch
  directory).
  e.g. scripts/compare.py --nginx --proxy ringway='target/release/ringway proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1'

Needs nginx and wrk (or oha); `scripts/compare-nginx.sh` installs them and picks sensible defaults.
"""
import argparse, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

HZ = os.sysconf("SC_CLK_TCK")

BACKEND_CONF = """worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err warn;
events {{ worker_connections 16384; }}
http {{ access_log off; keepalive_requests 100000000; sendfile on;
  server {{ listen 127.0.0.1:{port} reuseport backlog=8192; root {d}/www;
    location = / {{ return 200 "hello world\\n"; }}
    location / {{ }} }} }}
"""

NGINX_PROXY_CONF = """worker_processes 1; daemon off; pid {d}/nginx-proxy.pid; error_log {d}/nginx-proxy.err warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{ access_log off; keepalive_requests 100000000;
  upstream backend {{ server {backend}; keepalive 512; keepalive_requests 100000000; }}
  server {{ listen 127.0.0.1:{port} reuseport backlog=8192;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
"""


# nginx with a JSON access log, buffered as a production nginx would write it (the peer for the
# call log's cost: `--nginx-log`).
NGINX_LOG_FORMAT = (
    "log_format calls escape=json '{{\"time\":\"$time_iso8601\",\"request_id\":\"$request_id\","
    "\"method\":\"$request_method\",\"host\":\"$host\",\"uri\":\"$request_uri\",\"status\":$status,"
    "\"bytes_in\":$request_length,\"bytes_out\":$bytes_sent,\"latency\":$request_time,"
    "\"upstream\":\"$upstream_addr\",\"upstream_connect\":\"$upstream_connect_time\","
    "\"upstream_header\":\"$upstream_header_time\",\"upstream_response\":\"$upstream_response_time\","
    "\"client_ip\":\"$remote_addr\",\"user_agent\":\"$http_user_agent\"}}';"
)
NGINX_LOG_CONF = NGINX_PROXY_CONF.replace(
    "http {{ access_log off;",
    "http {{ " + NGINX_LOG_FORMAT + " access_log {d}/nginx-access.log calls buffer=64k flush=1s;",
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=15.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_stats():
    """(pid, fields of /proc/PID/stat after the command name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        yield int(entry), stat[stat.rindex(")") + 2:].split()


def group_stats(pgid):
    """(pid, fields of /proc/PID/stat after the command name) of every live process in process
    group `pgid`."""
    for pid, rest in proc_stats():
        if int(rest[2]) == pgid:  # field 5: pgrp
            yield pid, rest


def group_cpu_seconds(pgid):
    """(user, system) CPU seconds of every live process in process group `pgid`."""
    user = system = 0
    for _, rest in group_stats(pgid):
        user += int(rest[11])
        system += int(rest[12])
    return user / HZ, system / HZ


def group_pids(pgid):
    """The pids of every live process in process group `pgid`."""
    return [pid for pid, _ in group_stats(pgid)]


def run_load(tool, port, conns, secs, path, cpus, headers=(), scheme="http", rate=None):
    """One load run. `rate` (oha only): a fixed request rate, latency-corrected."""
    url = f"{scheme}://127.0.0.1:{port}{path}"
    hdr = [x for h in headers for x in ("-H", h)]
    if tool == "oha":
        fixed = ["-q", str(rate), "--latency-correction"] if rate else []
        out = subprocess.run(["taskset", "-c", cpus, "oha", "--no-tui", "--output-format", "json", "-c", str(conns), *fixed,
                              "-z", f"{secs}s", *hdr, url],
                             capture_output=True, text=True).stdout
        try:
            j = json.loads(out)
        except json.JSONDecodeError:
            return None
        codes = j.get("statusCodeDistribution", {})
        total = sum(codes.values())
        ok = sum(v for k, v in codes.items() if k.startswith("2"))
        pct = j.get("latencyPercentiles", {})
        return {"requests": total, "rps": j["summary"]["requestsPerSec"], "errors": total - ok + sum(j.get("errorDistribution", {}).values()),
                "p50_ms": (pct.get("p50") or 0) * 1e3, "p99_ms": (pct.get("p99") or 0) * 1e3}
    out = subprocess.run(["taskset", "-c", cpus, "wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency", *hdr, url],
                         capture_output=True, text=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        return None
    lat = {}
    for q in ("50", "99"):
        mm = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if mm:
            lat[q] = float(mm.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[mm.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"requests": int(m.group(1)), "rps": float(rps.group(1)) if rps else 0.0, "errors": errors,
            "p50_ms": lat.get("50"), "p99_ms": lat.get("99")}


def require_tools(*tools):
    """Exits naming the first of `tools` that is not on PATH."""
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (scripts/compare-nginx.sh installs what is needed)")


def start_proxy(name, cmd, cpus, d):
    """Runs `cmd` pinned to `cpus` in a process group of its own, logging to {d}/{name}.log. It runs
    in the caller's working directory, so relative paths in `cmd` mean what they meant there."""
    log = open(os.path.join(d, f"{name}.log"), "ab")
    return subprocess.Popen(["taskset", "-c", cpus, "sh", "-c", cmd], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_group(p):
    """SIGTERM to `p`'s process group, SIGKILL if it is still there 10 s later."""
    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()


def start_backend(prefix, size, cpus, port=None):
    """A scratch directory and the nginx backend pinned to `cpus`, serving `size` random bytes at
    /body (or the 12-byte 'hello world' at / when `size` is 0). Returns (dir, path, process,
    "127.0.0.1:port"); exits if the backend does not start."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.makedirs(f"{d}/www")
    path = "/"
    if size:
        with open(f"{d}/www/body", "wb") as f:
            f.write(os.urandom(size))
        path = "/body"
    os.chmod(d, 0o755)
    for root, dirs, files in os.walk(d):
        for x in dirs + files:
            os.chmod(os.path.join(root, x), 0o755)
    port = port or free_port()
    with open(f"{d}/backend.conf", "w") as f:
        f.write(BACKEND_CONF.format(d=d, port=port))
    p = subprocess.Popen(["taskset", "-c", cpus, "nginx", "-c", f"{d}/backend.conf"], start_new_session=True)
    if not wait_listening(port):
        stop_group(p)
        sys.exit("backend did not start")
    return d, path, p, f"127.0.0.1:{port}"


def measure(name, cmd, port, a, d, path):
    p = start_proxy(name, cmd, a.proxy_cpus, d)
    try:
        if not wait_listening(port):
            print(f"{name}: not listening on {port} (see {d}/{name}.log)", file=sys.stderr)
            return None
        run_load(a.tool, port, a.conns, 1, path, a.load_cpus, a.header)  # warm-up: pools and buffers filled
        u0, s0 = group_cpu_seconds(p.pid)
        r = run_load(a.tool, port, a.conns, a.secs, path, a.load_cpus, a.header)
        u1, s1 = group_cpu_seconds(p.pid)
        if not r or not r["requests"]:
            return None
        cpu = (u1 - u0) + (s1 - s0)
        r["us_per_req"] = cpu / r["requests"] * 1e6
        r["kernel_share"] = (s1 - s0) / cpu if cpu else 0.0
        return r
    finally:
        stop_group(p)
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxy", action="append", default=[], metavar="NAME=CMD")
    ap.add_argument("--nginx", action="store_true", help="include nginx as a reverse proxy")
    ap.add_argument("--nginx-log", action="store_true",
                    help="also nginx with a buffered JSON access log (named nginx-log)")
    ap.add_argument("--size", type=int, default=0, help="response body bytes (0: 12-byte 'hello world')")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tool", choices=("wrk", "oha"), default="wrk")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--backend-port", type=int, default=None,
                    help="port of the backend (default: a free one); for proxies provisioned beforehand")
    ap.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                    help="request header sent by the load generator (repeatable)")
    a = ap.parse_args()
    require_tools("nginx", a.tool, "taskset")
    proxies = []
    if a.nginx:
        proxies.append(("nginx", None))
    if a.nginx_log:
        proxies.append(("nginx-log", None))
    for spec in a.proxy:
        name, _, cmd = spec.partition("=")
        if not cmd:
            sys.exit(f"--proxy {spec!r}: expected NAME=CMD")
        proxies.append((name, cmd))
    if not proxies:
        sys.exit("nothing to compare: give --nginx and/or --proxy NAME=CMD")

    d, path, backend, backend_addr = start_backend("ringway-compare-", a.size, a.load_cpus, a.backend_port)
    results = {name: [] for name, _ in proxies}
    try:
        for rnd in range(a.rounds):
            for name, cmd in proxies:
                port = free_port()
                if cmd is None:
                    conf = f"{d}/{name}.conf"
                    tmpl = NGINX_LOG_CONF if name == "nginx-log" else NGINX_PROXY_CONF
                    if os.path.exists(f"{d}/nginx-access.log"):
                        os.remove(f"{d}/nginx-access.log")
                    with open(conf, "w") as f:
                        f.write(tmpl.format(d=d, port=port, backend=backend_addr))
                    cmd = f"exec nginx -c {conf}"
                else:
                    cmd = cmd.format(port=port, backend=backend_addr, dir=d)
                r = measure(name, cmd, port, a, d, path)
                results[name].append(r)
                if r and not a.json:
                    print(f"round {rnd + 1} {name:12s} {r['rps']:9.0f} req/s {r['us_per_req']:6.2f} us/req "
                          f"p99 {r['p99_ms']} ms errors {r['errors']}", file=sys.stderr)
    finally:
        stop_group(backend)
        # The scratch directory holds what the proxies wrote (call logs, access logs).
        shutil.rmtree(d, ignore_errors=True)

    summary = {"size": a.size, "conns": a.conns, "secs": a.secs, "rounds": a.rounds, "tool": a.tool, "proxies": {}}
    for name, runs in results.items():
        ok = [r for r in runs if r]
        if not ok:
            summary["proxies"][name] = None
            continue
        med = lambda k: statistics.median([r[k] for r in ok if r.get(k) is not None]) if any(r.get(k) is not None for r in ok) else None
        summary["proxies"][name] = {k: med(k) for k in ("rps", "us_per_req", "kernel_share", "p50_ms", "p99_ms")}
        summary["proxies"][name]["errors"] = sum(r["errors"] for r in ok)
        summary["proxies"][name]["rounds_ok"] = len(ok)
    base_name = "nginx" if "nginx" in results else proxies[0][0]
    base = summary["proxies"].get(base_name)
    if a.json:
        print(json.dumps(summary, indent=1))
        return
    print(f"body={a.size or 12}B conns={a.conns} {a.secs}s x {a.rounds} rounds, tool={a.tool}, proxy on CPU {a.proxy_cpus}, "
          f"backend+load on CPU {a.load_cpus}; medians; ratios vs {base_name}")
    print(f"{'proxy':12s} {'req/s':>9s} {'us/req':>7s} {'kernel':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'errors':>6s} {'rps x':>6s} {'cpu x':>6s}")
    for name, s in summary["proxies"].items():
        if not s:
            print(f"{name:12s} FAILED")
            continue
        rx = s["rps"] / base["rps"] if base else 1
        cx = s["us_per_req"] / base["us_per_req"] if base else 1
        print(f"{name:12s} {s['rps']:9.0f} {s['us_per_req']:7.2f} {s['kernel_share']:6.2f} {s['p50_ms'] or 0:7.3f} "
              f"{s['p99_ms'] or 0:7.3f} {s['errors']:6d} {rx:6.3f} {cx:6.3f}")


if __name__ == "__main__":
    main()
