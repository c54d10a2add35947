#!/usr/bin/env python3
"""RFC 9421 (HTTP Message Signatures) interop driver over an independent implementation.

Signs and verifies requests with the PyPI package `http-message-signatures` (pyauth), so that
attestgate's own signer and verifier (`attestgate sign` / `attestgate check`) can be checked
against it in both directions. `test-harness/tests/interop_rfc9421.rs` drives this script.

    rfc9421.py version
    rfc9421.py sign   --alg ecdsa-p256-sha256 --key-file install.json --label install \
                      --method POST --url 'https://api.example.com/v1/pay?x=1' \
                      --header 'Content-Type: application/json' --body-file body.json \
                      --component @method --component @target-uri --component content-digest \
                      --created 1700000000 [--expires 1700000015] [--keyid K] [--no-alg]
    rfc9421.py verify --alg hmac-sha256 --secret B64 --label account \
                      --method POST --url 'https://api.example.com/v1/pay?x=1' \
                      --header 'Signature-Input: ...' --header 'Signature: ...' ... \
                      --body-file body.json --now 1700000005 [--require @method ...]

    rfc9421.py pool   --alg ecdsa-p256-sha256 --key-file install.json --label install \
                      --method GET --url http://127.0.0.1:8080/v1/shapes -H '...' \
                      --component @method ... --created 1700000000 --count 50000

`pool` signs the same request COUNT times (ECDSA: a fresh signature each) and prints one line
per signature, `<Signature-Input value><TAB><Signature value>`: the signed requests of
scripts/bench-gateway.sh's `attestgate_signed` setup.
`sign` prints the headers it added, one per line as `Name: value` (`Content-Digest` first when
`content-digest` is covered and the request has none, then `Signature-Input`, `Signature`).
`verify` exits 0 when the library verifies the signature under the label, 1 when it refuses
it (the library's error on stdout), 2 on a usage error, 3 when the package is missing. Both
print the signature base the library built on stderr (`--- signature base ---`).

Components are written as for the library: a bare name (`@method`, `content-type`) or a
serialized item with parameters (`"@query-param";name="id"`, `"content-type";sf`,
`"example-dict";key="b"`, `"example-header";bs`).

Keys: `--key-file` is a JWK (EC P-256; the private one to sign, either to verify) or a PEM key;
`--ipk` is a base64 DER SubjectPublicKeyInfo (the attestation token's claim); `--secret` is
the base64 HMAC key (its raw bytes are the key, as attestgate's `account_secret`).

Where the script departs from the library's defaults, and why:
- The verifier's clock is `--now`, not the wall clock (the library's created/expires/max-age
  checks are reproduced with that clock): tests must be deterministic.
- The library's verifier requires a `keyid` parameter; RFC 9421 §2.3 makes it optional and
  attestgate's signer sends none (the install key comes from the token). A signature without
  `keyid` is verified by the same steps as the library's `_verify_one` (its signature base,
  its algorithm classes), with the configured key; a note on stderr says so.
- `Content-Digest` is computed here (hashlib, RFC 9530 `sha-256=:<base64>:`) and checked
  against the library's own `ContentDigest.create`.
"""

import argparse
import base64
import datetime
import hashlib
import json
import sys
import warnings
from dataclasses import dataclass

try:
    import cryptography.exceptions
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    from http_message_signatures import (
        ContentDigest,
        HTTPMessageSignaturesException,
        HTTPMessageSigner,
        HTTPMessageVerifier,
        HTTPSignatureKeyResolver,
        InvalidSignature,
        VerifyResult,
        algorithms,
    )
except ImportError as error:  # pragma: no cover - the message is the point
    print(
        f"rfc9421.py: cannot import http-message-signatures ({error}); "
        "install it with: pip install http-message-signatures==3.0.0",
        file=sys.stderr,
    )
    sys.exit(3)

ALGORITHMS = {
    "ecdsa-p256-sha256": algorithms.ECDSA_P256_SHA256,
    "hmac-sha256": algorithms.HMAC_SHA256,
}


def package_version() -> str:
    from importlib.metadata import version

    return version("http-message-signatures")


# --- messages ------------------------------------------------------------------------------


class Headers:
    """Field lines in order, repeated names kept as separate lines (needed for `;bs`), with
    the mapping operations the library's signer uses (iteration over names, membership,
    assignment replacing every line of a name, deletion)."""

    def __init__(self, lines):
        self._lines = list(lines)

    def items(self):
        return list(self._lines)

    def __iter__(self):
        return iter(dict.fromkeys(name for name, _ in self._lines))

    def __contains__(self, name):
        return any(n.lower() == name.lower() for n, _ in self._lines)

    def __getitem__(self, name):
        values = [v for n, v in self._lines if n.lower() == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __setitem__(self, name, value):
        self._lines = [(n, v) for n, v in self._lines if n.lower() != name.lower()]
        self._lines.append((name, value))

    def __delitem__(self, name):
        if name not in self:
            raise KeyError(name)
        self._lines = [(n, v) for n, v in self._lines if n.lower() != name.lower()]


@dataclass
class Request:
    """The request interface the library's component resolver reads."""

    method: str
    url: str
    headers: Headers


def parse_header(text: str):
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise SystemExit(f"rfc9421.py: header `{text}` is not `Name: value`")
    return name.strip(), value.strip()


def read_body(path):
    if path is None:
        return None
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def content_digest(body: bytes) -> str:
    """RFC 9530 `Content-Digest` with one sha-256 member, computed here and checked against
    the library's own serialization."""
    ours = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"
    theirs = ContentDigest.create(body)
    if ours != theirs:
        raise SystemExit(f"rfc9421.py: content-digest disagreement: {ours!r} vs library {theirs!r}")
    return ours


# --- keys ----------------------------------------------------------------------------------


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64_any_decode(text: str) -> bytes:
    """Base64 in either alphabet, padded or not (as attestgate reads `account_secret`)."""
    text = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def load_ec_key(path: str, private: bool):
    with open(path, "rb") as f:
        data = f.read()
    if data.lstrip().startswith(b"-----BEGIN"):
        if private:
            return serialization.load_pem_private_key(data, password=None)
        try:
            return serialization.load_pem_public_key(data)
        except ValueError:
            return serialization.load_pem_private_key(data, password=None).public_key()
    jwk = json.loads(data)
    if "keys" in jwk:  # a JWKS: its first key
        jwk = jwk["keys"][0]
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise SystemExit(f"rfc9421.py: {path} is not an EC P-256 JWK")
    x = int.from_bytes(b64url_decode(jwk["x"]), "big")
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1())
    if private:
        if "d" not in jwk:
            raise SystemExit(f"rfc9421.py: {path} has no private part `d`")
        d = int.from_bytes(b64url_decode(jwk["d"]), "big")
        return ec.EllipticCurvePrivateNumbers(d, public).private_key()
    return public.public_key()


def load_key(args, private: bool):
    if args.alg == "hmac-sha256":
        if not args.secret:
            raise SystemExit("rfc9421.py: hmac-sha256 needs --secret")
        return b64_any_decode(args.secret)
    if args.key_file:
        return load_ec_key(args.key_file, private)
    if args.ipk and not private:
        return serialization.load_der_public_key(b64_any_decode(args.ipk))
    raise SystemExit("rfc9421.py: ecdsa-p256-sha256 needs --key-file (or --ipk to verify)")


class FixedKeyResolver(HTTPSignatureKeyResolver):
    """One key for every key id: the key is known out of band (attestgate takes the install
    key from the token and the account key from its config), so `keyid` selects nothing."""

    def __init__(self, key):
        self.key = key

    def resolve_public_key(self, key_id):
        return self.key

    def resolve_private_key(self, key_id):
        return self.key


# --- sign ----------------------------------------------------------------------------------


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def cmd_sign(args) -> int:
    algorithm = ALGORITHMS[args.alg]
    key = load_key(args, private=True)
    body = read_body(args.body_file)
    headers = Headers(parse_header(h) for h in args.header)
    message = Request(args.method, args.url, headers)
    components = args.component or ["@method", "@target-uri"]
    added = []
    covers_digest = any(c == "content-digest" or c.startswith('"content-digest"') for c in components)
    if (covers_digest or args.content_digest) and "content-digest" not in headers:
        headers["Content-Digest"] = content_digest(body if body is not None else b"")
        added.append("Content-Digest")

    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=FixedKeyResolver(key))
    # prepare() + apply() is what the library's sign() does; done by hand to show the base.
    prepared = signer.prepare(
        message,
        key_id=args.keyid,
        created=utc(args.created),
        expires=utc(args.expires) if args.expires is not None else None,
        nonce=args.nonce,
        label=args.label,
        tag=args.tag,
        include_alg=not args.no_alg,
        covered_component_ids=components,
        # A Content-Digest already in the message (added above or given) is kept as it is;
        # the library then only checks its syntax. No body is passed, so the library adds no
        # coverage of its own: the components are exactly those asked for.
        use_existing_digest="content-digest" in headers,
    )
    print("--- signature base ---", file=sys.stderr)
    print(prepared.signature_base.decode("ascii"), file=sys.stderr)
    print("--- end ---", file=sys.stderr)
    signature = algorithm(private_key=key).sign(prepared.signature_base)
    if args.alg == "ecdsa-p256-sha256":
        # RFC 9421 §3.3.4: 64 bytes, r || s (not DER). Check the library's output is that by
        # verifying it as r || s with cryptography directly.
        if len(signature) != 64:
            raise SystemExit(f"rfc9421.py: the library's ECDSA signature has {len(signature)} bytes, not 64")
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        key.public_key().verify(der, prepared.signature_base, ec.ECDSA(hashes.SHA256()))
    signer.apply(message, prepared, signature, append_if_signature_exists=args.append)
    for name in added + ["Signature-Input", "Signature"]:
        print(f"{name}: {headers[name]}")
    return 0


def cmd_pool(args) -> int:
    algorithm = ALGORITHMS[args.alg]
    key = load_key(args, private=True)
    signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=FixedKeyResolver(key))
    components = args.component or ["@method", "@target-uri"]
    # The library builds each distinct signature base (one per `created` in the window) and
    # its Signature-Input; each signature is then its algorithm's over that base, as the
    # library's own sign() does, without rebuilding the same base COUNT times.
    prepared = []
    for offset in range(max(1, args.spread)):
        message = Request(args.method, args.url, Headers(parse_header(h) for h in args.header))
        prepared.append((message, signer.prepare(
            message, key_id="install", created=utc(args.created + offset), label=args.label,
            include_alg=True, covered_component_ids=components, use_existing_digest=False)))
    sign = algorithm(private_key=key).sign
    out = sys.stdout
    for n in range(args.count):
        message, base = prepared[n % len(prepared)]
        signature = base64.b64encode(sign(base.signature_base)).decode()
        params = base.signature_params  # the serialized inner list with its parameters
        out.write(f"{args.label}={params}\t{args.label}=:{signature}:\n")
    return 0


# --- verify --------------------------------------------------------------------------------


class FixedClockVerifier(HTTPMessageVerifier):
    """The library's verifier with `now` fixed, label-only selection allowed (the label is
    what attestgate selects by), the signature base kept for printing, and `keyid` optional."""

    allow_label_only_selection = True
    now: datetime.datetime
    last_base = None
    keyid_missing = False

    def validate_created_and_expires(self, sig_input, max_age=None):
        # The library's checks (HTTPMessageVerifier.validate_created_and_expires), with
        # self.now instead of the wall clock.
        now = self.now
        min_time = now - self.max_clock_skew
        max_time = now + self.max_clock_skew
        if "created" in sig_input.params:
            if self._parse_integer_timestamp(sig_input.params["created"], field_name="created") > max_time:
                raise InvalidSignature('Signature "created" parameter is set to a time in the future')
        elif self.require_created or max_age is not None:
            raise InvalidSignature('Signature is missing a required "created" parameter')
        if (
            "expires" in sig_input.params
            and self._parse_integer_timestamp(sig_input.params["expires"], field_name="expires") < min_time
        ):
            raise InvalidSignature('Signature "expires" parameter is set to a time in the past')
        if (
            max_age is not None
            and self._parse_integer_timestamp(sig_input.params["created"], field_name="created") + max_age < min_time
        ):
            raise InvalidSignature(f"Signature age exceeds maximum allowable age {max_age}")

    def _verify_one(self, *, label, sig_input, signature, message, max_age, component_resolver_factory=None):
        try:
            base, _, _ = self._build_signature_base(
                message, covered_component_ids=list(sig_input), signature_params=sig_input.params
            )
            self.last_base = base
        except Exception as error:  # the library's own call below reports it
            self.last_base = f"(the library could not build the signature base: {error})"
        if "keyid" in sig_input.params:
            return super()._verify_one(
                label=label,
                sig_input=sig_input,
                signature=signature,
                message=message,
                max_age=max_age,
                component_resolver_factory=component_resolver_factory,
            )
        # No keyid: the steps of HTTPMessageVerifier._verify_one (3.0.0) without its keyid
        # requirement, with the one configured key.
        self.keyid_missing = True
        self.validate_created_and_expires(sig_input, max_age=max_age)
        if "alg" in sig_input.params and sig_input.params["alg"] != self.signature_algorithm.algorithm_id:
            raise InvalidSignature("Unexpected algorithm specified in the signature")
        for param in sig_input.params:
            if param not in self.signature_metadata_parameters:
                raise InvalidSignature(f'Unexpected signature metadata parameter "{param}"')
        try:
            key = self.key_resolver.resolve_public_key(None)
            verifier = self.signature_algorithm(public_key=key)
            sig_base, sig_params_node, sig_elements = self._build_signature_base(
                message,
                covered_component_ids=list(sig_input),
                signature_params=sig_input.params,
                component_resolver=component_resolver_factory() if component_resolver_factory is not None else None,
            )
            verifier.verify(signature=signature.value, message=sig_base.encode())
        except InvalidSignature:
            raise
        except Exception as e:
            raise InvalidSignature(e) from e
        return VerifyResult(
            label=label,
            algorithm=self.signature_algorithm,
            covered_components=sig_elements,
            parameters=dict(sig_params_node.params),
            body=None,
            nonce=sig_input.params.get("nonce"),
        )


def cmd_verify(args) -> int:
    algorithm = ALGORITHMS[args.alg]
    key = load_key(args, private=False)
    if args.alg == "ecdsa-p256-sha256" and isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    body = read_body(args.body_file)
    message = Request(args.method, args.url, Headers(parse_header(h) for h in args.header))
    verifier = FixedClockVerifier(signature_algorithm=algorithm, key_resolver=FixedKeyResolver(key))
    verifier.now = utc(args.now)
    max_age = datetime.timedelta(seconds=args.max_age) if args.max_age > 0 else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # label-only selection, deliberately
            results = verifier.verify(
                message,
                max_age=max_age,
                expect_label=args.label,
                require_components=args.require,
                body=body,
            )
    except HTTPMessageSignaturesException as error:
        print_base(verifier)
        cause = error.__cause__
        if isinstance(cause, cryptography.exceptions.InvalidSignature):
            # ECDSA's carries no message, HMAC's says "Signature did not match digest."
            detail = f"the signature does not verify over this base (cryptography: {cause or 'InvalidSignature'})"
        else:
            detail = str(error) or repr(error)
        print(f"refused: {type(error).__name__}: {detail}")
        return 1
    print_base(verifier)
    if verifier.keyid_missing:
        print(
            "note: the signature has no keyid; http-message-signatures requires one (RFC 9421 §2.3 "
            "does not), so it was verified by its steps with the configured key",
            file=sys.stderr,
        )
    for result in results:
        print(
            json.dumps(
                {
                    "label": result.label,
                    "algorithm": result.algorithm.algorithm_id,
                    "components": [c for c in result.covered_components if c != '"@signature-params"'],
                    "parameters": result.parameters,
                    "body_verified": result.body is not None,
                }
            )
        )
    return 0


def print_base(verifier):
    if verifier.last_base is not None:
        print("--- signature base ---", file=sys.stderr)
        print(verifier.last_base, file=sys.stderr)
        print("--- end ---", file=sys.stderr)


# --- command line --------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the http-message-signatures version")

    def common(p):
        p.add_argument("--alg", required=True, choices=sorted(ALGORITHMS))
        p.add_argument("--key-file", help="EC P-256 JWK (or PEM) file")
        p.add_argument("--ipk", help="base64 DER SubjectPublicKeyInfo (verify only)")
        p.add_argument("--secret", help="base64 HMAC key (hmac-sha256)")
        p.add_argument("--label", required=True)
        p.add_argument("--method", required=True)
        p.add_argument("--url", required=True, help="absolute, encoded: https://host/path?query")
        p.add_argument("--header", "-H", action="append", default=[], metavar="NAME: VALUE")
        p.add_argument("--body-file")

    sign = sub.add_parser("sign", help="sign a request; print the added headers")
    common(sign)
    sign.add_argument("--component", action="append", default=[], help="covered component; repeatable")
    sign.add_argument("--created", type=int, required=True, help="unix seconds")
    sign.add_argument("--expires", type=int, help="unix seconds")
    sign.add_argument("--keyid", default="interop-key", help="the library always sends one")
    sign.add_argument("--nonce")
    sign.add_argument("--tag")
    sign.add_argument("--no-alg", action="store_true", help="omit the alg parameter")
    sign.add_argument("--content-digest", action="store_true", help="add Content-Digest even if not covered")
    sign.add_argument("--append", action="store_true", help="add a member to given Signature-Input/Signature")

    pool = sub.add_parser("pool", help="sign one request --count times; a line per signature")
    common(pool)
    pool.add_argument("--component", action="append", default=[], help="covered component; repeatable")
    pool.add_argument("--created", type=int, required=True, help="unix seconds")
    pool.add_argument("--count", type=int, required=True)
    pool.add_argument("--spread", type=int, default=1, help="created, created+1, ...: this many")

    verify = sub.add_parser("verify", help="verify the signature under --label; exit 0 or 1")
    common(verify)
    verify.add_argument("--now", type=int, required=True, help="the verifier's clock, unix seconds")
    verify.add_argument("--max-age", type=int, default=300, help="seconds since created; 0: no limit")
    verify.add_argument("--require", action="append", default=[], help="component the signature must cover")

    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"http-message-signatures {package_version()}")
        return 0
    try:
        commands = {"sign": cmd_sign, "pool": cmd_pool, "verify": cmd_verify}
        return commands[args.command](args)
    except HTTPMessageSignaturesException as error:
        print(f"rfc9421.py: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
