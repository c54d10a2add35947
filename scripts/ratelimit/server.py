#!/usr/bin/env python3
"""A minimal rate-limit service for tests: Envoy's `envoy.service.ratelimit.v3` gRPC API
(`RateLimitService.ShouldRateLimit`), as envoyproxy/ratelimit serves it, with one fixed-window
limit for every descriptor.

attestgate depends only on that standard API; this server exists so the real-Envoy test can
run two Envoys against one shared count (cli/tests/envoy.rs). It is not a product: use
envoyproxy/ratelimit (or any implementation of the API) in production.

The messages are decoded and encoded by hand (the few fields used), so the test needs only
grpcio, not the Envoy protos:
  RateLimitRequest  { string domain = 1; repeated RateLimitDescriptor descriptors = 2;
                      uint32 hits_addend = 3; }
  RateLimitDescriptor { repeated Entry entries = 1; }  Entry { string key = 1; string value = 2; }
  RateLimitResponse { Code overall_code = 1; }  Code { UNKNOWN = 0; OK = 1; OVER_LIMIT = 2; }

Usage: server.py --limit N --window SECONDS --log FILE [--port PORT]
Prints `listening PORT` (a free loopback port unless --port) once it serves, then serves
until killed.
"""

import argparse
import json
import sys
import threading
import time
from concurrent import futures

import grpc

OK, OVER_LIMIT = 1, 2


def varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data):
    """(field number, value) for each field: bytes for length-delimited, int for varints."""
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(data, at)
        elif wire == 2:
            length, at = varint(data, at)
            value, at = bytes(data[at:at + length]), at + length
        elif wire == 1:
            value, at = data[at:at + 8], at + 8
        elif wire == 5:
            value, at = data[at:at + 4], at + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, value


def decode_request(data):
    domain, descriptors, hits = "", [], 1
    for number, value in fields(data):
        if number == 1:
            domain = value.decode()
        elif number == 2:
            entries = []
            for n, entry in fields(value):
                if n == 1:
                    kv = dict(fields(entry))
                    entries.append((kv.get(1, b"").decode(), kv.get(2, b"").decode()))
            descriptors.append(entries)
        elif number == 3 and value:
            hits = value
    return domain, descriptors, hits


def encode_response(code):
    return bytes([0x08, code])  # field 1, varint


class Limiter:
    def __init__(self, limit, window, log):
        self.limit, self.window, self.log = limit, window, log
        self.counts = {}
        self.lock = threading.Lock()

    def should_rate_limit(self, request, _context):
        domain, descriptors, hits = decode_request(request)
        window = int(time.time() // self.window)
        code = OK
        with self.lock:
            for descriptor in descriptors:
                key = (domain, window, tuple(descriptor))
                self.counts[key] = self.counts.get(key, 0) + hits
                if self.counts[key] > self.limit:
                    code = OVER_LIMIT
            self.log.write(json.dumps({"domain": domain, "descriptors": descriptors,
                                       "hits": hits, "code": code}) + "\n")
            self.log.flush()
        return encode_response(code)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, required=True)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    limiter = Limiter(args.limit, args.window, open(args.log, "a", encoding="utf-8"))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "envoy.service.ratelimit.v3.RateLimitService",
        {"ShouldRateLimit": grpc.unary_unary_rpc_method_handler(limiter.should_rate_limit)},
    )])
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"listening {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
