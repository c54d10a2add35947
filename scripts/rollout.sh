#!/usr/bin/env bash
# `make rollout`: the path of docs/rollout.md on real Envoy, step by step.
#   1. the quickstart (envoy-examples/quickstart) in monitor mode: its rendered envoy.yaml with
#      the gate's mode switched, Envoy's JSON access log (one line per decision) to a file;
#   2. traffic: wrk (scripts/bench/wrk.lua) over a fleet of good and bad devices
#      (scripts/rollout/tokens.py: rooted, outdated apps, emulators, expired, forged);
#   3. `attestgate report` over the access log: the table, --json and --html;
#   4. the same config enforced, the same traffic, and its report.
# Each phase's files stay in $ROLLOUT_DIR: <phase>-access.log, -report.txt, -report.json,
# -report.html, -wrk.txt and -wrk.json (wrk's counts), -envoy.log.
#
#   ROLLOUT_SECONDS  traffic per phase (default 10)
#   ROLLOUT_DIR      where the files go (default build/rollout)
#   ATTESTGATE_CLI   the CLI (default target/release/attestgate)
#   ROLLOUT_WASM     the filter (default build/attestgate.wasm)
#   ENVOY            the Envoy binary (default: scripts/install-envoy.sh's)
# Needs: make cli filter envoy, wrk, python3.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${ROLLOUT_SECONDS:-10}
out=${ROLLOUT_DIR:-build/rollout}
cli=${ATTESTGATE_CLI:-target/release/attestgate}
wasm=${ROLLOUT_WASM:-$PWD/build/attestgate.wasm}
[[ -x $cli ]] || { echo "rollout: $cli missing: run make cli" >&2; exit 2; }
[[ -f $wasm ]] || { echo "rollout: $wasm missing: run make filter" >&2; exit 2; }
envoy=${ENVOY:-$(scripts/install-envoy.sh 2>/dev/null)}
command -v wrk >/dev/null || { echo "rollout: wrk missing (apt-get install wrk)" >&2; exit 2; }
mkdir -p "$out"

python3 scripts/rollout/tokens.py envoy-examples/quickstart "$out/tokens.txt"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The quickstart's rendered config on free ports; `monitor` switches the gate's mode.
config_for() {
  local mode=$1 port=$2 admin=$3 file=$4
  sed -e "s/port_value: 8080/port_value: $port/" \
      -e "s/port_value: 8081/port_value: $(free_port)/" \
      -e "s/port_value: 9901/port_value: $admin/" \
      -e "s|filename: build/attestgate.wasm|filename: $wasm|" \
      -e "s/\\\\\"mode\\\\\":\\\\\"enforce\\\\\"/\\\\\"mode\\\\\":\\\\\"$mode\\\\\"/" \
      envoy-examples/quickstart/envoy.yaml > "$file"
  grep -q "\\\\\"mode\\\\\":\\\\\"$mode\\\\\"" "$file" \
    || { echo "rollout: the quickstart's config has no gate mode to set" >&2; exit 1; }
}

phase() {
  local mode=$1 port admin
  port=$(free_port)
  admin=$(free_port)
  config_for "$mode" "$port" "$admin" "$out/$mode-envoy.yaml"
  "$envoy" -c "$out/$mode-envoy.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
    > "$out/$mode-access.log" 2> "$out/$mode-envoy.log" &
  local pid=$!
  local ready=0
  for _ in $(seq 1 100); do
    # Envoy's admin /ready, so no request but wrk's reaches the gate (and its log).
    if [[ $(curl -s "http://127.0.0.1:$admin/ready" || true) == LIVE ]]; then ready=1; break; fi
    sleep 0.1
  done
  if [[ $ready != 1 ]]; then
    kill "$pid" 2>/dev/null || true
    echo "rollout: Envoy did not start ($mode):" >&2; cat "$out/$mode-envoy.log" >&2; exit 1
  fi
  echo "rollout: $mode: ${seconds}s of traffic from $(wc -l < "$out/tokens.txt") devices" >&2
  BENCH_TOKENS="$out/tokens.txt" BENCH_ZIPF=1 BENCH_RESULT="$out/$mode-wrk.json" \
    wrk -t1 -c4 -d"${seconds}s" -s scripts/bench/wrk.lua "http://127.0.0.1:$port/v1/shapes" \
    > "$out/$mode-wrk.txt"
  # Envoy flushes its access log about once a second.
  sleep 1.5
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  "$cli" report "$out/$mode-access.log" > "$out/$mode-report.txt"
  "$cli" report "$out/$mode-access.log" --json > "$out/$mode-report.json"
  "$cli" report "$out/$mode-access.log" --html "$out/$mode-report.html" > /dev/null
  echo "== $mode: attestgate report $out/$mode-access.log" >&2
  cat "$out/$mode-report.txt"
}

phase monitor
phase enforce
echo "rollout: reports in $out/{monitor,enforce}-report.{txt,json,html}" >&2
