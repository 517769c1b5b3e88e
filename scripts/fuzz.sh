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
  fuzz run "$target" "fuzzing/corpus/$target" -- \
    -max_total_time="$seconds" -runs=10000000 -print_final_stats=1 \
    -artifact_prefix="fuzzing/libfuzzer/artifacts/$target/" 2>&1 |
    grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY|thread .* panicked|Test unit written)' || true
  # A crash makes libFuzzer exit non-zero; pipefail alone would hide which target.
  if [ -n "$(ls -A "fuzzing/libfuzzer/artifacts/$target" 2>/dev/null)" ]; then
    echo "$target: crash inputs in fuzzing/libfuzzer/artifacts/$target" >&2
    exit 1
  fi
done
