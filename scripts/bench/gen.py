#!/usr/bin/env python3
"""Inputs and Envoy configs for scripts/bench-gateway.sh (stdlib only).

    gen.py setups                       the setup names, in run order, one per line
    gen.py components                   what the signed setup's install signature covers, as
                                        scripts/interop/rfc9421.py pool's --component arguments
    gen.py prepare WORK                 from WORK/gate.json (`attestgate render` of
                                        scripts/bench/attestgate.yaml) writes into WORK:
                                          secret.txt        the HS256 secret, as in the config
                                          claims.json       quickstart good.json + the `pay` binding
                                          gate-es256.json   the gate with the ES256 public JWK instead
                                          gate-hybrid.json  the gate verifying nothing itself: it reads
                                                            the payload jwt_authn put in metadata
                                          gate-rs256.json   the gate with the RS256 public JWK instead
                                          gate-signed.json  the gate requiring the install signature
                                                            as Approov's SDK sends it (issue #28)
                                          claims-signed.json  claims.json + `ipk`, the install key
                                          gate-five-keys.json  issue #27's second config: five
                                                            keys by kid, iss/aud, a three-line
                                                            policy (claims-five-keys.json its claims)
    gen.py envoy SETUP WORK WASM        writes WORK/SETUP/envoy.json and prints
                                        "<gated port> <admin port> <token kind>"; the token kind
                                        names WORK/tokens/<kind>.txt (hs_one, hs_pool, es_pool,
                                        rs_pool, signed_pool, unique_pool or fleet)
    gen.py tokens KIND WORK COUNT       mints WORK/tokens/KIND.txt, HS256 under the config's secret:
                                          unique_pool  COUNT tokens, each a device never seen
                                                       before, with its own measurement claims
                                          fleet        FLEET_DEVICES tokens, one per device, each
                                                       with its own claims (wrk.lua picks them
                                                       Zipf-distributed, BENCH_ZIPF=1)

Every setup has the topology of envoy-examples/envoy.yaml.in: a gated listener (the filters
under test, then the router) -> cluster -> an upstream listener in the same Envoy that answers
with a small direct_response 200. Ports are free ones picked now, all on 127.0.0.1.
(JSON is YAML, and Envoy reads it by the file extension.)
"""

import base64
import hashlib
import hmac
import json
import os
import socket
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOOD_CLAIMS = os.path.join(ROOT, "envoy-examples/quickstart/claims/good.json")
ES256_PUBLIC = os.path.join(ROOT, "policy-engine/tests/data/keys/es256.pub.json")
RS256_PUBLIC = os.path.join(ROOT, "policy-engine/tests/data/keys/rs256.pub.json")
KEYS = os.path.join(ROOT, "policy-engine/tests/data/keys")
# The five-key config's token issuer and audience.
ISSUER = "attest.example.com"
AUDIENCE = "api.example.com"
# The app install's key of the signed setup: its public half is the tokens' `ipk`.
INSTALL_KEY = os.path.join(ROOT, "policy-engine/tests/data/keys/es256.json")
# What the install signature covers: Approov's SDK's defaults for a GET with Authorization.
SIGNED_COMPONENTS = ["@method", "@target-uri", "approov-token", "authorization"]

# What every benchmarked request carries (scripts/bench/wrk.lua sends the same).
TOKEN_HEADER = "approov-token"
AUTHORIZATION = "Bearer bench-user"
# Where hybrid mode's jwt_authn leaves the verified payload, and the gate reads it.
PAYLOAD_METADATA = "attestation"

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


# The fleet: devices, each reusing its one token for its lifetime.
FLEET_DEVICES = 10_000
TOKEN_TTL = 3600


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_hs256(secret, claims):
    """An HS256 JWT, as the attestation service signs it (RFC 7515 compact form)."""
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


def device_claims(base, n, exp):
    """The bench claims for device n: its own id and its own measurements, as real fleets
    report them (OS version, patch level, app version, risk score), all inside what the
    default policy allows, so every request is allowed and none repeats another's Rego input."""
    claims = json.loads(json.dumps(base))
    claims["did"] = f"fleet-device-{n:06d}"
    claims["exp"] = exp
    att = claims["att"]
    att["app"]["version"] = f"2.{4 + n % 20}.{n % 97}"
    att["device"]["os_version"] = str(11 + n % 5)
    att["device"]["patch_level"] = f"{2023 + n % 3}-{1 + n % 12:02d}-05"
    att["risk"]["score"] = n % 61
    return claims


def tokens(kind, count):
    with open(os.path.join(WORK, "claims.json")) as f:
        base = json.load(f)
    exp = int(time.time()) + TOKEN_TTL
    count = FLEET_DEVICES if kind == "fleet" else count
    # Pools of never-seen devices start past the fleet's ids.
    first = 0 if kind == "fleet" else FLEET_DEVICES
    secret = raw_secret()
    path = os.path.join(WORK, "tokens", f"{kind}.txt")
    with open(path + ".tmp", "w") as f:
        for n in range(first, first + count):
            f.write(mint_hs256(secret, device_claims(base, n, exp)) + "\n")
    os.replace(path + ".tmp", path)


def jwt_authn(alg, cached=False, metadata=False, cache_size=1000):
    """Envoy's native JWT filter with one provider, required on every path."""
    provider = {
        "local_jwks": {"inline_string": json.dumps({"keys": [jwk(alg)]})},
        "from_headers": [{"name": TOKEN_HEADER}],
        "forward": True,
    }
    if cached:
        provider["jwt_cache_config"] = {"jwt_cache_size": cache_size}
    if metadata:
        provider["payload_in_metadata"] = PAYLOAD_METADATA
    return {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"bench": provider},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
    }}


# The do-nothing filter of scripts/bench/trivial-filter (bench-gateway.sh builds it).
TRIVIAL_WASM = os.path.join(ROOT, "build/bench/trivial-target/wasm32-wasip1/release/trivial_filter.wasm")


def attestgate(gate_file):
    """The filter as envoy-examples/envoy.yaml.in has it, with this gate config."""
    with open(os.path.join(WORK, gate_file)) as f:
        config = json.load(f)
    return wasm_filter(WASM, "attestgate", json.dumps(config, separators=(",", ":")))


def trivial():
    """A wasm filter that only answers Continue: what any wasm filter costs here."""
    return wasm_filter(TRIVIAL_WASM, "", "")


def host_floor():
    """The same filter making only the host calls of an attestgate cache hit."""
    return wasm_filter(TRIVIAL_WASM, "", "host_calls_of_a_hit")


def wasm_filter(filename, root_id, configuration):
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {
            "name": root_id or "trivial",
            "root_id": root_id,
            "allow_on_headers_stop_iteration": True,
            "failure_policy": "FAIL_CLOSED",
            "vm_config": {
                "vm_id": root_id or "trivial",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": filename}},
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": configuration,
            },
        },
    }}


# name -> (the filters in front of the router, the tokens sent). Run in this order: `none`
# first, because its rate sizes the fresh token pools.
SETUPS = {
    "none": (lambda: [], "hs_one"),
    "wasm_trivial": (lambda: [trivial()], "hs_one"),
    # The host calls a cached decision makes (headers, clock, counters, filter state, header
    # edits) and nothing else: the floor under attestgate_repeated's cost over wasm_trivial.
    "wasm_host_floor": (lambda: [host_floor()], "hs_one"),
    "jwt_authn": (lambda: [jwt_authn("HS256")], "hs_pool"),
    "jwt_authn_cached": (lambda: [jwt_authn("HS256", cached=True)], "hs_one"),
    "attestgate_repeated": (lambda: [attestgate("gate.json")], "hs_one"),
    "attestgate_fresh": (lambda: [attestgate("gate.json")], "hs_pool"),
    # Issue #27's second config: five keys by kid, issuer, audiences, leeway, require_exp, an
    # optional binding and a three-line policy; one repeated HS256 token.
    "attestgate_five_keys": (lambda: [attestgate("gate-five-keys.json")], "five_keys_one"),
    "jwt_authn_es256": (lambda: [jwt_authn("ES256")], "es_pool"),
    "jwt_authn_es256_metadata": (lambda: [jwt_authn("ES256", metadata=True)], "es_pool"),
    "hybrid_es256": (lambda: [jwt_authn("ES256", metadata=True), attestgate("gate-hybrid.json")], "es_pool"),
    "attestgate_es256": (lambda: [attestgate("gate-es256.json")], "es_pool"),
    # RS256 (Firebase App Check's, most JWKS issuers'), fresh tokens: jwt_authn against the filter.
    "jwt_authn_rs256": (lambda: [jwt_authn("RS256")], "rs_pool"),
    "attestgate_rs256": (lambda: [attestgate("gate-rs256.json")], "rs_pool"),
    # Approov-signed requests: the (repeated) HS256 token with its install key, and a fresh
    # RFC 9421 install signature on every request (issue #28).
    "attestgate_signed": (lambda: [attestgate("gate-signed.json")], "signed_pool"),
    # A never-seen attestation every request: its own device, its own measurement claims.
    "attestgate_unique": (lambda: [attestgate("gate.json")], "unique_pool"),
    # The fleet: 10,000 devices, requests Zipf-distributed over them, each device's token
    # reused; jwt_authn with a cache that holds the whole fleet, against attestgate.
    "jwt_authn_fleet": (lambda: [jwt_authn("HS256", cached=True, cache_size=FLEET_DEVICES)], "fleet"),
    "attestgate_fleet": (lambda: [attestgate("gate.json")], "fleet"),
}


def raw_secret():
    """The HS256 secret's bytes: the config has it as base64, standard or url-safe."""
    with open(os.path.join(WORK, "secret.txt")) as f:
        text = f.read().strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def es256_public():
    with open(ES256_PUBLIC) as f:
        return json.load(f)["keys"][0]


def rs256_public():
    with open(RS256_PUBLIC) as f:
        return json.load(f)["keys"][0]


def jwk(alg):
    if alg == "HS256":
        k = base64.urlsafe_b64encode(raw_secret()).rstrip(b"=").decode()
        return {"kty": "oct", "alg": "HS256", "k": k}
    return rs256_public() if alg == "RS256" else es256_public()


def install_ipk():
    """The install key's `ipk`: base64 DER SubjectPublicKeyInfo of a P-256 point (the fixed
    SPKI header of id-ecPublicKey/prime256v1, then the uncompressed point)."""
    with open(INSTALL_KEY) as f:
        key = json.load(f)
    unb64 = lambda text: base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" \
        + unb64(key["x"]) + unb64(key["y"])
    return base64.b64encode(spki).decode()


def free_ports(count):
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def listener(name, port, http_filters, routes):
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": HCM,
                "stat_prefix": name,
                # As envoy.yaml.in: route on the path the upstream will see.
                "normalize_path": True,
                "merge_slashes": True,
                "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
                "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}]},
                "http_filters": http_filters + [ROUTER],
            },
        }]}],
    }


def envoy(setup):
    filters, tokens = SETUPS[setup]
    admin, gated, upstream = free_ports(3)
    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                listener("gated", gated, filters(),
                         [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]),
                listener("upstream", upstream, [],
                         [{"match": {"prefix": "/"}, "direct_response": {
                             "status": 200, "body": {"inline_string": "{\"upstream\":\"reached\"}\n"}}}]),
            ],
            "clusters": [{
                "name": "upstream", "type": "STATIC",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                 "port_value": upstream}}}}]}]},
            }],
        },
    }
    out = os.path.join(WORK, setup)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "envoy.json"), "w") as f:
        json.dump(config, f, indent=1)
    print(gated, admin, tokens)


def prepare():
    with open(os.path.join(WORK, "gate.json")) as f:
        gate = json.load(f)
    with open(os.path.join(WORK, "secret.txt"), "w") as f:
        f.write(gate["keys"]["approov_secret"] + "\n")

    # The token binding: standard padded base64 of SHA-256 over the bound header's value
    # (policy-engine/src/binding.rs).
    with open(GOOD_CLAIMS) as f:
        claims = json.load(f)
    claims["pay"] = base64.b64encode(hashlib.sha256(AUTHORIZATION.encode()).digest()).decode()
    with open(os.path.join(WORK, "claims.json"), "w") as f:
        json.dump(claims, f)

    es256 = dict(gate, keys={"keys": [es256_public()]})
    with open(os.path.join(WORK, "gate-es256.json"), "w") as f:
        json.dump(es256, f)
    with open(os.path.join(WORK, "gate-rs256.json"), "w") as f:
        json.dump(dict(gate, keys={"keys": [rs256_public()]}), f)
    with open(os.path.join(WORK, "gate-signed.json"), "w") as f:
        json.dump(dict(gate, signature={"mode": "required", "components": SIGNED_COMPONENTS}), f)
    with open(os.path.join(WORK, "claims-signed.json"), "w") as f:
        json.dump(dict(claims, ipk=install_ipk()), f)
    # Five keys by kid (the HS256 one is an oct JWK), as policy-engine/benches/fixture's.
    keys = []
    for name in ["hs256", "es256", "rs256", "ps256", "eddsa"]:
        with open(os.path.join(KEYS, f"{name}.pub.json")) as f:
            value = json.load(f)
        keys.append(value["keys"][0] if "keys" in value else value)
    five = {
        "token": gate["token"], "keys": {"keys": keys}, "issuer": ISSUER, "audiences": [AUDIENCE],
        "leeway_seconds": 30, "require_exp": True,
        "binding": {"headers": ["authorization"], "required": False},
        "policy": {"modules": {"gate.rego": "package attestgate\nimport rego.v1\n"
                               "decision := {\"allow\": input.token.claims.att.device.platform"
                               " in {\"android\", \"ios\"}}"}},
    }
    with open(os.path.join(WORK, "gate-five-keys.json"), "w") as f:
        json.dump(five, f)
    with open(os.path.join(WORK, "claims-five-keys.json"), "w") as f:
        json.dump(dict(claims, iss=ISSUER, aud=AUDIENCE), f)
    hybrid = dict(gate, keys={}, host_verification={
        "filter": "envoy.filters.http.jwt_authn", "payload_in_metadata": PAYLOAD_METADATA})
    with open(os.path.join(WORK, "gate-hybrid.json"), "w") as f:
        json.dump(hybrid, f)


def main():
    global WORK, WASM
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "setups":
        print("\n".join(SETUPS))
    elif command == "components":  # the signed setup's, as rfc9421.py pool's arguments
        print(" ".join(f"--component {c}" for c in SIGNED_COMPONENTS))
    elif command == "prepare" and len(sys.argv) == 3:
        WORK = sys.argv[2]
        prepare()
    elif command == "tokens" and len(sys.argv) == 5 and sys.argv[2] in ("unique_pool", "fleet"):
        WORK = sys.argv[3]
        tokens(sys.argv[2], int(sys.argv[4]))
    elif command == "envoy" and len(sys.argv) == 5 and sys.argv[2] in SETUPS:
        WORK, WASM = sys.argv[3], os.path.abspath(sys.argv[4])
        envoy(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
