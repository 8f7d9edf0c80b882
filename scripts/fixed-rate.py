#!/usr/bin/env python3
"""Fixed-rate cost: ringway against nginx as reverse proxies at the loads gateways mostly run at,
not at saturation. oha sends a fixed request rate (latency-corrected: a late request counts from
when it should have been sent), each proxy pinned to one CPU, the nginx backend and oha on the
other, rounds alternating between the proxies.

Per proxy and rate (medians over rounds): proxy CPU microseconds per request, p50/p99 latency, and
per request: voluntary context switches (the proxy thread going to sleep, i.e. wake-ups) and, with
--trace, ringway's io_uring_enter calls (the syscalls tracepoint through `perf stat`). Tracing
costs the traced proxy CPU: take CPU figures from a run without it.

Usage: scripts/fixed-rate.py [--rates 5000,10000,20000] [--secs 8] [--rounds 3] [--conns 64]
                             [--binary target/release/ringway] [--size BYTES] [--trace]
                             [--proxy 'NAME=CMD with {port} {backend}' ...]
--proxy adds a proxy to the rounds (the floor forwarders of perf/floor/, another build).
Needs nginx and oha (cargo install oha --locked); perf optional.
"""
import argparse, os, re, shutil, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (NGINX_PROXY_CONF, free_port, group_cpu_seconds, group_pids, require_tools,  # noqa: E402
                     run_load, start_backend, start_proxy, stop_group, wait_listening)


def ctxt_switches(pgid):
    """Voluntary context switches of every thread of every process in the group."""
    total = 0
    for pid in group_pids(pgid):
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
        except OSError:
            continue
    return total


def oha(port, rate, conns, secs, path, cpus):
    return run_load("oha", port, conns, secs, path, cpus, rate=rate)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="5000,10000,20000")
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--binary", default="target/release/ringway")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--trace", action="store_true", help="count io_uring_enter calls with perf (costs CPU)")
    ap.add_argument("--proxy", action="append", default=[], metavar="NAME=CMD",
                    help="another proxy to measure; CMD gets {port} and {backend}")
    a = ap.parse_args()
    require_tools("nginx", "oha", "taskset")
    perf = shutil.which("perf") if a.trace else None
    if a.trace and not perf:
        sys.exit("--trace needs perf")
    d, path, backend_proc, backend = start_backend("ringway-fixed-rate-", a.size, a.load_cpus)
    binary = os.path.abspath(a.binary)
    try:
        nport, rport = free_port(), free_port()
        with open(f"{d}/nginx-proxy.conf", "w") as f:
            f.write(NGINX_PROXY_CONF.format(d=d, port=nport, backend=backend))
        proxies = {
            "nginx": (f"nginx -c {d}/nginx-proxy.conf", nport),
            "ringway": (f"{binary} proxy --listen 127.0.0.1:{rport} --upstream {backend} --workers 1", rport),
        }
        for spec in a.proxy:
            name, sep, cmd = spec.partition("=")
            if not sep or not name or not cmd:
                sys.exit(f"--proxy {spec!r}: expected NAME=CMD")
            port = free_port()
            proxies[name] = (cmd.format(port=port, backend=backend), port)
        rows = {}
        for rate in [int(x) for x in a.rates.split(",")]:
            for r in range(a.rounds):
                for name, (cmd, port) in proxies.items():
                    p = start_proxy(name, cmd, a.proxy_cpus, d)
                    try:
                        if not wait_listening(port):
                            sys.exit(f"{name} did not listen; see {d}/{name}.log")
                        oha(port, rate, a.conns, 1, path, a.load_cpus)  # warm-up
                        u0, s0 = group_cpu_seconds(p.pid)
                        c0 = ctxt_switches(p.pid)
                        tracer = None
                        if perf and name != "nginx":
                            pids = ",".join(str(x) for x in group_pids(p.pid))
                            tracer = subprocess.Popen(
                                [perf, "stat", "-x,", "-e", "syscalls:sys_enter_io_uring_enter", "-p", pids],
                                stderr=subprocess.PIPE, text=True)
                        res = oha(port, rate, a.conns, a.secs, path, a.load_cpus)
                        enters = None
                        if tracer:
                            tracer.send_signal(2)
                            err = tracer.communicate()[1]
                            m = re.search(r"^(\d+),", err, re.M)
                            enters = int(m.group(1)) if m else None
                        u1, s1 = group_cpu_seconds(p.pid)
                        c1 = ctxt_switches(p.pid)
                    finally:
                        stop_group(p)
                    if not res or not res["requests"]:
                        sys.exit(f"{name}: no result from oha")
                    n = res["requests"]
                    res.update(cpu_us=(u1 - u0 + s1 - s0) * 1e6 / n, sleeps=(c1 - c0) / n,
                               enters=(enters / n) if enters is not None else None)
                    rows.setdefault((rate, name), []).append(res)
                    print(f"rate {rate:6} round {r + 1} {name:8} cpu={res['cpu_us']:6.1f}us p50={res['p50_ms']:.3f}ms "
                          f"p99={res['p99_ms']:.3f}ms sleeps/req={res['sleeps']:.2f} "
                          f"enters/req={res['enters'] if res['enters'] is None else round(res['enters'], 2)} "
                          f"errors={res['errors']}", flush=True)
        print("\n| rate | proxy | CPU µs/req | vs nginx | p50 ms | p99 ms | p99 vs nginx | sleeps/req | enters/req |")
        print("|---|---|---|---|---|---|---|---|---|")
        for rate in [int(x) for x in a.rates.split(",")]:
            med = {}
            for name in proxies:
                v = rows[(rate, name)]
                med[name] = {k: statistics.median(x[k] for x in v) for k in ("cpu_us", "p50_ms", "p99_ms", "sleeps")}
                e = [x["enters"] for x in v if x["enters"] is not None]
                med[name]["enters"] = statistics.median(e) if e else None
            for name, m in med.items():
                en = "-" if m["enters"] is None else f"{m['enters']:.2f}"
                print(f"| {rate} | {name} | {m['cpu_us']:.1f} | {m['cpu_us'] / med['nginx']['cpu_us']:.3f} | "
                      f"{m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['p99_ms'] / med['nginx']['p99_ms']:.2f} | {m['sleeps']:.2f} | {en} |")
    finally:
        stop_group(backend_proc)


if __name__ == "__main__":
    main()
