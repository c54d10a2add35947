"""The shipped Rego against real OPA (issue #27): OPA's Go engine, through the
opa-golib-python-bindings wheel's C library (scripts/opa/install.sh puts it in build/opa).

1. Every policy set compiles in OPA (policies/ with its tests, and each envoy-example's Rego).
2. Every `test_` rule is true in OPA, as `attestgate test` finds it true in regorus.
3. On seeded generated inputs, OPA and attestgate's engine (regorus, through `attestgate eval
   --inputs`) give the same decision document for each entrypoint; a difference fails and
   prints the input.

Two classes of builtin-level difference are left out of the generated inputs, and listed in
docs/claims.md: numbers beyond f64 precision (OPA keeps JSON numbers exact) and Unicode case
mapping in lower() (Go and Rust differ on U+0130 and the final sigma).

Usage: check.py ATTESTGATE_CLI [--cases N] [--seed S]
"""

import argparse
import glob
import json
import os
import random
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "build", "opa"))

from opa_bindings import OpaEngine, OpaError  # noqa: E402

POLICY_SETS = {
    "policies": sorted(glob.glob(os.path.join(ROOT, "policies", "**", "*.rego"), recursive=True)),
}
# The per-route example adds a login rule set to the default policy, as its config loads them.
POLICY_SETS["envoy-examples/per-route"] = [
    os.path.join(ROOT, "policies", "device_trust.rego"),
    os.path.join(ROOT, "envoy-examples", "per-route", "login.rego"),
]

# payments.rego builds on the default policy and says so when it is not loaded.
POLICY_SETS["payments.rego alone"] = [os.path.join(ROOT, "policies", "examples", "payments.rego")]

# The firebase-app-check example loads app_check.rego on its own: it must compile, and its
# tests pass, without the default policy.
POLICY_SETS["app_check.rego alone"] = [
    os.path.join(ROOT, "policies", "examples", "app_check.rego"),
    os.path.join(ROOT, "policies", "examples", "app_check_test.rego"),
]

# (policy set, entrypoint, the data key its settings live under)
ENTRYPOINTS = [
    ("policies", "data.attestgate.decision", "device_trust"),
    ("policies", "data.attestgate.examples.android.decision", "android_integrity"),
    ("policies", "data.attestgate.examples.ios.decision", "ios_app_attest"),
    ("policies", "data.attestgate.examples.payments.decision", "device_trust"),
    ("policies", "data.attestgate.examples.step_up.decision", "step_up"),
    ("envoy-examples/per-route", "data.attestgate.login_decision", "device_trust"),
    ("payments.rego alone", "data.attestgate.examples.payments.decision", "device_trust"),
    # Last, so the inputs generated for the entrypoints above stay the same for the seed.
    ("app_check.rego alone", "data.attestgate.examples.app_check.decision", "app_check"),
]


def engine_for(files):
    engine = OpaEngine()
    for path in files:
        with open(path) as f:
            engine.add_policy(os.path.relpath(path, ROOT), f.read())
    return engine


def test_rules(files):
    """(package, rule) of every test_ rule, as `opa test` finds them."""
    rules = []
    for path in files:
        with open(path) as f:
            text = f.read()
        package = re.search(r"^package\s+(\S+)", text, re.M)
        if package is None:
            continue
        for rule in sorted(set(re.findall(r"^(test_\w+)", text, re.M))):
            rules.append((package.group(1), rule))
    return rules


def query_value(engine, query, name, input=None):
    """The value bound to `name` by the query's first result, or None when undefined."""
    results = engine.eval_query(query, input=input) if input is not None else engine.eval_query(query)
    if not results:
        return None
    return results[0].get(name)


# --- generated inputs ---------------------------------------------------------------------

SIGNER = "5f2c3a1b9d8e7f60a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"
OTHER_SIGNER = "aa" * 32
APP_IDS = ["com.example.app", "ABCDE12345.com.example.app", "com.evil.app", "", "COM.EXAMPLE.APP"]
VERSIONS = ["2.4.1", "2.3.0", "2.3", "2", "10.0", "2.3.0-beta", "v2.4", "2..4", "", "0", "00.3",
            "2.4.1.7", "1.99.99", "3-rc1", "٣.١", "é", 2.4, 15, 0, -1, True, None, [], {}]
OS_VERSIONS = ["14", "12", "11", "17.4.1", "15.0", "15", "14.9", "16.0.0", "", "beta", 12, 15.0, None]
PATCH_LEVELS = ["2024-05-05", "2024-01-01", "2023-12-31", "2024-1-01", "2024-01", "20240101",
                "２０２４-01-01", "", None, 20240101]
INTEGRITY = [["MEETS_BASIC_INTEGRITY", "MEETS_DEVICE_INTEGRITY"], ["MEETS_BASIC_INTEGRITY"],
             ["MEETS_STRONG_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY"],
             ["MEETS_STRONG_INTEGRITY"], [], "MEETS_DEVICE_INTEGRITY", None]
FLAGS = [False, True, None, "true", "false", 0, 1]
HOOKS = [[], ["frida"], ["Frida", "xposed"], "frida", None, [1], ["substrate"]]
SCORES = [0, 5, 29, 30, 30.5, 69.99, 70, 71, 100, -3, "10", None, True, 1e15]
PLATFORMS = ["android", "ios", "windows", "", None, 7, "Android"]
METHODS = ["GET", "POST", "post", "PUT", "DELETE", ""]
INSTALLERS = ["com.android.vending", "com.amazon.venezia", None, "", "adb"]


def maybe(rng, value, p_missing=0.15):
    return MISSING if rng.random() < p_missing else value


MISSING = object()


def put(obj, key, value):
    if value is not MISSING:
        obj[key] = value


def attestation(rng):
    app, device, runtime, risk = {}, {}, {}, {}
    put(app, "id", maybe(rng, rng.choice(APP_IDS)))
    put(app, "version", maybe(rng, rng.choice(VERSIONS)))
    put(app, "signer_sha256", maybe(rng, rng.choice([[SIGNER], [SIGNER.upper()], [OTHER_SIGNER],
                                                      [OTHER_SIGNER, SIGNER], [], SIGNER, None])))
    put(app, "installer", maybe(rng, rng.choice(INSTALLERS)))
    put(app, "debuggable", maybe(rng, rng.choice(FLAGS)))
    put(device, "platform", maybe(rng, rng.choice(PLATFORMS), 0.05))
    put(device, "os_version", maybe(rng, rng.choice(OS_VERSIONS)))
    put(device, "patch_level", maybe(rng, rng.choice(PATCH_LEVELS)))
    put(device, "integrity", maybe(rng, rng.choice(INTEGRITY)))
    for flag in ["rooted", "emulator", "bootloader_unlocked"]:
        put(device, flag, maybe(rng, rng.choice(FLAGS)))
    put(runtime, "debugger", maybe(rng, rng.choice(FLAGS)))
    put(runtime, "hooks", maybe(rng, rng.choice(HOOKS)))
    put(runtime, "app_tampered", maybe(rng, rng.choice(FLAGS)))
    put(risk, "score", maybe(rng, rng.choice(SCORES)))
    att = {}
    for key, part in [("app", app), ("device", device), ("runtime", runtime), ("risk", risk)]:
        roll = rng.random()
        if roll < 0.9:
            att[key] = part
        elif roll < 0.95:
            att[key] = rng.choice([None, "x", 3, []])
    roll = rng.random()
    if roll < 0.03:
        return MISSING
    if roll < 0.06:
        return rng.choice([None, "att", 1, [att]])
    return att


def request_input(rng):
    claims = {"exp": 2000000000, "iat": 1700000000, "did": rng.choice(["device-1", "d2", ""])}
    put(claims, "att", attestation(rng))
    return {
        "token": {"header": {"alg": "HS256", "kid": None, "typ": "JWT"}, "claims": claims},
        "request": {"method": rng.choice(METHODS), "path": "/v1/items", "host": "api.example.com",
                    "headers": {}, "source_ip": "127.0.0.1"},
        "binding": {"checked": False, "valid": False},
        "now": 1700000000,
        "rule": None,
    }


# Firebase App Check tokens: `sub` the app id, App Check's `aud` and `iss`, no device claims
# (sometimes an `att` anyway, which the policy must ignore), and a `typ` of every shape.
# Listed apps and "JWT" come up most, so that about a third of the inputs are allowed.
APP_CHECK_SUBS = ["1:123456789012:android:abc123"] * 5 + ["1:123456789012:ios:def456"] * 3 + [
    "1:123456789012:web:0badc0ffee", "1:123456789012:ANDROID:abc123", "", 7, None,
    ["1:123456789012:android:abc123"]]
TYPS = ["JWT"] * 10 + ["jwt", "at+jwt", "", None, 7]


def app_check_input(rng):
    claims = {"exp": 2000000000, "iat": 1700000000,
              "aud": ["projects/123456789012", "projects/my-project-id"],
              "iss": "https://firebaseappcheck.googleapis.com/123456789012"}
    put(claims, "sub", maybe(rng, rng.choice(APP_CHECK_SUBS), 0.05))
    if rng.random() < 0.2:
        put(claims, "att", attestation(rng))
    header = {"alg": "RS256", "kid": "app-check-test"}
    put(header, "typ", maybe(rng, rng.choice(TYPS), 0.05))
    return {
        "token": {"header": header, "claims": claims},
        "request": {"method": rng.choice(METHODS), "path": "/v1/items", "host": "api.example.com",
                    "headers": {}, "source_ip": "127.0.0.1"},
        "binding": {"checked": False, "valid": False},
        "device": {"id": None, "listed": False},
        "now": 1700000000,
        "rule": None,
    }


DEVICE_TRUST_CHOICES = {
    "allowed_app_ids": [["com.example.app"], {"android": ["com.example.app"], "ios": ["ABCDE12345.com.example.app"]},
                        [], "com.example.app", None, {"android": []}, 5],
    "allowed_signers": [[SIGNER], {"android": [SIGNER.upper()]}, [], None, SIGNER],
    "allowed_installers": [["com.android.vending"], [], None, "com.android.vending"],
    "min_app_version": ["2.3.0", "2.4.2", "", None, 2, "10", "x"],
    "min_os_version": [{"android": "12", "ios": "15.0"}, {"android": 13}, {}, None, "12", {"ios": ""}],
    "min_patch_level": ["2024-01-01", "2024-06-01", "", None, 20240101],
    "required_integrity": [["MEETS_DEVICE_INTEGRITY"], ["MEETS_STRONG_INTEGRITY"], [], None, "MEETS_BASIC_INTEGRITY"],
    "allow_emulator": [True, False, None, "true"],
    "allow_rooted": [True, False, None],
    "allow_bootloader_unlocked": [True, False],
    "allow_debuggable": [True, False, 1],
    "denied_hooks": [["frida"], [], None, "FRIDA", ["xposed", "frida"]],
    "max_risk_score": [70, 30, 0, 100, "50", None, 69.5],
}
ANDROID_CHOICES = {
    "required_integrity": ["MEETS_STRONG_INTEGRITY", "MEETS_DEVICE_INTEGRITY", "MEETS_BASIC_INTEGRITY", None, 3],
    "allowed_signers": [[SIGNER], [SIGNER.upper(), OTHER_SIGNER], [], None, SIGNER],
    "allowed_installers": [["com.android.vending"], [], None, ["adb", "com.android.vending"]],
    "min_patch_level": ["2024-01-01", "2024-01", "", None, 7],
}
IOS_CHOICES = {
    "allowed_app_ids": [["ABCDE12345.com.example.app"], [], None, "ABCDE12345.com.example.app"],
    "min_os_version": ["15.0", "17", "", None, 16],
    "min_app_version": ["2.3.0", "", None, 2],
    "allow_debuggable": [True, False, None],
}
STEP_UP_CHOICES = {
    "step_up_from": [30, 10, 50.5, "30", None],
    "deny_above": [70, 40, 100, None, "x"],
    "step_up_methods": [["POST"], ["post", "PUT"], [], None, "POST"],
}


def some_settings(rng, choices, p):
    """Each setting of `choices` given with probability p, its value picked from its list."""
    return {key: rng.choice(values) for key, values in choices.items() if rng.random() < p}


def mostly_given(rng, settings):
    """The settings, or (3 %) none at all: the key left out of data."""
    return settings if rng.random() > 0.03 else MISSING


def device_trust_settings(rng):
    settings = some_settings(rng, DEVICE_TRUST_CHOICES, 0.4)
    roll = rng.random()
    if roll < 0.03:
        return MISSING
    if roll < 0.05:
        return rng.choice([None, [], "strict"])
    return settings


APP_CHECK_CHOICES = {
    "allowed_app_ids": [["1:123456789012:android:abc123"]] * 2
    + [["1:123456789012:android:abc123", "1:123456789012:ios:def456"]] * 4
    + [[], None, "1:123456789012:ios:def456", 5, {"android": ["1:123456789012:android:abc123"]}, [7, None]],
}


SETTINGS = {
    "device_trust": device_trust_settings,
    "android_integrity": lambda rng: mostly_given(rng, some_settings(rng, ANDROID_CHOICES, 0.6)),
    "ios_app_attest": lambda rng: mostly_given(rng, some_settings(rng, IOS_CHOICES, 0.6)),
    "step_up": lambda rng: mostly_given(rng, some_settings(rng, STEP_UP_CHOICES, 0.6)),
    "app_check": lambda rng: mostly_given(rng, some_settings(rng, APP_CHECK_CHOICES, 0.9)),
}

# The input each entrypoint's cases get: an Approov-shaped request unless listed here.
INPUTS = {
    "app_check": app_check_input,
}


def cases(rng, key, n):
    out = []
    make_input = INPUTS.get(key, request_input)
    for _ in range(n):
        case = {"input": make_input(rng)}
        # A case without settings leaves the key out of data: the policy's defaults.
        put(case, "settings", SETTINGS[key](rng))
        out.append(case)
    return out


def query(entrypoint, key, case):
    # Both engines run the same query: the case's input and settings put in with `with`.
    settings = f" with data.{key} as c.settings" if "settings" in case else ""
    return f"c := input; d := {entrypoint} with input as c.input{settings}"


def regorus_answers(cli, files, q, batch):
    """attestgate's answers to query `q` on each case of the batch."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for case in batch:
            f.write(json.dumps(case) + "\n")
        path = f.name
    try:
        args = [cli, "eval", "--query", q, "--inputs", path]
        for file in files:
            args += ["--policy", file]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return [json.loads(line) for line in out.splitlines()]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("--cases", type=int, default=5000, help="generated inputs per entrypoint")
    parser.add_argument("--seed", type=int, default=27)
    args = parser.parse_args()
    failures = []

    for name, files in POLICY_SETS.items():
        engine = engine_for(files)
        rules = test_rules(files)
        passed = 0
        for package, rule in rules:
            try:
                value = query_value(engine, f"x := data.{package}.{rule}", "x")
            except OpaError as err:
                failures.append(f"{name}: OPA refuses it: {err.code}: {err.message[:4000]}")
                break
            if value is True:
                passed += 1
            else:
                failures.append(f"{name}: data.{package}.{rule} is {json.dumps(value)} in OPA")
        print(f"opa: {name}: compiles in OPA; {passed} of {len(rules)} test rules pass")

    rng = random.Random(args.seed)
    for name, entrypoint, key in ENTRYPOINTS:
        files = POLICY_SETS[name]
        engine = engine_for(files)
        batch = cases(rng, key, args.cases)
        theirs = [None] * len(batch)
        for with_settings in (True, False):
            part = [i for i, case in enumerate(batch) if ("settings" in case) == with_settings]
            if not part:
                continue
            q = query(entrypoint, key, batch[part[0]])
            for i, answer in zip(part, regorus_answers(args.cli, files, q, [batch[i] for i in part])):
                theirs[i] = answer
        differ = 0
        for case, answer in zip(batch, theirs):
            q = query(entrypoint, key, case)
            try:
                opa = query_value(engine, q, "d", input=case)
            except OpaError as err:
                opa = {"error": f"{err.code}: {err.message}"}
            ours = answer.get("bindings", {}).get("d") if "bindings" in answer else answer
            if opa != ours:
                differ += 1
                if differ <= 5:
                    failures.append(f"{entrypoint}: OPA {json.dumps(opa)} but attestgate "
                                    f"{json.dumps(ours)} on\n  {json.dumps(case)}")
        if differ > 5:
            failures.append(f"{entrypoint}: {differ - 5} more differences")
        print(f"opa: {entrypoint}: {len(batch) - differ} of {len(batch)} generated inputs decided alike")

    if failures:
        print("\nopa-check FAILED:")
        for failure in failures:
            print("- " + failure)
        return 1
    print("opa-check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
