#!/usr/bin/env bash
# Installs wasm-bindgen-cli of exactly the version the wasm-bindgen crate is pinned to in the
# root Cargo.toml (`wasm-bindgen = "=X.Y.Z"`): the CLI refuses a .wasm built with another one.
# Does nothing when that version is already on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
if [ -z "$version" ]; then
  echo "install-wasm-bindgen: no \`wasm-bindgen = \"=X.Y.Z\"\` pin in Cargo.toml" >&2
  exit 2
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" = "wasm-bindgen $version" ]; then
  exit 0
fi
echo "installing wasm-bindgen-cli $version (a few minutes, once)"
# Not --locked: the CLI's published lockfile names a webpki-roots release the registry does not
# serve. No default features: they only add a TLS stack for downloads we never make.
cargo install wasm-bindgen-cli --version "$version" --no-default-features
