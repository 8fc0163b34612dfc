#!/usr/bin/env bash
# run_fuzzer.sh BINARY CORPUS_DIR RUNS [extra libFuzzer flags]
# Runs a libFuzzer target over its seed corpus (fuzz/corpus/<target>: seeds and the regression inputs
# of crashes found before), then over mutated inputs until RUNS inputs in all, with a fixed seed so
# that CI runs the same inputs every time. New inputs and any crash go to a temporary folder; a crash
# fails the run and is copied to fuzz/found/ to be turned into a regression input.
# Locally, for as long as you like:  BINARY -max_total_time=3600 fuzz/corpus/<target>
set -euo pipefail
bin="$1" corpus="$2" runs="$3"
shift 3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/new" "$work/crash"
if ! "$bin" -runs="$runs" -seed=1 -max_len=16384 -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
     -artifact_prefix="$work/crash/" "$@" "$work/new" "$corpus"; then
  found="$(dirname "$corpus")/../found"
  mkdir -p "$found"
  cp "$work/crash/"* "$found/" 2>/dev/null || true
  echo "run_fuzzer: $(basename "$bin") found a failing input; copied to $found (add it to $corpus once fixed)" >&2
  exit 1
fi
