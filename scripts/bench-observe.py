#!/usr/bin/env python3
"""What recording every call costs: ringway with the call log (JSON lines to a file, rotated)
against ringway without it, and nginx with a buffered JSON access log against nginx without one,
side by side in one run (scripts/compare.py: same nginx backend, each proxy pinned to CPU 0 with
one worker, load on CPU 1, rounds alternating).

  scripts/bench-observe.py [--rounds 5] [--secs 5] [--conns 64] [--size 0] [--tool wrk|oha]
  scripts/bench-observe.py --ab [--rounds 6] [--secs 8]   (paired off/on, scripts/ab.py)
  scripts/bench-observe.py --ab --baseline /path/to/older/ringway ...
      (A: an older build without the call log and metrics counting; B: this build with both)

The call log's file goes to the run's scratch directory; rotation keeps it under 512 MiB.
"""
import argparse, os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/ringway")
TEMPLATE = os.path.join(ROOT, "bench/configs/observe.toml")

ON = """
[call_log]
[call_log.file]
path = "@DIR@/calls-@PORT@.jsonl"
max_size = "256MiB"
keep = 1
"""


def command(observe, binary=BIN):
    """A compare.py command that writes this run's config and starts ringway on it."""
    block = ON.replace("\n", "\\n") if observe else ""
    sed = (f"sed -e 's|@OBSERVE@|{block}|' -e 's|@PORT@|{{port}}|g' -e 's|@BACKEND@|{{backend}}|g' "
           f"-e 's|@DIR@|{{dir}}|g' {TEMPLATE}")
    conf = "{dir}/observe-" + ("on" if observe else "off") + "-{port}.toml"
    return f"{sed} > {conf} && RUST_LOG=warn exec {binary} --config {conf}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ab", action="store_true", help="paired A/B of off (A) and on (B) with scripts/ab.py")
    ap.add_argument("--baseline", help="with --ab: run A (off) on this older binary")
    a, rest = ap.parse_known_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} not found: cargo build --release first")
    off, on = command(False, a.baseline or BIN), command(True)
    if a.ab:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/ab.py"), "--a", off, "--b", on] + rest
    else:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/compare.py"), "--nginx", "--nginx-log",
               "--proxy", f"ringway={off}", "--proxy", f"ringway-log={on}"] + rest
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
