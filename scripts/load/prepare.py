#!/usr/bin/env python3
"""Turns the materialized request corpus into what scripts/load-test.sh runs.

    prepare.py CORPUS_JSON WASM OUT_DIR

Writes to OUT_DIR:
  envoy.json   Envoy with one gated listener per corpus gate (all sharing one wasm VM), an
               echoing upstream and an admin port: like envoy-examples/envoy.yaml.in, once
               per gate. (JSON is YAML, and Envoy reads it by the file extension.)
  cases.lua    for scripts/load/load.lua: per gate its port and, per case, the raw HTTP/1.1
               request and the status and reason Envoy must answer with.
  ports.json   {"admin": port, "gates": {name: port}}

Only cases that run on `envoy` are used, with their `envoy` overrides. Two requests the
corpus cannot hold are added (its headers are UTF-8 strings): a valid token next to a header
value that is not UTF-8 (must pass), and a token header that is not UTF-8 (must be refused).
"""

import json
import socket
import sys


def free_ports(count):
    socks, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def lua_bytes(data):
    """A Lua string literal for arbitrary bytes."""
    out = []
    for b in data:
        if 32 <= b < 127 and b not in (34, 92):
            out.append(chr(b))
        else:
            out.append("\\%03d" % b)
    return '"' + "".join(out) + '"'


def raw_request(request, extra=(), replace_token=None, token_header=None):
    lines = ["%s %s HTTP/1.1" % (request["method"], request["path"]), "host: " + request["authority"]]
    out = "\r\n".join(lines).encode() + b"\r\n"
    for name, value in request["headers"]:
        value = value.encode()
        if replace_token is not None and name == token_header:
            value = replace_token
        out += name.encode() + b": " + value + b"\r\n"
    for name, value in extra:
        out += name + b": " + value + b"\r\n"
    return out + b"\r\n"


def listener(name, port, upstream_cluster, config):
    return {
        "name": "gate-" + name.replace("/", "-"),
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "gate_" + name.replace("/", "_"),
                "normalize_path": True,
                "merge_slashes": True,
                "path_with_escaped_slashes_action": "UNESCAPE_AND_FORWARD",
                "route_config": {"virtual_hosts": [{
                    "name": "api", "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": upstream_cluster}}],
                }]},
                "http_filters": [
                    {"name": "envoy.filters.http.wasm", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        "config": {
                            "name": "attestgate-" + name.replace("/", "-"),
                            "root_id": "attestgate",
                            "failure_policy": "FAIL_CLOSED",
                            "vm_config": {
                                "vm_id": "attestgate",
                                "runtime": "envoy.wasm.runtime.v8",
                                "code": {"local": {"filename": WASM}},
                            },
                            "configuration": {
                                "@type": "type.googleapis.com/google.protobuf.StringValue",
                                "value": json.dumps(config),
                            },
                        },
                    }},
                    {"name": "envoy.filters.http.router", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
                ],
            },
        }]}],
    }


def upstream(port):
    echo = [
        ("x-upstream-reason", "%REQ(x-attestgate-reason)%"),
        ("x-upstream-decision", "%REQ(x-attestgate-decision)%"),
    ]
    return {
        "name": "upstream",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "upstream",
                "route_config": {"virtual_hosts": [{
                    "name": "echo", "domains": ["*"],
                    "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "{\"upstream\":\"reached\"}\n"}},
                        "response_headers_to_add": [{"header": {"key": k, "value": v}} for k, v in echo],
                    }],
                }]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }


def main():
    global WASM
    corpus_path, WASM, out = sys.argv[1:4]
    with open(corpus_path) as f:
        corpus = json.load(f)
    gates = corpus["gates"]
    ports = free_ports(len(gates) + 2)
    admin, upstream_port, gate_ports = ports[0], ports[1], ports[2:]

    listeners = [upstream(upstream_port)]
    lua = ["return { gates = {"]
    port_map = {}
    total = 0
    for gate, port in zip(gates, gate_ports):
        listeners.append(listener(gate["name"], port, "upstream", gate["config"]))
        port_map[gate["name"]] = port
        token_header = (gate["config"].get("token") or {}).get("header", "approov-token").lower()
        entries = []
        for case in gate["cases"]:
            if "envoy" not in case["runners"]:
                continue
            expect = dict(case.get("overrides", {}).get("envoy", case["expect"]))
            if expect["allow"] and expect["reason"] not in ("allowed", "bypassed"):
                # Let through with a denial's reason: monitor mode's verdict (an override
                # states allow, reason and status only).
                expect.setdefault("verdict", "deny")
            entries.append((case["name"], raw_request(case["request"]), expect))
        if gate["name"] == "adversarial/all_keys":
            good = next(c for c in gate["cases"]
                        if c["expect"]["reason"] == "allowed" and "envoy" in c["runners"]
                        and not c.get("overrides") and len(c["request"]["headers"]) == 1)
            entries.append(("load_latin1_header_next_to_a_valid_token",
                            raw_request(good["request"], extra=[(b"x-latin1", b"caf\xe9 cr\xe8me")]),
                            good["expect"]))
            entries.append(("load_token_header_not_utf8",
                            raw_request(good["request"], replace_token=b"\xff\xfe\xfd.e30.AAAA",
                                        token_header=token_header),
                            {"allow": False, "reason": "token_malformed", "status": 401}))
        lua.append("  { name = %s, port = %d, reqs = {" % (lua_bytes(gate["name"].encode()), port))
        for name, raw, expect in entries:
            lua.append("    { name = %s, status = %d, allow = %s, reason = %s, verdict = %s, raw = %s },"
                       % (lua_bytes(name.encode()), expect["status"],
                          "true" if expect["allow"] else "false",
                          lua_bytes(expect["reason"].encode()),
                          lua_bytes((expect.get("verdict") or "").encode()),
                          lua_bytes(raw)))
        lua.append("  } },")
        total += len(entries)
    lua.append("} }")

    config = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": listeners,
            "clusters": [{
                "name": "upstream", "type": "STATIC",
                "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                 "port_value": upstream_port}}}}]}]},
            }],
        },
    }
    with open(out + "/envoy.json", "w") as f:
        json.dump(config, f, indent=1)
    with open(out + "/cases.lua", "w") as f:
        f.write("\n".join(lua) + "\n")
    with open(out + "/ports.json", "w") as f:
        json.dump({"admin": admin, "gates": port_map}, f)
    print("load: %d gates, %d requests to cycle through" % (len(gates), total))


if __name__ == "__main__":
    main()
