#!/usr/bin/env bash
# Coverage-guided fuzzing of every decoder that takes bytes from strangers (see fuzzing/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all) for SECONDS (default 60) or 10 million executions, whichever
# comes first, growing fuzzing/corpus/<target>; a crash leaves its input in
# fuzzing/libfuzzer/artifacts/<target>/ (copy it to fuzzing/regressions/<target>/ once fixed,
# so the stable replay test keeps it fixed). libFuzzer needs a nightly toolchain for its
# sanitizer flags: this installs one with rustup, and cargo-fuzz, if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(telnet link markup web world)

rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

fuzz() { cargo +nightly fuzz "$1" --fuzz-dir fuzzing/libfuzzer -O "${@:2}"; }
fuzz build
for target in "${targets[@]}"; do
  mkdir -p "fuzzing/corpus/$target" "fuzzing/libfuzzer/artifacts/$target"
  echo "== $target: up to $seconds s"
  log="fuzzing/libfuzzer/artifacts/$target.log"
  status=0
  fuzz run "$target" "fuzzing/corpus/$target" -- \
    -max_total_time="$seconds" -runs=10000000 -print_final_stats=1 \
    -artifact_prefix="fuzzing/libfuzzer/artifacts/$target/" >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)' "$log" || true
  grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "$target: libFuzzer failed (exit $status); crash inputs, if any, in fuzzing/libfuzzer/artifacts/$target" >&2
    exit 1
  fi
done
