#!/usr/bin/env python3
"""What API management costs on the request path: the bare proxy route against a managed service
with API-key auth, a subscription check and a per-app quota (far from exhaustion) on every
request, and nginx's bare proxy, side by side in one run (scripts/compare.py: same nginx
backend, each proxy pinned to CPU 0 with one worker, load on CPU 1, rounds alternating).

It first provisions a store through the admin API of a throwaway gateway: a tenant, a published
service routing / to the backend with a quota, an app, a key and an auto-approved subscription.

  scripts/bench-managed.py [--rounds 5] [--secs 5] [--conns 64] [--size 0] [--tool wrk|oha]
  scripts/bench-managed.py --ab [--rounds 6] [--secs 8]    (paired bare/managed, scripts/ab.py)
  scripts/bench-managed.py --jwt [--ab] ...   (an RS256 JWT instead of an API key: verified once,
                                              then served from the shard's cache)
  scripts/bench-managed.py --basic [--ab] ... (a basic credential: argon2id once, then cached)
"""
import argparse, base64, json, os, secrets, socket, subprocess, sys, tempfile, time, urllib.request

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


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def rs256_token(d, issuer):
    """An RSA key pair made with openssl, and a token signed with it (valid for a day)."""
    key, pub = os.path.join(d, "jwt.key"), os.path.join(d, "jwt.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True, capture_output=True)
    head = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"iss": issuer, "exp": int(time.time()) + 86400, "sub": "bench"}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=f"{head}.{body}".encode(),
                         check=True, capture_output=True).stdout
    with open(pub) as f:
        return f.read(), f"{head}.{body}.{b64url(sig)}"


def provision(d, backend_port, token, kind="api_key"):
    store = os.path.join(d, f"managed-{kind}.db")
    port, admin = free_port(), free_port()
    p = subprocess.Popen([BIN, "--config", config(d, port, admin, store)],
                         env={**os.environ, "RINGWAY_ADMIN_TOKEN": token, "RUST_LOG": "warn"})
    try:
        wait_port(admin)
        t = api(admin, token, "POST", "/api/v1/tenants", {"name": "bench"})
        svc = api(admin, token, "POST", "/api/v1/services", {
            "tenant_id": t["id"], "name": "bench", "approval": "auto",
            "credentials": [kind],
            "routes": [{"path_prefix": "/"}],
            "upstream": {"targets": [f"127.0.0.1:{backend_port}"], "max_idle": 1024},
            "quota": {"per_second": 100_000_000, "per_day": 1_000_000_000}})
        api(admin, token, "POST", f"/api/v1/services/{svc['id']}/publish")
        app = api(admin, token, "POST", "/api/v1/apps", {"tenant_id": t["id"], "name": "bench"})
        if kind == "basic":
            api(admin, token, "POST", f"/api/v1/apps/{app['id']}/credentials",
                {"kind": "basic", "username": "bench", "password": "bench password 123"})
            key = "Authorization: Basic " + base64.b64encode(b"bench:bench password 123").decode()
        elif kind == "jwt":
            pub, bearer = rs256_token(d, "https://bench.example")
            api(admin, token, "POST", f"/api/v1/apps/{app['id']}/credentials",
                {"kind": "jwt", "issuer": "https://bench.example", "algorithm": "RS256", "public_key": pub})
            key = f"Authorization: Bearer {bearer}"
        else:
            key = "X-API-Key: " + api(admin, token, "POST", f"/api/v1/apps/{app['id']}/keys")["key"]
        api(admin, token, "POST", "/api/v1/subscriptions", {"app_id": app["id"], "service_id": svc["id"]})
    finally:
        p.terminate()
        p.wait()
    return store, key


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ab", action="store_true", help="paired A/B of bare (A) and managed (B) with scripts/ab.py")
    ap.add_argument("--jwt", action="store_true", help="authenticate with an RS256 JWT instead of an API key")
    ap.add_argument("--basic", action="store_true", help="authenticate with a basic credential (argon2id, cached per shard)")
    a, rest = ap.parse_known_args()
    if not a.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="ringway-managed-")
    token = secrets.token_hex(24)
    backend_port = free_port()
    kind = "jwt" if a.jwt else "basic" if a.basic else "api_key"
    store, header = provision(d, backend_port, token, kind)
    # Each round's managed gateway gets its own config (listen port) on the provisioned store.
    managed = (f"sed -e s/@PORT@/{{port}}/ -e s/@ADMIN@/0/ -e 's#@STORE@#{store}#' "
               f"{ROOT}/bench/configs/managed.toml > {d}/m-{{port}}.toml && "
               f"RINGWAY_ADMIN_TOKEN={token} RUST_LOG=warn exec {BIN} --config {d}/m-{{port}}.toml")
    bare = f"RUST_LOG=warn exec {BIN} proxy --listen 127.0.0.1:{{port}} --upstream {{backend}} --workers 1"
    if a.ab:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/ab.py"), "--backend-port", str(backend_port),
               "--header", header, "--a", bare, "--b", managed] + rest
    else:
        cmd = [sys.executable, os.path.join(ROOT, "scripts/compare.py"), "--nginx",
               "--backend-port", str(backend_port), "--header", header,
               "--proxy", f"bare={bare}", "--proxy", f"{kind}={managed}"] + rest
    sys.exit(subprocess.call(cmd))


if __name__ == "__main__":
    main()
