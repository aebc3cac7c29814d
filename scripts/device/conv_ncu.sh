#!/usr/bin/env bash
# Nsight Compute on the VAE's wgmma conv kernels (`bench vae --convs`): throughput, shared-memory traffic and stall
# reasons per launch. Full report in $OUT/conv_ncu.txt; the lines that matter on stdout.
set -uo pipefail
source "$(dirname "$0")/env.sh"
NCU=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
nvidia-smi --query-gpu=name --format=csv,noheader
timeout 400 $NCU --kernel-name regex:${KERNEL:-conv2d_wgmma_kernel} --launch-skip ${SKIP:-0} --launch-count ${COUNT:-12} \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
  --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats \
  $B/turbodiff bench vae --convs --iters 2 --warmup 0 > "$OUT/conv_ncu.txt" 2>&1
echo "ncu rc=$?"
grep -E 'conv2d_wgmma_kernel<|Duration|Compute \(SM\) Throughput|Memory Throughput|Shared Memory|Issue Slots Busy|Warp Cycles Per Issued|Registers Per|Bank|Stall|stall|Theoretical Occ|Achieved Occ|Executed Ipc|Pipe' "$OUT/conv_ncu.txt" | cut -c1-220 | head -${LINES_OUT:-150}
