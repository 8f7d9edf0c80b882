#!/usr/bin/env python3
"""Paired A/B of two proxy commands: both run at the same time, pinned to the same CPU, each under
its own load generator, and the figure is the ratio of their CPU time per request, round by round.

Why: on a shared VM the CPU cost of the same binary moves by 10-20 % from one round to the next
(the host, not the proxy). `compare.py` alternates rounds, which still leaves medians ±3 % apart
between identical builds. Running A and B side by side exposes both to the same drift at the same
moment, so their ratio is steady to about ±0.5 % (A/A runs measure 0.994-1.002), enough to see a
1 % change. The absolute µs/request here are higher than in `compare.py` (two proxies share one
CPU); use this for a decision between two builds or configs, and `compare.py` or
`compare-nginx.sh` for figures against nginx.

Usage:
  scripts/ab.py --a 'CMD {port} {backend}' --b 'CMD {port} {backend}' [--rounds 5] [--secs 8]
                [--conns 32] [--size BYTES] [--proxy-cpus 0] [--load-cpus 1]
  e.g. scripts/ab.py --a '/tmp/ringway-old proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1' \\
                     --b 'target/release/ringway proxy --listen 127.0.0.1:{port} --upstream {backend} --workers 1'
  CMD may use {port}, {backend} and {dir} (a scratch directory, e.g. for a config file). Binary
  paths must be absolute or relative to the repository root. Needs nginx (the backend) and wrk.
"""

import argparse, os, shutil, statistics, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import (free_port, group_cpu_seconds, require_tools, run_load, start_backend,  # noqa: E402
                     start_proxy, stop_group, wait_listening)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, metavar="CMD")
    ap.add_argument("--b", required=True, metavar="CMD")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--conns", type=int, default=32, help="connections per proxy")
    ap.add_argument("--size", type=int, default=0, help="response body bytes (0: 12-byte 'hello world')")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'",
                    help="request header sent by the load generators (repeatable)")
    ap.add_argument("--backend-port", type=int, default=None,
                    help="port of the backend (default: a free one); for proxies provisioned beforehand")
    a = ap.parse_args()
    require_tools("nginx", "wrk", "taskset")
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    d, path, backend_proc, backend = start_backend("ringway-ab-", a.size, a.load_cpus, a.backend_port)
    procs = [backend_proc]
    try:
        ports = {}
        pids = {}
        for name, cmd in (("A", a.a), ("B", a.b)):
            ports[name] = free_port()
            p = start_proxy(name, cmd.format(port=ports[name], backend=backend, dir=d), a.proxy_cpus, d)
            procs.append(p)
            pids[name] = p.pid
            if not wait_listening(ports[name]):
                sys.exit(f"{name}: not listening on {ports[name]} (see {d}/{name}.log)")
        for name in ports:  # warm-up: pools and buffers filled
            run_load("wrk", ports[name], a.conns, 1, path, a.load_cpus, a.header)

        ratios = []
        for rnd in range(1, a.rounds + 1):
            cpu0 = {n: sum(group_cpu_seconds(pids[n])) for n in pids}
            out = {}
            threads = [threading.Thread(target=lambda n=n: out.__setitem__(
                n, run_load("wrk", ports[n], a.conns, a.secs, path, a.load_cpus, a.header))) for n in pids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            cpu1 = {n: sum(group_cpu_seconds(pids[n])) for n in pids}
            if not all(out.get(n) and out[n]["requests"] for n in pids):
                sys.exit(f"round {rnd}: a load run failed (see {d}/*.log)")
            us = {n: (cpu1[n] - cpu0[n]) / out[n]["requests"] * 1e6 for n in pids}
            ratios.append(us["B"] / us["A"])
            errs = out["A"]["errors"] + out["B"]["errors"]
            print(f"round {rnd}  A {us['A']:6.2f} us/req {out['A']['rps']:8.0f} req/s   "
                  f"B {us['B']:6.2f} us/req {out['B']['rps']:8.0f} req/s   B/A {ratios[-1]:.3f}"
                  + (f"   errors {errs}" if errs else ""), flush=True)
            time.sleep(0.2)
        print(f"B/A CPU per request: median {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {len(ratios)} rounds of {a.secs} s, "
              f"{a.conns} connections each, body={a.size or 12} B)")
    finally:
        for p in reversed(procs):
            stop_group(p)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
