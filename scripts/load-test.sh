#!/usr/bin/env bash
# `make load`: a bounded load on real Envoy running the built filter, mixing valid traffic with
# every bad input of the request corpus (corpus/cases), then checks that:
#   - every request got the status and reason its case expects (valid ones 200);
#   - the wasm VM stayed up: no wasm VM created after warm-up, no panic or trap in the log,
#     no filter errors, and the filter's own counters match what the clients saw;
#   - memory is flat: Envoy's heap (server.memory_allocated) and its RSS grew by no more than
#     a small bound from the end of the warm-up to the end of the load.
#
#   LOAD_SECONDS   length of the measured load (default 60)
#   WARMUP_SECONDS load before the memory baseline (default 10)
#   LOAD_KEEP=1    keep the scratch directory (Envoy log, config, results)
#   LOAD_WASM      the filter to load (default build/attestgate.wasm)
# Needs: build/attestgate.wasm (make filter), .venv/bin/envoy (make envoy), wrk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

load_seconds=${LOAD_SECONDS:-60}
warmup_seconds=${WARMUP_SECONDS:-10}
# Growth allowed after warm-up: heap by 8 MiB or 10 %, RSS by 32 MiB.
heap_slack=$((8 * 1024 * 1024))
rss_slack_kb=$((32 * 1024))
wasm=${LOAD_WASM:-$PWD/build/attestgate.wasm}

[[ -f $wasm ]] || { echo "load: $wasm missing: run make filter" >&2; exit 2; }
envoy=$(scripts/install-envoy.sh 2>/dev/null)
if ! command -v wrk >/dev/null; then
  echo "load: installing wrk" >&2
  if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq wrk >/dev/null; else sudo apt-get install -y -qq wrk >/dev/null; fi
fi

work=$(mktemp -d -t attestgate-load.XXXXXX)
envoy_pid=
cleanup() {
  [[ -n $envoy_pid ]] && kill "$envoy_pid" 2>/dev/null && wait "$envoy_pid" 2>/dev/null
  if [[ ${LOAD_KEEP:-0} == 1 ]]; then echo "load: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Tokens are minted now; cases whose outcome would change before the run ends are left out.
cargo run -q -p attestgate-corpus -- --stable-for $((warmup_seconds + load_seconds + 30)) \
  > "$work/corpus.json"
python3 scripts/load/prepare.py "$work/corpus.json" "$wasm" "$work"
admin=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin"])' "$work/ports.json")
gates=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["gates"]))' "$work/ports.json")
# wrk checks that its URL connects; each thread then goes to its own gate's port.
first_port=$(python3 -c 'import json,sys; print(min(json.load(open(sys.argv[1]))["gates"].values()))' "$work/ports.json")

"$envoy" -c "$work/envoy.json" --concurrency 2 --disable-hot-restart \
  --log-level warn --component-log-level wasm:warn >"$work/envoy.log" 2>&1 &
envoy_pid=$!
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break
  kill -0 "$envoy_pid" 2>/dev/null || { cat "$work/envoy.log" >&2; echo "load: envoy exited" >&2; exit 1; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$admin/ready" >/dev/null || { echo "load: envoy not ready" >&2; exit 1; }

stats() { curl -fsS "http://127.0.0.1:$admin/stats?format=json"; }
heap() { curl -fsS "http://127.0.0.1:$admin/stats?filter=^server.memory_allocated$" | awk '{print $2}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$envoy_pid/status"; }

run_wrk() { # seconds result-file
  LOAD_CASES=$work/cases.lua LOAD_RESULT=$2 \
    wrk -t "$gates" -c "$gates" -d "${1}s" --timeout 10s -s scripts/load/load.lua \
    "http://127.0.0.1:$first_port/" >"$2.out" 2>&1 || { cat "$2.out" >&2; exit 1; }
}

echo "load: warm-up ${warmup_seconds}s"
run_wrk "$warmup_seconds" "$work/warmup.json"
sleep 1
stats >"$work/stats-warm.json"
heap_warm=$(heap); rss_warm=$(rss_kb)

echo "load: ${load_seconds}s of load on $gates gates (one connection each)"
memory_log=$work/memory.tsv
( while sleep 5; do printf '%s\t%s\t%s\n' "$(date +%s)" "$(heap)" "$(rss_kb)"; done ) >"$memory_log" 2>/dev/null &
sampler=$!
run_wrk "$load_seconds" "$work/load.json"
kill "$sampler" 2>/dev/null || true
sleep 1
stats >"$work/stats-end.json"
heap_end=$(heap); rss_end=$(rss_kb)
kill -0 "$envoy_pid" 2>/dev/null || { echo "load: envoy died" >&2; tail -50 "$work/envoy.log" >&2; exit 1; }

python3 - "$work" "$heap_warm" "$heap_end" "$rss_warm" "$rss_end" "$heap_slack" "$rss_slack_kb" "$gates" <<'EOF'
import json, sys, re
work, heap_warm, heap_end, rss_warm, rss_end, heap_slack, rss_slack, gates = sys.argv[1:]
heap_warm, heap_end, rss_warm, rss_end = map(int, (heap_warm, heap_end, rss_warm, rss_end))
heap_slack, rss_slack, gates = int(heap_slack), int(rss_slack), int(gates)
failures = []

def load(name):
    with open(f"{work}/{name}") as f:
        return json.load(f)

def counters(name):
    return {s["name"]: s.get("value", 0) for s in load(name)["stats"] if "name" in s and "value" in s}

warm, end = load("warmup.json"), load("load.json")
stats_warm, stats_end = counters("stats-warm.json"), counters("stats-end.json")

# 1. Every request got its expected answer.
print(f"\nload: {end['requests']} requests in {end['duration_us'] / 1e6:.0f}s "
      f"({end['requests'] / (end['duration_us'] / 1e6):.0f}/s), latency p50 {end['latency_us']['p50'] / 1000:.1f} ms, "
      f"p99 {end['latency_us']['p99'] / 1000:.1f} ms; warm-up {warm['requests']} requests")
print(f"{'gate':28} {'cases':>5} {'answers':>8} {'right':>8} {'valid 200':>10} {'denied':>8}")
for run in (warm, end):
    for g in run["gates"]:
        for case, info in g["wrong"].items():
            failures.append(f"{g['name']}: {case}: {info['count']} wrong answers, first: {info['first']}")
for g in end["gates"]:
    ok200 = sum(n for k, n in g["tally"].items() if k.startswith("200 "))
    print(f"{g['name']:28} {g['cases']:>5} {g['total']:>8} {g['ok']:>8} {ok200:>10} {g['total'] - ok200:>8}")
    if g["total"] < g["cases"]:
        failures.append(f"{g['name']}: only {g['total']} answers for {g['cases']} cases: not every case ran")
errors = {k: v for k, v in end["errors"].items() if v and k != "status"}
if errors.get("timeout") or errors.get("connect"):
    failures.append(f"socket errors: {errors}")

# 2. The VM is alive: no VM created after warm-up, no filter errors, no trap in the log.
created = {k: v for k, v in stats_end.items() if k.startswith("wasm.") and k.endswith(".created")}
for k, v in created.items():
    if v != stats_warm.get(k):
        failures.append(f"{k} went from {stats_warm.get(k)} to {v}: a wasm VM was (re)created under load")
for k, v in stats_end.items():
    if re.match(r"^wasm\..*(fail|crash|restart)", k) and v:
        failures.append(f"{k} = {v}")
if stats_end.get("wasmcustom.attestgate.errors", 0):
    failures.append(f"filter errors: {stats_end['wasmcustom.attestgate.errors']}")
with open(f"{work}/envoy.log", errors="replace") as f:
    log = f.read()
for needle in ("panicked", "unreachable", "Function: proxy_on", "wasm vm failed", "Plugin configured to fail closed"):
    if needle in log:
        failures.append(f"envoy log mentions `{needle}`")

# 3. The filter's counters agree with what the clients saw (allowing one request in flight
#    per connection when each wrk run stopped).
seen = {}
for run in (warm, end):
    for g in run["gates"]:
        for key, n in g["tally"].items():
            status, reason, verdict = key.split(" ")
            if status == "200" and verdict == "allow":
                name = "passed"  # allowed or bypassed: the same plain 200 to a client
            elif status == "200":
                name = f"monitored_denied.{reason}"
            elif reason == "-":
                continue  # answered by Envoy itself (431): never reached the filter
            else:
                name = f"denied.{reason}"
            seen[name] = seen.get(name, 0) + n
prefix = "wasmcustom.attestgate."
filter_counts = {k[len(prefix):]: v for k, v in stats_end.items() if k.startswith(prefix)}
filter_counts["passed"] = filter_counts.get("allowed", 0) + filter_counts.get("bypassed", 0)
compared = sorted(n for n in set(seen) | set(filter_counts)
                  if n == "passed" or n.startswith(("denied.", "monitored_denied.")))
for name in compared:
    counted, clients = filter_counts.get(name, 0), seen.get(name, 0)
    if not (0 <= counted - clients <= 2 * gates):
        failures.append(f"counter {name}: the filter counted {counted}, the clients saw {clients}")
print(f"counters: {len(compared)} compared with what the clients saw, e.g. denied.signature_invalid "
      f"{filter_counts.get('denied.signature_invalid', 0)} (clients {seen.get('denied.signature_invalid', 0)})")

# 4. Memory is flat after warm-up.
print(f"memory: heap {heap_warm / 2**20:.1f} -> {heap_end / 2**20:.1f} MiB, "
      f"rss {rss_warm / 1024:.1f} -> {rss_end / 1024:.1f} MiB (after warm-up -> end)")
try:
    samples = [line.split("\t") for line in open(f"{work}/memory.tsv").read().split("\n") if line]
    print("  every 5 s, heap MiB: " + " ".join(f"{int(s[1]) / 2**20:.1f}" for s in samples if s[1]))
    print("  every 5 s, rss MiB:  " + " ".join(f"{int(s[2]) / 1024:.1f}" for s in samples if s[2]))
except OSError:
    pass
if heap_end - heap_warm > max(heap_slack, heap_warm // 10):
    failures.append(f"heap grew by {(heap_end - heap_warm) / 2**20:.1f} MiB after warm-up")
if rss_end - rss_warm > rss_slack:
    failures.append(f"rss grew by {(rss_end - rss_warm) / 1024:.1f} MiB after warm-up")

vm = ", ".join(f"{k}={v}" for k, v in sorted(created.items())) or "no wasm VM stats"
print(f"wasm: {vm}; filter errors {stats_end.get('wasmcustom.attestgate.errors', 0)}")
if failures:
    print(f"\nload: FAILED ({len(failures)} problems)")
    for f in failures[-25:] if len(failures) > 25 else failures:
        print("  - " + f)
    if len(failures) > 25:
        print(f"  ... and {len(failures) - 25} more before these (LOAD_KEEP=1 keeps the results)")
    sys.exit(1)
print("load: ok (every answer as expected, VM alive, counters agree, memory flat)")
EOF
