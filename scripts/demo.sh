#!/usr/bin/env bash
# Mints four tokens against the quickstart config and asks the gate about each one:
# a good device, a rooted device with Frida, an expired token and a forged one.
# Exits non-zero if any decision is not the expected one, so `make test` runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."

cli=${ATTESTGATE:-target/release/attestgate}
# shellcheck source=quickstart-tokens.sh
source scripts/quickstart-tokens.sh 300

failures=0
ask() {
  local name=$1 token=$2 want_exit=$3 want_reason=$4 out code
  set +e
  out=$("$cli" check --config "$config" --token "$token" --path /v1/shapes)
  code=$?
  set -e
  local reason
  reason=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["reason"])')
  printf '%-8s exit %s  %s\n' "$name" "$code" "$out"
  if [[ $code != "$want_exit" || $reason != "$want_reason" ]]; then
    echo "  !! expected exit $want_exit and reason $want_reason" >&2
    failures=$((failures + 1))
  fi
}

echo "attestgate check --config $config (decisions as JSON; exit 0 allowed, 1 denied)"
ask good "$good" 0 allowed
ask rooted "$rooted" 1 policy_denied
ask expired "$expired" 1 token_expired
ask forged "$forged" 1 signature_invalid

echo
echo "Try it yourself:"
echo "  $cli check --config $config --pretty --token $good"
exit $failures
