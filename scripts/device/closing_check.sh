#!/usr/bin/env bash
# A short closing check on the lent GPU after VAE / pipeline changes: the whole suite, compute-sanitizer on the VAE
# GPU tests, bench vae (default and cuDNN convs) and bench pipeline with the dense baseline. Summaries on stdout.
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 170 $B/td_tests > "$OUT/tests.log" 2>&1; echo "td_tests rc=$?"
grep -E '^\[  (FAILED|PASSED) |tests ran' "$OUT/tests.log" | tail -6
timeout 150 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 3 $B/td_tests \
  --gtest_filter='VaeCuda.*' > "$OUT/sanitizer.log" 2>&1; echo "compute-sanitizer rc=$?"
grep -E 'ERROR SUMMARY|PASSED|FAILED' "$OUT/sanitizer.log" | tail -3
for i in 1 2; do timeout 90 $B/turbodiff bench vae --random-weights --iters 5 2>&1 | grep -E 'decode|encode'; done
TD_VAE_WGMMA=0 timeout 90 $B/turbodiff bench vae --random-weights --iters 3 2>&1 | grep -E 'decode|encode' | sed 's/^/cuDNN convs: /'
timeout 150 $B/turbodiff bench pipeline --config wan2.1-t2v-1.3b --random-weights --compare-dense --phases 2>&1 | tail -16
