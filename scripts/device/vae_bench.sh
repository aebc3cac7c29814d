#!/usr/bin/env bash
# VAE decode on the lent GPU: the VAE test subset, then `bench vae` at 81x480x832 for the default route and the
# variants named in VARIANTS (env assignments; "-" = default), and one per-op profile. Logs go to $OUT.
set -uo pipefail
source "$(dirname "$0")/env.sh"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
timeout 120 $B/td_tests --gtest_filter='Vae*' > "$OUT/vae_tests.log" 2>&1; echo "vae tests rc=$?"
grep -E '^\[  (FAILED|PASSED) |rings|peak' "$OUT/vae_tests.log" | tail -8
for v in ${VARIANTS:--}; do
  [ "$v" = "-" ] && v=""
  echo "== ${v:-default} =="
  env $v timeout 90 $B/turbodiff bench vae --random-weights --no-encode --iters ${ITERS:-3} 2>&1 | grep -E 'decode|peak' | tail -3
done
if [ -n "${PROFILE:-1}" ]; then
  TD_VAE_PROFILE=1 timeout 90 $B/turbodiff bench vae --random-weights --no-encode --iters 1 > "$OUT/vae_profile.log" 2>&1
  grep -E 'profile|ms' "$OUT/vae_profile.log" | head -40
fi
