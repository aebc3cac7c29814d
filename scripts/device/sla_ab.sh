#!/bin/bash
# SageSLA sparse-kernel A/B on the lent GPU: the SlaCuda tests, a memcheck pass over the wgmma kernels, then
# `bench attention --breakdown` with the compact kernel (default), the pipelined kernel (TD_SLA_SPARSE=pipelined)
# and the in-loop wgmma kernel (TD_SLA_PIPELINED=0), interleaved ROUNDS times. Usage: scripts/device/sla_ab.sh   (env: ROUNDS, ITERS, BIG=1 adds
# the 14B shape)
set -u
source scripts/device/env.sh
ROUNDS=${ROUNDS:-2}
ITERS=${ITERS:-20}
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv,noheader
$B/td_tests --gtest_filter='SlaCuda.*:Attention*' 2>&1 | grep -E "^\[sla-cuda\] (wgmma|full)|OK \]|FAILED|PASSED" | tail -40
compute-sanitizer --tool memcheck --error-exitcode 1 $B/td_tests --gtest_filter='SlaCuda.WgmmaMatchesMmaSync' 2>&1 |
  grep -E "ERROR SUMMARY|PASSED|FAILED" | head -5
for r in $(seq "$ROUNDS"); do
  for v in compact pipelined inloop; do
    env_v=""
    [ "$v" = pipelined ] && env_v="TD_SLA_SPARSE=pipelined"
    [ "$v" = inloop ] && env_v="TD_SLA_PIPELINED=0"
    echo "== round $r: $v"
    env $env_v $B/turbodiff bench attention --breakdown --no-14b --modes dense,sagesla --iters "$ITERS" 2>&1 |
      grep -vE "^$" | head -24
    if [ "${BIG:-0}" = 1 ]; then
      env $env_v $B/turbodiff bench attention --modes sagesla --topk 0.1 --iters 5 2>&1 | grep -vE "^$" | head -10
    fi
  done
done
