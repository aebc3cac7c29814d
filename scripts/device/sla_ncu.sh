#!/usr/bin/env bash
# Nsight Compute on the SageSLA sparse kernels (`bench attention --modes sagesla --topk 0.1 --no-14b`): throughput,
# memory and stall reasons for one launch of each. KERNEL selects the kernel (regex), env passes through (e.g.
# TD_SLA_SPARSE=pipelined). Full report in $OUT/sla_ncu.txt, the lines that matter on stdout.
set -uo pipefail
source "$(dirname "$0")/env.sh"
NCU=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
timeout 300 $NCU --kernel-name regex:${KERNEL:-sparse} --launch-skip ${SKIP:-2} --launch-count 1 \
  --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
  --section SchedulerStats --section SourceCounters \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
  $B/turbodiff bench attention --modes sagesla --topk 0.1 --no-14b --iters 1 --warmup 0 > "$OUT/sla_ncu.txt" 2>&1
echo "ncu rc=$?"
grep -E 'issue_stalled|sparse|Duration|Throughput|Hit Rate|Issue Slots|Warp Cycles Per Issued|Registers Per|Stall|stall|Achieved Occ|Eligible|Active Warps|Bandwidth|L2|smsp__pcsamp' "$OUT/sla_ncu.txt" | cut -c1-200 | head -${LINES_OUT:-80}
