#!/usr/bin/env bash
# Real OPA for `make opa-check`: the opa-golib-python-bindings wheel (OPA v1.20's Go engine as a
# C shared library with ctypes bindings) unpacked into build/opa. The wheel is tagged for
# Python 3.14 only, yet its library loads from any CPython 3 through ctypes, so it is
# downloaded for that tag and unzipped rather than installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=0.4.4
dest=build/opa
if [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ]; then
  exit 0
fi
python=${PYTHON:-.venv/bin/python}
[ -x "$python" ] || python=python3
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"$python" -m pip download -q --no-deps --python-version 3.14 --only-binary=:all: \
  --dest "$wheels" "opa-golib-python-bindings==$version"
rm -rf "$dest"
mkdir -p "$dest"
"$python" -m zipfile -e "$wheels"/opa_golib_python_bindings-"$version"-*.whl "$dest"
echo "$version" > "$dest/.version"
