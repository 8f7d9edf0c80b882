#!/usr/bin/env python3
"""What API management costs on the request path: the bare proxy route against a managed service
with API-key auth, a subscription check and a per-app quota (far from exhaustion) on every
request, and nginx's bare proxy, side by side in one run (scripts/compare.py: same nginx
backend, each proxy pinned to CPU 0 with one worker, load on CPU 1, rounds alternating).

It first provisions a store through the admin API of a throwaway gateway: a tenant, a published
service routing / to the backend with a quota, an app, a key and an auto-approved subscription.

  scripts/bench-managed.py [--rounds 5] [--secs 5] [--conns 64] [--size 0] [--tool wrk|oha]
  scripts/bench-managed.py --ab [--rounds 6] [--secs 8]    (paired bare/managed, scripts/ab.py)
"""
import argparse, json, os, secrets, socket, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/ringway")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def api(admin, token, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method=method,
                                 data=json.dumps(body or {}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def config(d, port, admin, store):
    with open(os.path.join(ROOT, "bench/configs/managed.toml")) as f:
        text = f.read()
    path = os.path.join(d, f"managed-{port}.toml")
    with open(path, "w") as f:
        f.write(text.replace("@PORT@", str(port)).replace("@ADMIN@", str(admin)).replace("@STORE@", store))
    return path


def provision(d, backend_port, token):
    store = os.path.join(d, "managed.db")
    port, admin = free_port(), free_port()
    p = subprocess.Popen([BIN, "--config", config(d, port, admin, store)],
                         env={**os.environ, "RINGWAY_ADMIN_TOKEN": token, "RUST_LOG": "warn"})
    try:
        wait_port(admin)
        t = api(admin, token, "POST", "/api/v1/tenants", {"name": "bench"})
        svc = api(admin, token, "POST", "/api/v1/services", {
            "tenant_id": t["id"], "name": "bench", "approval": "auto",
            "routes": [{"path_prefix": "/"}],
            "upstream": {"targets": [f"127.0.0.1:{backend_port}"], "max_idle": 1024},
            "quota": {"per_second": 100_000_000, "per_day": 1_000_000_000}})
        api(admin, token, "POST", f"/api/v1/services/{svc['id']}/publish")
        app = api(admin, token, "POST", "/api/v1/apps", {"tenant_id": t["id"], "name": "bench"})
        key = api(admin, token, "POST", f"/api/v1/apps/{app['id']}/keys")["key"]
        api(admin, token, "POST", "/api/v1/subscriptions", {"app_id": app["id"], "service_id": svc["id"]})
    finally:
        p.terminate()
        p.wait()
    return store, key


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ab", action="store_true", help="paired A/B of bare (A) and managed (B) with scripts/ab.py")
    a, rest = ap.parse_known_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="ringway-managed-")
    token = secrets.token_hex(24)
    backend_port = free_port()
    store, key = provision(d, backend_port, token)
    # Each round's managed gateway gets its own config (listen port) on the provisioned store.
    managed = (f"sed -e s/@PORT@/{{port}}/ -e s/@ADMIN@/0/ -e 's#@STORE@#{store}#' "
               f"{ROOT}/bench/configs/managed.toml > {d}/m-{{port}}.toml && "
               f"RINGWAY_ADMIN_TOKEN={token} RUST_LOG=warn exec {BIN} --config {d}/m-{{port}}.toml")
    bare = f"RUST_LOG=warn exec {BIN} proxy --listen 127.0.0.1:{{port}} --upstream {{backend}} --workers 1"
    if a.ab:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/ab.py"), "--backend-port", str(backend_port),
               "--header", f"X-API-Key: {key}", "--a", bare, "--b", managed] + rest
    else:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/compare.py"), "--nginx",
               "--backend-port", str(backend_port), "--header", f"X-API-Key: {key}",
               "--proxy", f"bare={bare}", "--proxy", f"managed={managed}"] + rest
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
