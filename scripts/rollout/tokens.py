#!/usr/bin/env python3
"""Tokens for the rollout run (scripts/rollout.sh, docs/rollout.md): a fleet of devices, one
token each, mixing good devices with bad ones, as a monitor-mode rollout sees them (stdlib only).

    tokens.py EXAMPLE_DIR OUT_FILE [DEVICES]

EXAMPLE_DIR is the quickstart (envoy-examples/quickstart): its attestgate.yaml holds the
demo HS256 secret, its claims/good.json the measurements of a good device. OUT_FILE gets one
token per line (scripts/bench/wrk.lua picks lines Zipf-distributed with BENCH_ZIPF=1). Of the
DEVICES (default 200), by device number n:
  n % 20 in 0..13   good: Android and iOS, app versions 2.4.x to 2.9.x           -> allowed
  n % 20 in 14, 15  rooted (att.device.rooted)                                     -> device_rooted
  n % 20 == 16      an app older than the policy's min_app_version (1.9.n)         -> app_version_too_old
  n % 20 == 17      an expired token                                               -> token_expired
  n % 20 == 18      signed with another secret (forged)                            -> signature_invalid
  n % 20 == 19      an emulator                                                    -> emulator
"""

import base64
import hashlib
import json
import os
import re
import sys
import time

# The bench's HS256 minting (scripts/bench/gen.py), one copy for both.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from gen import mint_hs256  # noqa: E402


def secret_of(example):
    with open(os.path.join(example, "attestgate.yaml")) as f:
        found = re.search(r'approov_secret:\s*"([^"]+)"', f.read())
    if not found:
        sys.exit(f"tokens.py: no approov_secret in {example}/attestgate.yaml")
    return base64.b64decode(found.group(1))


def device(base, n, now):
    claims = json.loads(json.dumps(base))
    kind = n % 20
    claims["did"] = f"rollout-device-{n:04d}"
    claims["exp"] = now + 3600
    att = claims["att"]
    ios = n % 3 == 0
    att["device"]["platform"] = "ios" if ios else "android"
    if ios:
        att["app"]["id"] = "ABCDE12345.com.example.shapes"
        att["device"]["os_version"] = "17.2"
    att["app"]["version"] = f"2.{4 + n % 6}.{n % 10}"
    if kind in (14, 15):
        att["device"]["rooted"] = True
    elif kind == 16:
        att["app"]["version"] = f"1.9.{n % 10}"
    elif kind == 17:
        claims["exp"] = now - 600
    elif kind == 19:
        att["device"]["emulator"] = True
    return claims, kind == 18


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    example, out = sys.argv[1], sys.argv[2]
    devices = int(sys.argv[3]) if len(sys.argv) == 4 else 200
    with open(os.path.join(example, "claims", "good.json")) as f:
        base = json.load(f)
    secret = secret_of(example)
    forged = hashlib.sha256(b"not the attestation service").digest()
    now = int(time.time())
    with open(out + ".tmp", "w") as f:
        for n in range(devices):
            claims, is_forged = device(base, n, now)
            f.write(mint_hs256(forged if is_forged else secret, claims) + "\n")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
