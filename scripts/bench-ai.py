#!/usr/bin/env python3
"""The AI gateway against LiteLLM's proxy, side by side in one run, on one machine.

Both proxies serve the OpenAI chat API (`POST /v1/chat/completions`) in front of one mock provider:
nginx returning fixed bodies, an OpenAI `chat.completion` at /v1/chat/completions and an Anthropic
Messages response at /v1/messages (content "Hello world", 11 input and 2 output tokens). Two
scenarios:

  pass       model "oa":  OpenAI request -> OpenAI-compatible provider (pass-through)
  translate  model "ant": OpenAI request -> Anthropic provider (translated both ways)
  bare       Ringway only: the same request on a plain proxy route to the same mock (no AI stage),
             the baseline the AI routes' cost is stated against

Layout (as scripts/compare.py): the proxy on --proxy-cpus (one worker: ringway `workers = 1`,
LiteLLM `--num_workers 1`), the nginx mock (one worker) and oha on --load-cpus. Rounds alternate
direct -> ringway -> litellm, each proxy started fresh per round. Per round and scenario:

  - fixed rate (--rate, latency-corrected, --conns connections): proxy CPU µs per request and
    p50/p99, and the "added latency": p50/p99 minus those of the mock measured directly at the same
    rate in the same round;
  - the same at --high-rate (ringway only unless --high-rate-litellm: LiteLLM does not reach
    1,000 req/s on one core);
  - saturated (--sat-conns connections, no rate): requests/s and CPU µs per request.

Proxy CPU is the on-CPU time of every thread of every process in the proxy's session or below its
first process (/proc/PID/task/TID/schedstat, in ns; utime+stime+cutime+cstime from /proc/PID/stat,
in 10 ms ticks, is printed per run as a cross-check) over the load run, divided by the responses. Every response
must be 200: the others (and oha's transport errors) are counted, printed and put in the table,
and the script exits 1 if there were any. Before timing, one request per scenario is checked
(status 200, `choices[0].message.content` "Hello world", usage 11/2).

Usage:
  scripts/bench-ai.py [--bin target/release/ringway] [--only ringway|litellm] [--rounds 3] [--secs 10]
                      [--rate 200[,...]] [--high-rate 1000[,...]] [--high-rate-litellm] [--conns 16]
                      [--sat-conns 32] [--no-saturated] [--scenarios pass,translate,bare] [--warmup 2]
                      [--litellm /work/litellm-venv/bin/litellm] [--litellm-master-key]
                      [--wait-quiet 600] [--retries 2] [--proxy-cpus 0] [--load-cpus 1] [--keep]

This machine is shared: before each measurement the script waits (--wait-quiet) for a second in
which nothing else uses the proxy and load CPUs, measures the other work on those CPUs during each
run (their busy time minus the proxy's, the mock's and oha's), measures again (--retries) when
there was any, and names the runs that stayed noisy.

LiteLLM: python3 -m venv /work/litellm-venv && /work/litellm-venv/bin/pip install 'litellm[proxy]'.
It runs with no database, no redis, no callbacks, telemetry off and every bundled data file used
locally (LITELLM_ENV below), so nothing goes to the network at start or per request.
Needs nginx, oha and taskset.
"""
import argparse, datetime, json, os, platform, resource, secrets, shlex, shutil, signal, socket, statistics, subprocess, sys, tempfile, time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import proc_stats  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))

OPENAI_BODY = ('{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",'
               '"choices":[{"index":0,"message":{"role":"assistant","content":"Hello world"},"logprobs":null,'
               '"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":2,"total_tokens":13}}')
ANTHROPIC_BODY = ('{"id":"msg_bench","type":"message","role":"assistant","model":"claude-haiku-4-5",'
                  '"content":[{"type":"text","text":"Hello world"}],"stop_reason":"end_turn","stop_sequence":null,'
                  '"usage":{"input_tokens":11,"output_tokens":2}}')

# LiteLLM asks an OpenAI-compatible provider for its models at start and every 5 minutes (token
# limits): served so that it takes its ordinary path.
MODELS_BODY = '{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"bench"}]}'

MOCK_CONF = """worker_processes 1; daemon off; pid @D@/mock.pid; error_log @D@/mock.err warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  client_body_buffer_size 64k;
  server { listen 127.0.0.1:@PORT@ reuseport backlog=8192;
    location = /v1/chat/completions { default_type application/json; return 200 '@OPENAI@'; }
    location = /v1/messages { default_type application/json; return 200 '@ANTHROPIC@'; }
    location = /v1/models { default_type application/json; return 200 '@MODELS@'; }
    location / { access_log @D@/mock-unexpected.log; default_type application/json;
      return 404 '{"error":{"message":"not mocked"}}'; } } }
"""

RINGWAY_CONF = """[server]
listen = ["127.0.0.1:{port}"]
workers = 1
cpus = "{cpus}"
[log]
level = "warn"
[ai.providers.mock]
kind = "compatible"
base_url = "http://127.0.0.1:{mock}"
keys_file = "{keys}"
[ai.providers.mockant]
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}"
keys_file = "{keys}"
[ai.models.oa]
targets = [{{ provider = "mock", model = "gpt-4o-mini" }}]
[ai.models.ant]
targets = [{{ provider = "mockant", model = "claude-haiku-4-5" }}]
[upstreams.mock]
targets = ["127.0.0.1:{mock}"]
[[routes]]
name = "bare"
path_prefix = "/bare"
strip_prefix = true
upstream = "mock"
[[routes]]
name = "ai"
path_prefix = "/"
ai = {{}}
"""

LITELLM_CONF = """model_list:
  - model_name: oa
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: http://127.0.0.1:{mock}/v1
      api_key: sk-bench
  - model_name: ant
    litellm_params:
      model: anthropic/claude-haiku-4-5
      api_base: http://127.0.0.1:{mock}
      api_key: sk-bench
litellm_settings:
  telemetry: false
  success_callback: []
  failure_callback: []
  callbacks: []
  cache: false
  set_verbose: false
  json_logs: false
  drop_params: true
general_settings:
  {auth}
  disable_spend_logs: true
  disable_error_logs: true
  disable_adding_master_key_hash_to_db: true
  allow_requests_on_db_unavailable: true
"""

# LiteLLM's environment: every data file it would fetch from GitHub (cost map, Anthropic beta
# headers, blog posts, policy templates, autorouter presets) read from the copy bundled in the
# package, telemetry vetoed, no .env loaded from the working directory (LITELLM_MODE=PRODUCTION),
# no database or redis (their variables removed), logs at ERROR.
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_TELEMETRY_DISABLED": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "DISABLE_SCHEMA_UPDATE": "True",
    "NO_DOCS": "True",
    "NO_REDOC": "True",
}
LITELLM_UNSET = ("DATABASE_URL", "DIRECT_URL", "REDIS_HOST", "REDIS_URL", "REDIS_PORT", "REDIS_PASSWORD",
                 "LITELLM_MASTER_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HTTP_PROXY", "HTTPS_PROXY",
                 "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy")

# What clients send as `authorization: Bearer`, to every proxy. Ringway's AI route here has no client
# auth (it sends the provider's key upstream), and by default neither has LiteLLM: it runs without a
# master key (which it refuses unless told `dangerously_permit_weak_or_unset_master_key`), its
# cheapest path. With --litellm-master-key this is its master key, checked on every request.
CLIENT_KEY = "sk-" + secrets.token_hex(32)

OTHER_LOAD = 0.03  # share of a CPU used by other processes on the proxy's and load CPUs that gets a warning

SCENARIOS = {"pass": "oa", "translate": "ant", "bare": "oa"}
DIRECT_PATH = {"pass": "/v1/chat/completions", "translate": "/v1/messages", "bare": "/v1/chat/completions"}
# Where each scenario is sent on a proxy (the bare route is Ringway's only).
PROXY_PATH = {"pass": "/v1/chat/completions", "translate": "/v1/chat/completions",
              "bare": "/bare/v1/chat/completions"}


def request_body(model):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
                      separators=(",", ":"))


def direct_body(scenario):
    if scenario == "translate":
        return json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16,
                           "messages": [{"role": "user", "content": "Say hello."}]}, separators=(",", ":"))
    return request_body("gpt-4o-mini")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def proc_table():
    """pid -> (ppid, session, cpu ticks: utime+stime+cutime+cstime) of every live process."""
    return {pid: (int(rest[1]), int(rest[3]), sum(int(x) for x in rest[11:15]))
            for pid, rest in proc_stats()}


def tree_pids(root, t=None):
    """`root`, every process in its session, and every descendant of either."""
    t = t if t is not None else proc_table()
    pids = {p for p, (_, sid, _) in t.items() if sid == root}
    pids.add(root)
    grew = True
    while grew:
        grew = False
        for p, (ppid, _, _) in t.items():
            if ppid in pids and p not in pids:
                pids.add(p)
                grew = True
    return {p for p in pids if p in t}


def tree_cpu_seconds(root):
    """CPU seconds of the proxy's processes: (from schedstat, from stat).

    schedstat: the on-CPU nanoseconds of every thread of every process (/proc/PID/task/TID/schedstat),
    exact, but a thread that has exited is no longer counted. stat: utime+stime (which include the
    process's exited threads) + cutime+cstime (its reaped children), but in clock ticks (10 ms), too
    coarse for a few thousand requests. The report uses schedstat and cross-checks with stat."""
    t = proc_table()
    pids = tree_pids(root, t)
    ns = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return ns / 1e9, sum(t[p][2] for p in pids) / HZ, len(pids)


def parse_cpus(spec):
    out = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def cpus_busy_seconds(cpus):
    """Time `cpus` spent running tasks or stolen by the hypervisor (user, nice, system, steal; not
    irq/softirq, where the kernel may account the proxy's own loopback traffic), from /proc/stat."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *v = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in v]
                total += v[0] + v[1] + v[2] + v[7]
    return total / HZ


def children_cpu_seconds():
    """CPU seconds of this script's reaped children (oha, and taskset before it execs)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(cpus, own_pid, max_wait):
    """Waits, up to `max_wait` seconds, for a second in which `cpus` are not used by anything but the
    process tree of `own_pid` (if any) beyond OTHER_LOAD per CPU. True if it came."""
    end = time.time() + max_wait
    said = False
    while True:
        b0, c0 = cpus_busy_seconds(cpus), (tree_cpu_seconds(own_pid)[0] if own_pid else 0.0)
        time.sleep(1)
        b1, c1 = cpus_busy_seconds(cpus), (tree_cpu_seconds(own_pid)[0] if own_pid else 0.0)
        other = max(0.0, (b1 - b0) - (c1 - c0))
        if other <= OTHER_LOAD * len(cpus):
            if said:
                print("  ...quiet again", flush=True)
            return True
        if time.time() > end:
            print(f"  CPUs still busy after {max_wait:.0f} s ({other * 100:.0f}% of a CPU): measuring anyway", flush=True)
            return False
        if not said:
            print(f"  waiting for CPUs {sorted(cpus)} to be quiet ({other * 100:.0f}% of a CPU used by other work)...",
                  flush=True)
            said = True


def start(name, argv, cpus, d, env=None, cwd=None):
    log = open(os.path.join(d, f"{name}.log"), "ab")
    return subprocess.Popen(["taskset", "-c", cpus, *argv], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env, cwd=cwd or d)


def stop(p):
    """SIGTERM to the session's process group and every descendant, SIGKILL after 10 s, until none is left."""
    if p is None:
        return
    pids = tree_pids(p.pid)

    def signal_all(sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    signal_all(signal.SIGTERM)
    end = time.time() + 10
    while time.time() < end:
        p.poll()
        if not any(os.path.exists(f"/proc/{pid}") and not is_zombie(pid) for pid in pids | {p.pid}):
            break
        time.sleep(0.05)
    else:
        signal_all(signal.SIGKILL)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def is_zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        return s[s.rindex(")") + 2] == "Z"
    except OSError:
        return True


def oha(port, path, body, secs, conns, cpus, rate=None):
    """One oha run: requests, rps, p50/p99 ms, status counts, non-200 and transport errors."""
    argv = ["taskset", "-c", cpus, "oha", "--no-tui", "--output-format", "json", "-z", f"{secs}s", "-c", str(conns),
            "-w", "-m", "POST", "-H", "content-type: application/json", "-H", f"authorization: Bearer {CLIENT_KEY}",
            "-d", body]
    if rate:
        argv += ["-q", str(rate), "--latency-correction"]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True)
    try:
        j = json.loads(out.stdout)
    except json.JSONDecodeError:
        sys.exit(f"oha gave no JSON (rc {out.returncode}): {out.stderr.strip()[:500]}")
    codes = {str(k): v for k, v in (j.get("statusCodeDistribution") or {}).items()}
    errs = j.get("errorDistribution") or {}
    n = sum(codes.values())
    ok = codes.get("200", 0)
    pct = j.get("latencyPercentiles") or {}
    return {"requests": n, "ok": ok, "rps": j["summary"].get("requestsPerSec") or 0.0,
            "bad": n - ok + sum(errs.values()), "codes": codes, "errors": errs,
            "p50_ms": (pct.get("p50") or 0) * 1e3, "p99_ms": (pct.get("p99") or 0) * 1e3}


def post(port, path, body, timeout=30):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body.encode(), method="POST",
                                 headers={"content-type": "application/json", "authorization": f"Bearer {CLIENT_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def check_answer(port, scenario):
    """None if the proxy answers one chat completion of `scenario` as expected, else what is wrong."""
    status, raw = post(port, PROXY_PATH[scenario], request_body(SCENARIOS[scenario]))
    if status != 200:
        return f"status {status}: {raw[:300]!r}"
    try:
        j = json.loads(raw)
        content = j["choices"][0]["message"]["content"]
        usage = (j["usage"]["prompt_tokens"], j["usage"]["completion_tokens"])
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat.completion: {raw[:300]!r}"
    if content != "Hello world" or usage != (11, 2):
        return f"content {content!r}, usage {usage}: {raw[:300]!r}"
    return None


def oha_version():
    try:
        return subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        return "?"


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}"


def litellm_version(litellm):
    py = os.path.join(os.path.dirname(litellm), "python")
    try:
        return subprocess.run([py, "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                              capture_output=True, text=True, timeout=60).stdout.strip() or "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)


def rate_list(s):
    try:
        return [int(x) for x in s.split(",") if x.strip() and int(x) > 0]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of rates: {s!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(HERE), "target/release/ringway"),
                    help="the ringway binary (default: target/release/ringway of this checkout)")
    ap.add_argument("--litellm", default="/work/litellm-venv/bin/litellm", help="LiteLLM's CLI, in its venv")
    ap.add_argument("--only", choices=["ringway", "litellm"], help="measure one proxy (and the mock directly)")
    ap.add_argument("--scenarios", default="pass,translate,bare", help="pass, translate, bare (comma list)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=10, help="seconds per measurement")
    ap.add_argument("--rate", type=rate_list, default=[200], help="fixed rate(s) for every proxy, req/s (e.g. 100,200)")
    ap.add_argument("--high-rate", type=rate_list, default=[1000],
                    help="fixed rate(s) for ringway only (0: none); LiteLLM too with --high-rate-litellm")
    ap.add_argument("--high-rate-litellm", action="store_true")
    ap.add_argument("--conns", type=int, default=16, help="connections at a fixed rate")
    ap.add_argument("--sat-conns", type=int, default=32, help="connections when saturated")
    ap.add_argument("--no-saturated", action="store_true", help="skip the saturated runs")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of load at the first rate before each scenario")
    ap.add_argument("--litellm-master-key", action="store_true",
                    help="run LiteLLM with a master key checked on every request (default: none, like ringway here)")
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--start-timeout", type=float, default=180, help="seconds to wait for a proxy to listen")
    ap.add_argument("--wait-quiet", type=float, default=600,
                    help="before each measurement, wait up to this many seconds for a second in which nothing else "
                         "uses the proxy and load CPUs (0: don't)")
    ap.add_argument("--retries", type=int, default=2,
                    help="measure again (up to this many times) when other work used the proxy's CPUs meanwhile")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, logs)")
    a = ap.parse_args()
    for tool in ("nginx", "oha", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found")
    scenarios = [s for s in a.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s!r} (pass, translate, bare)")
    if not a.rate:
        sys.exit("--rate: at least one rate")
    proxies = [p for p in ("ringway", "litellm") if a.only in (None, p)]
    binary = os.path.abspath(a.bin)
    if "ringway" in proxies and not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: not an executable (--bin)")
    if "litellm" in proxies and not os.access(a.litellm, os.X_OK):
        sys.exit(f"{a.litellm}: not an executable (--litellm); see --help to install it")
    rates = list(dict.fromkeys(a.rate + a.high_rate))
    proxy_cpus = parse_cpus(a.proxy_cpus)
    all_cpus = proxy_cpus | parse_cpus(a.load_cpus)

    def rates_of(name):
        if name in ("direct", "ringway") or a.high_rate_litellm:
            return rates
        return a.rate

    command = " ".join(shlex.quote(x) for x in sys.argv)
    d = tempfile.mkdtemp(prefix="ringway-bench-ai-")
    os.chmod(d, 0o755)
    mock = running = None
    failed = False
    try:
        mport = free_port()
        conf = (MOCK_CONF.replace("@D@", d).replace("@PORT@", str(mport)).replace("@OPENAI@", OPENAI_BODY)
                .replace("@ANTHROPIC@", ANTHROPIC_BODY).replace("@MODELS@", MODELS_BODY))
        with open(f"{d}/mock.conf", "w") as f:
            f.write(conf)
        mock = start("mock", ["nginx", "-c", f"{d}/mock.conf"], a.load_cpus, d)
        if not wait_listening(mport, 10, mock):
            sys.exit(f"the nginx mock did not start: {open(f'{d}/mock.log').read()[-1000:]}")
        keys = f"{d}/keys"
        with open(keys, "w") as f:
            f.write("sk-bench\n")
        rport, lport = free_port(), free_port()
        with open(f"{d}/ringway.toml", "w") as f:
            f.write(RINGWAY_CONF.format(port=rport, cpus=a.proxy_cpus, mock=mport, keys=keys))
        with open(f"{d}/litellm.yaml", "w") as f:
            auth = (f"master_key: {CLIENT_KEY}" if a.litellm_master_key
                    else "dangerously_permit_weak_or_unset_master_key: true")
            f.write(LITELLM_CONF.format(mock=mport, auth=auth))
        lenv = {k: v for k, v in os.environ.items() if k not in LITELLM_UNSET}
        lenv.update(LITELLM_ENV)
        lenv["HOME"] = d  # nothing of the user's (~/.litellm, ~/.cache, a .env) is read
        lenv["PATH"] = os.path.dirname(a.litellm) + os.pathsep + lenv.get("PATH", "")
        renv = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}  # log.level = "warn" holds
        cmds = {
            "ringway": ([binary, "--config", f"{d}/ringway.toml"], rport, renv),
            "litellm": ([a.litellm, "--config", f"{d}/litellm.yaml", "--host", "127.0.0.1", "--port", str(lport),
                         "--num_workers", "1"], lport, lenv),
        }
        version = litellm_version(a.litellm) if "litellm" in proxies else None

        rows = {}  # (proxy, scenario, rate or None for saturated) -> [result per round]
        noisy = []  # runs during which something else used the proxy's CPUs

        def measure(rnd, key, port, path, body, root=None):
            """One measured oha run (`root`: the proxy's first process, None for the mock directly),
            repeated up to --retries times while something else used the proxy's CPUs meanwhile."""
            proxy, scen, rate = key
            conns = a.sat_conns if rate is None else a.conns
            bad_before = 0  # failures in attempts measured again count too
            for attempt in range(a.retries + 1):
                if a.wait_quiet:
                    wait_quiet(all_cpus, root, a.wait_quiet)
                b0, m0, k0 = cpus_busy_seconds(all_cpus), tree_cpu_seconds(mock.pid)[0], children_cpu_seconds()
                c0, t0 = tree_cpu_seconds(root) if root else None, time.time()
                res = oha(port, path, body, a.secs, conns, a.load_cpus, rate)
                c1, t1 = tree_cpu_seconds(root) if root else None, time.time()
                b1, m1, k1 = cpus_busy_seconds(all_cpus), tree_cpu_seconds(mock.pid)[0], children_cpu_seconds()
                own = c1[0] - c0[0] if root else 0.0
                # what else ran on the proxy's and load CPUs meanwhile (a build, another benchmark):
                # their busy time minus the proxy's, the mock's and oha's
                res["other"] = max(0.0, (b1 - b0) - own - (m1 - m0) - (k1 - k0)) / (t1 - t0)
                extra = ""
                if root:
                    n = max(res["requests"], 1)
                    res["cpu_us"] = own * 1e6 / n
                    nprocs = max(c0[2], c1[2])
                    cpu_stat = c1[1] - c0[1]
                    extra = f" cpu={res['cpu_us']:8.1f}us/req (stat {cpu_stat * 1e6 / n:.1f}) procs={nprocs}"
                    # stat counts exited threads and reaped children that schedstat misses; it reads
                    # up to 2 ticks per process low or high. Far above schedstat: CPU was missed.
                    if cpu_stat - own > 4 * nprocs / HZ + 0.05 * own:
                        extra += "  WARNING: stat above schedstat (exited threads/processes?)"
                if res["other"] > OTHER_LOAD:
                    extra += f"  WARNING: other work used {res['other'] * 100:.0f}% of a CPU meanwhile"
                bad = f"  NON-200/FAILED={res['bad']} codes={res['codes']} errors={res['errors']}" if res["bad"] else ""
                print(f"round {rnd + 1} {proxy:8} {scen:9} {('sat' if rate is None else rate):>5} n={res['requests']:6} "
                      f"rps={res['rps']:8.1f} p50={res['p50_ms']:8.3f}ms p99={res['p99_ms']:8.3f}ms{extra}{bad}",
                      flush=True)
                if res["other"] <= OTHER_LOAD:
                    break
                if attempt < a.retries:
                    bad_before += res["bad"]
                    print("  ...measuring again", flush=True)
            if res["other"] > OTHER_LOAD:
                noisy.append(f"round {rnd + 1} {proxy} {scen} {'sat' if rate is None else rate}: "
                             f"{res['other'] * 100:.0f}%")
            res["bad"] += bad_before
            rows.setdefault(key, []).append(res)

        for rnd in range(a.rounds):
            for scen in scenarios:  # the mock directly: this topology's latency floor at the same rates
                body = direct_body(scen)
                oha(mport, DIRECT_PATH[scen], body, 1, a.conns, a.load_cpus, rate=a.rate[0])
                for rate in rates_of("direct"):
                    measure(rnd, ("direct", scen, rate), mport, DIRECT_PATH[scen], body)
            for name in proxies:
                argv, port, env = cmds[name]
                t0 = time.time()
                running = start(name, argv, a.proxy_cpus, d, env=env)
                if not wait_listening(port, a.start_timeout, running):
                    log = open(f"{d}/{name}.log", errors="replace").read()[-3000:]
                    failed = True
                    sys.exit(f"{name} did not listen on {port} within {a.start_timeout:.0f} s:\n{log}")
                if rnd == 0:
                    print(f"{name} listening after {time.time() - t0:.1f} s", flush=True)
                for scen in scenarios:
                    if scen == "bare" and name != "ringway":
                        continue
                    problem = None
                    for _ in range(20):  # give a proxy that answers 5xx right after it listens a few seconds
                        problem = check_answer(port, scen)
                        if problem is None:
                            break
                        time.sleep(0.5)
                    if problem:
                        failed = True
                        log = open(f"{d}/{name}.log", errors="replace").read()[-3000:]
                        sys.exit(f"{name} {scen}: {problem}\n{name}'s log ends:\n{log}")
                    body = request_body(SCENARIOS[scen])
                    path = PROXY_PATH[scen]
                    if a.warmup:
                        oha(port, path, body, a.warmup, a.conns, a.load_cpus, rate=a.rate[0])
                    for rate in [*rates_of(name), *([] if a.no_saturated else [None])]:
                        measure(rnd, (name, scen, rate), port, path, body, running.pid)
                        if running.poll() is not None:
                            failed = True
                            log = open(f"{d}/{name}.log", errors="replace").read()[-3000:]
                            sys.exit(f"{name} exited (status {running.returncode}); its log ends:\n{log}")
                stop(running)
                running = None

        # the report
        label = {"direct": "mock directly", "ringway": "Ringway", "litellm": "LiteLLM"}
        print()
        print(f"Date {datetime.date.today().isoformat()}; machine: {machine()}; proxy pinned to CPU {a.proxy_cpus}, "
              f"the nginx mock (1 worker) and oha {oha_version()} to CPU {a.load_cpus}.")
        if "ringway" in proxies:
            print(f"Ringway: `{binary}` (`workers = 1`, log level warn).")
        if version:
            print(f"LiteLLM {version}: `litellm --num_workers 1`, no database, no redis, no callbacks, telemetry off, "
                  f"bundled data files only; master key {'on' if a.litellm_master_key else 'off'}.")
        print(f"{a.rounds} rounds of {a.secs} s per figure, medians over rounds. Fixed rates: oha -q, latency-corrected, "
              f"{a.conns} connections. CPU: the proxy's on-CPU time (every thread of every process, /proc schedstat) over the run / responses. Added latency: the "
              f"proxy's p50/p99 minus the mock's measured directly at the same rate in the same round.")
        print(f"Command: `{command}`\n")
        print("| scenario | proxy | rate req/s | achieved req/s | CPU µs/req | Ringway/LiteLLM CPU | p50 ms | p99 ms "
              "| added p50 ms | added p99 ms | non-200 |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        total_bad = 0

        def cpu_ratio(name, scen, rate, cpu):
            lit = rows.get(("litellm", scen, rate))
            return f"{cpu / med(x['cpu_us'] for x in lit):.4f}" if name == "ringway" and lit else "-"

        for scen in scenarios:
            for rate in rates:
                for name in ["direct", *proxies]:
                    v = rows.get((name, scen, rate))
                    if not v:
                        continue
                    bad = sum(x["bad"] for x in v)
                    total_bad += bad
                    p50, p99, rps = (med(x[k] for x in v) for k in ("p50_ms", "p99_ms", "rps"))
                    if name == "direct":
                        print(f"| {scen} | {label[name]} | {rate} | {rps:.0f} | - | - | {p50:.3f} | {p99:.3f} | - | - | {bad} |")
                        continue
                    base = rows.get(("direct", scen, rate), [])
                    add50 = med(x["p50_ms"] - b["p50_ms"] for x, b in zip(v, base))
                    add99 = med(x["p99_ms"] - b["p99_ms"] for x, b in zip(v, base))
                    cpu = med(x["cpu_us"] for x in v)
                    print(f"| {scen} | {label[name]} | {rate} | {rps:.0f} | {cpu:.1f} | {cpu_ratio(name, scen, rate, cpu)} "
                          f"| {p50:.3f} | {p99:.3f} | {fmt(add50, '.3f')} | {fmt(add99, '.3f')} | {bad} |")
        if not a.no_saturated:
            print()
            print(f"| scenario | proxy | saturated req/s ({a.sat_conns} conns) | CPU µs/req | Ringway/LiteLLM CPU "
                  f"| p50 ms | p99 ms | non-200 |")
            print("|---|---|---|---|---|---|---|---|")
            for scen in scenarios:
                for name in proxies:
                    v = rows.get((name, scen, None))
                    if not v:
                        continue
                    bad = sum(x["bad"] for x in v)
                    total_bad += bad
                    cpu = med(x["cpu_us"] for x in v)
                    print(f"| {scen} | {label[name]} | {med(x['rps'] for x in v):.0f} | {cpu:.1f} | "
                          f"{cpu_ratio(name, scen, None, cpu)} | {med(x['p50_ms'] for x in v):.3f} | "
                          f"{med(x['p99_ms'] for x in v):.3f} | {bad} |")
        unexpected = ""
        if os.path.exists(f"{d}/mock-unexpected.log"):
            unexpected = open(f"{d}/mock-unexpected.log").read()
        if unexpected:
            print(f"\nWARNING: the mock got requests it does not serve (404):\n{unexpected[:2000]}")
            failed = True
        if noisy:
            print(f"\nWARNING: other work used CPUs {sorted(all_cpus)} (more than {OTHER_LOAD:.0%} of a CPU) "
                  f"during: {'; '.join(noisy)}. Figures from a busy machine are not comparable.")
        if total_bad:
            print(f"\nWARNING: {total_bad} responses were not 200 or failed (see the per-round lines above)")
            failed = True
    finally:
        stop(running)
        stop(mock)
        if a.keep:
            print(f"scratch directory kept: {d}", file=sys.stderr)
        else:
            shutil.rmtree(d, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
