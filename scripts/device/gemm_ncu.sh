#!/usr/bin/env bash
# Nsight Compute on one W8A8 GEMM launch: `bench gemm --shape SHAPE --kernel KERNEL --bias`, first launch of the
# kernel whose name matches KREGEX. Throughput, pipe utilization, shared-memory / L2 traffic and stall reasons; full
# report in $OUT/gemm_ncu_<tag>.txt, the lines that matter on stdout.
#   SHAPE=32760x1536x1536 KERNEL=by-shape KREGEX=ws3 scripts/device/gemm_ncu.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"
NCU=$(ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
SHAPE=${SHAPE:-32760x1536x1536}
TAG=${TAG:-$SHAPE}
timeout 300 $NCU --kernel-name regex:${KREGEX:-w8a8_gemm} --launch-count 1 \
  --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
  --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section SchedulerStats --section Occupancy \
  --section InstructionStats --section SourceCounters \
  --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio,sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_uniform.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum.pct_of_peak_sustained_elapsed,l1tex__data_bank_reads.avg.pct_of_peak_sustained_elapsed,l1tex__data_bank_writes.avg.pct_of_peak_sustained_elapsed,lts__t_bytes.sum.per_second,sm__cycles_elapsed.avg.per_second" \
  $B/turbodiff bench gemm --shape "$SHAPE" --kernel ${KERNEL:-by-shape} --bias --iters 1 --warmup 0 \
  > "$OUT/gemm_ncu_$TAG.txt" 2>&1
echo "ncu rc=$?"
grep -E 'issue_stalled|w8a8_gemm|Duration|Throughput|Hit Rate|Issue Slots|Warp Cycles Per Issued|Registers Per|Stall|stall|Eligible|Active Warps|Bandwidth|gmma|pipe|bank|lts__t_bytes|cycles_elapsed|Pipe|Executed Ipc' \
  "$OUT/gemm_ncu_$TAG.txt" | cut -c1-200 | head -${LINES_OUT:-90}
