#!/usr/bin/env bash
# The gateway benchmark (issue 5, `make bench`): real Envoy with each setup in turn, one worker
# (--concurrency 1), driven by `wrk -t1 -c8` on 127.0.0.1. Per setup: requests/s, latency
# p50/p90/p99, non-2xx answers and the ratio to the no-filter baseline; then the issue's targets.
#
#   none                 no filter (the baseline)
#   wasm_trivial         a Rust proxy-wasm filter that does nothing (scripts/bench/trivial-filter):
#                        what any wasm filter costs in this Envoy, the ceiling for attestgate's
#   wasm_host_floor      the same filter making only the host calls of an attestgate cache hit
#                        (headers, clock, three counters, one filter-state write, three header
#                        edits): the floor under attestgate_repeated's cost over wasm_trivial
#   jwt_authn            Envoy's jwt_authn, HS256, no JWT cache, a fresh token per request
#   jwt_authn_cached     the same with jwt_cache_config, one repeated token
#   attestgate_repeated  the attestgate filter (scripts/bench/attestgate.yaml), one repeated token
#   attestgate_five_keys the filter with five keys by kid, iss/aud and a three-line policy
#                        (issue #27's second config), one repeated HS256 token
#   attestgate_fresh     the filter with a fresh HS256 token per request (the same pool as jwt_authn)
#   jwt_authn_es256      jwt_authn alone, ES256, fresh tokens
#   jwt_authn_es256_metadata  the same with payload_in_metadata (what hybrid mode needs of it)
#   hybrid_es256         jwt_authn ES256 (payload in metadata), then attestgate in hybrid mode
#   attestgate_es256     the filter verifying ES256 itself, fresh tokens
#   jwt_authn_rs256      jwt_authn alone, RS256, fresh tokens
#   attestgate_rs256     the filter verifying RS256 itself, fresh tokens
#   attestgate_signed    Approov-signed requests: one HS256 token with its install key, and a
#                        fresh RFC 9421 install signature (ecdsa-p256-sha256, signed by the
#                        independent http-message-signatures) on every request
#   attestgate_unique    fresh HS256 tokens, each of a never-seen device with its own
#                        measurement claims: nothing cached helps (binding + Rego every request)
#   jwt_authn_fleet      jwt_authn HS256 with a cache holding the whole fleet: 10,000 devices,
#                        each reusing its token, requests Zipf-distributed over them
#   attestgate_fleet     attestgate on the same fleet traffic
#
# Every setup is the topology of envoy-examples/envoy.yaml.in: a gated listener (the filters
# under test, then the router) -> cluster -> an upstream listener in the same Envoy answering a
# small direct_response 200 (scripts/bench/gen.py writes the configs, on free ports). Each gets
# one checked request, BENCH_WARMUP s of warm-up, then BENCH_SECONDS s measured. Every request
# must be allowed: any answer other than 200 fails the run (a benchmark of 401s is worthless),
# and so does an Envoy that does not start. Results: the table on stdout and in
# build/bench/gateway.txt, everything in build/bench/gateway.json.
#
#   BENCH_SECONDS  measured seconds per setup (default 10)
#   BENCH_WARMUP   warm-up seconds per setup (default 2)
#   BENCH_SMOKE=1  a quick proof that the script works (CI): 1 s warm-up, 2 s measured
#   BENCH_SETUPS   comma list of setups to run (default: all); the others print "skipped"
#   BENCH_POOL     fresh tokens to mint per pool (default: sized from the baseline's rate)
#   BENCH_STRICT=1 also fail when a target is missed
#   BENCH_KEEP=1   keep the scratch directory (Envoy configs, logs, stats, wrk summaries)
#   ATTESTGATE     the CLI (default target/release/attestgate)
#   BENCH_WASM     the filter (default build/attestgate.wasm)
# Needs: the CLI (make cli), build/attestgate.wasm (make filter), .venv/bin/envoy (make envoy),
# wrk, curl, python3. Figures are only worth reading on a quiet machine with 2+ cores.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${BENCH_SMOKE:-0} == 1 ]]; then
  warmup=${BENCH_WARMUP:-1} seconds=${BENCH_SECONDS:-2} pool_floor=5000
else
  warmup=${BENCH_WARMUP:-2} seconds=${BENCH_SECONDS:-10} pool_floor=50000
fi
[[ $warmup =~ ^[1-9][0-9]*$ && $seconds =~ ^[1-9][0-9]*$ ]] ||
  { echo "bench: BENCH_WARMUP and BENCH_SECONDS are whole seconds (at least 1)" >&2; exit 2; }
cli=${ATTESTGATE:-target/release/attestgate}
wasm=$(realpath -m "${BENCH_WASM:-build/attestgate.wasm}")
out=build/bench
ttl=3600  # token lifetime: far longer than any run
wrk_args=(-t1 -c8 --timeout 5s -s scripts/bench/wrk.lua)

mapfile -t all_setups < <(python3 scripts/bench/gen.py setups)
IFS=, read -r -a wanted <<<"${BENCH_SETUPS:-$(IFS=,; echo "${all_setups[*]}")}"
for s in "${wanted[@]}"; do
  [[ " ${all_setups[*]} " == *" $s "* ]] ||
    { echo "bench: unknown setup '$s' in BENCH_SETUPS (known: ${all_setups[*]})" >&2; exit 2; }
done
selected() { local IFS=,; [[ ",${wanted[*]}," == *",$1,"* ]]; }

[[ -x $cli ]] || { echo "bench: $cli missing: run make cli" >&2; exit 2; }
[[ -f $wasm ]] || { echo "bench: $wasm missing: run make filter" >&2; exit 2; }
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 2; }
envoy=$(scripts/install-envoy.sh 2>/dev/null)
# install-envoy.sh also puts http-message-signatures (the signed setup's signer) in .venv.
venv_python=$(dirname "$(dirname "$envoy")")/bin/python
envoy_version=$("$envoy" --version | sed -n 's#.*version: [0-9a-f]*/\([0-9.]*\)/.*#\1#p')

work=$(mktemp -d -t attestgate-bench.XXXXXX)
envoy_pid=
stop_envoy() {
  [[ -n $envoy_pid ]] || return 0
  kill "$envoy_pid" 2>/dev/null || true
  # Bounded: Envoy drains quickly; if it does not, it is killed.
  for _ in $(seq 1 50); do kill -0 "$envoy_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$envoy_pid" 2>/dev/null || true
  wait "$envoy_pid" 2>/dev/null || true
  envoy_pid=
}
cleanup() {
  stop_envoy
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The gate config as the filter gets it, and its ES256 and hybrid variants, the claims (with
# the binding) and the secret: all derived from scripts/bench/attestgate.yaml.
"$cli" render --config scripts/bench/attestgate.yaml >"$work/gate.json"
python3 scripts/bench/gen.py prepare "$work"
mkdir -p "$work/tokens"
: >"$work/skipped.tsv"

# Tokens: one repeated HS256 token, and pools of fresh ones, minted when first needed.
# A pool holds more tokens than the run can send: the baseline's rate over warm-up + measured
# time, with 30 % headroom (the filters are slower than no filter), at least pool_floor.
baseline_rps=
pool_size() {
  if [[ -n ${BENCH_POOL:-} ]]; then echo "$BENCH_POOL"; return; fi
  python3 -c 'import math,sys; rps, secs, floor = sys.argv[1:]
print(max(int(floor), math.ceil(float(rps or 0) * int(secs) * 1.3)))' "$baseline_rps" "$((warmup + seconds))" "$pool_floor"
}
mint_tokens() { # kind
  local file=$work/tokens/$1.txt count why
  [[ -s $file ]] && return 0
  case $1 in
    hs_one) timeout --foreground 60 "$cli" mint --secret "$(cat "$work/secret.txt")" --claims "$work/claims.json" \
              --exp-in $ttl >"$file" ;;
    five_keys_one) timeout --foreground 60 "$cli" mint --key policy-engine/tests/data/keys/hs256.json \
              --claims "$work/claims-five-keys.json" --exp-in $ttl >"$file" ;;
    fleet) python3 scripts/bench/gen.py tokens fleet "$work" 0 ;;
    unique_pool)
      count=$(( $(pool_size) + 1 ))
      echo "bench: minting $count tokens of never-seen devices"
      python3 scripts/bench/gen.py tokens unique_pool "$work" "$count" ;;
    signed_pool)
      # The pool is for this setup's port (@target-uri), so it is made when the setup runs.
      count=$(( $(pool_size) + 1 ))
      echo "bench: signing $count requests with the install key (http-message-signatures)"
      local token
      token=$(timeout --foreground 60 "$cli" mint --secret "$(cat "$work/secret.txt")" \
                --claims "$work/claims-signed.json" --exp-in $ttl)
      "$venv_python" scripts/interop/rfc9421.py pool --alg ecdsa-p256-sha256 \
        --key-file policy-engine/tests/data/keys/es256.json --label install --method GET \
        --url "https://127.0.0.1:$gated/v1/shapes" -H "approov-token: $token" \
        -H 'authorization: Bearer bench-user' $(python3 scripts/bench/gen.py components) \
        --created $(( $(date +%s) - 60 )) --spread 60 --count "$count" |
        awk -v token="$token" '{ print token "\t" $0 }' >"$file.tmp"
      mv "$file.tmp" "$file" ;;
    hs_pool|es_pool|rs_pool)
      # One more than the pool: the first token goes to the checked request before the load.
      count=$(( $(pool_size) + 1 ))
      why="at least $pool_floor; no baseline run to size it from"
      [[ -n $baseline_rps ]] && why="baseline $baseline_rps req/s x $((warmup + seconds)) s x 1.3, at least $pool_floor"
      [[ -n ${BENCH_POOL:-} ]] && why="BENCH_POOL"
      echo "bench: minting $count fresh ${1%_pool} tokens ($why)"
      case $1 in
        hs_pool) timeout --foreground 600 "$cli" mint --secret "$(cat "$work/secret.txt")" --claims "$work/claims.json" \
                   --exp-in $ttl --count "$count" >"$file.tmp" ;;
        es_pool) timeout --foreground 600 "$cli" mint --key policy-engine/tests/data/keys/es256.json --claims "$work/claims.json" \
                   --exp-in $ttl --count "$count" >"$file.tmp" ;;
        # RSA signing is slow: PyJWT on every core (the CLI mints one at a time).
        rs_pool) timeout --foreground 600 "$venv_python" scripts/bench/mint_rs256.py \
                   policy-engine/tests/data/keys/rs256.json "$work/claims.json" $ttl "$count" >"$file.tmp" ;;
      esac
      mv "$file.tmp" "$file" ;;
  esac
}

# Before any Envoy: the CLI must allow a token under the gate configs (exit 0 = allowed),
# so that a mistake in the config or the claims shows up here with the decision's reason.
precheck() { # gate-config token
  "$cli" check --config "$1" --token "$2" -H 'Authorization: Bearer bench-user' --path /v1/shapes \
    >"$work/check.json" ||
    { echo "bench: attestgate check denies the bench token under $1:" >&2; cat "$work/check.json" >&2; exit 1; }
}
# The do-nothing filter, built once (its own small workspace; cached in build/bench/).
if selected wasm_trivial || selected wasm_host_floor; then
  rustup target add wasm32-wasip1 >/dev/null 2>&1 || true
  (cd scripts/bench/trivial-filter &&
    cargo build -q --release --target wasm32-wasip1 --target-dir ../../../build/bench/trivial-target) ||
    { echo "bench: building scripts/bench/trivial-filter failed" >&2; exit 1; }
fi

mint_tokens hs_one
precheck "$work/gate.json" "$(head -1 "$work/tokens/hs_one.txt")"
if selected attestgate_es256; then
  timeout --foreground 60 "$cli" mint --key policy-engine/tests/data/keys/es256.json --claims "$work/claims.json" \
    --exp-in $ttl >"$work/es_one.txt"
  precheck "$work/gate-es256.json" "$(cat "$work/es_one.txt")"
fi
if selected attestgate_rs256; then
  timeout --foreground 60 "$cli" mint --key policy-engine/tests/data/keys/rs256.json --claims "$work/claims.json" \
    --exp-in $ttl >"$work/rs_one.txt"
  precheck "$work/gate-rs256.json" "$(cat "$work/rs_one.txt")"
fi

stats() {
  curl -fsS -m 10 "http://127.0.0.1:$admin/stats?format=json" >"$1" ||
    { tail -20 "$dir/envoy.log" >&2; echo "bench: $setup: Envoy's admin did not answer" >&2; exit 1; }
}

run_wrk() { # phase seconds start
  BENCH_TOKENS=$tokens BENCH_FRESH=$fresh BENCH_ZIPF=$zipf BENCH_SIGNED=$signed BENCH_START=$3 BENCH_RESULT=$dir/$1.json \
    timeout --foreground $(($2 + 30)) wrk "${wrk_args[@]}" -d "${2}s" "http://127.0.0.1:$gated/v1/shapes" \
    >"$dir/$1.out" 2>&1 || { cat "$dir/$1.out" >&2; echo "bench: $setup: wrk failed" >&2; exit 1; }
}

run_setup() { # setup
  setup=$1 dir=$work/$1
  local ports
  ports=$(python3 scripts/bench/gen.py envoy "$setup" "$work" "$wasm")
  read -r gated admin kind <<<"$ports"
  mint_tokens "$kind"
  tokens=$work/tokens/$kind.txt
  fresh=0; [[ $kind == *_pool ]] && fresh=1
  zipf=0; [[ $kind == fleet ]] && zipf=1
  signed=0; [[ $kind == signed_pool ]] && signed=1

  "$envoy" -c "$dir/envoy.json" --concurrency 1 --disable-hot-restart --log-level warn \
    >"$dir/envoy.log" 2>&1 &
  envoy_pid=$!
  local ready=
  for _ in $(seq 1 300); do  # up to 60 s: V8 compiles the filter at start
    curl -fsS -m 2 "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && { ready=1; break; }
    kill -0 "$envoy_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [[ -z $ready ]]; then
    tail -20 "$dir/envoy.log" >&2
    echo "bench: $setup: Envoy failed to start (log above)" >&2
    [[ $setup == hybrid_es256 ]] && echo "bench: hybrid mode may not be in this build yet;" \
      "BENCH_SETUPS without hybrid_es256 skips it" >&2
    exit 1
  fi

  # One request first, to fail with the answer itself rather than a count of non-200s.
  local status first input signature
  IFS=$'\t' read -r first input signature < <(head -1 "$tokens")
  local check_headers=(-H "approov-token: $first" -H 'authorization: Bearer bench-user')
  [[ $signed == 1 ]] && check_headers+=(-H "signature-input: $input" -H "signature: $signature")
  status=$(curl -sS -m 5 -o "$dir/check.body" -D "$dir/check.headers" -w '%{http_code}' \
    "${check_headers[@]}" "http://127.0.0.1:$gated/v1/shapes" || true)
  if [[ $status != 200 ]]; then
    echo "bench: $setup: the first request got ${status:-no answer}, not 200:" >&2
    cat "$dir/check.headers" "$dir/check.body" >&2 2>/dev/null || true
    exit 1
  fi
  stats "$dir/stats-ready.json"

  # Fresh tokens: the warm-up starts after the checked one, the measured run where it stopped.
  run_wrk warmup "$warmup" "$fresh"
  stats "$dir/stats-warm.json"
  run_wrk measured "$seconds" \
    "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$dir/warmup.json")"
  stats "$dir/stats-end.json"
  kill -0 "$envoy_pid" 2>/dev/null || { tail -20 "$dir/envoy.log" >&2; echo "bench: $setup: Envoy died" >&2; exit 1; }
  stop_envoy

  python3 scripts/bench/report.py check "$setup" "$work"
  if [[ $setup == none ]]; then
    baseline_rps=$(python3 -c 'import json,sys; r = json.load(open(sys.argv[1]))
print(round(r["requests"] / (r["duration_us"] / 1e6)))' "$dir/measured.json")
  fi
}

echo "bench: Envoy $envoy_version, ${warmup}s warm-up + ${seconds}s measured per setup, wrk ${wrk_args[*]:0:2}"
for setup in "${all_setups[@]}"; do
  if selected "$setup"; then
    run_setup "$setup"
  else
    printf '%s\tnot in BENCH_SETUPS\n' "$setup" >>"$work/skipped.tsv"
    echo "bench: $setup: skipped: not in BENCH_SETUPS"
  fi
done

python3 - "$work/run.json" "$envoy_version" "$warmup" "$seconds" "${BENCH_SMOKE:-0}" "${all_setups[@]}" <<'EOF'
import json, sys
path, version, warmup, seconds, smoke, *setups = sys.argv[1:]
with open(path, "w") as f:
    json.dump({"envoy_version": version, "concurrency": 1, "wrk": "-t1 -c8", "address": "127.0.0.1",
               "warmup_seconds": int(warmup), "seconds": int(seconds), "smoke": smoke == "1",
               "setups": setups}, f)
EOF
echo
python3 scripts/bench/report.py report "$work" "$out"
