#!/usr/bin/env python3
"""Issues #17's, #27's and #28's targets from one `make bench` run, each with its figure and
PASS/MISS.

    targets.py BENCH_DIR WASM

Reads what the benches left in BENCH_DIR (build/bench): core.txt (criterion, native), wasm.txt
(the harness's per-request figures, native and in wasm) and gateway.json (real Envoy), and the
size of the built filter. A target whose figure is missing says so (its bench did not run).
Exit status 0 whatever was met: the figures are the point (BENCH_STRICT=1: 1 on a MISS).
"""

import json
import os
import re
import sys

UNITS = {"ns": 1e-3, "µs": 1.0, "us": 1.0, "ms": 1e3, "s": 1e6}


def criterion(path, name):
    """The median (the middle of criterion's three figures) of bench NAME, in µs."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return None
    at = text.find(name)
    if at < 0:
        return None
    m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", text[at:])
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def wasm_rows(path):
    """scenario -> (native µs, wasm µs) from bench_filter's table."""
    rows = {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return rows
    for line in lines:
        m = re.match(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x\s", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


def config_load_ms(path):
    """bench_filter's config load in wasm (a new VM and on_configure, planning included), in ms."""
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return None
    m = re.search(r"config load \(default policy\): native [\d.]+ ms, wasm ([\d.]+) ms", text)
    return float(m.group(1)) if m else None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bench, wasm = sys.argv[1:]
    rows = wasm_rows(os.path.join(bench, "wasm.txt"))
    try:
        gateway = json.load(open(os.path.join(bench, "gateway.json"), encoding="utf-8"))
    except OSError:
        gateway = {"targets": []}

    targets = []  # (what, figure, unit, target, smaller is better)

    def add(what, figure, unit, target, at_most=True):
        targets.append((what, figure, unit, target, at_most))

    add("Rego, default policy, native (policy/default_decision)",
        criterion(os.path.join(bench, "core.txt"), "policy/default_decision"), "µs", 25)
    fresh, verify = rows.get("policy_no_cache"), rows.get("verify_HS256")
    add("Rego, default policy, in wasm (policy_no_cache - verify_HS256)",
        fresh[1] - verify[1] if fresh and verify else None, "µs", 75)
    add("pure-wasm ES256 verification (verify_ES256, in wasm)",
        rows["verify_ES256"][1] if "verify_ES256" in rows else None, "µs", 250)
    # Issue #28: the native hosts' verifier (ring), a whole check each.
    core = os.path.join(bench, "core.txt")
    add("ES256 token, native verifier (verify/ES256_native)", criterion(core, "verify/ES256_native"), "µs", 60)
    add("RFC 9421 install signature, native verifier (signature/install_native)",
        criterion(core, "signature/install_native"), "µs", 70)
    size = os.path.getsize(wasm) / 1e6 if os.path.exists(wasm) else None
    add(f"filter size ({os.path.basename(wasm)})", size, "MB", 1.5)
    # Issue #27: the default policy through the compiled plan, and no regression at load or in size.
    add("#27: Rego, default policy, native (policy/default_decision)",
        criterion(core, "policy/default_decision"), "µs", 10)
    add("#27: Rego, default policy, in wasm (policy_no_cache - verify_HS256)",
        fresh[1] - verify[1] if fresh and verify else None, "µs", 30)
    add("#27: config load in wasm, planning included", config_load_ms(os.path.join(bench, "wasm.txt")), "ms", 10)
    add(f"#27: filter size, no regression ({os.path.basename(wasm)})", size, "MB", 2.4)
    for t in gateway.get("targets", []):
        if "ratio" in t:
            add(f"real Envoy: {t['ratio']} (req/s)", t["value"], "x", t["target"], at_most=False)
        else:
            add(f"real Envoy: {t['cost']}", t["value_us"], "µs", t["target_us"])

    print("issue #17, #27 and #28 targets (this run):")
    missed = 0
    for what, figure, unit, target, at_most in targets:
        bound = f"{'<=' if at_most else '>='} {target} {unit}"
        if figure is None:
            print(f"  {what:<62} {'-':>9}      {bound:<12} not measured")
            continue
        ok = figure <= target if at_most else figure >= target
        missed += not ok
        print(f"  {what:<62} {figure:>9.3f} {unit:<4} {bound:<12} {'PASS' if ok else 'MISS'}")
    if os.environ.get("BENCH_STRICT") == "1" and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
