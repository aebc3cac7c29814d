#!/usr/bin/env bash
# Runs on the lent GPU machine (see docs/perf.md for how it is invoked): the GPU tests, compute-sanitizer on a
# subset, then the benchmarks. Expects a build in build-dev (TD_CUDA_ARCHS=90a, TD_FFMPEG=OFF) and extra shared
# libraries that machine lacks in .devcarry/lib. Logs go to $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
what=${1:-all}
if [[ $what == all || $what == tests ]]; then
  $B/td_tests ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} 2>&1 | tee "$OUT/tests.log" | grep -E '^\[  (FAILED|PASSED|SKIPPED) |OK \]|FAILED|error|nmse|rel' | tail -150
fi
