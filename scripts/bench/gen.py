#!/usr/bin/env python3
"""Inputs and Envoy configs for scripts/bench-gateway.sh (stdlib only).

    gen.py setups                       the setup names, in run order, one per line
    gen.py prepare WORK                 from WORK/gate.json (`attestgate render` of
                                        scripts/bench/attestgate.yaml) writes into WORK:
                                          secret.txt        the HS256 secret, as in the config
                                          claims.json       quickstart good.json + the `pay` binding
                                          gate-es256.json   the gate with the ES256 public JWK instead
                                          gate-hybrid.json  the gate verifying nothing itself: it reads
                                                            the payload jwt_authn put in metadata
    gen.py envoy SETUP WORK WASM        writes WORK/SETUP/envoy.json and prints
                                        "<gated port> <admin port> <token kind>"; the token kind
                                        names WORK/tokens/<kind>.txt (hs_one, hs_pool or es_pool)

Every setup has the topology of envoy-examples/envoy.yaml.in: a gated listener (the filters
under test, then the router) -> cluster -> an upstream listener in the same Envoy that answers
with a small direct_response 200. Ports are free ones picked now, all on 127.0.0.1.
(JSON is YAML, and Envoy reads it by the file extension.)
"""

import base64
import hashlib
import json
import os
import socket
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GOOD_CLAIMS = os.path.join(ROOT, "envoy-examples/quickstart/claims/good.json")
ES256_PUBLIC = os.path.join(ROOT, "policy-engine/tests/data/keys/es256.pub.json")

# What every benchmarked request carries (scripts/bench/wrk.lua sends the same).
TOKEN_HEADER = "approov-token"
AUTHORIZATION = "Bearer bench-user"
# Where hybrid mode's jwt_authn leaves the verified payload, and the gate reads it.
PAYLOAD_METADATA = "attestation"

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}


def jwt_authn(alg, cached=False, metadata=False):
    """Envoy's native JWT filter with one provider, required on every path."""
    provider = {
        "local_jwks": {"inline_string": json.dumps({"keys": [jwk(alg)]})},
        "from_headers": [{"name": TOKEN_HEADER}],
        "forward": True,
    }
    if cached:
        provider["jwt_cache_config"] = {"jwt_cache_size": 1000}
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
    "jwt_authn": (lambda: [jwt_authn("HS256")], "hs_pool"),
    "jwt_authn_cached": (lambda: [jwt_authn("HS256", cached=True)], "hs_one"),
    "attestgate_repeated": (lambda: [attestgate("gate.json")], "hs_one"),
    "attestgate_fresh": (lambda: [attestgate("gate.json")], "hs_pool"),
    "jwt_authn_es256": (lambda: [jwt_authn("ES256")], "es_pool"),
    "jwt_authn_es256_metadata": (lambda: [jwt_authn("ES256", metadata=True)], "es_pool"),
    "hybrid_es256": (lambda: [jwt_authn("ES256", metadata=True), attestgate("gate-hybrid.json")], "es_pool"),
    "attestgate_es256": (lambda: [attestgate("gate-es256.json")], "es_pool"),
}


def raw_secret():
    """The HS256 secret's bytes: the config has it as base64, standard or url-safe."""
    with open(os.path.join(WORK, "secret.txt")) as f:
        text = f.read().strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def es256_public():
    with open(ES256_PUBLIC) as f:
        return json.load(f)["keys"][0]


def jwk(alg):
    if alg == "HS256":
        k = base64.urlsafe_b64encode(raw_secret()).rstrip(b"=").decode()
        return {"kty": "oct", "alg": "HS256", "k": k}
    return es256_public()


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
    hybrid = dict(gate, keys={}, host_verification={
        "filter": "envoy.filters.http.jwt_authn", "payload_in_metadata": PAYLOAD_METADATA})
    with open(os.path.join(WORK, "gate-hybrid.json"), "w") as f:
        json.dump(hybrid, f)


def main():
    global WORK, WASM
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "setups":
        print("\n".join(SETUPS))
    elif command == "prepare" and len(sys.argv) == 3:
        WORK = sys.argv[2]
        prepare()
    elif command == "envoy" and len(sys.argv) == 5 and sys.argv[2] in SETUPS:
        WORK, WASM = sys.argv[3], os.path.abspath(sys.argv[4])
        envoy(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
