# attestgate: the one entry point for people and CI.
# `make run` shows the gate deciding real tokens; `make test` is what CI runs.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip1
BUILD_DIR    := build
FILTER_WASM  := $(BUILD_DIR)/attestgate.wasm
CLI          := target/release/attestgate

.PHONY: all run cli filter test lint fmt clippy unit clean

all: cli filter

## run: build the CLI and decide a good, a rooted, an expired and a forged token
run: cli
	./scripts/demo.sh

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

## test: formatting, lints, every test, the wasm build and the CLI demo
test: lint unit filter run

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
