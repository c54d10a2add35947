#!/usr/bin/env python3
"""Fresh RS256 tokens for scripts/bench-gateway.sh's RS256 setups, minted by PyJWT (installed
in .venv by scripts/install-envoy.sh) on every core: RSA signing is slow, and a pool holds
tens of thousands of tokens.

    mint_rs256.py KEY CLAIMS TTL COUNT > tokens.txt

KEY is a private RSA JWK (its `kid` goes in the header), CLAIMS a JSON object; each token gets
`exp` = now + TTL and its own `jti`, so no two are the same.
"""

import json
import multiprocessing
import sys
import time

import jwt
from jwt.algorithms import RSAAlgorithm


def mint(job):
    key_text, claims, exp, first, count = job
    key = RSAAlgorithm.from_jwk(key_text)
    kid = json.loads(key_text).get("kid")
    headers = {"kid": kid} if kid else None
    return [jwt.encode(dict(claims, exp=exp, jti=f"bench-{n}"), key, algorithm="RS256", headers=headers)
            for n in range(first, first + count)]


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    key_path, claims_path, ttl, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(key_path) as f:
        key_text = f.read()
    with open(claims_path) as f:
        claims = json.load(f)
    exp = int(time.time()) + ttl
    workers = multiprocessing.cpu_count()
    share = -(-count // workers)
    jobs = [(key_text, claims, exp, w * share, max(0, min(share, count - w * share))) for w in range(workers)]
    with multiprocessing.Pool(workers) as pool:
        for tokens in pool.map(mint, jobs):
            sys.stdout.write("".join(t + "\n" for t in tokens))


if __name__ == "__main__":
    main()
