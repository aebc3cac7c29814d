#!/usr/bin/env bash
# The lead's validation pass on the lent H100 (see docs/perf.md): the whole test suite, compute-sanitizer on a
# subset of the GPU tests, then the headline benchmarks with their baselines in the same run. Logs go to $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
timeout 170 $B/td_tests > "$OUT/tests.log" 2>&1; echo "td_tests rc=$?"
grep -E '^\[  (FAILED|PASSED) |tests ran' "$OUT/tests.log" | tail -12
timeout 150 /usr/local/cuda/bin/compute-sanitizer --tool memcheck --error-exitcode 3 $B/td_tests \
  --gtest_filter='CudaOps.LayerNorm*:CudaOps.Attention*:SlaCuda.TinyShapesSparseOnly:W8A8Cuda.LinearEpiloguesMatchCpu:W8A8Cuda.QuantizingEpilogueMatchesCpu:W8A8Cuda.FusedNormQuantMatchesCpu:W8A8Cuda.RmsNormRope3dMatchesCpu:VaeCuda.Ring*:VaeCuda.CausalConvInPlaceMatchesCpu:VaeCuda.WideRmsNormMatchesCpu:CudaDit.T2vMatchesCpu:T5Cuda.*' \
  > "$OUT/sanitizer.log" 2>&1; echo "compute-sanitizer rc=$?"; grep -E 'ERROR SUMMARY|PASSED|FAILED' "$OUT/sanitizer.log" | tail -4
DIT="--config wan2.1-t2v-1.3b --random-weights --frames 81 --height 480 --width 832 --device cuda"
timeout 70 $B/turbodiff bench dit $DIT 2>&1 | tee "$OUT/bench_dit_dense.log" | grep -E 'forward:|peak|attention |linear |norm'
timeout 70 python3 bench/python/torch_wan_dit_baseline.py 2>&1 | tail -2 | tee "$OUT/torch_baseline.log"
timeout 50 $B/turbodiff bench dit $DIT --attention sagesla --linear bf16 2>&1 | tee "$OUT/bench_dit_sagesla_bf16.log" | grep -E 'forward:|peak'
timeout 60 $B/turbodiff bench dit $DIT --attention sagesla --linear w8a8 --ops 2>&1 | tee "$OUT/bench_dit_turbo.log" | grep -E 'forward:|peak|  (attention|linear|norm/other) '
timeout 120 $B/turbodiff bench gemm --kernel by-shape --iters 10 2>&1 | tee "$OUT/bench_gemm.log" | grep -E 'cuBLAS|GEMM'
timeout 100 $B/turbodiff bench attention --modes dense,sagesla --topk 0.1,0.15 --iters 10 2>&1 | tee "$OUT/bench_attention.log" | grep -E 'L =|dense|sagesla'
timeout 90 $B/turbodiff bench vae --random-weights --iters 3 2>&1 | tee "$OUT/bench_vae.log" | grep -E 'decode|encode'
timeout 120 $B/turbodiff bench vae --random-weights --no-encode --height 720 --width 1280 --iters 3 2>&1 | grep -E "decode" | sed "s/^/720p: /"
TD_VAE_WGMMA=0 timeout 90 $B/turbodiff bench vae --random-weights --iters 3 2>&1 | grep -E 'decode|encode' | sed 's/^/cuDNN convs: /'
timeout 50 $B/turbodiff bench t5 --random-weights --device cuda 2>&1 | tee "$OUT/bench_t5.log" | tail -3
timeout 150 $B/turbodiff bench pipeline --config wan2.1-t2v-1.3b --random-weights --compare-dense --phases 2>&1 | tee "$OUT/bench_pipeline.log" | tail -22
