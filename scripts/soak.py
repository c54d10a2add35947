#!/usr/bin/env python3
"""`make soak` / `make soak-smoke` (issue #19): a long run of mixed traffic on real Envoy whose
attestgate config comes by extension config discovery (ECDS), while

  - the JWKS the gate fetches (keys.remote, a Python server on loopback) rotates with overlap:
    phase i publishes {K_i, K_i+1}; clients sign with the key of phase i (chosen a few seconds
    ahead), tokens under the key of phase i-2 (retired, and accepted two phases earlier) must be
    refused;
  - the gate config is reloaded through ECDS between two configs that decide alike (A and B)
    and now and then a bad one (refused by Envoy, the last good one keeps serving);
  - every answer is checked against its class (valid, forged, malformed, expired, retired key,
    signed bodies, tampered bodies, slow bodies, oversized bodies and headers);
  - Envoy's heap and RSS are sampled every 5 s after warm-up and their least-squares slope is
    bounded; no wasm VM crash or re-creation outside reloads, no panic or trap in the log, no
    filter error.

It ends with `soak: ok ...` or `soak: FAILED ...` (exit 1). Python 3 standard library only.

  SOAK_SECONDS   length of the traffic (default 600; --seconds)
  SOAK_SMOKE=1   the short form (--smoke): 15 s intervals, 15 s key phases, reloads every 10 s
  SOAK_KEEP=1    keep the scratch directory (Envoy log, configs, samples)
  SOAK_RATE      target requests per second per fast client thread (default 150)
  SOAK_BREAK     deliberately break one check, to see the soak fail: `expect` (the valid class
                 expects 401), `config` (config B denies every token: a reload breaks traffic)
  ATTESTGATE     the CLI (default target/release/attestgate, else target/debug/attestgate)
  SOAK_WASM      the filter (default build/attestgate.wasm)
  ENVOY          Envoy (default .venv/bin/envoy)
"""

import argparse
import base64
import http.client
import http.server
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "api.example.com"  # the :authority clients send, and what request signatures cover
TOKEN_HEADER = "approov-token"
MAX_BODY = 4096  # the upload rule's signature.max_body_bytes
MiB = 1024 * 1024


def log(message):
    print(f"soak: {message}", flush=True)


class Stop(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Set-up: ports, keys, tokens, gate configs, Envoy's bootstrap and the ECDS resource.


def free_ports(n):
    sockets, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def config_id(text):
    """The filter's id of a config text (filter/src/plan.rs `config_id`: FNV-1a 64)."""
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


class Cli:
    def __init__(self, path, work):
        self.path, self.work = path, work

    def run(self, *args, stdin=None):
        out = subprocess.run([self.path, *args], input=stdin, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"attestgate {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def keygen(self, name, kid):
        out = os.path.join(self.work, f"{name}.json")
        self.run("keygen", "--alg", "ES256", "--kid", kid, "--out", out)
        with open(out[: -len(".json")] + ".pub.json") as f:  # keygen --out k.json writes k.pub.json
            public = json.load(f)["keys"][0]
        return out, public

    def mint(self, key, claims_file, exp_in, count=1, install=None, now=None):
        args = ["mint", "--key", key, "--claims", claims_file, "--exp-in", str(exp_in), "--count", str(count)]
        if install:
            args += ["--install-key", install]
        if now is not None:
            args += ["--now", str(now)]
        return [t for t in self.run(*args).split("\n") if t]

    def sign(self, install, path, body_file):
        text = self.run("sign", "--install-key", install, "--method", "POST", "--path", path,
                        "--host", HOST, "--body-file", body_file)
        headers = []
        for line in text.split("\n"):
            if line.strip():
                name, value = line.split(":", 1)
                headers.append((name.strip(), value.strip()))
        return headers


def forge(token):
    """The token with one signature character changed (still base64url, same length)."""
    head, claims, sig = token.split(".")
    i = len(sig) // 2
    sig = sig[:i] + ("B" if sig[i] == "A" else "A") + sig[i + 1:]
    return f"{head}.{claims}.{sig}"


def gate_config(cli, work, name, jwks_cluster, leeway, extra_rule, deny_all=False):
    data = {"device_trust": {"allowed_app_ids": ["com.example.shapes", "ABCDE12345.com.example.shapes"],
                             "min_app_version": "2.0.0",
                             "min_os_version": {"android": "11", "ios": "15.0"}}}
    if deny_all:  # SOAK_BREAK=config: a config that refuses every app
        data["device_trust"]["allowed_app_ids"] = ["com.example.nothing"]
    rules = [{"name": "upload", "path": "/v1/upload", "methods": ["POST"],
              "signature": {"mode": "required", "components": ["@method", "@target-uri", "content-digest"],
                            "max_age_seconds": 0, "max_body_bytes": MAX_BODY}}]
    if extra_rule:
        rules.append({"name": "never-matched", "path": "/soak/never-matched", "mode": "bypass"})
    config = {
        "keys": {"remote": {"upstream": jwks_cluster, "authority": "keys.soak.test", "path": "/jwks.json",
                            "refresh_seconds": 2, "timeout_ms": 1000}},
        "leeway_seconds": leeway,
        "policy": {"module_files": [os.path.join(ROOT, "policies/device_trust.rego")], "data": data},
        "rules": rules,
        "claim_to_headers": [{"claim": "did", "header": "x-device-id"}],
    }
    path = os.path.join(work, f"gate-{name}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return cli.run("render", "--config", path).strip()


BAD_CONFIGS = [
    ("invalid JSON", '{"keys": {"remote": '),
    ("weak secret", '{"keys":{"approov_secret":"c2hvcnQ="}}'),
    ("unknown field", '{"keys":{"approov_secret":"MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="},"leway_seconds":5}'),
]


def bootstrap(ports, resource, jwks_port):
    """envoy-examples/ecds/envoy.yaml with our ports, resource path, and the JWKS cluster."""
    gated, upstream, admin = ports
    hcm = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    router = {"name": "envoy.filters.http.router",
              "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}

    def addr(port):
        return {"socket_address": {"address": "127.0.0.1", "port_value": port}}

    def cluster(name, port):
        return {"name": name, "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": addr(port)}}]}]}}

    echo = [("x-upstream-device-id", "%REQ(x-device-id)%"), ("x-upstream-token", f"%REQ({TOKEN_HEADER})%"),
            ("x-upstream-decision", "%REQ(x-attestgate-decision)%"),
            ("x-upstream-signature", "%REQ(signature)%"), ("x-upstream-digest", "%REQ(content-digest)%"),
            ("x-upstream-length", "%REQ(content-length)%")]
    return {
        "node": {"id": "attestgate-soak", "cluster": "attestgate-soak"},
        "admin": {"address": addr(admin)},
        "static_resources": {
            "listeners": [
                {"name": "gated", "address": addr(gated), "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": hcm, "stat_prefix": "gated", "normalize_path": True, "merge_slashes": True,
                        "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
                        "route_config": {"virtual_hosts": [{"name": "api", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]}]},
                        "http_filters": [
                            {"name": "attestgate", "config_discovery": {
                                "config_source": {"path_config_source": {"path": resource}},
                                "type_urls": ["type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"]}},
                            router]}}]}]},
                {"name": "upstream", "address": addr(upstream), "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": hcm, "stat_prefix": "upstream",
                        "route_config": {"virtual_hosts": [{"name": "echo", "domains": ["*"], "routes": [{
                            "match": {"prefix": "/"},
                            "direct_response": {"status": 200,
                                                "body": {"inline_string": "{\"upstream\":\"reached\"}\n"}},
                            "response_headers_to_add": [{"header": {"key": k, "value": v}} for k, v in echo]}]}]},
                        "http_filters": [router]}}]}]},
            ],
            "clusters": [cluster("upstream", upstream), cluster("jwks", jwks_port)],
        },
    }


class Resource:
    """The ECDS resource file: written beside the watched path, then renamed over it."""

    def __init__(self, work, wasm):
        with open(os.path.join(ROOT, "envoy-examples/ecds/attestgate-ecds.yaml.in")) as f:
            self.template = f.read()
        assert "{{ATTESTGATE_CONFIG}}" in self.template and "filename: build/attestgate.wasm" in self.template
        self.path = os.path.join(work, "attestgate-ecds.yaml")
        self.staged = os.path.join(work, "attestgate-ecds.staged.yaml")
        self.wasm = wasm

    def publish(self, config_text):
        text = self.template.replace("{{ATTESTGATE_CONFIG}}", json.dumps(config_text)).replace(
            "filename: build/attestgate.wasm", f"filename: {self.wasm}")
        with open(self.staged, "w") as f:
            f.write(text)
        os.rename(self.staged, self.path)


# --------------------------------------------------------------------------------------------
# The rotating JWKS.


class Rotation:
    """Key index k is published in phases k-1 and k; clients in phase i sign with K_i.

    Phase p(t) = floor((t - t0) / period). The JWKS server publishes {K_p, K_p+1}. A client
    choosing at time t signs with K_c, c = p(t + lead): the gate decides after t (within lead)
    on a JWKS fetched at most a few seconds earlier, so it holds {K_c-1, K_c} or {K_c, K_c+1}.
    Either way K_c verifies and K_c-2 (retired) does not: the right answer is unambiguous.
    """

    def __init__(self, period, lead, first):
        self.period, self.lead, self.first = period, lead, first  # first: the lowest key index
        self.t0 = time.time()
        self.keys = {}  # index -> public JWK

    def phase(self, t=None):
        return math.floor(((time.time() if t is None else t) - self.t0) / self.period)

    def current(self):
        return self.phase(time.time() + self.lead)

    def jwks(self):
        p = self.phase()
        return {"keys": [self.keys[k] for k in (p, p + 1) if k in self.keys]}


def serve_jwks(rotation, port, stats):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            body = json.dumps(rotation.jwks()).encode()
            stats["fetches"] += 1
            phase = rotation.phase()
            if phase != stats.get("last_phase"):
                stats["last_phase"] = phase
                stats["phases_served"].append(phase)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return server


# --------------------------------------------------------------------------------------------
# Traffic.

# class -> (status, reason or None): what every answer of that class must be.
EXPECT = {
    "valid": (200, None),
    "no_token": (401, "token_missing"),
    "forged": (401, "signature_invalid"),
    "malformed": (401, "token_malformed"),
    "expired": (401, "token_expired"),
    "retired": (401, "key_not_found"),
    "signed": (200, None),
    "unsigned_upload": (401, "request_signature_missing"),
    "tampered": (401, "request_signature_invalid"),
    "slow_signed": (200, None),
    "too_large": (413, "body_too_large"),
    "big_headers": (431, None),  # Envoy itself: never reaches the filter
}
FAST = [("valid", 30), ("no_token", 3), ("forged", 8), ("malformed", 5), ("expired", 5), ("retired", 8),
        ("signed", 10), ("unsigned_upload", 3), ("tampered", 5)]
SLOW = [("slow_signed", 3), ("too_large", 1), ("big_headers", 1)]


class Tally:
    def __init__(self, interval, start, length):
        self.lock = threading.Lock()
        self.interval, self.start, self.length = interval, start, length  # the last answers count in the last interval
        self.latency = {}  # (interval index, class) -> [seconds]
        self.count = {}
        self.wrong = {}
        self.examples = {}
        self.denials_seen = {}  # reason -> count (what the filter should have counted)
        self.passed = 0

    def add(self, cls, latency, problem, status, reason, sent=None):
        with self.lock:
            at = min((time.time() if sent is None else sent) - self.start, self.length - 1e-3)
            key = (int(at // self.interval), cls)
            self.latency.setdefault(key, []).append(latency)
            self.count[cls] = self.count.get(cls, 0) + 1
            if problem:
                self.wrong[cls] = self.wrong.get(cls, 0) + 1
                ex = self.examples.setdefault(cls, [])
                if len(ex) < 5:
                    ex.append(f"{time.strftime('%H:%M:%S')} {problem}")
            if status == 200:
                self.passed += 1
            elif reason and cls != "big_headers":
                self.denials_seen[reason] = self.denials_seen.get(reason, 0) + 1


def check(cls, status, headers, body, expect, device):
    """Why the answer is wrong for its class, or None."""
    want_status, want_reason = expect[cls]
    reason = headers.get("x-attestgate-reason")
    got = f"{status} {reason or '-'}"
    if status != want_status:
        return f"got {got} {body[:120]!r}, want {want_status} {want_reason or ''}", reason
    if status == 200:
        token = headers.get("x-upstream-token")
        if token not in (None, ""):
            return f"the upstream got the token header ({token[:24]}...)", reason
        if headers.get("x-upstream-device-id") != device:
            return f"the upstream got x-device-id {headers.get('x-upstream-device-id')!r}, want {device!r}", reason
        if cls in ("signed", "slow_signed") and not (headers.get("x-upstream-signature") and headers.get("x-upstream-digest")):
            return "the upstream did not get the signature and digest", reason
        return None, reason
    if "x-upstream-device-id" in headers or "x-upstream-token" in headers:
        return f"a denied request ({got}) reached the upstream", reason
    if want_reason is None:
        return None, reason
    try:
        doc = json.loads(body)
    except ValueError:
        return f"got {got} with a body that is not JSON: {body[:120]!r}", reason
    if reason != want_reason or doc.get("error") != want_reason or not isinstance(doc.get("reasons"), list):
        return f"got {got} body {body[:160]!r}, want reason {want_reason}", reason
    return None, reason


class Material:
    """Everything pre-minted and pre-signed: tokens per key index, signed bodies."""

    def __init__(self):
        self.valid, self.expired, self.forged = {}, {}, {}
        self.signed = []  # (body bytes, headers)
        self.slow = None
        self.large = None
        self.device = None


def build_request(cls, material, rotation):
    """(method, path, headers, body) for one request of a class."""
    c = rotation.current()
    headers = [("Host", HOST)]
    body = b""
    method, path = "GET", "/v1/shapes"
    if cls == "valid":
        headers.append((TOKEN_HEADER, random.choice(material.valid[c])))
    elif cls == "forged":
        headers.append((TOKEN_HEADER, random.choice(material.forged[c])))
    elif cls == "malformed":
        headers.append((TOKEN_HEADER, "not.a.jwt"))
    elif cls == "expired":
        headers.append((TOKEN_HEADER, random.choice(material.expired[c])))
    elif cls == "retired":
        headers.append((TOKEN_HEADER, random.choice(material.valid[c - 2])))
    elif cls in ("signed", "tampered", "unsigned_upload", "slow_signed", "too_large"):
        method, path = "POST", "/v1/upload"
        headers.append((TOKEN_HEADER, random.choice(material.valid[c])))
        if cls == "slow_signed":
            body, signature = material.slow
        elif cls == "too_large":
            body, signature = material.large
        else:
            body, signature = random.choice(material.signed)
        if cls == "tampered":
            i = random.randrange(len(body))
            body = body[:i] + (b"X" if body[i:i + 1] != b"X" else b"Y") + body[i + 1:]
        if cls != "unsigned_upload":
            headers += signature
        headers.append(("Content-Type", "application/json"))
    elif cls == "big_headers":
        headers.append((TOKEN_HEADER, random.choice(material.valid[c])))
        headers.append(("x-padding", "p" * (70 * 1024)))  # Envoy's limit: 60 KiB of headers
    return method, path, headers, body


def fast_client(port, material, rotation, tally, stop, rate, expect, errors):
    conn = None
    weights = [w for _, w in FAST]
    names = [n for n, _ in FAST]
    next_at = time.time()
    while not stop.is_set():
        cls = random.choices(names, weights)[0]
        method, path, headers, body = build_request(cls, material, rotation)
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            t = time.perf_counter()
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            if method == "POST":
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            latency = time.perf_counter() - t
            resp_headers = {k.lower(): v for k, v in resp.getheaders()}
            problem, reason = check(cls, resp.status, resp_headers, data.decode(errors="replace"), expect, material.device)
            tally.add(cls, latency, problem, resp.status, reason)
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as err:
            tally.add(cls, 0.0, f"connection error: {err!r}", None, None)
            errors.append(repr(err))
            if conn:
                conn.close()
            conn = None
            stop.wait(0.1)
        next_at += 1.0 / rate
        delay = next_at - time.time()
        if delay > 0:
            stop.wait(delay)
        elif delay < -1:
            next_at = time.time()
    if conn:
        conn.close()


def raw_exchange(port, method, path, headers, body, pieces, pause):
    """One request on a fresh connection, the body sent in `pieces` with `pause` between them;
    reads the answer even if Envoy answered (and stopped reading) before the body was all sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
        if method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        head += "\r\n"
        try:
            sock.sendall(head.encode())
            if body:
                size = max(1, math.ceil(len(body) / pieces))
                for i in range(0, len(body), size):
                    time.sleep(pause)
                    sock.sendall(body[i:i + size])
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered early: the response is still there to read
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        sock.close()


def slow_client(port, material, rotation, tally, stop, expect, errors):
    names = [n for n, _ in SLOW]
    weights = [w for _, w in SLOW]
    while not stop.is_set():
        cls = random.choices(names, weights)[0]
        method, path, headers, body = build_request(cls, material, rotation)
        pieces, pause = (8, 0.12) if cls in ("slow_signed", "too_large") else (1, 0)
        t, sent = time.perf_counter(), time.time()
        try:
            status, resp_headers, data = raw_exchange(port, method, path, headers, body, pieces, pause)
            latency = time.perf_counter() - t
            problem, reason = check(cls, status, resp_headers, data.decode(errors="replace"), expect, material.device)
            tally.add(cls, latency, problem, status, reason, sent)
        except (OSError, http.client.HTTPException) as err:
            tally.add(cls, 0.0, f"connection error: {err!r}", None, None)
            errors.append(repr(err))
        stop.wait(0.05)


# --------------------------------------------------------------------------------------------
# Envoy's admin.


class Admin:
    def __init__(self, port):
        self.port = port

    def get(self, path, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def stats(self):
        _, text = self.get("/stats")
        out = {}
        for line in text.split("\n"):
            name, sep, value = line.partition(": ")
            if sep and re.fullmatch(r"-?\d+", value.strip()):
                out[name] = int(value)
        return out

    def stat(self, name):
        _, text = self.get(f"/stats?filter=^{re.escape(name)}$")
        for line in text.split("\n"):
            n, sep, value = line.partition(": ")
            if sep and n == name:
                return int(value)
        return None


def vm_stats(stats):
    return {k: v for k, v in stats.items() if k.startswith("wasm.") or k.startswith("wasm_")}


def log_time(line):
    """The time of an Envoy log line `[2026-12-01 12:22:25.406][...`, unix seconds (local time)."""
    m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)\]", line)
    if not m:
        return None
    return time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + float(m.group(2))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def slope(points):
    """Least-squares slope of (t, y) points, y per second."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else 0.0


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(math.ceil(q * len(values))) - 1)]


# --------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "600")))
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("SOAK_SMOKE") == "1")
    parser.add_argument("--keep", action="store_true", default=os.environ.get("SOAK_KEEP") == "1")
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", "150")))
    parser.add_argument("--break", dest="breakage", default=os.environ.get("SOAK_BREAK", ""),
                        choices=["", "expect", "config"])
    args = parser.parse_args()

    cli_path = os.environ.get("ATTESTGATE") or next(
        (p for p in (os.path.join(ROOT, "target/release/attestgate"), os.path.join(ROOT, "target/debug/attestgate"))
         if os.path.exists(p)), None)
    wasm = os.path.abspath(os.environ.get("SOAK_WASM", os.path.join(ROOT, "build/attestgate.wasm")))
    envoy_bin = os.environ.get("ENVOY", os.path.join(ROOT, ".venv/bin/envoy"))
    for what, path, hint in (("the CLI", cli_path, "make cli"), ("the filter", wasm, "make filter"),
                             ("Envoy", envoy_bin, "make envoy")):
        if not path or not os.path.exists(path):
            log(f"{what} ({path}) is missing: run {hint}")
            return 2

    seconds = args.seconds
    if args.smoke:
        interval, period, reload_every, fast_threads = 15, 15, 10, 3
    else:
        interval, period, reload_every, fast_threads = 60, 30, 25, 3
    warmup = max(10, min(60, round(0.2 * seconds)))
    lead = 3  # seconds a client looks ahead when choosing its key (see Rotation)

    work = tempfile.mkdtemp(prefix="attestgate-soak.")
    envoy = None
    servers = []
    stop = threading.Event()
    threads = []

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    # SIGINT too: a shell without job control starts background jobs with it ignored.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        return run(args, seconds, interval, period, reload_every, fast_threads, warmup, lead,
                   cli_path, wasm, envoy_bin, work, servers, stop, threads, lambda p: envoy_set(p))
    except KeyboardInterrupt as err:
        log(f"interrupted ({err or 'Ctrl-C'}): cleaning up")
        return 130
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        proc = ENVOY.get("proc")
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for s in servers:
            s.shutdown()
            s.server_close()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


ENVOY = {}


def envoy_set(proc):
    ENVOY["proc"] = proc


def run(args, seconds, interval, period, reload_every, fast_threads, warmup, lead,
        cli_path, wasm, envoy_bin, work, servers, stop, threads, set_envoy):
    failures = []
    cli = Cli(cli_path, work)
    expect = dict(EXPECT)
    if args.breakage == "expect":
        expect["valid"] = (401, "signature_invalid")  # deliberately wrong: the soak must fail

    # Keys: index -2 and -1 are never published (the retired keys of phases 0 and 1).
    total = warmup + seconds
    phases = math.ceil((total + lead + 30) / period) + 2
    first = -2
    started = time.time()
    rotation = Rotation(period, lead, first)
    install, _ = cli.keygen("install", "install")
    claims = os.path.join(ROOT, "envoy-examples/quickstart/claims/good.json")
    with open(claims) as f:
        device = json.load(f)["did"]
    material = Material()
    material.device = device
    now = int(time.time())
    for k in range(first, phases + 1):
        key, public = cli.keygen(f"k{k}", f"soak-k{k}")
        rotation.keys[k] = public
        material.valid[k] = cli.mint(key, claims, total + 600, count=6, install=install)
        material.expired[k] = cli.mint(key, claims, 600, count=2, install=install, now=now - 7200)
        material.forged[k] = [forge(t) for t in material.valid[k]]
    for k in (first, first + 1):
        del rotation.keys[k]  # minted, never published
    for n in range(5):
        body = json.dumps({"upload": n, "data": "x" * random.randrange(10, 600)}).encode()
        f = os.path.join(work, f"body{n}.json")
        with open(f, "wb") as fh:
            fh.write(body)
        material.signed.append((body, cli.sign(install, "/v1/upload", f)))
    for name, size in (("slow", 2000), ("large", 2 * MAX_BODY)):
        body = json.dumps({"upload": name, "data": "y" * size}).encode()
        f = os.path.join(work, f"body-{name}.json")
        with open(f, "wb") as fh:
            fh.write(body)
        setattr(material, name, (body, cli.sign(install, "/v1/upload", f)))
    log(f"minted {sum(len(v) for v in material.valid.values()) * 2 + sum(len(v) for v in material.expired.values())} "
        f"tokens under {phases + 1 - first} keys and signed {len(material.signed) + 2} bodies "
        f"in {time.time() - started:.1f}s")

    # The two good configs decide alike; B has another leeway and a rule nothing matches.
    config_a = gate_config(cli, work, "a", "jwks", 60, False)
    config_b = gate_config(cli, work, "b", "jwks", 30, True, deny_all=args.breakage == "config")
    ids = {"A": config_id(config_a), "B": config_id(config_b)}
    texts = {"A": config_a, "B": config_b}

    gated, upstream, admin_port, jwks_port = free_ports(4)
    jwks_stats = {"fetches": 0, "phases_served": []}
    rotation.t0 = time.time()
    servers.append(serve_jwks(rotation, jwks_port, jwks_stats))
    resource = Resource(work, wasm)
    resource.publish(config_a)
    boot = os.path.join(work, "envoy.json")
    with open(boot, "w") as f:
        json.dump(bootstrap((gated, upstream, admin_port), resource.path, jwks_port), f, indent=1)
    envoy_log = os.path.join(work, "envoy.log")
    logf = open(envoy_log, "w")
    proc = subprocess.Popen([envoy_bin, "-c", boot, "--concurrency", "2", "--disable-hot-restart",
                             "--log-level", "warn", "--component-log-level", "wasm:info,config:info"],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=work)
    set_envoy(proc)
    admin = Admin(admin_port)
    deadline = time.time() + 60
    while True:
        if proc.poll() is not None:
            logf.flush()
            print(open(envoy_log).read()[-3000:], file=sys.stderr)
            log("FAILED: envoy exited at start-up")
            return 1
        try:
            if admin.get("/ready", timeout=1)[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            log("FAILED: envoy not ready after 60 s")
            return 1
        time.sleep(0.2)
    # The upstream echoes what it got: a token sent straight to it comes back (so that its
    # absence behind the gate means something).
    status, echoed, _ = raw_exchange(upstream, "GET", "/echo", [("Host", HOST), (TOKEN_HEADER, "probe.token.value")], b"", 1, 0)
    if status != 200 or echoed.get("x-upstream-token") != "probe.token.value":
        log(f"FAILED: the upstream does not echo the token header ({status} {echoed})")
        return 1
    # The first JWKS fetch: until then tokens get 503 keys_unavailable.
    deadline = time.time() + 30
    while True:
        method, path, headers, body = build_request("valid", material, rotation)
        try:
            status, _, _ = raw_exchange(gated, method, path, headers, body, 1, 0)
        except OSError:
            status = None
        if status == 200:
            break
        if time.time() > deadline:
            log(f"FAILED: no valid request allowed 30 s after start-up (last status {status})")
            return 1
        time.sleep(0.2)
    log(f"envoy {proc.pid} ready (gate 127.0.0.1:{gated}, admin {admin_port}, jwks {jwks_port}); "
        f"configs A {ids['A']} and B {ids['B']}; {warmup}s warm-up then {seconds}s; key phases {period}s, "
        f"reloads every {reload_every}s, {fast_threads} keep-alive clients at {args.rate:.0f}/s + 1 slow-body client")

    # Load.
    start = time.time()
    tally = Tally(interval, start, warmup + seconds)
    errors = []
    for _ in range(fast_threads):
        threads.append(threading.Thread(target=fast_client, daemon=True,
                                        args=(gated, material, rotation, tally, stop, args.rate, expect, errors)))
    threads.append(threading.Thread(target=slow_client, daemon=True,
                                    args=(gated, material, rotation, tally, stop, expect, errors)))
    for t in threads:
        t.start()

    samples = []  # (t, heap bytes, rss KiB)
    vm_log = []  # (t, {wasm stats})
    reloads = []  # (t, what, ok)
    current = "A"
    good_published, bad_published = 1, 0
    bad_kind = 0
    next_reload = start + reload_every
    next_sample = start + 5
    next_report = start + interval
    warm_stats, warm_t = None, None
    reload_n = 0
    end = start + warmup + seconds
    ecds = "extension_config_discovery.http_filter.attestgate."
    while time.time() < end:
        now_t = time.time()
        if proc.poll() is not None:
            failures.append(f"envoy exited with {proc.returncode} during the soak")
            break
        if now_t >= next_reload:
            reload_n += 1
            before = admin.stats()
            if reload_n % 3 == 0:
                what, text = BAD_CONFIGS[bad_kind % len(BAD_CONFIGS)]
                bad_kind += 1
                bad_published += 1
                resource.publish(text)
                counter, want = ecds + "update_rejected", before.get(ecds + "update_rejected", 0) + 1
                label = f"bad ({what})"
            else:
                current = "B" if current == "A" else "A"
                good_published += 1
                resource.publish(texts[current])
                counter, want = ecds + "update_success", before.get(ecds + "update_success", 0) + 1
                label = current
            deadline = time.time() + 10
            got = None
            while time.time() < deadline:
                got = admin.stat(counter)
                if got is not None and got >= want:
                    break
                time.sleep(0.1)
            took = time.time() - now_t
            ok = got is not None and got >= want
            # What the reload did to the wasm VMs: the stats 2 s after it took effect.
            stop.wait(2)
            after = admin.stats()
            created = {k: (before.get(k), v) for k, v in vm_stats(after).items()
                       if k.endswith(".created") and v != before.get(k)}
            reloads.append((now_t - start, label, ok, took, created))
            if not ok:
                failures.append(f"reload {reload_n} ({label}): {counter} stayed {got} (want {want}) for 10 s")
            next_reload += reload_every
        if now_t >= next_sample:
            try:
                st = admin.stats()
                vm_log.append((now_t - start, vm_stats(st)))
                if now_t - start >= warmup:
                    samples.append((now_t - start, st.get("server.memory_allocated"), rss_kib(proc.pid)))
                    if warm_stats is None:
                        warm_stats, warm_t = st, now_t - start
            except OSError as err:
                failures.append(f"admin unreachable: {err!r}")
            next_sample += 5
        if now_t >= next_report:
            with tally.lock:
                n = sum(tally.count.values())
                wrong = sum(tally.wrong.values())
            log(f"{now_t - start:5.0f}s: {n} requests, {wrong} wrong, config {current}, key phase "
                f"{rotation.phase()}, heap {samples[-1][1] / MiB if samples else float('nan'):.1f} MiB")
            next_report += interval
        time.sleep(min(0.1, max(0.0, min(next_reload, next_sample, next_report, end) - time.time())))

    stop.set()
    for t in threads:
        t.join(timeout=20)
    elapsed = time.time() - start
    time.sleep(0.5)
    alive = proc.poll() is None
    end_stats = admin.stats() if alive else {}
    logf.flush()
    with open(envoy_log, errors="replace") as f:
        envoy_text = f.read()

    # ---- Report.
    print()
    total_requests = sum(tally.count.values())
    log(f"{total_requests} requests in {elapsed:.0f}s ({total_requests / elapsed:.0f}/s), "
        f"{sum(tally.wrong.values())} wrong")
    classes = [n for n, _ in FAST] + [n for n, _ in SLOW]
    print(f"\n{'class':16} {'expects':28} {'requests':>9} {'wrong':>6} {'p50 ms':>8} {'p99 ms':>8}")
    for cls in classes:
        lat = [x for (i, c), v in tally.latency.items() if c == cls for x in v]
        status, reason = expect[cls]
        print(f"{cls:16} {f'{status} {reason or chr(45)}':28} {tally.count.get(cls, 0):>9} "
              f"{tally.wrong.get(cls, 0):>6} {pct(lat, .5) * 1e3:>8.2f} {pct(lat, .99) * 1e3:>8.2f}")
    unit = "min" if interval == 60 else f"{interval}s"
    n_int = max(i for i, _ in tally.latency) + 1 if tally.latency else 0
    print(f"\nper {unit} (the first {warmup}s are warm-up): requests, p50 / p99 ms of all, then p99 ms per class")
    short = {c: c[:9] for c in classes}
    print(f"{unit:>4} {'reqs':>7} {'p50':>6} {'p99':>6} " + " ".join(f"{short[c]:>9}" for c in classes))
    for i in range(n_int):
        lat = [x for (j, c), v in tally.latency.items() if j == i for x in v]
        row = f"{i + 1:>4} {len(lat):>7} {pct(lat, .5) * 1e3:>6.2f} {pct(lat, .99) * 1e3:>6.2f} "
        row += " ".join(f"{pct(tally.latency.get((i, c), []), .99) * 1e3:>9.2f}" for c in classes)
        print(row)
    print(f"{'':>4} {'':>7} {'':>6} {'':>6} " + " ".join(
        f"{'n=' + str(sum(len(v) for (j, c2), v in tally.latency.items() if c2 == c)):>9}" for c in classes))
    for cls, n in sorted(tally.wrong.items()):
        failures.append(f"{cls}: {n} wrong answers of {tally.count.get(cls, 0)}")
        for ex in tally.examples.get(cls, []):
            print(f"  wrong {cls}: {ex}")
    for cls in classes:
        if not tally.count.get(cls):
            failures.append(f"{cls}: no request of this class was sent")

    # Reloads and which config answered.
    good_ok = sum(1 for _, label, ok, *_ in reloads if ok and not label.startswith("bad"))
    bad_ok = sum(1 for _, label, ok, *_ in reloads if ok and label.startswith("bad"))
    print("\nreloads (s after start, what, accepted/refused as expected, seconds to take effect): " +
          ", ".join(f"{t:.0f}s {label} {'ok' if ok else 'NOT'} {took:.1f}s" for t, label, ok, took, _ in reloads))
    if alive:
        success, rejected = end_stats.get(ecds + "update_success"), end_stats.get(ecds + "update_rejected")
        print(f"ecds: update_success {success} (want {good_published}), update_rejected {rejected} "
              f"(want {bad_published}), {good_ok} good reloads took, {bad_ok} bad configs refused")
        if success != good_published:
            failures.append(f"{ecds}update_success is {success}, want {good_published}")
        if (rejected or 0) != bad_published:
            failures.append(f"{ecds}update_rejected is {rejected}, want {bad_published}")
        answered = {}
        for name, cid in ids.items():
            n = end_stats.get(f"wasmcustom.attestgate.config.{cid}", 0)
            answered[name] = n
            logged = envoy_text.count(f"(config {cid})")
            print(f"config {name} ({cid}): {n} decisions counted, `configured ... (config {cid})` logged {logged} times")
            if n <= 0:
                failures.append(f"config {name} ({cid}) answered no request")
            if not logged:
                failures.append(f"config {name} ({cid}) never logged `configured ... (config {cid})`")
        others = {k: v for k, v in end_stats.items() if k.startswith("wasmcustom.attestgate.config.")
                  and k.rsplit(".", 1)[1] not in ids.values()}
        if others:
            failures.append(f"decisions counted under an unknown config: {others}")
        if bad_published and "update rejected" not in envoy_text.lower():
            failures.append("envoy never logged a rejected config update")

    # Key rotation.
    phases_seen = sorted(set(jwks_stats["phases_served"]))
    print(f"\nkeys: {jwks_stats['fetches']} JWKS fetches served, phases {phases_seen[0] if phases_seen else '-'}.."
          f"{phases_seen[-1] if phases_seen else '-'} ({len(phases_seen) - 1} rotations); "
          f"jwks.fetched {end_stats.get('wasmcustom.attestgate.jwks.fetched')}, "
          f"jwks.fetch_failed {end_stats.get('wasmcustom.attestgate.jwks.fetch_failed', 0)}")
    if len(phases_seen) < 2:
        failures.append("the JWKS never rotated")

    # Counters against what the clients saw.
    if alive:
        prefix = "wasmcustom.attestgate."
        mismatches = []
        for reason, seen in sorted(tally.denials_seen.items()):
            counted = end_stats.get(f"{prefix}denied.{reason}", 0)
            if not 0 <= counted - seen <= 8:  # the start-up probes and any 503 before the first fetch
                mismatches.append(f"denied.{reason}: filter {counted}, clients {seen}")
        counted_allowed = end_stats.get(f"{prefix}allowed", 0)
        if not 0 <= counted_allowed - tally.passed <= 20:
            mismatches.append(f"allowed: filter {counted_allowed}, clients {tally.passed}")
        print(f"counters: {len(tally.denials_seen) + 1} compared with what the clients saw"
              + (f"; mismatched: {mismatches}" if mismatches else ", all agree")
              + f" (allowed {counted_allowed}, clients {tally.passed})")
        failures += [f"counter {m}" for m in mismatches]
        if end_stats.get(f"{prefix}errors", 0):
            failures.append(f"filter errors: {end_stats[f'{prefix}errors']}")

    # Memory.
    pts = [(t, h, r) for t, h, r in samples if h is not None and r is not None]
    if len(pts) >= 3:
        span = pts[-1][0] - pts[0][0]
        hs = slope([(t, h / MiB) for t, h, _ in pts])
        rs = slope([(t, r / 1024) for t, _, r in pts])
        heap_growth, rss_growth = hs * span, rs * span
        heap_bound = max(8.0, 0.10 * pts[0][1] / MiB)
        print(f"\nmemory ({len(pts)} samples every 5 s over {span:.0f}s after warm-up):")
        print(f"  heap {pts[0][1] / MiB:.1f} -> {pts[-1][1] / MiB:.1f} MiB, slope {hs * 60:+.3f} MiB/min, "
              f"fitted growth {heap_growth:+.2f} MiB (bound {heap_bound:.1f})")
        print(f"  rss  {pts[0][2] / 1024:.1f} -> {pts[-1][2] / 1024:.1f} MiB, slope {rs * 60:+.3f} MiB/min, "
              f"fitted growth {rss_growth:+.2f} MiB (bound 32.0)")
        print("  heap MiB: " + " ".join(f"{h / MiB:.1f}" for _, h, _ in pts))
        print("  rss MiB:  " + " ".join(f"{r / 1024:.1f}" for _, _, r in pts))
        if heap_growth > heap_bound:
            failures.append(f"heap fitted growth {heap_growth:.1f} MiB over the run (bound {heap_bound:.1f})")
        if rss_growth > 32:
            failures.append(f"rss fitted growth {rss_growth:.1f} MiB over the run (bound 32)")
    else:
        failures.append(f"only {len(pts)} memory samples")

    # Liveness: the wasm VM.
    if alive and warm_stats is not None:
        warm_vm, end_vm = vm_stats(warm_stats), vm_stats(end_stats)
        print("\nwasm stats (after warm-up -> end): " + ", ".join(
            f"{k}={warm_vm.get(k)}->{v}" for k, v in sorted(end_vm.items())))
        for k, v in end_vm.items():
            if re.search(r"(crash|fail|restart)", k) and v != warm_vm.get(k, 0):
                failures.append(f"{k} went from {warm_vm.get(k, 0)} to {v}")
        # VMs are created only by a reload (measured across each one); none otherwise, and the
        # number of live VMs is what it was after warm-up.
        by_reloads = {}
        for t, label, _, _, created in reloads:
            if t > warm_t:
                for k, (v0, v1) in created.items():
                    by_reloads[k] = by_reloads.get(k, 0) + (v1 or 0) - (v0 or 0)
        for k, v in end_vm.items():
            if k.endswith(".created"):
                grew = v - warm_vm.get(k, 0)
                if grew != by_reloads.get(k, 0):
                    failures.append(f"{k} grew by {grew} after warm-up, {by_reloads.get(k, 0)} of them across reloads")
            if k.endswith((".active", "wasm_vm_count")) and v != warm_vm.get(k):
                failures.append(f"{k} went from {warm_vm.get(k)} to {v} after warm-up")
        print("  VMs created per reload: " + ", ".join(
            f"{t:.0f}s {label} " + ("+" + "/".join(str((v1 or 0) - (v0 or 0)) for v0, v1 in c.values()) if c else "0")
            for t, label, _, _, c in reloads))
    # A refused config legitimately logs that the plugin failed to load (on the main thread and
    # each worker); anywhere else those lines, and a panic or trap anywhere, fail the soak.
    bad_times = [start + t for t, label, *_ in reloads if label.startswith("bad")]
    refusal_lines = 0
    for needle, when_refused in (("panicked", False), ("unreachable", False), ("function: proxy_on", False),
                                 (r"\btrap", False), ("wasm vm failed", True), ("failed to load", True),
                                 ("failed to configure", True)):
        hits = []
        for line in envoy_text.split("\n"):
            if not re.search(needle, line.lower()):
                continue
            at = log_time(line)
            if when_refused and at is not None and any(b - 1 <= at <= b + 10 for b in bad_times):
                refusal_lines += 1
                continue
            hits.append(line)
        if hits:
            failures.append(f"envoy log mentions `{needle}` ({len(hits)} lines), e.g. {hits[0][:240]}")
    print(f"log: {refusal_lines} lines about the refused configs (within 10 s of one), "
          f"{envoy_text.count('update rejected')} `Filesystem config update rejected`")
    with open(os.path.join(work, "samples.json"), "w") as f:
        json.dump({"memory": samples, "vm": vm_log, "reloads": reloads}, f, indent=1)
    if errors:
        print(f"client connection errors: {len(errors)}, e.g. {errors[:3]}")
    if not alive:
        failures.append("envoy is not running at the end")

    print()
    summary = (f"{total_requests} requests, {len(classes)} classes, {good_published - 1} reloads + {bad_published} bad "
               f"configs, {max(0, len(phases_seen) - 1)} key rotations, {elapsed:.0f}s")
    if failures:
        log(f"FAILED ({summary}): {len(failures)} problems")
        for f in failures[:30]:
            print(f"  - {f}")
        return 1
    log(f"ok ({summary}; every answer right, configs A and B answered, bad configs refused, VM alive, memory flat)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
