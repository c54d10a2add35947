#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (make fuzz / make fuzz-smoke).
#   fuzz/run.sh [SECONDS]     default: $FUZZ_SECONDS, else 60
#   fuzz/run.sh --cmin        minimize fuzz/corpus/<target> in place (make fuzz-cmin)
# Seeds come from the request corpus (attestgate-corpus --fuzz-seeds); what libFuzzer finds
# new is kept in fuzz/corpus/<target> (committed, minimized with --cmin), crashes in
# fuzz/artifacts/<target>. Needs the nightly toolchain and cargo-fuzz (installed here when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --cmin ]]; then
  # Minimizes each target's kept corpus in place (libFuzzer's merge: the fewest, smallest
  # inputs with the same coverage), for committing; AddressSanitizer build.
  targets=${FUZZ_TARGETS:-"token config check signature route policy_input policy_plan"}
  mkdir -p fuzz/logs
  for target in $targets; do
    before=$(find "fuzz/corpus/$target" -type f | wc -l)
    (cd fuzz && cargo +nightly fuzz cmin "$target" "corpus/$target" -- -timeout=10 \
        -rss_limit_mb=2048 -malloc_limit_mb=2048) >"fuzz/logs/cmin-$target.log" 2>&1 \
      || { tail -20 "fuzz/logs/cmin-$target.log" >&2; exit 1; }
    echo "fuzz cmin: $target $before -> $(find "fuzz/corpus/$target" -type f | wc -l) files"
  done
  exit 0
fi

seconds=${1:-${FUZZ_SECONDS:-60}}
# Extra `cargo fuzz build/run` flags. `make fuzz-smoke` (CI) uses `--sanitizer none`: about
# half the cold build, still libFuzzer-guided; `make fuzz` keeps AddressSanitizer. (`--dev`
# is too slow to run: the `check` target's first input compiles Rego past the 10 s timeout.)
read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:-}"
targets=${FUZZ_TARGETS:-"token config check signature route policy_input policy_plan"}
# Per input: a 10 s hang or 2 GiB of memory is a finding, not a slow input.
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

rm -rf fuzz/seeds
# At the fuzz targets' clock (attestgate_fuzz::NOW), so seed tokens decide as their cases say.
cargo run -q -p attestgate-corpus -- --now 1700000000 --fuzz-seeds fuzz/seeds
(cd fuzz && cargo +nightly fuzz build "${build_flags[@]}")

summary=()
status=0
for target in $targets; do
  mkdir -p "fuzz/corpus/$target"
  mkdir -p fuzz/logs; log="fuzz/logs/$target.log"
  echo "fuzz: $target for ${seconds}s"
  if (cd fuzz && cargo +nightly fuzz run "${build_flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" "${limits[@]}" -print_final_stats=1) >"$log" 2>&1; then
    outcome=ok
  else
    outcome=FAILED
    status=1
    tail -40 "$log" >&2
  fi
  runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  rss=$(grep -Eo 'peak_rss_mb: *[0-9]+' "$log" | tail -1 | awk '{print $2}')
  summary+=("$(printf '%-7s %-6s %9s runs  cov %6s  peak rss %5s MB  corpus %5s files' \
    "$target" "$outcome" "${runs:-?}" "${cov:-?}" "${rss:-?}" \
    "$(find "fuzz/corpus/$target" -type f | wc -l)")")
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [[ $status -ne 0 ]]; then
  echo "fuzz: a target failed; the crashing input is in fuzz/artifacts/<target>/ (logs in fuzz/logs/)" >&2
fi
exit $status
