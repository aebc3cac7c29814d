#!/usr/bin/env bash
# A/B of VAE conv variants on the lent GPU. VARIANTS: a list of BIN:ENV entries, BIN "new" (this build) or "base"
# (build-dev/pack/base.tgz, the binaries before a change), ENV env assignments joined by commas or "-". Runs the VAE
# tests of each new variant, `bench vae --convs` (TILES=1: every tile) and decode/encode at 81x480x832, alternated.
set -uo pipefail
source "$(dirname "$0")/env.sh"
[ -f build-dev/pack/base.tgz ] && mkdir -p /tmp/base && tar -xzf build-dev/pack/base.tgz -C /tmp/base
nvidia-smi --query-gpu=name --format=csv,noheader
VARIANTS=${VARIANTS:-new:-}
bin_of() { [ "${1%%:*}" = base ] && echo /tmp/base || echo "$B"; }
env_of() { local e=${1#*:}; [ "$e" = "-" ] && echo "" || echo "${e//,/ }"; }
for v in $VARIANTS; do
  [ "${v%%:*}" = base ] && continue
  env $(env_of "$v") timeout 200 $B/td_tests --gtest_filter="${TESTS:-Vae*}" > "$OUT/tests.log" 2>&1
  echo "tests [$v] rc=$?"; grep -E '^\[  (FAILED|PASSED) |Failure' "$OUT/tests.log" | tail -5
done
for round in $(seq ${ROUNDS:-2}); do
  for v in $VARIANTS; do
    t=""; [ -n "${TILES:-}" ] && [ "${v%%:*}" = new ] && t=--tiles
    echo "== convs [$v] =="; env $(env_of "$v") timeout 90 $(bin_of "$v")/turbodiff bench vae --convs $t --iters 20 2>&1 | grep -E 'wgmma|n96|n192|norm|shuffle|accumulate'
  done
done
for round in $(seq ${ROUNDS:-2}); do
  for v in $VARIANTS; do
    echo "== vae [$v] =="; env $(env_of "$v") timeout 120 $(bin_of "$v")/turbodiff bench vae --random-weights --iters ${ITERS:-3} 2>&1 | grep -E 'decode|encode' | tail -2
  done
done
