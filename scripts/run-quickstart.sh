#!/usr/bin/env bash
# `make run`: Envoy with attestgate and the default device-trust policy on 127.0.0.1:8080.
# Prints ready-to-paste curl commands with freshly minted tokens, then runs Envoy in the
# foreground (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."

envoy=$(scripts/install-envoy.sh)
cli=target/release/attestgate
# shellcheck source=quickstart-tokens.sh
source scripts/quickstart-tokens.sh 3600

cat <<EOT

attestgate quickstart: Envoy on http://127.0.0.1:8080, admin on http://127.0.0.1:9901
Config: $example/attestgate.yaml (rendered into $example/envoy.yaml)

A good device (200; the upstream echoes the x-upstream-device-id it received):
  curl -i http://127.0.0.1:8080/v1/shapes -H 'approov-token: $good'

A rooted device with Frida (403 policy_denied):
  curl -i http://127.0.0.1:8080/v1/shapes -H 'approov-token: $rooted'

An expired token (401 token_expired):
  curl -i http://127.0.0.1:8080/v1/shapes -H 'approov-token: $expired'

A forged token, signed with the wrong secret (401 signature_invalid):
  curl -i http://127.0.0.1:8080/v1/shapes -H 'approov-token: $forged'

No token (401 token_missing):
  curl -i http://127.0.0.1:8080/v1/shapes

Counters:
  curl -s http://127.0.0.1:9901/stats | grep attestgate

Each request's access log line (JSON, the gate's decision under "attestgate") goes to
Envoy's stdout, about a second later.

Starting Envoy (Ctrl-C to stop)...
EOT
exec "$envoy" -c $example/envoy.yaml --concurrency 1 --disable-hot-restart --log-level warn --component-log-level wasm:info
