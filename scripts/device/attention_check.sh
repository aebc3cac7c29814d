#!/usr/bin/env bash
# A closing check on the lent GPU after attention / DiT / pipeline changes: the whole suite, compute-sanitizer on the
# attention GPU tests, bench attention (both shapes, top-k 0.1 and 0.15, stage split), bench dit (sagesla + w8a8,
# sagesla + bf16, dense) and bench pipeline with the dense baseline. Summaries on stdout, logs in $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 $B/td_tests > "$OUT/tests.log" 2>&1; echo "td_tests rc=$?"
grep -E '^\[  (FAILED|PASSED) |tests ran' "$OUT/tests.log" | tail -6
timeout 200 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 3 $B/td_tests \
  --gtest_filter='SlaCuda.*:CudaOps.Attention*' > "$OUT/sanitizer.log" 2>&1; echo "compute-sanitizer rc=$?"
grep -E 'ERROR SUMMARY|PASSED|FAILED' "$OUT/sanitizer.log" | tail -3
timeout 120 $B/turbodiff bench attention --breakdown --modes dense,sagesla --topk 0.1,0.15 2>&1 |
  grep -vE '^\s*$' | grep -vE 'block map alone' | head -30
for args in "--attention sagesla --linear w8a8" "--attention sagesla --linear bf16" "--attention dense --linear bf16"; do
  timeout 120 $B/turbodiff bench dit --config wan2.1-t2v-1.3b --random-weights $args --iters 5 --no-breakdown 2>&1 |
    grep -E 'forward:' | sed "s/^/$args: /"
done
timeout 200 $B/turbodiff bench pipeline --config wan2.1-t2v-1.3b --random-weights --compare-dense --phases --iters 3 \
  2>&1 | tail -16
