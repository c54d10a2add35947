#!/usr/bin/env python3
"""Firebase App Check tokens minted by an independent JWT library, PyJWT (pinned in
scripts/install-envoy.sh), for cli/tests/interop_app_check.rs and cli/tests/envoy.rs.

    app_check.py version
    app_check.py mint --key app_check.json --project-number 123456789012 \
                      --project-id my-project-id --app-id 1:123456789012:android:abc123 \
                      --iat 1700000000 --exp 1700003600 [--iss ISS] [--aud AUD ...] [--kid KID]

`mint` prints one compact JWS in App Check's shape, as Firebase's App Check service issues it
(https://firebase.google.com/docs/app-check/custom-resource-backend):
- header: {"alg": "RS256", "kid": <the key's kid>, "typ": "JWT"};
- claims, in this order: `sub` the app id, `aud` ["projects/<number>", "projects/<id>"],
  `iss` "https://firebaseappcheck.googleapis.com/<number>", `exp`, `iat`. No `att`, no `did`:
  App Check tokens carry no device measurements.
`--iss` and `--aud` replace the issuer and the audience list (for the negative cases); `--kid`
names another key id than the key's own (a token signed with one key claiming another).

`--key` is a private RSA JWK (the `.json` files of policy-engine/tests/data/keys); PyJWT reads
it itself (`RSAAlgorithm.from_jwk`). RS256 is RSASSA-PKCS1-v1_5, so the same inputs give the
same token, byte for byte. Exit status: 0 minted, 2 usage error, 3 PyJWT missing.
"""

import argparse
import json
import sys

try:
    import jwt
    from jwt.algorithms import RSAAlgorithm
except ImportError as err:  # pragma: no cover - the test reports it
    print(f"PyJWT is missing ({err}): pip install 'PyJWT[crypto]==2.10.1'", file=sys.stderr)
    sys.exit(3)

ISSUER_BASE = "https://firebaseappcheck.googleapis.com/"


def app_check_claims(args):
    aud = args.aud if args.aud else [f"projects/{args.project_number}", f"projects/{args.project_id}"]
    iss = args.iss if args.iss is not None else ISSUER_BASE + args.project_number
    return {"sub": args.app_id, "aud": aud, "iss": iss, "exp": args.exp, "iat": args.iat}


def mint(args):
    with open(args.key) as f:
        jwk = json.load(f)
    if jwk.get("kty") != "RSA":
        print(f"{args.key}: not an RSA JWK", file=sys.stderr)
        return 2
    key = RSAAlgorithm.from_jwk(jwk)
    kid = args.kid if args.kid is not None else jwk["kid"]
    token = jwt.encode(app_check_claims(args), key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
    # PyJWT must have written App Check's header: check what it put there, not what was asked.
    header = jwt.get_unverified_header(token)
    if header != {"alg": "RS256", "kid": kid, "typ": "JWT"}:
        print(f"PyJWT wrote the header {header}", file=sys.stderr)
        return 2
    print(token)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version")
    m = sub.add_parser("mint")
    m.add_argument("--key", required=True)
    m.add_argument("--project-number", required=True)
    m.add_argument("--project-id", required=True)
    m.add_argument("--app-id", required=True)
    m.add_argument("--iat", type=int, required=True)
    m.add_argument("--exp", type=int, required=True)
    m.add_argument("--iss")
    m.add_argument("--aud", action="append")
    m.add_argument("--kid")
    args = parser.parse_args()
    if args.command == "version":
        print(f"PyJWT {jwt.__version__}")
        return 0
    return mint(args)


if __name__ == "__main__":
    sys.exit(main())
